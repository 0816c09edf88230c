"""Predicted probabilities for new rows, for groups seen in the fit and for new groups.

For draw s and new row i, ``eta_si = Intercept_s + x_i . b_s + sum_g z_gi . r_g,s[j]``.
A level seen in the fit uses its posterior effect ``r_g[j]``; a level never seen is drawn
from the population distribution of group effects, ``MvNormal(0, Sigma_g,s)`` once per
draw and unseen level (rows sharing the unseen level share the draw), or set to zero
(``unseen="zero"``: the typical group), or refused (``unseen="error"``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from models.formula import FormulaError, design_for_new_data


def _stacked(post: xr.Dataset, name: str) -> np.ndarray:
    da = post[name].stack(sample=("chain", "draw"))
    return np.moveaxis(da.values, -1, 0)


def predict_proba(
    fit,
    new_data: pd.DataFrame,
    *,
    unseen: str = "population",
    include_groups: bool = True,
    seed: int | None = None,
    max_draws: int | None = None,
) -> xr.DataArray:
    """Posterior draws of P(y = 1) for each new row.

    Parameters
    ----------
    fit : models.Fit
    new_data : pandas.DataFrame
        Rows with every predictor and grouping column of the formula.
    unseen : {"population", "zero", "error"}
        What to do for a level of a grouping factor that the fit did not see.
    include_groups : bool
        False gives population-level predictions (all group effects zero).
    seed : int, optional
        Seed for the draws of unseen group effects (same seed, same output).
    max_draws : int, optional
        Thin to at most this many posterior draws.

    Returns
    -------
    xarray.DataArray
        Dims ``("sample", "row")``.
    """
    if unseen not in ("population", "zero", "error"):
        raise ValueError(f"unseen must be 'population', 'zero' or 'error', got {unseen!r}")
    md = fit.md
    post = fit.posterior()
    X_new, Z_new = design_for_new_data(md, new_data)
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    keep = np.arange(n_samples)
    if max_draws and max_draws < n_samples:
        keep = np.linspace(0, n_samples - 1, max_draws).astype(int)
    slope_cols = [j for j, t in enumerate(md.fixed_terms) if t != "Intercept"]
    eta = np.zeros((len(keep), len(new_data)))
    if md.has_intercept:
        eta += _stacked(post, "Intercept")[keep][:, None]
    if slope_cols:
        b = _stacked(post, "b")[keep]
        eta += b @ X_new[:, slope_cols].T
    rng = np.random.default_rng(seed)
    if include_groups:
        for block, Z in zip(md.blocks, Z_new, strict=True):
            eta += _block_effect(block, Z, new_data, post, keep, unseen, rng)
    probs = 1.0 / (1.0 + np.exp(-eta))
    return xr.DataArray(probs, dims=("sample", "row"), coords={"row": np.asarray(new_data.index)})


def _block_effect(block, Z, new_data, post, keep, unseen, rng) -> np.ndarray:
    parts = [p.strip() for p in block.factor.split(":")]
    missing = [p for p in parts if p not in new_data]
    if missing:
        raise FormulaError(
            f"new data lacks grouping column {missing[0]!r} of block ({block.expr} | {block.factor})"
        )
    key = new_data[parts[0]].astype(str)
    for p in parts[1:]:
        key = key + ":" + new_data[p].astype(str)
    lookup = {lv: j for j, lv in enumerate(block.levels)}
    idx = np.array([lookup.get(k, -1) for k in key])
    r = _stacked(post, f"r_{block.name}")[keep]  # (S, L, k)
    S, _, k = r.shape
    effects = np.zeros((S, len(idx), k))
    seen = idx >= 0
    effects[:, seen, :] = r[:, idx[seen], :]
    new_levels = sorted(set(key[~seen]))
    if new_levels:
        if unseen == "error":
            raise FormulaError(f"levels {new_levels[:5]} of {block.factor!r} were not in the fitted data")
        if unseen == "population":
            sd = _stacked(post, f"sd_{block.name}")[keep]  # (S, k)
            if f"cor_{block.name}" in post:
                cor = _stacked(post, f"cor_{block.name}")[keep]  # (S, k, k)
            else:
                cor = np.broadcast_to(np.eye(k), (S, k, k))
            cov = sd[:, :, None] * cor * sd[:, None, :]
            chol = np.linalg.cholesky(cov + 1e-12 * np.eye(k))
            draws = rng.standard_normal((S, len(new_levels), k))
            new_eff = np.einsum("skl,snl->snk", chol, draws)
            pos = {lv: m for m, lv in enumerate(new_levels)}
            rows = np.flatnonzero(~seen)
            which = np.array([pos[key.iloc[i]] for i in rows])
            effects[:, rows, :] = new_eff[:, which, :]
    return np.einsum("snk,nk->sn", effects, Z)
