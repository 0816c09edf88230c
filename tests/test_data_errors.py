"""Bad inputs give DataError naming file, column and value (broken copies of a release)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from data.config import ReaderConfig
from data.errors import DataError
from data.synthetic import generate_release
from data.ukhls import read_release


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return generate_release(tmp_path_factory.mktemp("src") / "rel", n=1_000, seed=11, layout="flat")


@pytest.fixture
def rel(source, tmp_path) -> Path:
    dst = tmp_path / "rel"
    shutil.copytree(source, dst)
    return dst


def _edit(path: Path, fn, dtype=None) -> None:
    df = pd.read_csv(path, sep="\t", dtype=dtype)
    df = fn(df)
    df.to_csv(path, sep="\t", index=False)


def _err(path: Path, config: ReaderConfig | None = None) -> DataError:
    with pytest.raises(DataError) as info:
        read_release(path, config)
    return info.value


def test_missing_file_lists_what_was_looked_for(rel):
    (rel / "i_indresp.tab").unlink()
    e = _err(rel)
    assert "i_indresp.tab" in str(e) and str(rel) in str(e) and "Looked" in str(e)


def test_missing_la_file_mentions_sn6666(rel):
    (rel / "f_oslaua_protect.tab").unlink()
    e = _err(rel)
    assert "f_oslaua_protect" in str(e) and "SN 6666" in str(e)


def test_missing_release_folder(tmp_path):
    e = _err(tmp_path / "nowhere")
    assert "nowhere" in str(e)


def test_misspelt_column_suggests_the_closest_name(rel):
    _edit(rel / "f_indresp.tab", lambda d: d.rename(columns={"f_sclfsato": "f_sclfsat"}))
    e = _err(rel)
    assert "f_indresp.tab" in str(e) and "'f_sclfsato'" in str(e)
    assert "did you mean 'f_sclfsat'" in str(e)
    assert (e.file, e.column, e.value) == ("f_indresp.tab", "f_sclfsato", "f_sclfsat")


def test_missing_column_without_close_match(rel):
    _edit(rel / "f_hhresp.tab", lambda d: d.drop(columns=["f_ieqmoecd_dv"]))
    e = _err(rel)
    assert "f_hhresp.tab" in str(e) and "f_ieqmoecd_dv" in str(e)


def test_text_in_numeric_column_names_value_and_row(rel):
    def bad(d):
        d["f_sclfsato"] = d["f_sclfsato"].astype(object)
        d.loc[4, "f_sclfsato"] = "seven"
        return d

    _edit(rel / "f_indresp.tab", bad)
    e = _err(rel)
    msg = str(e)
    assert "f_indresp.tab" in msg and "'f_sclfsato'" in msg and "'seven'" in msg
    assert "row 5" in msg and "line 6" in msg
    assert (e.file, e.column, e.value, e.row) == ("f_indresp.tab", "f_sclfsato", "seven", 5)


def test_unknown_la_code(rel):
    def bad(d):
        d.loc[2, "f_oslaua"] = "E99999999"
        return d

    _edit(rel / "f_oslaua_protect.tab", bad, dtype={"f_oslaua": str})
    e = _err(rel)
    msg = str(e)
    assert "f_oslaua_protect.tab" in msg and "'f_oslaua'" in msg and "E99999999" in msg
    assert "row 3" in msg and "Northern Ireland" in msg
    assert (e.file, e.column, e.value, e.row) == ("f_oslaua_protect.tab", "f_oslaua", "E99999999", 3)


def test_post_2019_merged_la_code(rel):
    def bad(d):
        d.loc[0, "f_oslaua"] = "E06000060"
        return d

    _edit(rel / "f_oslaua_protect.tab", bad, dtype={"f_oslaua": str})
    e = _err(rel)
    assert "E06000060" in str(e) and "Buckinghamshire" in str(e) and "f_oslaua_protect.tab" in str(e)


def test_missing_la_code_is_a_stated_drop_not_an_error(rel):
    def bad(d):
        d.loc[0, "f_oslaua"] = "-9"
        return d

    _edit(rel / "f_oslaua_protect.tab", bad, dtype={"f_oslaua": str})
    table, audit = read_release(rel)
    reasons = audit.drop_counts()
    assert any(r.startswith("LA code missing") for r in reasons.index)
    audit.check()


def test_duplicate_pidp(rel):
    def bad(d):
        return pd.concat([d, d.iloc[[10]]], ignore_index=True)

    _edit(rel / "f_indresp.tab", bad)
    e = _err(rel)
    pidp = int(pd.read_csv(rel / "f_indresp.tab", sep="\t")["pidp"].iloc[10])
    assert "f_indresp.tab" in str(e) and "duplicate pidp" in str(e) and str(pidp) in str(e)
    assert (e.file, e.column, e.value) == ("f_indresp.tab", "pidp", pidp)


def test_duplicate_household_in_hhresp(rel):
    _edit(rel / "f_hhresp.tab", lambda d: pd.concat([d, d.iloc[[3]]], ignore_index=True))
    e = _err(rel)
    assert "f_hhresp.tab" in str(e) and "f_hidp" in str(e)


def test_empty_file(rel):
    (rel / "f_hhresp.tab").write_text("")
    e = _err(rel)
    assert "f_hhresp.tab" in str(e) and "empty" in str(e)


def test_header_only_file(rel):
    p = rel / "g_indresp.tab"
    p.write_text(p.read_text().splitlines()[0] + "\n")
    e = _err(rel)
    assert "g_indresp.tab" in str(e) and "no data rows" in str(e)


def test_wrong_wave_prefix(rel):
    _edit(rel / "f_indresp.tab", lambda d: d.rename(columns={"f_health": "g_health"}))
    e = _err(rel)
    msg = str(e)
    assert "f_indresp.tab" in msg and "'g_health'" in msg and "'g_'" in msg
    assert (e.file, e.column) == ("f_indresp.tab", "g_health")


def test_another_waves_file_in_place_of_wave_6(rel):
    shutil.copy(rel / "g_indresp.tab", rel / "f_indresp.tab")
    e = _err(rel)
    assert "f_indresp.tab" in str(e) and "g_" in str(e)


def test_missing_pidp_value(rel):
    def bad(d):
        d.loc[7, "pidp"] = -9
        return d

    _edit(rel / "f_indresp.tab", bad)
    e = _err(rel)
    assert "f_indresp.tab" in str(e) and "pidp" in str(e) and "row 8" in str(e)


def test_two_copies_of_a_file_are_ambiguous(rel):
    (rel / "copy").mkdir()
    shutil.copy(rel / "f_hhresp.tab", rel / "copy" / "f_hhresp.tab")
    e = _err(rel)
    assert "f_hhresp.tab" in str(e) and "more than one" in str(e)


def test_bad_extra_area_file(rel):
    p = rel / "extra.csv"
    pd.DataFrame({"lad19cd": ["E06000001", "E06000002"], "parks": ["1.5", "lots"]}).to_csv(p, index=False)
    e = _err(rel, ReaderConfig(extra_area_files=(p,)))
    assert "extra.csv" in str(e) and "'parks'" in str(e) and "'lots'" in str(e) and "row 2" in str(e)


def test_extra_area_file_with_unknown_code(rel):
    p = rel / "extra.csv"
    pd.DataFrame({"lad19cd": ["E06000001", "Q1"], "parks": [1.0, 2.0]}).to_csv(p, index=False)
    e = _err(rel, ReaderConfig(extra_area_files=(p,)))
    assert "extra.csv" in str(e) and "Q1" in str(e)


def test_extra_area_file_is_joined_as_published(rel):
    p = rel / "extra.csv"
    pd.DataFrame({"LAD19CD": ["E06000001", "E06000002"], "parks": [1.0, 3.0]}).to_csv(p, index=False)
    table, _ = read_release(rel, ReaderConfig(extra_area_files=(p,)))
    assert "area_parks" in table.columns and "area_parks_raw" in table.columns
    from data.dictionary import describe_columns

    src = describe_columns(table).set_index("name")["source"]
    assert src["area_parks"].startswith("published (extra file extra.csv")
