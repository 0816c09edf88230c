"""Predicted probabilities for new rows, for groups seen in the fit and for new groups.

For draw s and new row i, ``eta_si = Intercept_s + x_i . b_s + sum_g z_gi . r_g,s[j]``.
A level seen in the fit uses its posterior effect ``r_g[j]``. A level without rows in the fit
that is a node of a BYM2 term's graph (``car(lad, type = "bym2")``, every GB LA by default)
uses its posterior effect too: its parts were sampled with the rest, the structured part
tied to its neighbours (`models.spatial.bym2_node_parts`). Any other level never seen is drawn
from the population distribution of group effects, ``MvNormal(0, Sigma_g,s)`` once per
draw and unseen level (rows sharing the unseen level share the draw), or set to zero
(``unseen="zero"``: the typical group), or refused (``unseen="error"``).

Which LA a prediction is for is named by its LA mode (``la=``, `models.la_modes`):
``average_la``, ``marginal``, ``new_la``, ``these_las`` or ``own_la``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from models.formula import FormulaError, design_for_new_data
from models.la_modes import LaMode, marginal_logistic
from models.spatial import bym2_layout, bym2_node_parts


def _stacked(post: xr.Dataset, name: str) -> np.ndarray:
    da = post[name].stack(sample=("chain", "draw"))
    return np.moveaxis(da.values, -1, 0)


def predict_proba(
    fit,
    new_data: pd.DataFrame,
    *,
    la: str | Sequence[str] | LaMode | None = None,
    las: Sequence[str] | None = None,
    group: str | None = None,
    unseen: str = "population",
    include_groups: bool = True,
    seed: int | None = None,
    max_draws: int | None = None,
    quadrature_points: int = 40,
) -> xr.DataArray:
    """Posterior draws of P(y = 1) for each new row.

    Parameters
    ----------
    fit : models.Fit
    new_data : pandas.DataFrame
        Rows with every predictor of the formula (and the grouping columns for
        ``own_la``).
    la : str, sequence of str or LaMode, optional
        Which LA the prediction is for (`models.la_modes`): ``"average_la"`` (LA effects
        at zero), ``"marginal"`` (integrated over the fitted LA distribution),
        ``"new_la"`` (one unseen LA per draw), ``"these_las"`` (with ``las``; each row
        predicted in each named LA), ``"own_la"`` (each row's own LA). Default:
        ``"own_la"``, or ``"average_la"`` when ``include_groups`` is False.
    las : sequence of str, optional
        The LA codes of ``these_las``.
    group : str, optional
        The grouping factor the named LAs belong to (default ``lad``, else the only one).
    unseen : {"population", "zero", "error"}
        ``own_la`` only: a level of a grouping factor that the fit did not see.
    include_groups : bool
        Kept for callers without ``la``: False is ``la="average_la"``.
    seed : int, optional
        Seed for the draws of unseen or new group effects (same seed, same output).
    max_draws : int, optional
        Thin to at most this many posterior draws.
    quadrature_points : int
        Gauss-Hermite nodes of ``marginal``.

    Returns
    -------
    xarray.DataArray
        Dims ``("sample", "row")``, P(y = 1); for a cumulative (ordinal) fit
        ``("sample", "row", "category")``, P(y = k) of every category (they sum to 1).
        ``attrs["la_mode"]`` names the mode. For ``these_las``
        the rows are ``new_data`` repeated for each named LA (LA by LA), with the LA of
        each row in the coordinate ``la``.
    """
    if unseen not in ("population", "zero", "error"):
        raise ValueError(f"unseen must be 'population', 'zero' or 'error', got {unseen!r}")
    mode = LaMode.parse(("own_la" if include_groups else "average_la") if la is None else la, las)
    md = fit.md
    post = fit.posterior()
    la_coord, factor = None, None
    if mode.kind == "these_las":
        factor = _mode_factor(md, group)
        known = set().union(*(b.levels for b in md.blocks if b.factor == factor))
        # a BYM2 term's LAs without respondents have effects too (from their neighbours)
        spatial = [b for b in md.blocks if b.factor == factor and b.spatial]
        known |= set().union(*(bym2_layout(b).graph.nodes for b in spatial))
        missing = [c for c in mode.las if c not in known]
        if missing:
            raise FormulaError(
                f"la='these_las': {', '.join(missing[:5])} not among the fitted levels of {factor!r}; "
                "use la='new_la' for an LA without respondents"
            )
        parts = [new_data.assign(**{factor: code}) for code in mode.las]
        la_coord = np.repeat(np.asarray(mode.las, dtype=object), len(new_data))
        new_data = pd.concat(parts)
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
    var = np.zeros_like(eta)
    for block, Z in zip(md.blocks, Z_new, strict=True):
        if mode.kind == "own_la" or (mode.kind == "these_las" and block.factor == factor):
            policy = unseen if mode.kind == "own_la" else "error"
            eta += _block_effect(block, Z, new_data, post, keep, policy, rng)
        elif mode.kind == "new_la":
            chol = _block_cholesky(block, post, keep)
            u = np.einsum("skl,sl->sk", chol, rng.standard_normal(chol.shape[:2]))
            eta += np.einsum("sk,nk->sn", u, Z)
        elif mode.kind == "marginal":
            chol = _block_cholesky(block, post, keep)
            cov = chol @ np.swapaxes(chol, 1, 2)
            var += np.einsum("nk,skl,nl->sn", Z, cov, Z)
    dims: tuple[str, ...] = ("sample", "row")
    coords: dict = {"row": np.asarray(new_data.index)}
    if md.family == "cumulative":  # P(Y = k): differences of P(Y <= k) = F(tau_k - eta)
        tau = _stacked(post, "cutpoints")[keep][:, None, :]  # (S, 1, K-1)
        if mode.kind == "marginal":
            cum = np.stack(
                [
                    marginal_logistic(tau[:, :, k] - eta, var, points=quadrature_points)
                    for k in range(tau.shape[2])
                ],
                axis=-1,
            )
        else:
            with np.errstate(over="ignore"):
                cum = 1.0 / (1.0 + np.exp(eta[..., None] - tau))
        ends = np.zeros((*cum.shape[:-1], 1))
        probs = np.diff(np.concatenate([ends, cum, ends + 1.0], axis=-1), axis=-1)
        dims, coords["category"] = (*dims, "category"), list(md.response_levels)
    elif mode.kind == "marginal":
        probs = marginal_logistic(eta, var, points=quadrature_points)
    else:
        with np.errstate(over="ignore"):
            probs = 1.0 / (1.0 + np.exp(-eta))
    if la_coord is not None:
        coords["la"] = ("row", la_coord)
    out = xr.DataArray(probs, dims=dims, coords=coords)
    out.attrs["la_mode"] = mode.kind
    out.attrs["la_mode_description"] = mode.describe()
    return out


def _mode_factor(md, group: str | None) -> str:
    """The grouping factor named LAs belong to: ``group``, else ``lad``, else the only one."""
    factors = list(dict.fromkeys(b.factor for b in md.blocks))
    if group is not None:
        if group not in factors:
            raise FormulaError(f"{group!r} is not a grouping factor of {md.formula!r} (factors: {factors})")
        return group
    if "lad" in factors:
        return "lad"
    if len(factors) == 1:
        return factors[0]
    raise FormulaError(f"name the grouping factor of the LAs (group=...): the model has {factors}")


def _block_cholesky(block, post, keep) -> np.ndarray:
    """Cholesky factor of each draw's covariance of the block's effects, (S, k, k)."""
    sd = _stacked(post, f"sd_{block.name}")[keep]  # (S, k)
    S, k = sd.shape
    if f"cor_{block.name}" in post:
        cor = _stacked(post, f"cor_{block.name}")[keep]  # (S, k, k)
    else:
        cor = np.broadcast_to(np.eye(k), (S, k, k))
    cov = sd[:, :, None] * cor * sd[:, None, :]
    return np.linalg.cholesky(cov + 1e-12 * np.eye(k))


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
    if new_levels and block.spatial:  # LAs on the BYM2 graph without respondents
        on_graph = _graph_effects(block, post, keep, new_levels)
        for level, draws in on_graph.items():
            effects[:, np.flatnonzero(key.to_numpy() == level), 0] = draws[:, None]
        seen = seen | key.isin(list(on_graph)).to_numpy()
        new_levels = [lv for lv in new_levels if lv not in on_graph]
    if new_levels:
        if unseen == "error":
            raise FormulaError(f"levels {new_levels[:5]} of {block.factor!r} were not in the fitted data")
        if unseen == "population":
            chol = _block_cholesky(block, post, keep)
            draws = rng.standard_normal((S, len(new_levels), k))
            new_eff = np.einsum("skl,snl->snk", chol, draws)
            pos = {lv: m for m, lv in enumerate(new_levels)}
            rows = np.flatnonzero(~seen)
            which = np.array([pos[key.iloc[i]] for i in rows])
            effects[:, rows, :] = new_eff[:, which, :]
    return np.einsum("snk,nk->sn", effects, Z)


def _graph_effects(block, post, keep, levels) -> dict[str, np.ndarray]:
    """BYM2 effects (draws,) of the ``levels`` that are nodes of the block's graph but had no
    rows in the fit: their structured and unstructured parts were sampled with the rest
    (`models.spatial.bym2_node_parts`), the structured part informed by their neighbours."""
    lay = bym2_layout(block)
    pos = {code: i for i, code in enumerate(lay.graph.nodes)}
    on_graph = [lv for lv in levels if lv in pos]
    if not on_graph:
        return {}
    g = block.name
    rho = _stacked(post, f"rho_{g}")[keep]
    sd = _stacked(post, f"sd_{g}")[keep].reshape(len(rho), -1)[:, 0]
    phi = _stacked(post, f"phi_{g}")[keep] if len(lay.structured) else None
    structured, unstructured = bym2_node_parts(lay, rho, sd, phi, _stacked(post, f"theta_{g}")[keep])
    total = structured + unstructured
    return {lv: total[:, pos[lv]] for lv in on_graph}
