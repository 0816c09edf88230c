"""The gate's vectorised R-hat and ESS equal ArviZ's, element by element, on draws that
exercise every branch: autocorrelated, anticorrelated, offset chains, ties, a constant
indicator, short and single chains, values that are not finite."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr

from models.convergence import posterior_diagnostics, rank_diagnostics


def _ar1(rng, chains: int, draws: int, k: int) -> np.ndarray:
    """AR(1) chains with coefficients from -0.5 to 0.97 and a small offset per chain."""
    phi = rng.uniform(-0.5, 0.97, k)
    x = np.zeros((chains, draws, k))
    e = rng.normal(size=(chains, draws, k))
    for t in range(draws):
        x[:, t] = (phi * x[:, t - 1] if t else 0.0) + e[:, t]
    return x + rng.normal(0, 0.05, (chains, 1, k))


def _arviz(x: np.ndarray) -> dict[str, np.ndarray]:
    ds = xr.Dataset({"v": (("chain", "draw", "k"), x)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "rhat": az.rhat(ds)["v"].values if x.shape[0] > 1 else np.full(x.shape[2], np.nan),
            "ess_bulk": az.ess(ds, method="bulk")["v"].values,
            "ess_tail": az.ess(ds, method="tail")["v"].values,
        }


@pytest.mark.parametrize("chains,draws", [(4, 1000), (4, 101), (2, 57), (1, 200), (8, 9)])
def test_equal_to_arviz(chains, draws):
    rng = np.random.default_rng(chains * 1000 + draws)
    x = _ar1(rng, chains, draws, 40)
    x[:, :, 0] = np.round(x[:, :, 0])  # heavy ties: average ranks
    x[:, :, 1] = 3.0  # constant
    x[:, :, 2] = (x[:, :, 2] > 10).astype(float)  # all zero: a constant indicator
    x[:, :, 3] = rng.integers(0, 2, (chains, draws))  # a 0/1 parameter
    x[0, -1, 4] = np.inf  # not finite
    x[1 % chains, 0, 5] = np.nan
    x[:, :, 6] = np.repeat(rng.normal(size=(chains, 1)), draws, axis=1)  # stuck chains
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ours = rank_diagnostics(x)
    ref = _arviz(x)
    for key in ("rhat", "ess_bulk", "ess_tail"):
        a, b = ours[key], ref[key]
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=key)
        both = np.isfinite(a) & np.isfinite(b)
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b), err_msg=key)
        np.testing.assert_allclose(a[both], b[both], rtol=1e-9, atol=1e-12, err_msg=key)


def test_posterior_shapes_and_names_follow_arviz():
    rng = np.random.default_rng(5)
    post = xr.Dataset(
        {
            "b": (("chain", "draw", "coef"), _ar1(rng, 4, 300, 3)),
            "r_lad": (("chain", "draw", "lad", "lad_term"), _ar1(rng, 4, 300, 10).reshape(4, 300, 5, 2)),
            "sd": (("chain", "draw"), _ar1(rng, 4, 300, 1)[..., 0]),
        },
        coords={"coef": ["x", "w", "z"], "lad": list("abcde"), "lad_term": ["Intercept", "x"]},
    )
    ours = posterior_diagnostics(post)
    for key, ref in (("rhat", az.rhat(post)), ("ess_bulk", az.ess(post, method="bulk"))):
        for name in post.data_vars:
            assert ours[key][name].dims == ref[name].dims
            np.testing.assert_allclose(ours[key][name].values, ref[name].values, rtol=1e-9)
    assert list(ours["rhat"]["r_lad"].coords["lad"].values) == list("abcde")
