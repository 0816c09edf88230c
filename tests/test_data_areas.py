"""Real LA covariates and LA code harmonisation."""

from __future__ import annotations

import pandas as pd
import pytest

from data.areas import (
    LA_DIR,
    PUBLISHED_AREA_COLUMNS,
    harmonise_la_code,
    harmonise_la_codes,
    is_northern_ireland,
    la_lookup,
    load_la_covariates,
)
from data.errors import DataError


def test_la_covariates_are_the_371_gb_districts_with_published_columns():
    cov = load_la_covariates()
    assert len(cov) == 371
    assert cov["lad19cd"].is_unique
    assert cov["country"].value_counts().to_dict() == {"England": 317, "Scotland": 32, "Wales": 22}
    for col, _units, _meaning in PUBLISHED_AREA_COLUMNS.values():
        assert col in cov.columns
    assert cov["unemp_rate_apr2015_mar2016"].notna().sum() == 369
    # raw values keep their published units (percentages, not z-scores)
    assert 50 < cov["euref_turnout_pct"].mean() < 90


def test_load_la_covariates_returns_a_copy():
    a = load_la_covariates()
    a.loc[0, "lad19nm"] = "changed"
    assert load_la_covariates().loc[0, "lad19nm"] != "changed"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("E06000048", "E06000057"),  # Northumberland 2013
        ("E08000020", "E08000037"),  # Gateshead 2013
        ("E07000097", "E07000242"),  # East Hertfordshire 2014
        ("E07000101", "E07000243"),  # Stevenage
        ("E07000100", "E07000240"),  # St Albans
        ("E07000104", "E07000241"),  # Welwyn Hatfield
        ("S12000015", "S12000047"),  # Fife 2018
        ("S12000024", "S12000048"),  # Perth and Kinross
        ("S12000046", "S12000049"),  # Glasgow 2019
        ("S12000044", "S12000050"),  # North Lanarkshire
        ("E06000028", "E06000058"),  # Bournemouth -> BCP
        ("E07000048", "E06000058"),  # Christchurch -> BCP
        ("E07000053", "E06000059"),  # Weymouth and Portland -> Dorset
        ("E07000201", "E07000245"),  # Forest Heath -> West Suffolk
        ("E07000206", "E07000244"),  # Waveney -> East Suffolk
        ("E07000191", "E07000246"),  # West Somerset -> Somerset West and Taunton
        ("E09000033", "E09000033"),  # Westminster, unchanged
        (" e06000001 ", "E06000001"),  # case and spaces
    ],
)
def test_old_codes_map_to_2019(old, new):
    assert harmonise_la_code(old) == new


def test_every_2019_code_maps_to_itself():
    cov = load_la_covariates()
    assert all(harmonise_la_code(c) == c for c in cov["lad19cd"])


def test_northern_ireland_is_known_without_covariates():
    assert harmonise_la_code("N09000003") == "N09000003"
    assert is_northern_ireland("N09000003")
    assert not is_northern_ireland("E06000001")


@pytest.mark.parametrize("code", ["E99999999", "XYZ", "W06999999"])
def test_unknown_code_errors(code):
    with pytest.raises(DataError, match=code):
        harmonise_la_code(code)


def test_post_2019_merged_code_names_its_parts():
    with pytest.raises(DataError) as err:
        harmonise_la_code("E06000060")
    msg = str(err.value)
    assert "E06000060" in msg and "Buckinghamshire" in msg and "Aylesbury Vale" in msg


def test_every_code_in_the_history_file_is_resolved_or_ambiguous():
    lk = la_lookup()
    hist = pd.read_csv(LA_DIR / "lad_code_history_2016_2024.csv", dtype=str)
    codes = pd.unique(hist[[c for c in hist.columns if c.endswith("_code")]].to_numpy().ravel())
    for code in codes:
        entry = lk.resolve(code)
        assert entry is not None, code
        if entry.lad19cd is None:
            assert len(entry.targets) > 1


def test_vectorised_harmonisation_with_report():
    s = pd.Series(["E06000048", "E06000048", "-9", None, "N09000001", "E09000001", ""])
    out, report = harmonise_la_codes(s, source="f_oslaua_protect.tab", column="f_oslaua")
    assert out.tolist()[:2] == ["E06000057", "E06000057"]
    assert out.isna().tolist() == [False, False, True, True, False, False, True]
    rep = report.set_index("code")
    assert rep.loc["E06000048", "n"] == 2
    assert rep.loc["E06000048", "status"].startswith("recoded (hand-entered")
    assert rep.loc["<missing>", "n"] == 3
    assert rep.loc["N09000001", "status"].startswith("Northern Ireland")
    assert rep.loc["E09000001", "status"] == "2019 code"
    assert report["n"].sum() == len(s)


def test_vectorised_error_names_file_column_value_and_row():
    s = pd.Series(["E06000001", "E06000002", "E99000001"], index=[1, 2, 3])
    with pytest.raises(DataError) as err:
        harmonise_la_codes(s, source="f_oslaua_protect.tab", column="f_oslaua")
    e = err.value
    assert "f_oslaua_protect.tab" in str(e) and "'f_oslaua'" in str(e) and "E99000001" in str(e)
    assert (e.file, e.column, e.value, e.row) == ("f_oslaua_protect.tab", "f_oslaua", "E99000001", 3)
