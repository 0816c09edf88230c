"""The convergence gate on hand-made draws (no sampling): what passes and what must fail."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from models import check_convergence


def _tree(post: dict[str, np.ndarray], seed: int = 0) -> xr.DataTree:
    rng = np.random.default_rng(seed)
    chains, draws = next(iter(post.values())).shape[:2]

    def dims(name, v):
        return ["chain", "draw", *[f"{name}_d{k}" for k in range(v.ndim - 2)]]

    posterior = xr.Dataset({k: (dims(k, v), v) for k, v in post.items()})
    stats = xr.Dataset(
        {
            "diverging": (["chain", "draw"], np.zeros((chains, draws), bool)),
            "energy": (["chain", "draw"], rng.normal(size=(chains, draws))),
        }
    )
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})


def _good(rng, *shape):
    return rng.normal(size=(4, 1000, *shape))


def test_constant_correlation_diagonal_passes_quietly():
    rng = np.random.default_rng(1)
    cor = np.ones((4, 1000, 2, 2))
    cor[..., 0, 1] = cor[..., 1, 0] = np.tanh(rng.normal(0, 0.1, (4, 1000)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the user's console
        conv = check_convergence(_tree({"b": _good(rng, 3), "cor_g": cor}))
    assert conv.passed, conv.problems
    assert 0.99 < conv.max_rhat < 1.01 and conv.min_ess_bulk > 2000


def test_a_stuck_chain_fails_even_where_r_hat_is_not_finite():
    rng = np.random.default_rng(2)
    b = _good(rng, 3)
    b[2, :, 1] = 0.7  # one chain never moves for b[1]
    conv = check_convergence(_tree({"b": b}))
    assert not conv.passed and conv.worst_rhat == "b[1]"
    b[:, :, 1] = np.array([0.1, 0.4, 0.7, 1.0])[:, None]  # every chain stuck, each in its own place
    conv = check_convergence(_tree({"b": b}))
    assert not conv.passed and conv.worst_rhat == "b[1]" and not np.isfinite(conv.max_rhat)
    assert any("b[1]" in p for p in conv.problems)


def test_chains_in_different_places_fail():
    rng = np.random.default_rng(3)
    b = _good(rng, 2)
    b[0] += 3.0
    conv = check_convergence(_tree({"b": b}))
    assert not conv.passed and conv.max_rhat > 1.3 and conv.worst_rhat.startswith("b[")
