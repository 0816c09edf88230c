"""The hierarchical logistic model family, written as the math reads.

For person (or binomial cell) i with fixed design x_i and, for each group block g, level
j = g[i] and slope design z_gi:

    eta_i = Intercept + x_i . b + sum_g z_gi . r_g[j]
    y_i  ~ Bernoulli(logit^-1(eta_i))          (or Binomial(n_i, logit^-1(eta_i)))

    r_g[j] ~ MvNormal(0, diag(sd_g) C_g diag(sd_g))    one row per level of the factor
    C_g    ~ LKJ(eta)                                 when the block has several terms

Non-centred by default: r_g[j] = L_g z_g[j], z ~ Normal(0, 1), L_g the Cholesky factor
of the covariance. ``centered=True`` samples r_g directly. While sampling, fixed predictors
are centred at their means (``Intercept_c`` is the log-odds at average predictors) and the
intercept on the original scale is recovered as a deterministic, as brms does.

Names in the posterior: ``Intercept``, ``b`` (dim ``coef``), and per block ``sd_<g>``
(dim ``<g>_term``), ``cor_<g>`` (``<g>_term`` x ``<g>_term2``), ``r_<g>`` (levels of the
factor x ``<g>_term``).

Sampling model. nutpie samples ``hierarchical_logistic(..., fast_likelihood=True)``
(`models.compiled`): the same priors and parameters, with the observed ``y`` replaced by a
``pm.Potential`` named ``y_loglik`` holding `models.ops.glmm_loglik`, one Op for the
whole likelihood (`models.kernels.glmm_logit`: linear predictor, likelihood and gradient
in one vectorised pass over the rows). Two rearrangements of the same sum make it cheap:

* fixed predictors that are constant within the levels of a grouping factor (area-level
  predictors such as walkability) enter once per level, ``(X_level b_area)[lad]``, like a
  random intercept, instead of once per row (`sampling_layout`);
* every group effect ``r_g[level, term]`` and that per-level area predictor sit in one flat
  vector ``R`` read at precomputed positions, ``R[P[j, i]]`` (weights ``Z_g[i, t]``);
* rows that agree on everything the likelihood reads (categorical individual predictors,
  same LA) are pooled into binomial cells, ``y_c eta_c - n_c softplus(eta_c)``, when that
  at least halves the rows.

The log density and its gradient equal the default model's to rounding
(tests/test_models_fast.py). The default model keeps ``pm.Bernoulli``/``pm.Binomial`` as the
observed variable, for pointwise log-likelihoods and posterior predictive draws, which are
computed from it after sampling.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import gammaln

from models.formula import GroupBlock, ModelData
from models.ops import glmm_loglik
from models.priors import Prior


def model_coords(md: ModelData) -> dict[str, list[str]]:
    """Coordinates of every labelled dimension of the model."""
    coords: dict[str, list[str]] = {
        "coef": [t for t in md.fixed_terms if t != "Intercept"],
        "obs_id": list(range(md.n_obs)),
    }
    for block in md.blocks:
        coords[block.dim] = block.levels
        coords[block.term_dim] = block.terms
        coords[f"{block.name}_term2"] = block.terms
    return coords


def _centred_design(md: ModelData) -> tuple[np.ndarray, np.ndarray]:
    """Fixed slopes' design centred at its means (not centred without an intercept), and the means."""
    slope_cols = [j for j, t in enumerate(md.fixed_terms) if t != "Intercept"]
    X = md.X[:, slope_cols]
    x_mean = X.mean(axis=0) if md.has_intercept else np.zeros(X.shape[1])
    return X - x_mean, x_mean


def hierarchical_logistic(
    md: ModelData,
    priors: dict[str, Prior],
    *,
    centered: bool = False,
    fast_likelihood: bool = False,
) -> pm.Model:
    """Build the PyMC model for a `ModelData` and resolved priors.

    Parameters
    ----------
    md : ModelData
        From `models.formula.build_model_data`.
    priors : dict
        From `models.priors.resolve_priors`.
    centered : bool
        Centred parameterisation of the group effects (default non-centred).
    fast_likelihood : bool
        For sampling only: the likelihood as ``pm.Potential("y_loglik", ...)`` computed by
        `models.ops.glmm_loglik` instead of an observed ``y`` (same parameters and log
        density; no ``y`` for log-likelihoods or posterior predictive draws).

    Returns
    -------
    pymc.Model
    """
    Xc, x_mean = _centred_design(md)
    has_slopes = Xc.shape[1] > 0
    with pm.Model(coords=model_coords(md)) as model:
        b = _fixed_slopes(md, priors) if has_slopes else None
        intercept_c = priors["Intercept"].dist("Intercept_c") if md.has_intercept else None
        if md.has_intercept:
            if has_slopes:
                x_bar = pm.Data("x_mean", x_mean, dims="coef")
                pm.Deterministic("Intercept", intercept_c - pt.dot(x_bar, b))
            else:
                pm.Deterministic("Intercept", intercept_c)
        effects = [_group_effects(block, priors, centered=centered) for block in md.blocks]
        if fast_likelihood:
            _sampling_likelihood(md, Xc, b, intercept_c, effects)
        else:
            eta = 0.0
            if has_slopes:
                eta = pt.dot(pm.Data("X_centred", Xc, dims=("obs_id", "coef")), b)
            if intercept_c is not None:
                eta = eta + intercept_c
            for block, r in zip(md.blocks, effects, strict=True):
                eta = eta + _block_contribution(block, r)
            _likelihood(md, eta)
    return model


def _fixed_slopes(md: ModelData, priors: dict[str, Prior]):
    names = [t for t in md.fixed_terms if t != "Intercept"]
    ps = [priors[f"b[{t}]"] for t in names]
    if all(p.family == "normal" for p in ps):
        # prior locations and scales are data, so a compiled model can be reused when the
        # autoscaled priors change with new data
        mu = pm.Data("b_prior_mu", np.array([p.params[0] for p in ps]), dims="coef")
        sigma = pm.Data("b_prior_sigma", np.array([p.params[1] for p in ps]), dims="coef")
        return pm.Normal("b", mu=mu, sigma=sigma, dims="coef")
    parts = [p.dist(f"b_{i}") for i, p in enumerate(ps)]
    return pm.Deterministic("b", pt.stack(parts), dims="coef")


def _group_effects(block: GroupBlock, priors: dict[str, Prior], *, centered: bool):
    """The effects ``r_g`` (levels x terms) of one ``(terms | factor)`` block, with their priors."""
    g, k = block.name, len(block.terms)
    dims = (block.dim, block.term_dim)
    sd_prior = priors[f"sd_{g}"]
    if block.correlated:
        eta_lkj = priors[f"cor_{g}"].params[0]
        chol, corr, sds = pm.LKJCholeskyCov(
            f"chol_{g}", n=k, eta=eta_lkj, sd_dist=sd_prior.dist_unnamed(k), compute_corr=True
        )
        pm.Deterministic(f"sd_{g}", sds, dims=block.term_dim)
        pm.Deterministic(f"cor_{g}", corr, dims=(block.term_dim, f"{g}_term2"))
        if centered:
            return pm.MvNormal(f"r_{g}", mu=np.zeros(k), chol=chol, dims=dims)
        z = pm.Normal(f"z_{g}", 0.0, 1.0, dims=dims)
        return pm.Deterministic(f"r_{g}", pt.dot(z, chol.T), dims=dims)
    sd = sd_prior.dist(f"sd_{g}", dims=block.term_dim)
    if centered:
        return pm.Normal(f"r_{g}", 0.0, sd, dims=dims)
    z = pm.Normal(f"z_{g}", 0.0, 1.0, dims=dims)
    return pm.Deterministic(f"r_{g}", z * sd, dims=dims)


def _block_contribution(block: GroupBlock, r):
    """``sum_t Z[:, t] * r[idx, t]``: the block's part of the linear predictor, per row."""
    idx = pm.Data(f"idx_{block.name}", block.idx, dims="obs_id")
    contribution = 0.0
    for t in range(len(block.terms)):
        col = block.Z[:, t]
        if np.all(col == 1.0):
            contribution = contribution + r[idx, t]
        else:
            z_data = pm.Data(f"Z_{block.name}_{t}", col, dims="obs_id")
            contribution = contribution + z_data * r[idx, t]
    return contribution


def _likelihood(md: ModelData, eta) -> None:
    # the outcome is registered as data so a compiled model can be reused for new outcomes
    y_obs = pm.Data("y_obs", md.y, dims="obs_id")
    if md.family == "bernoulli":
        pm.Bernoulli("y", logit_p=eta, observed=y_obs, dims="obs_id")
    else:
        trials = pm.Data("trials", md.trials, dims="obs_id")
        pm.Binomial("y", n=trials, logit_p=eta, observed=y_obs, dims="obs_id")


# --------------------------------------------------------------------------- sampling form


@dataclass(frozen=True)
class SamplingLayout:
    """How the sampling form arranges the likelihood (fixed by the model's structure).

    Attributes
    ----------
    row_cols : tuple of int
        Columns of the centred fixed design read per row.
    level_cols : tuple of int
        Columns constant within the levels of ``level_block`` (area-level predictors),
        read once per level.
    level_block : int or None
        Index of the block whose factor carries ``level_cols`` (None: no such columns).
    unit_w : bool
        Every effect enters with weight 1 (random intercepts only).
    cells : int or None
        Number of binomial cells when rows that share every value the likelihood reads
        (row design, group levels, slope values) are pooled, as
        ``sum y eta - n softplus(eta)`` over identical rows equals their summed Bernoulli
        terms; None when pooling would not halve the rows (continuous predictors).
    """

    row_cols: tuple[int, ...]
    level_cols: tuple[int, ...]
    level_block: int | None
    unit_w: bool
    cells: int | None = None


#: Pool rows into binomial cells when that leaves at most this share of the rows.
POOL_BELOW = 0.5


def _constant_within(col: np.ndarray, idx: np.ndarray, n_levels: int) -> bool:
    per_level = np.zeros(n_levels)
    per_level[idx] = col
    return bool(np.array_equal(per_level[idx], col))


def sampling_form(md: ModelData) -> tuple[SamplingLayout, dict[str, np.ndarray]]:
    """The sampling form's layout and the values of its `pm.Data`, computed once.

    A column is area-level when it is exactly constant within the levels of a grouping
    factor; the block whose factor makes the most columns constant carries them (the
    first such block on ties), the rest are read per row. Rows pool into binomial cells
    when the distinct combinations of what the likelihood reads number at most
    `POOL_BELOW` of the rows (categorical individual predictors).
    """
    Xc, _ = _centred_design(md)
    best: tuple[int | None, tuple[int, ...]] = (None, ())
    for bi, block in enumerate(md.blocks):
        cols = tuple(j for j in range(Xc.shape[1]) if _constant_within(Xc[:, j], block.idx, block.n_levels))
        if len(cols) > len(best[1]):
            best = (bi, cols)
    level_block, level_cols = best
    row_cols = tuple(j for j in range(Xc.shape[1]) if j not in level_cols)
    unit_w = all(np.all(block.Z == 1.0) for block in md.blocks)
    layout = SamplingLayout(row_cols, level_cols, level_block, unit_w)
    out = _row_arrays(md, Xc, layout)
    values, inverse, n_cells = _cells(out)
    if n_cells <= POOL_BELOW * md.n_obs:
        layout = replace(layout, cells=n_cells)
        k, J = out["XT_rows"].shape[0], out["P_effects"].shape[0]
        out = {
            "XT_rows": np.ascontiguousarray(values[:, :k].T),
            "P_effects": values[:, k : k + J].T.astype(np.int64),
            "W_effects": values[:, k + J :].T,
            "y_lik": np.bincount(inverse, weights=out["y_lik"], minlength=n_cells),
            "n_lik": np.bincount(inverse, weights=out["n_lik"], minlength=n_cells),
        }
    out["P_effects"] = np.ascontiguousarray(out["P_effects"])
    if unit_w:
        del out["W_effects"]
    else:
        out["W_effects"] = np.ascontiguousarray(out["W_effects"])
    if level_cols:
        block = md.blocks[level_block]
        level_X = np.zeros((block.n_levels, len(level_cols)))
        level_X[block.idx] = Xc[:, list(level_cols)]
        out["X_level"] = level_X
    const = 0.0
    if md.family == "binomial":  # log C(n, y) of the original rows (pooling does not change it)
        n, y = md.trials, md.y
        const = float(np.sum(gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)))
    out["loglik_const"] = np.asarray(const)
    return layout, out


def sampling_layout(md: ModelData) -> SamplingLayout:
    """Which fixed columns are area-level, and whether rows pool into binomial cells
    (see `sampling_form`)."""
    return sampling_form(md)[0]


def _row_arrays(md: ModelData, Xc: np.ndarray, layout: SamplingLayout) -> dict[str, np.ndarray]:
    """Per-row data of the sampling form: transposed row design, positions, weights, y, n."""
    positions, weights, offset = [], [], 0
    for block in md.blocks:
        k = len(block.terms)
        for t in range(k):
            positions.append(offset + block.idx.astype(np.int64) * k + t)
            weights.append(block.Z[:, t])
        offset += block.n_levels * k
    if layout.level_cols:
        block = md.blocks[layout.level_block]
        positions.append(offset + block.idx.astype(np.int64))
        weights.append(np.ones(md.n_obs))
    return {
        "XT_rows": np.ascontiguousarray(Xc[:, list(layout.row_cols)].T),
        "P_effects": np.array(positions, dtype=np.int64).reshape(-1, md.n_obs),
        "W_effects": np.array(weights, dtype=np.float64).reshape(-1, md.n_obs),
        "y_lik": np.asarray(md.y, dtype=np.float64),
        "n_lik": np.asarray(md.trials if md.family == "binomial" else np.ones(md.n_obs), dtype=np.float64),
    }


def _cells(rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Distinct rows of (design, positions, weights): their values, each row's cell, count."""
    key = np.concatenate([rows["XT_rows"], rows["P_effects"].astype(np.float64), rows["W_effects"]]).T
    if key.shape[1] == 0:  # nothing varies: one cell
        return key[:1], np.zeros(key.shape[0], dtype=np.int64), min(1, key.shape[0])
    values, inverse = np.unique(key, axis=0, return_inverse=True)
    return values, inverse.ravel(), values.shape[0]


def _selection(cols: tuple[int, ...], k: int) -> np.ndarray:
    """The 0/1 matrix S with ``S @ b == b[cols]``."""
    S = np.zeros((len(cols), k))
    S[np.arange(len(cols)), cols] = 1.0
    return S


def _sampling_likelihood(md: ModelData, Xc: np.ndarray, b, intercept_c, effects) -> None:
    """``pm.Potential("y_loglik")``: the likelihood by `models.ops.glmm_loglik`."""
    layout, arrays = sampling_form(md)
    data = {name: pm.Data(name, value) for name, value in arrays.items()}
    if b is None:
        b_rows = pt.zeros(0)
    elif len(layout.row_cols) == Xc.shape[1]:
        b_rows = b
    else:  # a 0/1 selection (exact; compiles far faster than advanced indexing and its gradient)
        b_rows = pt.dot(_selection(layout.row_cols, Xc.shape[1]), b)
    flat = [r.flatten() for r in effects]
    if layout.level_cols:
        b_level = pt.dot(_selection(layout.level_cols, Xc.shape[1]), b)
        flat.append(pt.dot(data["X_level"], b_level))
    R = pt.concatenate(flat) if flat else pt.zeros(0)
    pooled = layout.cells is not None
    loglik = glmm_loglik(
        data["XT_rows"],
        b_rows,
        intercept_c if intercept_c is not None else 0.0,
        R,
        data["P_effects"],
        data["W_effects"] if not layout.unit_w else np.zeros((0, 0)),
        data["y_lik"],
        data["n_lik"],
        data["loglik_const"],
        family="binomial" if pooled or md.family == "binomial" else "bernoulli",
        unit_w=layout.unit_w,
    )
    pm.Potential("y_loglik", loglik)


def data_values(
    md: ModelData, priors: dict[str, Prior], *, fast_likelihood: bool = False
) -> dict[str, np.ndarray]:
    """Values of every `pm.Data` of `hierarchical_logistic`, for reusing a compiled model."""
    Xc, x_mean = _centred_design(md)
    out: dict[str, np.ndarray] = {}
    if Xc.shape[1]:
        if md.has_intercept:
            out["x_mean"] = x_mean
        names = [t for t in md.fixed_terms if t != "Intercept"]
        ps = [priors[f"b[{t}]"] for t in names]
        if all(p.family == "normal" for p in ps):
            out["b_prior_mu"] = np.array([p.params[0] for p in ps])
            out["b_prior_sigma"] = np.array([p.params[1] for p in ps])
    if fast_likelihood:
        out.update(sampling_form(md)[1])
        return out
    out["y_obs"] = md.y
    if md.family == "binomial":
        out["trials"] = md.trials
    if Xc.shape[1]:
        out["X_centred"] = Xc
    for block in md.blocks:
        out[f"idx_{block.name}"] = block.idx
        for t in range(len(block.terms)):
            if not np.all(block.Z[:, t] == 1.0):
                out[f"Z_{block.name}_{t}"] = block.Z[:, t]
    return out


def structure_key(
    md: ModelData,
    priors: dict[str, Prior],
    *,
    centered: bool,
    fast_likelihood: bool = False,
) -> str:
    """A key equal for two models that differ only in their data values.

    Two fits with the same key can share one compiled model: same family, terms, number
    of rows and group levels, slope-design pattern, parameterisation and priors (the
    fixed-slope normal priors are data and may differ), the same likelihood form and, for
    the sampling form, the same `sampling_layout` (which columns are area-level).
    """
    fixed_normal = all(p.family == "normal" for k, p in priors.items() if k.startswith("b["))
    spec = {
        "family": md.family,
        "fixed": md.fixed_terms,
        "n": md.n_obs,
        "centered": centered,
        "fast_likelihood": bool(fast_likelihood),
        "layout": repr(sampling_layout(md)) if fast_likelihood else None,
        "blocks": [
            (
                b.name,
                b.terms,
                b.n_levels,
                b.correlated,
                [bool(np.all(b.Z[:, t] == 1.0)) for t in range(len(b.terms))],
            )
            for b in md.blocks
        ],
        "priors": {k: str(v) for k, v in priors.items() if not (fixed_normal and k.startswith("b["))},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]
