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
``pm.Potential`` named ``y_loglik`` holding `models.ops.logit_likelihood`, which computes
the summed Bernoulli/binomial log-likelihood and its gradient in one loop (one ``exp`` and
one ``log`` per row). The log density equals the default model's to rounding
(tests/test_models_fast.py); on 25,000 people in 380 LAs a gradient costs about 1.6x less
(3.3 -> 2.1 ms on one core, benchmarks/grad_bench.py). The default model keeps
``pm.Bernoulli``/``pm.Binomial`` as the observed variable, for pointwise log-likelihoods and
posterior predictive draws.
``fast_gather=True`` reads the group effects with `models.ops.gather` instead of advanced
indexing; PyTensor 3.3 already fuses ``r_g[idx_g, t]`` and its gradient into the
likelihood loop, so it gained nothing (measured) and is off by default.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from models.formula import GroupBlock, ModelData
from models.ops import gather, logit_likelihood
from models.priors import Prior

FAST_GATHER = False
"""Default of ``fast_gather`` in `hierarchical_logistic` (the `models.ops` gather)."""


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


def hierarchical_logistic(
    md: ModelData,
    priors: dict[str, Prior],
    *,
    centered: bool = False,
    fast_gather: bool | None = None,
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
    fast_gather : bool, optional
        Read the group effects per row with `models.ops.gather` (fast in the numba backend;
        no JAX implementation) rather than PyTensor's advanced indexing. Default
        `FAST_GATHER`. The log density is the same either way.
    fast_likelihood : bool
        For sampling only: the likelihood as ``pm.Potential("y_loglik", ...)`` computed by
        `models.ops.logit_likelihood` instead of an observed ``y`` (same log density, no
        ``y`` for log-likelihoods or posterior predictive draws).

    Returns
    -------
    pymc.Model
    """
    if fast_gather is None:
        fast_gather = FAST_GATHER
    slope_cols = [j for j, t in enumerate(md.fixed_terms) if t != "Intercept"]
    X = md.X[:, slope_cols]
    x_mean = X.mean(axis=0) if md.has_intercept else np.zeros(X.shape[1])
    with pm.Model(coords=model_coords(md)) as model:
        eta = 0.0
        if slope_cols:
            Xc = pm.Data("X_centred", X - x_mean, dims=("obs_id", "coef"))
            b = _fixed_slopes(md, priors)
            eta = pt.dot(Xc, b)
        if md.has_intercept:
            intercept_c = priors["Intercept"].dist("Intercept_c")
            eta = eta + intercept_c
            if slope_cols:
                x_bar = pm.Data("x_mean", x_mean, dims="coef")
                pm.Deterministic("Intercept", intercept_c - pt.dot(x_bar, b))
            else:
                pm.Deterministic("Intercept", intercept_c)
        for block in md.blocks:
            eta = eta + _group_block(block, priors, centered=centered, fast_gather=fast_gather)
        _likelihood(md, eta, fast=fast_likelihood)
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


def _group_block(block: GroupBlock, priors: dict[str, Prior], *, centered: bool, fast_gather: bool):
    """Contribution of one ``(terms | factor)`` block to the linear predictor."""
    g, k = block.name, len(block.terms)
    dims = (block.dim, block.term_dim)
    sd_prior = priors[f"sd_{g}"]
    idx = pm.Data(f"idx_{g}", block.idx, dims="obs_id")
    if block.correlated:
        eta_lkj = priors[f"cor_{g}"].params[0]
        chol, corr, sds = pm.LKJCholeskyCov(
            f"chol_{g}", n=k, eta=eta_lkj, sd_dist=sd_prior.dist_unnamed(k), compute_corr=True
        )
        pm.Deterministic(f"sd_{g}", sds, dims=block.term_dim)
        pm.Deterministic(f"cor_{g}", corr, dims=(block.term_dim, f"{g}_term2"))
        if centered:
            r = pm.MvNormal(f"r_{g}", mu=np.zeros(k), chol=chol, dims=dims)
        else:
            z = pm.Normal(f"z_{g}", 0.0, 1.0, dims=dims)
            r = pm.Deterministic(f"r_{g}", pt.dot(z, chol.T), dims=dims)
    else:
        sd = sd_prior.dist(f"sd_{g}", dims=block.term_dim)
        if centered:
            r = pm.Normal(f"r_{g}", 0.0, sd, dims=dims)
        else:
            z = pm.Normal(f"z_{g}", 0.0, 1.0, dims=dims)
            r = pm.Deterministic(f"r_{g}", z * sd, dims=dims)
    contribution = 0.0
    for t in range(k):
        col = block.Z[:, t]
        r_rows = gather(r[:, t], idx) if fast_gather else r[idx, t]
        if np.all(col == 1.0):
            contribution = contribution + r_rows
        else:
            z_data = pm.Data(f"Z_{g}_{t}", col, dims="obs_id")
            contribution = contribution + z_data * r_rows
    return contribution


def _likelihood(md: ModelData, eta, *, fast: bool = False) -> None:
    # the outcome is registered as data so a compiled model can be reused for new outcomes
    y_obs = pm.Data("y_obs", md.y, dims="obs_id")
    if fast:
        eta = pt.as_tensor_variable(eta)
        if eta.ndim == 0:  # no predictors at all: one log-odds for every row
            eta = pt.broadcast_to(eta, y_obs.shape)
        trials = pm.Data("trials", md.trials, dims="obs_id") if md.family == "binomial" else None
        pm.Potential("y_loglik", logit_likelihood(eta, y_obs, trials))
    elif md.family == "bernoulli":
        pm.Bernoulli("y", logit_p=eta, observed=y_obs, dims="obs_id")
    else:
        trials = pm.Data("trials", md.trials, dims="obs_id")
        pm.Binomial("y", n=trials, logit_p=eta, observed=y_obs, dims="obs_id")


def data_values(md: ModelData, priors: dict[str, Prior]) -> dict[str, np.ndarray]:
    """Values of every `pm.Data` of `hierarchical_logistic`, for reusing a compiled model."""
    slope_cols = [j for j, t in enumerate(md.fixed_terms) if t != "Intercept"]
    X = md.X[:, slope_cols]
    x_mean = X.mean(axis=0) if md.has_intercept else np.zeros(X.shape[1])
    out: dict[str, np.ndarray] = {"y_obs": md.y}
    if slope_cols:
        out["X_centred"] = X - x_mean
        if md.has_intercept:
            out["x_mean"] = x_mean
        names = [t for t in md.fixed_terms if t != "Intercept"]
        ps = [priors[f"b[{t}]"] for t in names]
        if all(p.family == "normal" for p in ps):
            out["b_prior_mu"] = np.array([p.params[0] for p in ps])
            out["b_prior_sigma"] = np.array([p.params[1] for p in ps])
    if md.family == "binomial":
        out["trials"] = md.trials
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
    fast_gather: bool | None = None,
    fast_likelihood: bool = False,
) -> str:
    """A key equal for two models that differ only in their data values.

    Two fits with the same key can share one compiled model: same family, terms, number
    of rows and group levels, slope-design pattern, parameterisation and priors (the
    fixed-slope normal priors are data and may differ), and the same gather and
    likelihood form (``fast_gather``, default `FAST_GATHER`; ``fast_likelihood``).
    """
    if fast_gather is None:
        fast_gather = FAST_GATHER
    import hashlib
    import json

    fixed_normal = all(p.family == "normal" for k, p in priors.items() if k.startswith("b["))
    spec = {
        "family": md.family,
        "fixed": md.fixed_terms,
        "n": md.n_obs,
        "centered": centered,
        "fast_gather": bool(fast_gather),
        "fast_likelihood": bool(fast_likelihood),
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
