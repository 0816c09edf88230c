"""The cumulative-logit family end to end: recovery of known parameters from simulated data,
the convergence gate, NetCDF save and load, LOO and posterior predictive draws, and category
probabilities for new rows and unseen LAs.

One fit (2,000 people in 40 LAs, 5 categories, correlated LA intercept and slope with true
correlation 0.6, a cross-level interaction) serves every test of the module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import fit, load_fit

LEVELS = ["1", "2", "3", "4", "5"]
TRUTH = {
    "b": {"x": 0.7, "f": -0.5, "area": 0.4, "x:area": 0.35},
    "cutpoints": [-1.6, -0.4, 0.5, 1.7],
    "sd": {"Intercept": 0.6, "x": 0.35},
    "cor": 0.6,
}
FORMULA = "y ~ x * area + f + (1 + x | lad)"


def simulate_ordinal(n: int = 2000, n_lad: int = 40, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """People in LAs with an ordinal answer drawn from the cumulative-logit model of `TRUTH`
    (a logistic latent score cut at the cutpoints); returns the frame and the LA effects."""
    rng = np.random.default_rng(seed)
    lad = rng.integers(0, n_lad, n)
    x = rng.normal(size=n)
    f = rng.integers(0, 2, n)
    area = rng.normal(size=n_lad)[lad]
    sd = np.array([TRUTH["sd"]["Intercept"], TRUTH["sd"]["x"]])
    cov = np.diag(sd) @ np.array([[1, TRUTH["cor"]], [TRUTH["cor"], 1]]) @ np.diag(sd)
    r = rng.multivariate_normal(np.zeros(2), cov, size=n_lad)
    b = TRUTH["b"]
    eta = b["x"] * x + b["f"] * f + b["area"] * area + b["x:area"] * x * area + r[lad, 0] + r[lad, 1] * x
    y = np.searchsorted(TRUTH["cutpoints"], eta + rng.logistic(size=n))
    frame = pd.DataFrame(
        {
            "y": pd.Categorical([LEVELS[k] for k in y], categories=LEVELS, ordered=True),
            "x": x,
            "f": f,
            "area": area,
            "lad": [f"L{k:02d}" for k in lad],
        }
    )
    return frame, r


@pytest.fixture(scope="module")
def sim():
    return simulate_ordinal()


@pytest.fixture(scope="module")
def ordinal_fit(sim):
    df, _ = sim
    return fit(FORMULA, df, seed=7, progressbar=False)


def _inside(draws: np.ndarray, value: float) -> bool:
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return bool(lo <= value <= hi)


def test_recovers_cutpoints_slopes_interaction_sds_and_la_effects(ordinal_fit, sim):
    f = ordinal_fit
    assert f.converged, f.headline
    assert f.md.family == "cumulative" and "Intercept" not in f.md.fixed_terms
    post = f.posterior()
    cut = post["cutpoints"].stack(s=("chain", "draw")).values
    assert list(post["cutpoints"].coords["cutpoint"].values) == ["1|2", "2|3", "3|4", "4|5"]
    for k, value in enumerate(TRUTH["cutpoints"]):
        assert _inside(cut[k], value), (k, np.quantile(cut[k], [0.025, 0.975]), value)
    for term, value in TRUTH["b"].items():
        d = post["b"].sel(coef=term).values.ravel()
        assert _inside(d, value), (term, np.quantile(d, [0.025, 0.975]), value)
    for term, value in TRUTH["sd"].items():
        d = post["sd_lad"].sel(lad_term=term).values.ravel()
        assert _inside(d, value), (term, value)
    cor = post["cor_lad"].sel(lad_term="Intercept", lad_term2="x").values.ravel()
    assert _inside(cor, TRUTH["cor"]) and np.quantile(cor, 0.05) > 0  # clearly positive
    # realised LA effects (intercept and slope of each of the 40 LAs)
    _, r = sim
    r_post = post["r_lad"].stack(s=("chain", "draw"))
    levels = list(r_post.coords["lad"].values)
    true = r[[int(lv[1:]) for lv in levels]]
    lo = r_post.quantile(0.025, dim="s").values
    hi = r_post.quantile(0.975, dim="s").values
    covered = (lo <= true) & (true <= hi)
    assert covered.mean() >= 0.85, covered.mean()


def test_save_load_predict_and_loo(ordinal_fit, sim, tmp_path):
    f = ordinal_fit
    path = f.save(tmp_path / "ordinal.nc")
    g = load_fit(path)
    assert g.md.family == "cumulative" and g.md.response_levels == tuple(LEVELS)
    assert g.converged and g.summary().equals(f.summary())
    new = pd.DataFrame(
        {"x": [0.0, 1.0, 1.0], "f": [0, 1, 1], "area": [0.0, 0.5, 0.5], "lad": ["L01", "L01", "Lnew"]}
    )
    p = g.predict(new, seed=1)
    assert p.dims == ("sample", "row", "category") and list(p.coords["category"].values) == LEVELS
    np.testing.assert_allclose(p.sum("category").values, 1.0)
    np.testing.assert_allclose(p.values, f.predict(new, seed=1).values)  # same after loading
    # a higher linear predictor moves people up: row 1 has x = 1 (positive b[x] and interaction)
    mean = p.mean("sample").values
    assert (mean[1] * np.arange(5)).sum() > (mean[0] * np.arange(5)).sum()
    # the unseen LA is drawn from the population of LAs: wider than the seen one
    spread = p.sel(category="5").std("sample").values
    assert spread[2] > spread[1]
    # the population-average row (no LA effect) by hand from the cutpoints
    avg = g.predict(new.iloc[:1], la="average_la").isel(row=0)
    tau = g.posterior()["cutpoints"].stack(s=("chain", "draw")).values
    np.testing.assert_allclose(avg.sel(category="1").values, 1 / (1 + np.exp(-tau[0])), rtol=1e-12)
    # pointwise log-likelihood (LOO) and posterior predictive draws from OrderedLogistic
    ll = g.log_likelihood()["y"]
    assert ll.sizes["obs_id"] == 2000 and np.all(ll.values < 0)
    pp = g.posterior_predictive(seed=1)["posterior_predictive"]["y"].values
    assert pp.min() >= 0 and pp.max() <= 4
    observed = np.bincount(f.md.y, minlength=5) / f.md.n_obs
    predicted = np.array([(pp == k).mean() for k in range(5)])
    np.testing.assert_allclose(predicted, observed, atol=0.03)


@pytest.mark.needs_r
def test_agrees_with_clmm(ordinal_fit):
    """ordinal::clmm (Laplace: correlated slopes) on the same rows: every cutpoint and slope's
    posterior mean within one posterior SD of clmm's estimate (the two differ by the prior
    and by mean against mode, both small next to the posterior SD with 2,000 people); the LA
    SDs, which Laplace ML estimates low with 40 LAs, within two."""
    from analysis.lme4 import ClmmResult, clmm_for, r_available
    from tests.installed import require_installed

    ok, msg = r_available()
    require_installed(ok, msg)
    res = clmm_for(ordinal_fit)
    require_installed(isinstance(res, ClmmResult), str(res))
    assert res.converged and res.nAGQ == 1, res.messages
    post = ordinal_fit.posterior()
    cut = post["cutpoints"]
    for label, row in res.cutpoints.iterrows():  # clmm's threshold names are the fit's labels
        d = cut.sel(cutpoint=label).values.ravel()
        assert abs(d.mean() - row["estimate"]) < d.std(), (label, d.mean(), row["estimate"])
    for term, row in res.fixed.iterrows():
        d = post["b"].sel(coef=term).values.ravel()
        assert abs(d.mean() - row["estimate"]) < d.std(), (term, d.mean(), row["estimate"])
        assert 0.7 < d.std() / row["se"] < 1.4  # posterior SD and Wald SE alike
    for term in ("Intercept", "x"):
        d = post["sd_lad"].sel(lad_term=term).values.ravel()
        assert abs(np.median(d) - res.sd("lad", term)) < 2 * d.std(), term


def test_ordinal_summaries(ordinal_fit, sim):
    from analysis import summaries

    f = ordinal_fit
    ors = summaries.cumulative_odds_ratios(f)
    row = ors.set_index("term").loc["x"]
    b = f.posterior()["b"].sel(coef="x").values.ravel()
    assert row["or_median"] == pytest.approx(np.exp(np.median(b)))
    assert row["or_eti95_low"] < np.exp(TRUTH["b"]["x"]) < row["or_eti95_high"]
    assert {"or_hdi95_low", "or_hdi95_high", "reading"} <= set(ors.columns)
    cut = summaries.cutpoint_summary(f)
    assert list(cut["cutpoint"]) == ["1|2", "2|3", "3|4", "4|5"] and (np.diff(cut["mean"]) > 0).all()
    # subgroups: women vs men at average x and area, population-average LA
    groups = pd.DataFrame({"x": [0.0, 0.0], "area": [0.0, 0.0], "f": [0, 1], "who": ["f=0", "f=1"]})
    probs = summaries.category_probabilities(f, groups, by="who")
    assert probs.attrs["la_mode"] == "average_la"
    eq = probs[probs["quantity"].str.startswith("P(y = ")]
    np.testing.assert_allclose(eq.groupby("row")["mean"].sum(), 1.0)
    ge = probs[probs["quantity"] == "P(y >= 2)"].set_index("row")["mean"]
    first = eq[eq["category"] == "1"].set_index("row")["mean"]
    np.testing.assert_allclose(ge, 1 - first)
    score = probs[probs["quantity"] == "expected score"].set_index("row")
    assert score.loc["f=1", "mean"] < score.loc["f=0", "mean"]  # b[f] < 0: lower answers
    assert score.loc["f=0", "eti95_low"] < score.loc["f=0", "mean"] < score.loc["f=0", "eti95_high"]
    # LAs: the one with the largest true intercept expects a higher score than the smallest
    _, r = sim
    hi, lo = f"L{int(np.argmax(r[:, 0])):02d}", f"L{int(np.argmin(r[:, 0])):02d}"
    by_la = summaries.category_probabilities(f, groups.iloc[:1], las=[hi, lo])
    s = by_la[by_la["quantity"] == "expected score"].set_index("la")["mean"]
    assert s[hi] > s[lo]
    vpc = summaries.ordinal_variance_partition(f).set_index("quantity")
    sd = f.posterior()["sd_lad"].sel(lad_term="Intercept").values.ravel()
    assert vpc.loc["VPC / ICC (latent scale)", "mean"] == pytest.approx(
        np.mean(sd**2 / (sd**2 + np.pi**2 / 3))
    )
    assert vpc.loc["MOR", "median"] > 1
    cal = summaries.ordinal_calibration(f, bins=4)
    assert len(cal) == 4 * 5 and cal["inside"].mean() >= 0.85
    assert (cal.groupby("bin")["observed"].sum().round(10) == 1).all()
