"""UKHLS reader on generated releases: round trip, missing codes, audit, options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.areas import harmonise_la_codes, load_la_covariates
from data.config import ReaderConfig
from data.derive import loo_mean, zscore
from data.dictionary import describe_columns
from data.synthetic import generate_release
from data.truth import TRUTH, design_matrix
from data.ukhls import DROP_NI, read_release

N = 3_000
SEED = 7


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    path, sim = generate_release(
        tmp_path_factory.mktemp("rel") / "per_wave", n=N, seed=SEED, return_frame=True
    )
    return path, sim


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    return generate_release(tmp_path_factory.mktemp("rel") / "flat", n=N, seed=SEED, layout="flat")


@pytest.fixture(scope="module")
def result(release):
    return read_release(release[0])


def _tab(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


def _same(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray) -> bool:
    return np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True)


# --------------------------------------------------------------------------- round trip
def test_round_trip_equals_generator_table_per_wave(release, result):
    table, _ = result
    pd.testing.assert_frame_equal(table, release[1].table, check_exact=True)


def test_round_trip_equals_generator_table_flat(release, flat):
    table, audit = read_release(flat)
    pd.testing.assert_frame_equal(table, release[1].table, check_exact=True)
    assert all(Path(f.path).parent == flat for f in audit.files)


def test_outcomes_equal_the_drawn_values_where_observed(release, result):
    table, _ = result
    latent = release[1].latent
    assert (latent["pidp"].to_numpy() == table["pidp"].to_numpy()).all()
    for name in (*TRUTH.keys() - {"community_rel"},):
        obs = table[name].to_numpy()
        ok = ~np.isnan(obs)
        assert ok.mean() > 0.5, name
        assert np.array_equal(obs[ok], latent[f"true_{name}"].to_numpy()[ok]), name


def test_truth_files_reproduce_the_linear_predictors(release, result):
    """truth.json + truth_la_effects.csv + the table give back the generator's eta."""
    path, sim = release
    table, _ = result
    truth = json.loads((path / "truth.json").read_text())
    eff = pd.read_csv(path / "truth_la_effects.csv")
    for name, spec in truth.items():
        if name.startswith("_") or not spec["exact"]:
            continue
        terms = [t for t in spec["fixed"] if t != "Intercept"]
        parts = {v for t in terms for v in t.split(":")}
        cc = table[list(parts)].notna().all(axis=1).to_numpy()
        x = design_matrix(table, terms)
        eta = spec["fixed"]["Intercept"] + x @ np.array([spec["fixed"][t] for t in terms])
        for term in spec["groups"]["lad"]["terms"]:
            u = eff[(eff["outcome"] == name) & (eff["term"] == term)].set_index("lad")["value"]
            zt = 1.0 if term == "Intercept" else table[term].to_numpy()
            eta = eta + zt * u.reindex(table["lad"].astype(str)).to_numpy()
        want = sim.latent[f"eta_{name}"].to_numpy()
        assert np.allclose(eta[cc], want[cc], atol=1e-5), name


def test_derived_variables_match_an_independent_derivation(release, result):
    """Recompute key variables with plain pandas from the written files."""
    path, _ = release
    table, audit = result
    f = _tab(path / "ukhls_w6" / "f_indresp.tab").set_index("pidp")
    g = _tab(path / "ukhls_w7" / "g_indresp.tab").set_index("pidp")
    i = _tab(path / "ukhls_w9" / "i_indresp.tab").set_index("pidp")
    hh = _tab(path / "ukhls_w6" / "f_hhresp.tab").set_index("f_hidp")
    osl = pd.read_csv(path / "sn6666" / "f_oslaua_protect.tab", sep="\t", dtype={"f_oslaua": str})
    f = f.loc[table["pidp"]]

    def pos(s: pd.Series) -> pd.Series:
        return s.where(s >= 0)

    assert _same(table["life_satisfied"], (pos(f["f_sclfsato"]) >= 6).where(f["f_sclfsato"] > 0))
    assert _same(table["ghq_case"], (f["f_scghq2_dv"] >= 4).where(f["f_scghq2_dv"] >= 0))
    assert _same(table["belonging"], f["f_scopngbha"].isin([1, 2]).where(f["f_scopngbha"] > 0))
    assert _same(table["female"], (f["f_sex"] == 2).astype(float))
    assert _same(table["unemployed"], (f["f_jbstat"] == 3).where(f["f_jbstat"] > 0))
    assert _same(table["married"], f["f_mastat_dv"].isin([2, 3]).where(f["f_mastat_dv"] > 0))
    crd = f["f_crdark"]
    assert _same(table["unsafe"], crd.isin([3, 4]).where(crd.isin([1, 2, 3, 4])))
    assert _same(table["age50"], (f["f_age_dv"] >= 50).astype(float))
    sw = pos(g["g_swemwbs_dv"]).reindex(table["pidp"])
    assert _same(table["swemwbs"], sw)
    assert _same(table["mental_wellbeing_high"], (sw >= 24).where(sw.notna()))
    lon = pos(i["i_sclonely"]).reindex(table["pidp"])
    assert _same(table["lonely"], (lon >= 2).where(lon.notna()))
    assert (table["in_wave7"].to_numpy() == table["pidp"].isin(g.index).to_numpy()).all()
    assert (table["in_wave9"].to_numpy() == table["pidp"].isin(i.index).to_numpy()).all()
    items = f[[f"f_scopngbh{x}" for x in "cdefg"]]
    score = (6 - items.where(items > 0)).mean(axis=1, skipna=False)
    assert _same(table["community_score"], score)
    assert _same(table["community_abs"], (score >= 3.5).where(score.notna()))
    inc = hh["f_fihhmnnet1_dv"].reindex(table["hidp"]).to_numpy()
    eq = hh["f_ieqmoecd_dv"].reindex(table["hidp"]).to_numpy()
    income_eq = np.where(inc > 0, inc / eq, np.nan)
    assert np.allclose(table["income_eq"], income_eq, equal_nan=True, rtol=0, atol=1e-12)
    logz = (np.log(income_eq) - np.nanmean(np.log(income_eq))) / np.nanstd(np.log(income_eq))
    assert np.allclose(table["log_income"], logz, equal_nan=True, atol=1e-12)
    # LA: harmonised wave-6 code, published covariates joined on it
    lad, _ = harmonise_la_codes(osl["f_oslaua"])
    lad.index = osl["f_hidp"]
    assert (table["lad"].to_numpy() == lad.reindex(table["hidp"]).to_numpy()).all()
    cov = load_la_covariates().set_index("lad19cd")
    want = cov["euref_turnout_pct"].reindex(table["lad"].astype(str)).to_numpy()
    assert _same(table["area_turnout_raw"], want)
    assert np.allclose(table["area_turnout"], zscore(want), atol=1e-12)
    # leave-one-out mean over the other respondents of the same LA, by brute force
    vol = table["volunteer"].to_numpy()
    for k in range(0, len(table), 97):
        same = (table["lad"] == table["lad"].iloc[k]).to_numpy()
        same[k] = False
        others = vol[same]
        want_k = np.nanmean(others) if np.isfinite(others).any() else np.nan
        assert _same([table["area_volunteering_raw"].iloc[k]], [want_k])


def test_table_columns_and_types(result):
    table, _ = result
    for c in ("age50", "female", "urban", "unsafe", "life_satisfied", "community_rel"):
        vals = set(np.unique(table[c].dropna()))
        assert vals <= {0.0, 1.0}, c
    assert isinstance(table["education"].dtype, pd.CategoricalDtype)
    assert list(table["education"].cat.categories) == [
        "degree",
        "other_higher",
        "a_level",
        "gcse",
        "other",
        "none",
    ]
    assert table["pidp"].is_unique
    assert table["country"].isin(["England", "Wales", "Scotland"]).all()
    for c in [c for c in table.columns if c.startswith("area_") and not c.endswith("_raw")]:
        v = table[c].dropna()
        assert abs(v.mean()) < 1e-9 and abs(v.std(ddof=0) - 1) < 1e-9, c
        assert c + "_raw" in table.columns


def test_loo_mean_small_example():
    x = np.array([1.0, 3.0, np.nan, 5.0, 2.0])
    g = np.array(["a", "a", "a", "b", "c"])
    out = loo_mean(x, g)
    assert _same(out, [3.0, 1.0, 2.0, np.nan, np.nan])


# --------------------------------------------------------------------------- missing codes
def test_missing_codes_are_counted_exactly(release, result):
    path, _ = release
    _, audit = result
    got = audit.missing.set_index(["file", "variable", "code"])["count"]
    files = {
        "f_indresp.tab": path / "ukhls_w6" / "f_indresp.tab",
        "g_indresp.tab": path / "ukhls_w7" / "g_indresp.tab",
        "i_indresp.tab": path / "ukhls_w9" / "i_indresp.tab",
        "f_hhresp.tab": path / "ukhls_w6" / "f_hhresp.tab",
    }
    checked = 0
    for name, p in files.items():
        df = _tab(p)
        read_vars = set(audit.missing.loc[audit.missing["file"] == name, "variable"])
        for col in df.columns:
            var = col if col == "pidp" else col[2:]
            vc = df[col][df[col] < 0].value_counts()
            if var == "fihhmnnet1_dv":  # negative incomes are genuine values
                assert (name, var) not in {(a, b) for a, b, _ in got.index}
                continue
            if var not in read_vars:
                continue
            for code, n in vc.items():
                assert got[(name, var, str(int(code)))] == n, (name, var, code)
                checked += 1
            total = got.xs((name, var), level=["file", "variable"]).sum()
            assert total == vc.sum(), (name, var)
    assert checked > 50
    codes = set(audit.missing["code"])
    assert {"-1", "-2", "-7", "-8", "-9"} <= codes


def test_other_negative_and_boost_codes_are_counted(release, tmp_path):
    src = release[0]
    dst = tmp_path / "r"
    shutil.copytree(src, dst)
    p = dst / "ukhls_w6" / "f_indresp.tab"
    df = _tab(p)
    df.loc[0, "f_health"] = -3
    df.loc[1, "f_health"] = -10
    df.loc[2, "f_health"] = -11
    df.to_csv(p, sep="\t", index=False)
    table, audit = read_release(dst)
    m = audit.missing
    row = m[(m["file"] == "f_indresp.tab") & (m["variable"] == "health")].set_index("code")
    assert row.loc["other negative", "count"] == 1
    assert row.loc["-10", "count"] == 1 and row.loc["-11", "count"] == 1
    assert table["illness"].iloc[:3].isna().all()


def test_proxies_have_minus_7_on_self_completion(release):
    f = _tab(release[0] / "ukhls_w6" / "f_indresp.tab")
    proxy = f["f_ivfio"] == 2
    assert 0.015 < proxy.mean() < 0.05
    for c in ("f_sclfsato", "f_scghq2_dv", "f_scopngbha", "f_scopngbhh"):
        assert (f.loc[proxy, c] == -7).all()
        assert (f.loc[~proxy, c] != -7).all()


# --------------------------------------------------------------------------- audit
def test_audit_arithmetic(release, result):
    path, _ = release
    table, audit = result
    audit.check()
    f = _tab(path / "ukhls_w6" / "f_indresp.tab")
    assert audit.rows_in == len(f) == N
    assert audit.rows_out == len(table)
    assert audit.rows_in == audit.rows_out + int(audit.drop_counts().sum())
    osl = pd.read_csv(path / "sn6666" / "f_oslaua_protect.tab", sep="\t", dtype={"f_oslaua": str})
    no_rec = ~f["f_hidp"].isin(osl["f_hidp"])
    ni = f["f_hidp"].map(osl.set_index("f_hidp")["f_oslaua"]).str.startswith("N").fillna(False)
    counts = audit.drop_counts()
    assert counts["no LA record for household in f_oslaua_protect.tab"] == no_rec.sum() > 0
    assert counts[DROP_NI] == ni.sum() > 0
    assert set(audit.drops["pidp"]) == set(f.loc[no_rec | ni, "pidp"])
    assert set(audit.drops["pidp"]).isdisjoint(table["pidp"])
    g = _tab(path / "ukhls_w7" / "g_indresp.tab")
    assert audit.found_wave7 == f["pidp"].isin(g["pidp"]).sum()
    hh = _tab(path / "ukhls_w6" / "f_hhresp.tab")
    assert audit.nonpositive_income_households == (hh["f_fihhmnnet1_dv"] <= 0).sum()
    assert audit.missing_in_table["income_eq"] >= audit.nonpositive_income_rows


def test_audit_reports(result):
    _, audit = result
    text = str(audit)
    assert "Rows in" in text and "Rows out" in text and "dropped" in text
    assert "Northern Ireland" in text and "-7" in text and "SIMULATED" in text
    frame = audit.to_frame()
    assert {"section", "item", "value"} == set(frame.columns)
    assert (frame["section"] == "drop").sum() == len(audit.drop_counts())
    d = json.loads(json.dumps(audit.to_dict(), default=str))
    assert d["rows_in"] == d["rows_out"] + sum(d["drops"].values())


def test_audit_check_catches_bad_arithmetic(result):
    import copy

    _, audit = result
    bad = copy.copy(audit)
    bad.rows_out += 1
    with pytest.raises(AssertionError):
        bad.check()


def test_data_dictionary(result):
    table, _ = result
    dd = describe_columns(table)
    assert list(dd["name"]) == list(table.columns)
    assert dd["meaning"].str.len().gt(0).all() and dd["units"].str.len().gt(0).all()
    src = dd.set_index("name")["source"]
    assert src["area_walkability"] == "simulated" and src["area_turnover_raw"] == "published"
    assert src["area_gdhi"] == "published" and src["weight_sc"].startswith("UKHLS")
    assert src["area_turnout_raw"] == "published"
    assert src["area_income"].startswith("derived from individual data (LOO")
    assert "%" in dd.set_index("name").loc["area_unemployment_raw", "units"]
    assert len(describe_columns()) >= len(table.columns)


# --------------------------------------------------------------------------- options
def test_cutoffs_are_configurable(release, result):
    table, _ = result
    cfg = ReaderConfig(
        life_satisfied_min=5,
        lonely_min=3,
        community_items=("c", "d"),
        community_abs_min=4.0,
        unsafe_never_out="unsafe",
        married_codes=(2,),
    )
    t2, _ = read_release(release[0], cfg)
    assert _same(t2["life_satisfied"], (table["lifesat_score"] >= 5).where(table["lifesat_score"].notna()))
    assert t2["life_satisfied"].mean() > table["life_satisfied"].mean()
    assert t2["lonely"].mean() < table["lonely"].mean()
    assert t2["unsafe"].notna().sum() > table["unsafe"].notna().sum()
    assert t2["married"].sum() <= table["married"].sum()
    assert not _same(t2["community_score"], table["community_score"])


def test_swemwbs_from_items_equals_raw_sum_dv(release, result):
    table, _ = result
    t2, _ = read_release(release[0], ReaderConfig(swemwbs_source="items"))
    assert _same(t2["swemwbs"], table["swemwbs"])


def test_case_insensitive_names_dta_and_separate_la_path(release, tmp_path):
    src, sim = release
    dst = tmp_path / "r"
    shutil.copytree(src, dst)
    (dst / "ukhls_w6").rename(dst / "UKHLS_W6")
    (dst / "UKHLS_W6" / "f_indresp.tab").rename(dst / "UKHLS_W6" / "F_INDRESP.TAB")
    hh = dst / "UKHLS_W6" / "f_hhresp.tab"
    _tab(hh).to_stata(hh.with_suffix(".dta"), write_index=False)
    hh.unlink()
    la_dir = tmp_path / "sn6666_elsewhere"
    (dst / "sn6666").rename(la_dir)
    table, audit = read_release(dst, ReaderConfig(la_path=la_dir))
    pd.testing.assert_frame_equal(table, sim.table, check_exact=True)
    fmt = {f.role: f.format for f in audit.files}
    assert fmt["hhresp_f"] == "dta" and fmt["indresp_f"] == "tab"


def test_negative_income_is_a_value_not_a_missing_code(release, result):
    _, audit = result
    hh = _tab(release[0] / "ukhls_w6" / "f_hhresp.tab")
    assert (hh["f_fihhmnnet1_dv"] < 0).any() and (hh["f_fihhmnnet1_dv"] == 0).any()
    assert audit.nonpositive_income_households == (hh["f_fihhmnnet1_dv"] <= 0).sum()
