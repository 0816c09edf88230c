"""Tipping points: the hinge model of an area factor recovers a known threshold in LA
unemployment on simulated data (real GB LA unemployment rates), and its figure is drawn
(`models.hinge`, `analysis.tipping_points`)."""

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
    from models.hinge import fit_hinge

    df = simulated_unemployment(8000, seed=3)
    return fit_hinge("y ~ x + unemployment + (1 | lad)", df, "unemployment", chains=2, draws=2000, tune=1000)


def test_threshold_location_and_slopes_recovered(hinge_fit, tmp_path):
    from analysis.tipping_points import threshold_figure, threshold_summary

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
    path = threshold_figure(hinge_fit, tmp_path / "threshold.png", units="% unemployed")
    assert path.stat().st_size > 10_000


def test_hinge_needs_an_area_factor_and_one_random_intercept():
    from models.formula import build_model_data
    from models.hinge import hinge_model
    from models.priors import resolve_priors

    df = simulated_unemployment(500, seed=1)
    md = build_model_data("y ~ x + unemployment + (1 | lad)", df)
    with pytest.raises(FormulaError, match="varies within"):
        hinge_model(md, "x", resolve_priors(md))
    md2 = build_model_data("y ~ x + (1 | lad)", df)
    with pytest.raises(FormulaError, match="must be a linear term"):
        hinge_model(md2, "unemployment", resolve_priors(md2))
