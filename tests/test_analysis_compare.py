"""The Bayesian fit next to lme4 glmer (or other reference estimates): numbers, flags, R missing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_analysis_support import fake_fit, fake_glmer, simulate

from analysis import lme4
from analysis import summaries as S
from analysis.compare import compare_with_lme4, glmer_formula, shrinkage_table, side_by_side


@pytest.fixture(scope="module")
def data():
    return simulate(small_la=False)


@pytest.fixture(scope="module")
def fit(data):
    return fake_fit(data[0], "y ~ age50 + x + (1 + age50 | lad)", sd={"Intercept": 0.5, "age50": 0.04})


def test_difference_in_se_units_against_a_fake_glmer(fit):
    ref = fake_glmer(
        {"Intercept": (-0.1, 0.2), "age50": (0.5, 0.1), "x": (0.2, 0.05), "extra": (1.0, 0.5)},
        {("lad", "Intercept"): 0.45, ("lad.1", "age50"): 0.0},
        {("lad", "Intercept", "age50"): -1.0},
        singular=True,
    )
    sbs = side_by_side(fit, ref)
    t = sbs.table.set_index("parameter")
    draws = {"Intercept": S.posterior_draws(fit, "Intercept")}
    b = S.posterior_draws(fit, "b")
    draws.update({"age50": b[:, 0], "x": b[:, 1]})
    for term, (est, se) in {"Intercept": (-0.1, 0.2), "age50": (0.5, 0.1), "x": (0.2, 0.05)}.items():
        x = draws[term]
        row = t.loc[term]
        assert row.ref_estimate == est and row.ref_se == se
        assert (row.ref_ci95_low, row.ref_ci95_high) == pytest.approx(
            (est - 1.96 * se, est + 1.96 * se), abs=1e-4
        )
        assert row.post_mean == pytest.approx(x.mean())
        assert row.post_sd == pytest.approx(x.std(ddof=1))
        assert (row.post_eti95_low, row.post_eti95_high) == pytest.approx(
            tuple(np.quantile(x, [0.025, 0.975]))
        )
        assert row.diff_in_se == pytest.approx((x.mean() - est) / se)
        assert row.sd_over_se == pytest.approx(x.std(ddof=1) / se)
    assert t.loc["extra", "note"] == "not in the Bayesian model"
    # group SDs and correlation: lme4's "lad.1" (second || component) maps back to lad
    sd = S.posterior_draws(fit, "sd_lad")
    assert t.loc["sd(lad: Intercept)", "ref_estimate"] == 0.45
    assert t.loc["sd(lad: Intercept)", "post_mean"] == pytest.approx(sd[:, 0].mean())
    assert t.loc["sd(lad: age50)", "ref_estimate"] == 0.0
    assert math.isnan(t.loc["sd(lad: age50)", "diff_in_se"])
    assert t.loc["cor(lad: Intercept, age50)", "ref_estimate"] == -1.0
    # flags: singular fit, the boundary SD with what the posterior says, the boundary correlation
    assert sbs.flags[0].startswith("glmer reports a singular (boundary) fit")
    p_small = (sd[:, 1] < 0.05).mean()
    boundary = next(f for f in sbs.flags if "sd(lad: age50)" in f)
    assert f"P(sd < 0.05) = {p_small:.2f}" in boundary and "95% equal-tailed interval" in boundary
    assert any("cor(lad: Intercept, age50)" in f for f in sbs.flags)
    assert "95% confidence interval (Wald" in sbs.table.attrs["interval"]
    assert "95% equal-tailed interval" in sbs.table.attrs["interval"]


def test_non_converged_glmer_is_flagged_with_its_messages(fit):
    ref = fake_glmer(
        {"Intercept": (-0.2, 0.2), "age50": (0.3, 0.1), "x": (0.3, 0.05)},
        {("lad", "Intercept"): 0.4, ("lad", "age50"): 0.05},
        converged=False,
        messages=["Model failed to converge with max|grad| = 0.0123"],
    )
    sbs = side_by_side(fit, ref)
    assert sbs.flags[0] == "glmer did not converge: Model failed to converge with max|grad| = 0.0123"
    assert not any("singular" in f for f in sbs.flags)


def test_large_disagreement_is_flagged(fit):
    ref = fake_glmer({"Intercept": (3.0, 0.1), "age50": (0.3, 0.1), "x": (0.3, 0.05)}, {})
    sbs = side_by_side(fit, ref)
    assert any("more than 2 SE" in f and "Intercept" in f for f in sbs.flags)


def test_side_by_side_from_an_estimates_csv(fit, tmp_path):
    path = tmp_path / "melogit.csv"
    path.write_text("term,estimate,se\n_cons,-0.15,0.2\nage50,0.4,0.1\nx,0.25,0.05\n")
    est = lme4.estimates_from_csv(path)
    sbs = side_by_side(fit, est, label="Stata melogit")
    t = sbs.table.set_index("parameter")
    x = S.posterior_draws(fit, "Intercept")
    assert t.loc["Intercept", "diff_in_se"] == pytest.approx((x.mean() + 0.15) / 0.2)
    assert sbs.reference == "Stata melogit" and "as given" in sbs.table.attrs["interval"]
    assert math.isnan(t.loc["sd(lad: Intercept)", "ref_estimate"])  # a CSV has no variance components


def test_missing_r_gives_a_clear_note(fit, monkeypatch):
    monkeypatch.setattr(lme4, "RSCRIPT", "/nonexistent/bin/Rscript")
    sbs = compare_with_lme4(fit)
    assert not sbs.available
    assert sbs.note.startswith("R/lme4 not available: R not found")
    assert "/nonexistent/bin/Rscript" in sbs.note
    assert sbs.table.empty and "diff_in_se" in sbs.table.columns


def test_glmer_formula_translates_bambi_proportions():
    assert glmer_formula("p(s, n) ~ x + (1 | g)") == "cbind(s, n - s) ~ x + (1 | g)"
    assert glmer_formula("y ~ x + (1 | g)") == "y ~ x + (1 | g)"


def test_shrinkage_table_numbers(fit, data):
    df = data[0]
    levels = fit.md.blocks[0].levels
    modes = pd.DataFrame(
        {
            "group": "lad",
            "level": levels,
            "term": "Intercept",
            "mode": np.linspace(-0.3, 0.3, len(levels)),
            "condsd": 0.1,
        }
    )
    ref = fake_glmer(
        {"Intercept": (-0.1, 0.2), "age50": (0.5, 0.1), "x": (0.2, 0.05)},
        {("lad", "Intercept"): 0.4},
        ranef=modes,
    )
    shr = shrinkage_table(fit, ref, "lad").set_index("level")
    counts = df.groupby("lad").y.agg(["sum", "count"]).reindex(levels)
    emp = np.log((counts["sum"] + 0.5) / (counts["count"] - counts["sum"] + 0.5))
    assert shr.no_pooling.to_numpy() == pytest.approx(emp.to_numpy())
    assert (shr.n == counts["count"]).all() and (shr.events == counts["sum"]).all()
    xbar = {"age50": df.age50.mean(), "x": df.x.mean()}
    b = S.posterior_draws(fit, "b")
    base = S.posterior_draws(fit, "Intercept") + b[:, 0] * xbar["age50"] + b[:, 1] * xbar["x"]
    r = S.posterior_draws(fit, "r_lad")[:, :, 0]
    assert shr.posterior_mean.to_numpy() == pytest.approx((base[:, None] + r).mean(axis=0))
    glmer_pop = -0.1 + 0.5 * xbar["age50"] + 0.2 * xbar["x"]
    assert shr.glmer.to_numpy() == pytest.approx(glmer_pop + modes["mode"].to_numpy())
    assert shr.attrs["population"] == pytest.approx(base.mean())


@pytest.mark.needs_r
def test_side_by_side_against_a_direct_glmer_run():
    df, _ = simulate(n_la=20, n=700, seed=11, small_la=False, sd1=0.0)
    formula = "y ~ age50 + x + (1 | lad)"
    fit = fake_fit(df, formula, centers={"Intercept": -0.2, "age50": 0.5, "x": 0.4}, sd={"Intercept": 0.5})
    direct = lme4.fit_glmer(formula, df)
    sbs = compare_with_lme4(fit)
    assert sbs.available, sbs.note
    assert sbs.reference == f"lme4 glmer (adaptive Gauss-Hermite quadrature, nAGQ = {direct.nAGQ})"
    t = sbs.table.set_index("parameter")
    post = {"Intercept": S.posterior_draws(fit, "Intercept"), "age50": S.posterior_draws(fit, "b")[:, 0]}
    for term in ("Intercept", "age50", "x"):
        est, se = direct.fixed.loc[term, ["estimate", "se"]]
        assert t.loc[term, "ref_estimate"] == pytest.approx(est, rel=1e-6)
        assert t.loc[term, "ref_se"] == pytest.approx(se, rel=1e-6)
        if term in post:
            assert t.loc[term, "diff_in_se"] == pytest.approx((post[term].mean() - est) / se, rel=1e-6)
    assert t.loc["sd(lad: Intercept)", "ref_estimate"] == pytest.approx(direct.sd("lad"), rel=1e-6)
    # glmer recovers the simulated effects (a sanity check of the data, not of the fit)
    assert abs(direct.fixed.loc["age50", "estimate"] - 0.5) < 3 * direct.fixed.loc["age50", "se"]
    shr = shrinkage_table(fit, sbs.glmer, "lad")
    assert shr.glmer.notna().all()
