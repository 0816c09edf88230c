"""Synthetic release: layout, determinism, realism, and the built-in truth."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.areas import load_la_covariates
from data.prepare import prepare
from data.synthetic import DEFAULT_SEED, GENERATOR_VERSION, generate_release, simulate
from data.truth import TRUTH, design_matrix, expand_formula

N = 2_000
PER_WAVE_FILES = [
    "ukhls_w6/f_indresp.tab",
    "ukhls_w6/f_hhresp.tab",
    "ukhls_w7/g_indresp.tab",
    "ukhls_w7/g_hhresp.tab",
    "ukhls_w9/i_indresp.tab",
    "ukhls_w9/i_hhresp.tab",
    "sn6666/f_oslaua_protect.tab",
    "sn6666/g_oslaua_protect.tab",
    "sn6666/i_oslaua_protect.tab",
    "area_simulated.csv",
    "truth.json",
    "truth_la_effects.csv",
    "README.txt",
]


@pytest.fixture(scope="module")
def rel(tmp_path_factory) -> Path:
    return generate_release(tmp_path_factory.mktemp("syn") / "a", n=N, seed=DEFAULT_SEED)


@pytest.fixture(scope="module")
def big():
    """In-memory simulation large enough for a frequentist sanity check."""
    return simulate(n=20_000, seed=DEFAULT_SEED)


def _tab(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- files
def test_per_wave_layout(rel):
    assert _files(rel) == sorted(PER_WAVE_FILES)
    assert "SYNTHETIC" in (rel / "README.txt").read_text()
    area = pd.read_csv(rel / "area_simulated.csv")
    assert area["simulated"].all() and "walkability" in area.columns and "turnover" not in area.columns


def test_same_seed_same_bytes_different_seed_differs(rel, tmp_path):
    again = generate_release(tmp_path / "b", n=N, seed=DEFAULT_SEED)
    for f in PER_WAVE_FILES:
        assert filecmp.cmp(rel / f, again / f, shallow=False), f
    other = generate_release(tmp_path / "c", n=N, seed=DEFAULT_SEED + 1)
    for f in ("ukhls_w6/f_indresp.tab", "truth_la_effects.csv", "area_simulated.csv"):
        assert not filecmp.cmp(rel / f, other / f, shallow=False), f


def test_wave_specific_modules_and_prefixes(rel):
    f = _tab(rel / "ukhls_w6" / "f_indresp.tab")
    g = _tab(rel / "ukhls_w7" / "g_indresp.tab")
    i = _tab(rel / "ukhls_w9" / "i_indresp.tab")
    for df, w in ((f, "f"), (g, "g"), (i, "i")):
        assert df.columns[0] == "pidp"
        assert all(c.startswith(f"{w}_") for c in df.columns[1:])
    assert "g_scwemwba" in g and "g_swemwbs_dv" in g
    assert not any("scwemwb" in c for c in [*f.columns, *i.columns])
    assert "i_sclonely" in i and not any("sclonely" in c for c in [*f.columns, *g.columns])
    assert "f_scopngbhc" in f and "i_scopngbhc" in i and "g_scopngbhc" not in g
    # routed-out -8 (volunteering frequency of non-volunteers), proxies -7
    assert ((f["f_volun"] == 2) == (f["f_volfreq"] == -8)).all()
    assert (g.loc[g["g_ivfio"] == 2, "g_swemwbs_dv"] == -7).all()


def test_attrition_proxies_and_la_records(rel):
    f = _tab(rel / "ukhls_w6" / "f_indresp.tab")
    g = _tab(rel / "ukhls_w7" / "g_indresp.tab")
    i = _tab(rel / "ukhls_w9" / "i_indresp.tab")
    assert len(f) == N
    assert 0.06 < 1 - f["pidp"].isin(g["pidp"]).mean() < 0.14
    assert 0.20 < 1 - f["pidp"].isin(i["pidp"]).mean() < 0.30
    assert 0.015 < (f["f_ivfio"] == 2).mean() < 0.05
    osl = pd.read_csv(rel / "sn6666" / "f_oslaua_protect.tab", sep="\t", dtype=str)
    hh = _tab(rel / "ukhls_w6" / "f_hhresp.tab")
    no_rec = 1 - hh["f_hidp"].astype(str).isin(osl["f_hidp"]).mean()
    assert 0 < no_rec < 0.01
    sizes = f.groupby("f_hidp").size()
    assert sizes.between(1, 4).all() and set(sizes) == {1, 2, 3, 4}


def test_las_are_real_gb_with_core_covariates_plus_ni(rel):
    table, audit = prepare(rel)
    cov = load_la_covariates().set_index("lad19cd")
    assert cov.loc[table["lad"].astype(str).unique(), "unemp_rate_apr2015_mar2016"].notna().all()
    assert not table["lad"].isin(["E09000001", "E06000053"]).any()  # no unemployment figures
    assert audit.drop_counts().sum() < 0.03 * N
    # the largest LAs by electorate hold the most respondents
    top = table["lad"].value_counts().index[:5]
    assert "E08000025" in set(top)  # Birmingham


def test_individual_covariates_follow_area_characteristics(big):
    t = big.table
    by_la = t.groupby("lad")[
        [
            "income_eq",
            "urban",
            "area_deprivation_raw",
            "area_unsafe_raw",
            "area_walkability_raw",
            "unemployed",
            "area_unemployment_raw",
        ]
    ].mean()
    eng = by_la.dropna(subset=["area_deprivation_raw"])
    assert np.corrcoef(np.log(eng["income_eq"]), eng["area_deprivation_raw"])[0, 1] < -0.3
    assert np.corrcoef(by_la["unemployed"], by_la["area_unemployment_raw"])[0, 1] > 0.2
    assert np.corrcoef(by_la["area_unsafe_raw"], by_la["area_walkability_raw"])[0, 1] > 0.5
    cov = load_la_covariates().set_index("lad19cd")
    share = cov["ms_ruc_share_urban"].reindex(by_la.index)
    ok = share.notna()
    assert np.corrcoef(by_la.loc[ok, "urban"], share[ok])[0, 1] > 0.6


def test_sizes_are_validated():
    with pytest.raises(ValueError, match="500,000"):
        simulate(n=10)


# --------------------------------------------------------------------------- truth
def test_truth_json_format(rel):
    truth = json.loads((rel / "truth.json").read_text())
    meta = truth["_meta"]
    assert (meta["seed"], meta["n"], meta["version"]) == (DEFAULT_SEED, N, GENERATOR_VERSION)
    outcomes = [k for k in truth if not k.startswith("_")]
    assert set(outcomes) == set(TRUTH)
    for name in outcomes:
        spec = truth[name]
        assert spec["formula"].startswith(name + " ~")
        assert list(spec["fixed"]) == ["Intercept", *expand_formula(spec["formula"])]
        g = spec["groups"]["lad"]
        k = len(g["terms"])
        assert g["terms"][0] == "Intercept" and len(g["sd"]) == k
        assert np.allclose(np.diag(g["corr"]), 1) and np.allclose(g["corr"], np.transpose(g["corr"]))
        assert isinstance(spec["exact"], bool) and spec["note"]
        if spec["exact"]:  # survey-plausible sizes, log-odds per SD or per unit
            sizes = [abs(v) for t, v in spec["fixed"].items() if t != "Intercept"]
            assert all(0.05 <= v <= 0.9 for v in sizes), name
    assert truth["community_rel"]["exact"] is False
    assert all(truth[o]["exact"] for o in outcomes if o != "community_rel")
    mw = truth["mental_wellbeing_high"]["groups"]["lad"]
    assert mw["terms"] == ["Intercept", "sociability"] and mw["corr"][0][1] == -0.5
    ca = truth["community_abs"]["groups"]["lad"]
    assert ca["terms"] == ["Intercept", "age50"] and ca["corr"][0][1] == 0.4


def test_truth_builds_in_the_study_findings():
    f = {k: v.fixed for k, v in TRUTH.items()}
    for o in ("life_satisfied", "mental_wellbeing_high", "community_abs"):
        assert f[o]["area_volunteering"] > 0 and f[o]["area_unemployment"] < 0  # 1
        assert f[o]["unsafe"] < 0 and "area_walkability" not in f[o]  # 5
    for o in ("life_satisfied", "mental_wellbeing_high"):
        assert f[o]["area_turnout"] > 0  # 2
        assert f[o]["belonging"] > f[o]["local_friends"] > 0  # 7
        assert abs(f[o]["lonely"]) > f[o]["local_friends"] and f[o]["lonely"] < 0
    assert f["life_satisfied"]["area_income"] > 0 and f["mental_wellbeing_high"]["area_income"] > 0
    assert f["community_abs"]["urban"] < 0 and f["community_abs"]["urban:area_turnout"] > 0  # 4
    assert f["mental_wellbeing_high"]["sociability:area_sociability"] > 0  # 6
    assert f["community_abs"]["age50:area_sociability"] > 0
    assert f["mental_wellbeing_high"]["log_income:area_income"] < 0


def test_la_effects_file(rel):
    eff = pd.read_csv(rel / "truth_la_effects.csv")
    assert list(eff.columns) == ["lad", "outcome", "term", "value"]
    drawn = [o for o in TRUTH if o != "community_rel"]
    want = 369 * sum(len(TRUTH[o].group_terms) for o in drawn)
    assert len(eff) == want
    mw = eff[eff["outcome"] == "mental_wellbeing_high"].pivot(index="lad", columns="term", values="value")
    assert mw.shape == (369, 2)


def _logit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood logistic regression by Newton-Raphson (fixed effects only)."""
    b = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ b))
        h = x.T @ (x * (p * (1 - p))[:, None])
        step = np.linalg.solve(h, x.T @ (y - p))
        b += step
        if np.abs(step).max() < 1e-10:
            break
    return b, np.sqrt(np.diag(np.linalg.inv(h)))


def _fit(table: pd.DataFrame, outcome: str, terms: list[str]) -> pd.DataFrame:
    need = {v for t in terms for v in t.split(":")} | {outcome}
    d = table.dropna(subset=sorted(need))
    x = np.column_stack([np.ones(len(d)), design_matrix(d, terms)])
    b, se = _logit(x, d[outcome].to_numpy())
    return pd.DataFrame({"b": b, "se": se}, index=["Intercept", *terms])


def test_walkability_effect_vanishes_after_adjusting_for_safety(big):
    """Finding 5: omitted-variable effect of walkability through feeling unsafe."""
    t = big.table.dropna(subset=["unsafe"])
    for outcome in ("community_abs", "life_satisfied"):
        base = [x for x in TRUTH[outcome].terms if x != "unsafe"] + ["area_walkability"]
        without = _fit(t, outcome, base).loc["area_walkability"]
        with_ = _fit(t, outcome, [*base, "unsafe"]).loc["area_walkability"]
        assert without["b"] < -2 * without["se"], outcome
        assert abs(with_["b"]) < 2 * with_["se"], outcome
        assert abs(with_["b"]) < abs(without["b"]) / 2, outcome


def test_built_in_signs_are_recovered(big):
    t = big.table
    ca = _fit(t, "community_abs", TRUTH["community_abs"].terms)["b"]
    assert ca["urban"] < 0 and ca["urban:area_turnout"] > 0 and ca["age50:area_sociability"] > 0
    mw = _fit(t, "mental_wellbeing_high", TRUTH["mental_wellbeing_high"].terms)["b"]
    assert mw["sociability:area_sociability"] > 0 and mw["log_income:area_income"] < 0
    ls = _fit(t, "life_satisfied", TRUTH["life_satisfied"].terms)
    assert (
        np.abs(ls["b"].iloc[1:] - pd.Series(TRUTH["life_satisfied"].fixed).iloc[1:])
        < 4 * ls["se"].iloc[1:] + 0.05
    ).all()
    rel = _fit(t, "community_rel", TRUTH["community_rel"].terms)["b"]
    assert rel["urban"] < 0 and rel["urban:area_turnout"] > 0


def test_prepare_generates_then_reuses(tmp_path):
    out = tmp_path / "syn"
    table, audit = prepare(out=out, n=1_000, seed=5)
    assert len(table) == audit.rows_out and "generated" in audit.notes[0]
    stamp = (out / "ukhls_w6" / "f_indresp.tab").stat().st_mtime_ns
    table2, audit2 = prepare(out=out, n=1_000, seed=5)
    assert "reused" in audit2.notes[0]
    assert (out / "ukhls_w6" / "f_indresp.tab").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(table, table2)


def test_prepare_command_line(tmp_path, capsys):
    """The one prepare command (`sameplace prepare`), writing through `data.prepare.save_table`."""
    from analysis.cli import main

    saved = tmp_path / "table.csv"
    assert main(["prepare", "--out", str(tmp_path / "r"), "--n", "1000", "--save", str(saved)]) == 0
    printed = capsys.readouterr().out
    assert "Rows in" in printed and "written to" in printed
    assert len(pd.read_csv(saved)) > 900


def test_data_package_has_no_pymc():
    import subprocess
    import sys

    code = "import sys, data, data.prepare, data.synthetic; print('pymc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
