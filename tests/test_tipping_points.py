"""Tipping points: the hinge model of an area factor recovers a known threshold in LA
unemployment on simulated data (real GB LA unemployment rates), and its figure is drawn
(`models.area_curves`, `analysis.tipping_points`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.formula import FormulaError
from models.spatial import LA_DIR

TRUE_THRESHOLD, TRUE_SLOPE, TRUE_DELTA = 6.5, -0.05, -0.6


def simulated_unemployment(n: int, seed: int) -> pd.DataFrame:
    """People in the GB LAs with their published unemployment rate (% 2015-16); wellbeing
    falls faster above TRUE_THRESHOLD per cent."""
    la = pd.read_csv(LA_DIR / "la_covariates.csv", usecols=["lad19cd", "unemp_rate_apr2015_mar2016"]).dropna()
    rng = np.random.default_rng(seed)
    j = rng.integers(0, len(la), n)
    u = la["unemp_rate_apr2015_mar2016"].to_numpy()
    r = rng.normal(0, 0.2, len(la))
    x = rng.standard_normal(n)
    eta = 0.8 + 0.5 * x + TRUE_SLOPE * u[j] + TRUE_DELTA * np.maximum(0, u[j] - TRUE_THRESHOLD) + r[j]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "unemployment": u[j], "lad": la["lad19cd"].to_numpy()[j]})


@pytest.fixture(scope="module")
def hinge_fit():
    from models.area_curves import fit_hinge

    df = simulated_unemployment(8000, seed=3)
    return fit_hinge("y ~ x + unemployment + (1 | lad)", df, "unemployment", chains=2, draws=2000, tune=1000)


def test_threshold_location_and_slopes_recovered(hinge_fit, tmp_path):
    from analysis.summaries.intervals import interval_bounds
    from analysis.tipping_points import curve_draws, curve_grid, threshold_figure, threshold_summary

    assert hinge_fit.convergence.passed, hinge_fit.convergence.headline
    table = threshold_summary(hinge_fit)
    lo, hi = [c for c in table.columns if c.startswith("eti95")]
    for name, true in (
        ("threshold", TRUE_THRESHOLD),
        ("delta", TRUE_DELTA),
        ("slope_below", TRUE_SLOPE),
        ("slope_above", TRUE_SLOPE + TRUE_DELTA),
    ):
        assert table.loc[name, lo] <= true <= table.loc[name, hi], table
    assert table.loc["delta", hi] < 0  # the steeper fall is detected
    assert table.loc["threshold", hi] - table.loc["threshold", lo] < 1.5  # located, not the prior range
    # the curve's band holds the true curve (relative to the lowest LA value)
    grid = curve_grid(hinge_fit)
    band_lo, band_hi = interval_bounds(curve_draws(hinge_fit, grid), 0.95, "eti")
    x0 = grid[0]
    truth = TRUE_SLOPE * (grid - x0) + TRUE_DELTA * (np.maximum(0, grid - TRUE_THRESHOLD) - max(0, x0 - 6.5))
    assert np.mean((band_lo <= truth) & (truth <= band_hi)) >= 0.9
    path = threshold_figure(hinge_fit, tmp_path / "threshold.png", units="% unemployed")
    assert path.stat().st_size > 10_000


def test_hinge_needs_an_area_factor_and_one_random_intercept():
    from models.area_curves import hinge_model
    from models.formula import build_model_data
    from models.priors import resolve_priors

    df = simulated_unemployment(500, seed=1)
    md = build_model_data("y ~ x + unemployment + (1 | lad)", df)
    with pytest.raises(FormulaError, match="varies within"):
        hinge_model(md, "x", resolve_priors(md))
    md2 = build_model_data("y ~ x + (1 | lad)", df)
    with pytest.raises(FormulaError, match="must be a linear term"):
        hinge_model(md2, "unemployment", resolve_priors(md2))


@pytest.fixture(scope="module")
def smooth_fit():
    from models.area_curves import fit_smooth

    df = simulated_unemployment(8000, seed=3)
    # seed 2: one run passes the gate (seed 1 has one divergence in its first run and needs three
    # runs, about 280 s; the recovery asserted below holds either way)
    return fit_smooth(
        "y ~ x + unemployment + (1 | lad)", df, "unemployment", chains=2, draws=1500, tune=1000, seed=2
    )


def test_smooth_finds_where_the_slope_changes(smooth_fit, tmp_path):
    """The HSGP smooth of the same data: its band holds the true curve, and the departure from
    the straight line changes from a flatter to a steeper fall near the true threshold."""
    from analysis.summaries.intervals import interval_bounds
    from analysis.tipping_points import (
        curve_draws,
        curve_grid,
        departure_regions,
        linear_slope_draws,
        smooth_summary,
        threshold_figure,
    )

    assert smooth_fit.convergence.passed, smooth_fit.convergence.headline
    grid = curve_grid(smooth_fit)
    lo, hi = interval_bounds(curve_draws(smooth_fit, grid), 0.95, "eti")
    x0 = grid[0]
    truth = TRUE_SLOPE * (grid - x0) + TRUE_DELTA * (np.maximum(0, grid - TRUE_THRESHOLD) - max(0, x0 - 6.5))
    assert np.mean((lo <= truth) & (truth <= hi)) >= 0.9
    regions = departure_regions(smooth_fit)
    fall = regions[regions["direction"] == "steeper fall"]
    assert len(fall) >= 1, regions
    assert 5.0 <= fall["start"].min() <= 8.0, regions
    # the straight-line slope is b[x] itself, between the two true slopes
    slope = linear_slope_draws(smooth_fit)
    assert TRUE_SLOPE + TRUE_DELTA < slope.mean() < TRUE_SLOPE
    assert np.allclose(smooth_summary(smooth_fit).loc["linear_slope", "mean"], slope.mean())
    path = threshold_figure(smooth_fit, tmp_path / "smooth.png", units="% unemployed")
    assert path.stat().st_size > 10_000


def test_hinge_and_smooth_beat_the_straight_line_by_loo(hinge_fit, smooth_fit):
    """PSIS-LOO on the same rows: both curves predict better than the linear model they extend."""
    from analysis.twins import curve_loo_table
    from models import fit

    df = simulated_unemployment(8000, seed=3)
    linear = fit("y ~ x + unemployment + (1 | lad)", df, chains=2, draws=1000, seed=1, progressbar=False)
    table = curve_loo_table(linear, {"hinge": hinge_fit, "smooth": smooth_fit})
    assert table.loc["hinge", "elpd_diff"] > 2 * table.loc["hinge", "dse"], table
    assert table.loc["smooth", "elpd_diff"] > 2 * table.loc["smooth", "dse"], table
