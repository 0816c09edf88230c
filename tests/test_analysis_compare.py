"""The Bayesian fit next to lme4 glmer (or other reference estimates): numbers, flags, R missing."""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile

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
    """Like for like: every estimate is the mean log-odds over the LA's own rows, from models
    with the same covariates (the no-pooling point is a glm with the LA as a fixed factor)."""
    df = data[0]
    block = fit.md.blocks[0]
    levels = block.levels
    modes = pd.DataFrame(
        {
            "group": "lad",
            "level": levels * 2,
            "term": ["Intercept"] * len(levels) + ["age50"] * len(levels),
            "mode": np.r_[np.linspace(-0.3, 0.3, len(levels)), np.linspace(0.1, -0.1, len(levels))],
            "condsd": 0.1,
        }
    )
    ref = fake_glmer(
        {"Intercept": (-0.1, 0.2), "age50": (0.5, 0.1), "x": (0.2, 0.05)},
        {("lad", "Intercept"): 0.4, ("lad", "age50"): 0.1},
        ranef=modes,
    )
    shr = shrinkage_table(fit, ref, "lad").set_index("level")
    counts = df.groupby("lad").y.agg(["sum", "count"]).reindex(levels)
    assert (shr.n == counts["count"]).all() and (shr.events == counts["sum"]).all()
    means = df.groupby("lad")[["age50", "x"]].mean().reindex(levels)
    b = S.posterior_draws(fit, "b")
    r = S.posterior_draws(fit, "r_lad")  # (S, LA, [Intercept, age50])
    fixed = (
        S.posterior_draws(fit, "Intercept")[:, None]
        + b[:, [0]] * means.age50.to_numpy()
        + b[:, [1]] * means.x.to_numpy()
    )
    post = fixed + r[:, :, 0] + r[:, :, 1] * means.age50.to_numpy()
    assert shr.posterior_mean.to_numpy() == pytest.approx(post.mean(axis=0))
    assert shr.population.to_numpy() == pytest.approx(fixed.mean(axis=0))
    m_i = np.linspace(-0.3, 0.3, len(levels))
    m_s = np.linspace(0.1, -0.1, len(levels))
    glmer = (
        -0.1 + 0.5 * means.age50.to_numpy() + 0.2 * means.x.to_numpy() + m_i + m_s * means.age50.to_numpy()
    )
    assert shr.glmer.to_numpy() == pytest.approx(glmer)
    assert shr.estimable.all() and shr.attrs["no_pooling_converged"]


def test_no_pooling_is_the_fixed_factor_glm():
    """Without covariates the no-pooling value is the LA's own empirical logit exactly; an LA
    with all 0 (or all 1) outcomes has no finite estimate and is marked, not plotted at +-inf."""
    from analysis.compare import no_pooling_estimates

    df, _ = simulate(n_la=12, n=400, seed=3, small_la=False, sd1=0.0)
    first = df.lad == df.lad.iloc[0]
    df.loc[first, "y"] = 0
    f = fake_fit(df, "y ~ 1 + (1 | lad)", centers={"Intercept": -0.2}, sd={"Intercept": 0.5})
    est = no_pooling_estimates(f, "lad")
    counts = df.groupby("lad").y.agg(["sum", "count"]).reindex(f.md.blocks[0].levels)
    ok = est.estimable
    assert not ok[f.md.blocks[0].levels.index(str(df.lad.iloc[0]))] and ok.sum() == len(ok) - 1
    logit = np.log(counts["sum"] / (counts["count"] - counts["sum"])).to_numpy()
    assert est.value[ok] == pytest.approx(logit[ok], abs=1e-8) and np.isnan(est.value[~ok]).all()
    assert est.converged


@pytest.mark.needs_r
def test_no_pooling_agrees_with_r_glm(data):
    """The covariate-adjusted no-pooling fit equals R's glm(y ~ age50 + x + factor(lad))."""
    from analysis.compare import no_pooling_estimates

    df = data[0]
    f = fake_fit(df, "y ~ age50 + x + (1 | lad)", sd={"Intercept": 0.5})
    est = no_pooling_estimates(f, "lad")
    assert est.within_terms == ["age50", "x"]
    levels = f.md.blocks[0].levels
    with tempfile.TemporaryDirectory() as tmp:
        df[["y", "age50", "x", "lad"]].to_csv(f"{tmp}/d.csv", index=False)
        script = (
            f'd <- read.csv("{tmp}/d.csv"); d$lad <- factor(d$lad); '
            "m <- glm(y ~ age50 + x + lad, binomial, data = d); "
            "a <- tapply(predict(m, type = 'link'), d$lad, mean); "
            f'write.csv(data.frame(lad = names(a), v = as.numeric(a)), "{tmp}/out.csv", row.names = FALSE)'
        )
        subprocess.run([shutil.which("Rscript"), "-e", script], check=True, capture_output=True, timeout=120)
        r = pd.read_csv(f"{tmp}/out.csv", dtype={"lad": str}).set_index("lad")["v"]
    assert est.value == pytest.approx(r.reindex(levels).to_numpy(), abs=1e-6)


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


@pytest.mark.needs_r
def test_every_command_gets_the_same_glmer_for_a_proportion_formula(data):
    """bambi's p(s, n) reaches glmer as cbind(s, n - s) on every path. The main job's path
    once sent the formula unchanged (R: could not find function "p"), so `sameplace main`
    and `sameplace compare` gave the same fit different glmer results."""
    df = data[0].copy()
    rng = np.random.default_rng(4)
    df["n"] = rng.integers(1, 6, len(df))
    df["s"] = rng.binomial(df["n"], 0.4)
    f = fake_fit(df, "p(s, n) ~ x + (1 | lad)", sd={"Intercept": 0.3})
    main_path = lme4.glmer_for(f)
    assert isinstance(main_path, lme4.GlmerResult), main_path
    via_compare = compare_with_lme4(f).glmer
    direct = lme4.fit_glmer("cbind(s, n - s) ~ x + (1 | lad)", df)
    for res in (main_path, via_compare):
        assert res.nAGQ == direct.nAGQ  # one quadrature policy
        assert res.fixed["estimate"].to_numpy() == pytest.approx(
            direct.fixed["estimate"].to_numpy(), rel=1e-6
        )
