"""Tests that sample: parameter recovery on simulated data, agreement with lme4 on real data,
the convergence gate, saving and loading, predictions. Sized to keep the suite fast."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import ConvergenceWarning, FitFileError, fit, load_fit

ROOT = Path(__file__).resolve().parents[1]


def _inside(fitted, name: str, truth: float, sel: dict | None = None, prob: float = 0.95) -> tuple:
    da = fitted.posterior()[name]
    if sel:
        da = da.sel(sel)
    v = da.values.ravel()
    lo, hi = np.quantile(v, [(1 - prob) / 2, 1 - (1 - prob) / 2])
    return lo <= truth <= hi, (round(lo, 3), round(hi, 3), truth)


# ----------------------------------------------------------------------------- simulations


@pytest.fixture(scope="module")
def slope_data() -> tuple[pd.DataFrame, dict]:
    """Correlated varying slope (corr -0.5) and a cross-level interaction x:w.

    Besides the data-generating (superpopulation) values, the fixture returns the values
    realised in this one data set: with 70 groups the likelihood only sees Intercept +
    mean(u0), b[x] + mean(u1), and the sample SDs and correlation of the drawn effects.
    The recovery test requires the realised values inside the 95% intervals and the
    superpopulation values inside the 99% intervals; calibration of the 95% intervals
    for the superpopulation values over repeated data sets is the slow coverage test
    (tests/test_models_slow.py).
    """
    rng = np.random.default_rng(2024)
    J, n = 70, 4200
    truth = {"Intercept": -0.4, "x": 0.5, "w": 0.3, "x:w": 0.25, "sd0": 0.6, "sd1": 0.4, "rho": -0.5}
    cov = np.array(
        [
            [truth["sd0"] ** 2, truth["rho"] * truth["sd0"] * truth["sd1"]],
            [truth["rho"] * truth["sd0"] * truth["sd1"], truth["sd1"] ** 2],
        ]
    )
    u = rng.multivariate_normal([0, 0], cov, J)
    w = rng.normal(size=J)
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    eta = (
        truth["Intercept"]
        + truth["x"] * x
        + truth["w"] * w[g]
        + truth["x:w"] * x * w[g]
        + u[g, 0]
        + u[g, 1] * x
    )
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    df = pd.DataFrame({"y": y, "x": x, "w": w[g], "g": [f"LA{k:03d}" for k in g]})
    realised = dict(truth)
    realised.update(
        {
            "Intercept": truth["Intercept"] + u[:, 0].mean(),
            "x": truth["x"] + u[:, 1].mean(),
            "sd0": u[:, 0].std(ddof=1),
            "sd1": u[:, 1].std(ddof=1),
            "rho": np.corrcoef(u.T)[0, 1],
        }
    )
    truth["realised"] = realised
    return df, truth


@pytest.fixture(scope="module")
def slope_fit(slope_data):
    df, _ = slope_data
    return fit("y ~ x * w + (1 + x | g)", df, chains=4, draws=1000, tune=700, seed=11, progressbar=False)


@pytest.fixture(scope="module")
def intercept_data() -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(99)
    J, n = 50, 2500
    truth = {"Intercept": 0.3, "x": -0.7, "sd": 0.5}
    a = rng.normal(0, truth["sd"], J)
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    y = rng.binomial(1, 1 / (1 + np.exp(-(truth["Intercept"] + truth["x"] * x + a[g]))))
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)}), truth


@pytest.fixture(scope="module")
def intercept_fit(intercept_data):
    df, _ = intercept_data
    return fit("y ~ x + (1 | g)", df, chains=4, draws=1000, tune=500, seed=5, progressbar=False)


def test_random_intercept_recovery(intercept_fit, intercept_data):
    _, t = intercept_data
    assert intercept_fit.converged, intercept_fit.convergence.problems
    checks = [
        _inside(intercept_fit, "Intercept", t["Intercept"]),
        _inside(intercept_fit, "b", t["x"], {"coef": "x"}),
        _inside(intercept_fit, "sd_g", t["sd"], {"g_term": "Intercept"}),
    ]
    assert all(ok for ok, _ in checks), checks


@pytest.fixture(scope="module")
def informative_groups() -> tuple[pd.DataFrame, float]:
    """30 groups of 200 people: the data pin each group's effect, so the centred form is
    chosen, and the intercept is sampled as the groups' mean (`hierarchical_centring`)."""
    rng = np.random.default_rng(4)
    g = rng.integers(0, 30, 6000)
    a = rng.normal(0, 0.6, 30)
    x = rng.normal(size=6000)
    y = rng.binomial(1, 1 / (1 + np.exp(-(-0.4 + 0.5 * x + a[g]))))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]}), -0.4 + a.mean()


def test_centred_intercept_block_mixes_with_the_intercept(informative_groups):
    """With the group effects free, the intercept and their mean trade off along a ridge that a
    diagonal mass matrix cannot follow: 0.12 bulk ESS per draw for the intercept on 30 groups
    of 100 (the 1988 polls' states: 2-3 attempts). Sampled on the intercept, it mixes."""
    import arviz as az

    df, realised = informative_groups
    f = fit("y ~ x + (1 | g)", df, draws=500, escalate=False, seed=3, progressbar=False)
    assert f.settings["centered"] == {"g": True} and f.converged, f.headline
    post = f.posterior()
    assert "m_g" in post and np.allclose(
        post["r_g"].values[..., 0], post["m_g"].values[..., 0] - post["Intercept_c"].values[..., None]
    )
    ess = float(az.ess(post[["Intercept"]], method="bulk")["Intercept"].values)
    assert ess / (4 * 500) > 0.5, ess
    assert _inside(f, "Intercept", realised)[0], _inside(f, "Intercept", realised)


def test_centred_slope_block_mixes_with_its_fixed_effects():
    """30 groups of 200 with a varying slope of x and an area predictor a: with r_g free, the
    intercept, b[a] and b[x] trade off against the group effects (bulk ESS per draw 0.06-0.23
    at 4 x 500 draws, R-hat up to 1.023: NOT CONVERGED). Sampled as each group's own
    coefficients around (Intercept_c + a_j b[a], b[x]), every one of them mixes."""
    import arviz as az

    rng = np.random.default_rng(4)
    g = rng.integers(0, 30, 6000)
    a, x = rng.normal(size=30), rng.normal(size=6000)
    u = rng.multivariate_normal([0, 0], [[0.36, -0.06], [-0.06, 0.09]], 30)
    eta = -0.4 + 0.5 * x + 0.3 * a[g] + u[g, 0] + u[g, 1] * x
    df = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x, "a": a[g], "g": g.astype(str)})
    f = fit("y ~ x + a + (1 + x | g)", df, draws=500, escalate=False, seed=3, progressbar=False)
    assert f.settings["centered"] == {"g": True}
    post = f.posterior()
    mean = np.stack(
        [
            post["Intercept_c"].values[..., None]
            + post["b"].sel(coef="a").values[..., None]
            * (a[np.asarray(post["g"].values, dtype=int)] - a[g].mean()),
            np.broadcast_to(post["b"].sel(coef="x").values[..., None], post["r_g"].shape[:-1]),
        ],
        axis=-1,
    )
    assert np.allclose(post["r_g"].values, post["m_g"].values - mean)
    ess = az.ess(post[["Intercept", "b", "r_g"]], method="bulk")
    worst = {k: float(ess[k].min()) / (4 * 500) for k in ess.data_vars}
    assert min(worst.values()) > 0.5, worst
    for name, true in (("a", 0.3), ("x", 0.5)):
        assert _inside(f, "b", true, {"coef": name})[0], _inside(f, "b", true, {"coef": name})


def test_correlated_slope_and_cross_level_interaction_recovery(slope_fit, slope_data):
    _, t = slope_data
    f = slope_fit
    assert f.converged, f.convergence.problems
    where = {
        "Intercept": ("Intercept", None),
        "x": ("b", {"coef": "x"}),
        "w": ("b", {"coef": "w"}),
        "x:w": ("b", {"coef": "x:w"}),
        "sd0": ("sd_g", {"g_term": "Intercept"}),
        "sd1": ("sd_g", {"g_term": "x"}),
        "rho": ("cor_g", {"g_term": "Intercept", "g_term2": "x"}),
    }
    realised = {k: _inside(f, v, t["realised"][k], sel, prob=0.95) for k, (v, sel) in where.items()}
    population = {k: _inside(f, v, t[k], sel, prob=0.99) for k, (v, sel) in where.items()}
    assert all(ok for ok, _ in realised.values()), realised
    assert all(ok for ok, _ in population.values()), population
    # the correlation is clearly identified as negative, not just "covered"
    rho = f.posterior()["cor_g"].sel(g_term="Intercept", g_term2="x").values
    assert (rho < 0).mean() > 0.95


def test_group_effects_are_labelled_and_shrunk(slope_fit, slope_data):
    df, _ = slope_data
    r = slope_fit.posterior()["r_g"]
    assert r.dims == ("chain", "draw", "g", "g_term")
    assert set(r.coords["g"].values) == set(df["g"])
    # partial pooling: posterior means of the LA intercepts vary less than the raw LA logits
    means = r.sel(g_term="Intercept").mean(("chain", "draw")).to_series()
    rates = df.groupby("g")["y"].mean().clip(0.02, 0.98)
    raw = np.log(rates / (1 - rates))
    assert means.std() < raw.std()


# ----------------------------------------------------------------------------- gate


@pytest.fixture(scope="module")
def short_fit(intercept_data):
    df, _ = intercept_data
    # one attempt: the test is of the verdict of a fit too short to converge
    return fit("y ~ x + (1 | g)", df, chains=2, draws=40, tune=40, seed=1, progressbar=False, escalate=False)


def test_failed_fit_is_marked_and_says_so_first(short_fit):
    assert not short_fit.converged
    assert short_fit.convergence.problems
    assert str(short_fit).splitlines()[0].startswith("NOT CONVERGED - do not interpret")
    with pytest.warns(ConvergenceWarning, match="NOT CONVERGED"):
        table = short_fit.summary()
    assert table.attrs["headline"].startswith("NOT CONVERGED")


def test_accepting_a_failed_fit_is_explicit(short_fit):
    short_fit.accept_failed = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            table = short_fit.summary()
        assert table.attrs["headline"].startswith("ACCEPTED BY USER DESPITE FAILED CONVERGENCE")
    finally:
        short_fit.accept_failed = False


def test_gate_records_every_diagnostic(intercept_fit):
    c = intercept_fit.convergence
    assert c.max_rhat <= 1.01 and c.min_ess_bulk >= 400 and c.min_ess_tail >= 400
    assert c.divergences == 0 and len(c.ebfmi) == 4 and min(c.ebfmi) > 0.3
    assert c.treedepth_hits == 0
    assert intercept_fit.headline.startswith("CONVERGED")


def test_summary_labels_interval_kind_and_probability(intercept_fit):
    t = intercept_fit.summary(prob=0.95)
    assert {"eti95_lb", "eti95_ub"} <= set(t.columns)
    assert t.attrs["interval"] == "95% equal-tailed interval"
    h = intercept_fit.summary(prob=0.9, ci_kind="hdi")
    assert "hdi90_lb" in h.columns and h.attrs["interval"] == "90% HDI"


# ----------------------------------------------------------------------------- save / load


def test_save_and_load_round_trip(slope_fit, tmp_path):
    path = slope_fit.save(tmp_path / "fit.nc")
    assert not (tmp_path / "fit.nc.partial").exists()
    back = load_fit(path)
    pd.testing.assert_frame_equal(back.summary(), slope_fit.summary())
    assert back.convergence == slope_fit.convergence
    assert back.md.fingerprint() == slope_fit.md.fingerprint()
    import arviz as az

    attrs = az.from_netcdf(path).attrs
    assert attrs["formula"] == "y ~ x * w + (1 + x | g)" and attrs["seed"] == "11"
    assert json.loads(attrs["priors"])["cor_g"] == "lkj(2)"
    versions = json.loads(attrs["package_versions"])
    assert versions["pymc"].startswith("6.") and versions["arviz"].startswith("1.")
    new = pd.DataFrame({"x": [0.0, 1.0, 1.0], "w": [0.0, 0.5, 0.5], "g": ["LA001", "LA002", "nowhere"]})
    np.testing.assert_array_equal(back.predict(new, seed=3).values, slope_fit.predict(new, seed=3).values)


@pytest.mark.parametrize("content", [b"", b"not a netcdf file at all", None])
def test_corrupt_fit_files_are_refused(tmp_path, slope_fit, content):
    p = tmp_path / "bad.nc"
    if content is None:  # a truncated real fit
        good = slope_fit.save(tmp_path / "good.nc").read_bytes()
        p.write_bytes(good[: len(good) // 3])
    else:
        p.write_bytes(content)
    with pytest.raises(FitFileError, match=str(p.name)):
        load_fit(p)


# ----------------------------------------------------------------------------- predictions


def test_predictions_for_seen_and_unseen_groups(slope_fit):
    f = slope_fit
    new = pd.DataFrame({"x": [1.0, 1.0, 1.0], "w": [0.2, 0.2, 0.2], "g": ["LA005", "NEW1", "NEW1"]})
    p = f.predict(new, seed=42)
    assert p.dims == ("sample", "row") and p.shape == (4000, 3)
    assert np.array_equal(p.values, f.predict(new, seed=42).values)  # reproducible
    assert not np.array_equal(p.values[:, 1], f.predict(new, seed=43).values[:, 1])
    np.testing.assert_array_equal(p.values[:, 1], p.values[:, 2])  # one draw per unseen LA
    # seen LA: matches a hand calculation from the draws
    post = f.posterior().stack(s=("chain", "draw"))
    r = post["r_g"].sel(g="LA005")
    b = post["b"]
    eta = (
        post["Intercept"]
        + b.sel(coef="x") * 1.0
        + b.sel(coef="w") * 0.2
        + b.sel(coef="x:w") * 0.2
        + r.sel(g_term="Intercept")
        + r.sel(g_term="x") * 1.0
    )
    np.testing.assert_allclose(p.values[:, 0], 1 / (1 + np.exp(-eta.values)), rtol=1e-10)
    # unseen LA: wider than the population-level prediction with group effects at zero
    zero = f.predict(new, unseen="zero").values[:, 1]
    pop = f.predict(new, include_groups=False).values[:, 1]
    np.testing.assert_allclose(zero, pop)
    assert p.values[:, 1].std() > 1.5 * zero.std()


def test_unseen_level_can_be_refused(slope_fit):
    from models import FormulaError

    with pytest.raises(FormulaError, match="not in the fitted data"):
        slope_fit.predict(pd.DataFrame({"x": [0.0], "w": [0.0], "g": ["NEW"]}), unseen="error")


def test_posterior_predictive_matches_observed_rate(intercept_fit, intercept_data):
    df, _ = intercept_data
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        pp = intercept_fit.posterior_predictive(seed=1)
    # the parameters keep their posterior draws (none redrawn, no warning that they might be)
    assert not [w for w in seen if "frozen" in str(w.message)]
    y = pp["posterior_predictive"]["y"].values
    assert y.shape[-1] == len(df)
    assert abs(y.mean() - df["y"].mean()) < 0.02


@pytest.mark.parametrize("sampler", ["pymc", "numpyro"])
def test_other_samplers_run(intercept_data, sampler):
    df, _ = intercept_data
    f = fit(
        "y ~ x + (1 | g)",
        df.iloc[:400],
        sampler=sampler,
        chains=2,
        draws=60,
        tune=60,
        seed=2,
        progressbar=False,
        escalate=False,
    )
    assert f.posterior()["b"].shape == (2, 60, 1)
    assert f.settings["sampler"] == sampler


def test_same_seed_same_draws(intercept_data):
    df, _ = intercept_data
    a = fit("y ~ x + (1 | g)", df.iloc[:300], chains=2, draws=50, tune=50, seed=8, progressbar=False)
    b = fit("y ~ x + (1 | g)", df.iloc[:300], chains=2, draws=50, tune=50, seed=8, progressbar=False)
    np.testing.assert_array_equal(a.posterior()["b"].values, b.posterior()["b"].values)
