"""Which LA a prediction is for: the LA modes checked against hand computations, brute-force
Monte Carlo integration and the logistic-normal approximation (fake fits: no sampling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad
from scipy.special import expit
from test_analysis_support import fake_fit, simulate

from analysis import summaries as S
from analysis.scenarios import scenario
from models import FormulaError
from models.la_modes import LaMode, marginal_logistic


@pytest.fixture(scope="module")
def data():
    return simulate(small_la=False)[0]


@pytest.fixture(scope="module")
def fit_ri(data):
    return fake_fit(data, "y ~ x + (1 | lad)", centers={"Intercept": 0.4, "x": 0.9}, sd={"Intercept": 0.8})


@pytest.fixture(scope="module")
def fit_slope(data):
    return fake_fit(data, "y ~ age50 + x + (1 + age50 | lad)", sd={"Intercept": 0.7, "age50": 0.5})


def _draws(fit, name):
    return S.posterior_draws(fit, name)


GRID = pd.DataFrame({"x": [-2.0, 0.0, 1.5]})


def _integrand(t: float, m: float, s: float) -> float:
    return expit(m + s * t) * np.exp(-t * t / 2) / np.sqrt(2 * np.pi)


def test_marginal_equals_one_dimensional_integral_and_brute_force_monte_carlo(fit_ri):
    p = fit_ri.predict(GRID, la="marginal", max_draws=None).values
    a, b, sd = _draws(fit_ri, "Intercept"), _draws(fit_ri, "b")[:, 0], _draws(fit_ri, "sd_lad")[:, 0]
    rng = np.random.default_rng(1)
    z = rng.standard_normal(400_000)
    for s in (0, 57, 311):
        for i, x in enumerate(GRID.x):
            m = a[s] + b[s] * x
            exact = quad(_integrand, -12, 12, args=(m, sd[s]))[0]
            assert p[s, i] == pytest.approx(exact, abs=1e-9)
            mc = expit(m + sd[s] * z)
            se = mc.std() / np.sqrt(z.size)
            assert abs(p[s, i] - mc.mean()) < 4 * se + 1e-12
            assert se < 4e-4  # tight: a wrong variance (e.g. sd instead of sd^2) fails by far more


def test_marginal_with_correlated_slopes_matches_monte_carlo_over_the_lkj_covariance(fit_slope):
    rows = pd.DataFrame({"age50": [0, 1], "x": [0.3, -0.4]})
    p = fit_slope.predict(rows, la="marginal", max_draws=None).values
    a, b = _draws(fit_slope, "Intercept"), _draws(fit_slope, "b")
    sd, cor = _draws(fit_slope, "sd_lad"), _draws(fit_slope, "cor_lad")
    rng = np.random.default_rng(2)
    for s in (3, 400):
        cov = np.outer(sd[s], sd[s]) * cor[s]
        u = rng.multivariate_normal(np.zeros(2), cov, size=300_000)
        for i, r in rows.iterrows():
            m = a[s] + b[s, 0] * r.age50 + b[s, 1] * r.x
            mc = expit(m + u[:, 0] + u[:, 1] * r.age50)
            assert abs(p[s, i] - mc.mean()) < 4 * mc.std() / np.sqrt(len(u))


def test_marginal_differs_from_average_la_by_what_the_la_sd_implies(data):
    sd = 0.8
    fit = fake_fit(
        data, "y ~ x + (1 | lad)", centers={"Intercept": 0.0, "x": 1.0}, sd={"Intercept": sd}, sd_spread=0
    )
    grid = pd.DataFrame({"x": np.linspace(-2.5, 2.5, 11)})
    avg = fit.predict(grid, la="average_la", max_draws=None).values
    marg = fit.predict(grid, la="marginal", max_draws=None).values
    eta = np.log(avg / (1 - avg))
    # logistic-normal (probit-matching) approximation:
    # E[logistic(m + sd Z)] ~ logistic(m / sqrt(1 + pi sd^2 / 8))
    implied = expit(eta / np.sqrt(1 + np.pi * sd**2 / 8)) - avg
    diff = marg - avg
    assert np.abs(diff - implied).max() < 0.0035
    assert np.abs(diff - implied).max() < 0.15 * np.abs(diff).max()
    assert np.abs(diff).max() > 0.02  # a real, visible difference at sd 0.8
    # pulled towards 0.5: below the average-LA probability above 0.5, above it below 0.5
    assert np.all(np.sign(diff[avg > 0.55]) == -1) and np.all(np.sign(diff[avg < 0.45]) == 1)
    # no LA variation, no difference
    flat = fake_fit(data, "y ~ x + (1 | lad)", sd={"Intercept": 1e-6}, sd_spread=0)
    d0 = flat.predict(grid, la="marginal").values - flat.predict(grid, la="average_la").values
    assert np.abs(d0).max() < 1e-9


def test_these_las_equals_the_hand_computation_from_posterior_draws(fit_slope):
    rows = pd.DataFrame({"age50": [0, 1, 1], "x": [0.0, 1.0, -0.5]})
    las = [fit_slope.md.blocks[0].levels[3], fit_slope.md.blocks[0].levels[10]]
    p = fit_slope.predict(rows, la="these_las", las=las, max_draws=None)
    a, b, r = _draws(fit_slope, "Intercept"), _draws(fit_slope, "b"), _draws(fit_slope, "r_lad")
    assert list(p.coords["la"].values) == [las[0]] * 3 + [las[1]] * 3
    for j, code in enumerate(las):
        k = fit_slope.md.blocks[0].levels.index(code)
        for i, row in rows.iterrows():
            hand = expit(a + b[:, 0] * row.age50 + b[:, 1] * row.x + r[:, k, 0] + r[:, k, 1] * row.age50)
            np.testing.assert_allclose(p.values[:, 3 * j + i], hand, rtol=1e-12)
    # a list of codes is the same mode
    same = fit_slope.predict(rows, la=las, max_draws=None).values
    np.testing.assert_array_equal(same, p.values)
    with pytest.raises(FormulaError, match="new_la"):
        fit_slope.predict(rows, la=["E99999999"])


def test_new_la_is_one_draw_shared_by_all_rows_and_averages_to_the_marginal(fit_ri):
    grid = pd.DataFrame({"x": [-1.0, 0.5]})
    p = fit_ri.predict(grid, la="new_la", max_draws=None, seed=4).values
    a, b = _draws(fit_ri, "Intercept"), _draws(fit_ri, "b")[:, 0]
    u = np.log(p / (1 - p)) - (a[:, None] + b[:, None] * grid.x.to_numpy()[None, :])
    np.testing.assert_allclose(u[:, 0], u[:, 1], atol=1e-9)  # the same new LA for both rows
    sd = _draws(fit_ri, "sd_lad")[:, 0]
    z = u[:, 0] / sd
    assert abs(z.mean()) < 0.15 and abs(z.std() - 1) < 0.1  # N(0, sd_s) draws
    np.testing.assert_array_equal(p, fit_ri.predict(grid, la="new_la", max_draws=None, seed=4).values)
    marg = fit_ri.predict(grid, la="marginal", max_draws=None).values
    assert abs(p.mean() - marg.mean()) < 0.02
    assert np.all(np.percentile(p, 97.5, axis=0) - np.percentile(p, 2.5, axis=0) > 0.3)


def test_every_prediction_table_names_its_la_mode(fit_slope, data):
    grid = pd.DataFrame({"age50": [0, 1], "x": [0.0, 0.0]})
    for mode in ("average_la", "marginal", "new_la"):
        t = S.predicted_probabilities(fit_slope, grid, la=mode, max_draws=200)
        assert set(t.la_mode) == {mode} and t.attrs["la_mode"] == LaMode(mode).describe()
    legacy = S.predicted_probabilities(fit_slope, grid, max_draws=200)
    assert set(legacy.la_mode) == {"average_la"}
    code = fit_slope.md.blocks[0].levels[0]
    t = S.predicted_probabilities(fit_slope, grid, la=[code], max_draws=200)
    assert list(t.lad) == [code, code] and code in t.attrs["la_mode"]
    ame = S.average_marginal_effect(fit_slope, "age50", la="marginal", max_draws=100)
    assert ame.la_mode.item() == "marginal" and "integrated" in ame.attrs["la_mode"]
    per_la = S.average_marginal_effect(fit_slope, "age50", la="these_las", las=[code], max_draws=100)
    assert per_la.lad.item() == code
    ce = S.conditional_effects(fit_slope, "x", "age50", n_points=3, la="new_la", max_draws=100)
    assert set(ce.la_mode) == {"new_la"} and "new LA" in ce.attrs["la_mode"]
    with pytest.raises(ValueError, match="own_la"):
        S.conditional_effects(fit_slope, "x", la="own_la")
    with pytest.raises(ValueError, match="la must be one of"):
        S.predicted_probabilities(fit_slope, grid, la="typical")
    with pytest.raises(ValueError, match="needs las"):
        LaMode.parse("these_las")


def test_scenario_names_its_la_mode_and_marginal_differs_from_own(data):
    df = data.assign(area_soc=data.area_soc, lad_name="x")
    fit = fake_fit(df, "y ~ age50 * area_soc + x + (1 | lad)", sd={"Intercept": 1.0})
    own = scenario(fit, df, ["area_soc=+1sd"], by=["all"], max_draws=100)
    marg = scenario(fit, df, ["area_soc=+1sd"], by=["all"], max_draws=100, la="marginal")
    assert set(own.la_mode) == {"own_la"} and set(marg.la_mode) == {"marginal"}
    assert marg.attrs["la_mode"].startswith("marginal")
    assert own.change_pp_mean.iloc[0] != pytest.approx(marg.change_pp_mean.iloc[0], abs=1e-6)


def test_marginal_logistic_quadrature_is_exact_enough_for_large_sds():
    m = np.array([-3.0, 0.0, 2.0])
    for s, points, tol in ((0.1, 40, 1e-12), (1.0, 40, 1e-12), (2.0, 40, 1e-7), (3.0, 100, 1e-9)):
        got = marginal_logistic(m, np.full(3, s * s), points=points)
        for i, mi in enumerate(m):
            ref = quad(_integrand, -15, 15, args=(mi, s), epsabs=1e-14, limit=200)[0]
            assert got[i] == pytest.approx(ref, abs=tol)
