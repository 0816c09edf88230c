"""The hierarchical logistic model family, written as the math reads.

For person (or binomial cell) i with fixed design x_i and, for each group block g, level
j = g[i] and slope design z_gi:

    eta_i = Intercept + x_i . b + sum_g z_gi . r_g[j]
    y_i  ~ Bernoulli(logit^-1(eta_i))          (or Binomial(n_i, logit^-1(eta_i)))

    r_g[j] ~ MvNormal(0, diag(sd_g) C_g diag(sd_g))    one row per level of the factor
    C_g    ~ LKJ(eta)                                 when the block has several terms

Non-centred by default: r_g[j] = L_g z_g[j], z ~ Normal(0, 1), L_g the Cholesky factor
of the covariance. ``centered=True`` samples r_g directly; a dict ``{block name: bool}``
chooses per block (`centring_by_block`; `models.fitting.fit` picks it from the data by
default, `models.escalation.choose_centring`). One centred block with an intercept is sampled
centred on the fixed effects, ``m_g[j] ~ MvNormal((Intercept_c + xa_j . b_area, b_slopes),
Sigma_g)``, ``r_g = m_g - mean`` (`hierarchical_centring`). While sampling, fixed predictors
are centred at their means (``Intercept_c`` is the log-odds at average predictors) and the
intercept on the original scale is recovered as a deterministic, as brms does.

Names in the posterior: ``Intercept``, ``b`` (dim ``coef``), and per block ``sd_<g>``
(dim ``<g>_term``), ``cor_<g>`` (``<g>_term`` x ``<g>_term2``), ``r_<g>`` (levels of the
factor x ``<g>_term``). A spatial term ``car(g, type = "bym2")`` makes ``r_<g>`` from the
BYM2 model of `models.spatial` (also ``rho_<g>``, ``phi_<g>``, ``theta_<g>``); the
likelihood reads it like any random intercept.

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

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from models.formula import GroupBlock, ModelData
from models.priors import Prior
from models.sampling_form import (  # the sampling form lives in its own module
    Centring,
    centred_design,
    constant_within,
    per_level,
    sampling_likelihood,
)
from models.spatial import bym2_effects, spatial_coords
from models.weights import group_weight_potentials, weighted_observation


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
        if block.spatial:
            coords.update(spatial_coords(block))
    return coords


def centring_by_block(md: ModelData, centered: Centring) -> dict[str, bool]:
    """The parameterisation of every group block, by block name.

    Parameters
    ----------
    md : ModelData
        The model data (its ``blocks``).
    centered : bool or mapping
        One choice for all blocks, or ``{block name: bool}`` (blocks not named are
        non-centred).

    Returns
    -------
    dict
        ``{block name: True if centred}`` in block order.

    Raises
    ------
    ValueError
        A mapping that names a block the model does not have, or a value that is not a bool.
    """
    names = [b.name for b in md.blocks]
    if isinstance(centered, Mapping):
        unknown = [k for k in centered if k not in names]
        if unknown:
            raise ValueError(
                f"centered names no group block {', '.join(map(repr, unknown))}; "
                f"the blocks are {', '.join(names) or 'none'}"
            )
        bad = [k for k, v in centered.items() if not isinstance(v, bool | np.bool_)]
        if bad:
            raise ValueError(f"centered[{bad[0]!r}] must be True or False, got {centered[bad[0]]!r}")
        return {n: bool(centered.get(n, False)) for n in names}
    if not isinstance(centered, bool | np.bool_):
        raise ValueError(f"centered must be True, False or a dict of block name -> bool, got {centered!r}")
    return dict.fromkeys(names, bool(centered))


def hierarchical_logistic(
    md: ModelData,
    priors: dict[str, Prior],
    *,
    centered: Centring = False,
    fast_likelihood: bool = False,
) -> pm.Model:
    """Build the PyMC model for a `ModelData` and resolved priors.

    Parameters
    ----------
    md : ModelData
        From `models.formula.build_model_data`.
    priors : dict
        From `models.priors.resolve_priors`.
    centered : bool or dict
        Centred parameterisation of the group effects: one choice for every block, or
        ``{block name: bool}`` per block (`centring_by_block`; default non-centred).
    fast_likelihood : bool
        For sampling only: the likelihood as ``pm.Potential("y_loglik", ...)`` computed by
        `models.ops.glmm_loglik` instead of an observed ``y`` (same parameters and log
        density; no ``y`` for log-likelihoods or posterior predictive draws).

    Returns
    -------
    pymc.Model
    """
    Xc, x_mean = centred_design(md)
    has_slopes = Xc.shape[1] > 0
    by_block = centring_by_block(md, centered)
    with pm.Model(coords=model_coords(md)) as model:
        b = _fixed_slopes(md, priors) if has_slopes else None
        intercept_c = priors["Intercept"].dist("Intercept_c") if md.has_intercept else None
        if md.has_intercept:
            if has_slopes:
                x_bar = pm.Data("x_mean", x_mean, dims="coef")
                pm.Deterministic("Intercept", intercept_c - pt.dot(x_bar, b))
            else:
                pm.Deterministic("Intercept", intercept_c)
        hc = hierarchical_centring(md, by_block)
        effects = [
            bym2_effects(block, priors)  # car(g, type = "bym2"): models.spatial
            if block.spatial
            else _group_effects(
                block,
                priors,
                centered=by_block[block.name],
                mean=_level_means(md, hc, intercept_c, b) if hc and block.name == hc.block else None,
            )
            for block in md.blocks
        ]
        if md.group_weights:  # areas sampled with unequal probability (models.weights)
            group_weight_potentials(md, effects)
        if fast_likelihood:
            sampling_likelihood(md, Xc, b, intercept_c, effects)
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


@dataclass(frozen=True)
class HierarchicalCentring:
    """What the levels of one centred block are sampled around (`hierarchical_centring`).

    Attributes
    ----------
    block : str
        The block's name.
    area_cols : tuple of int
        Columns of the centred fixed design (`centred_design`) constant within the levels of
        the block's factor (area-level predictors): they join the intercept's mean.
    slope_coefs : tuple of int or None
        Per term of the block: the position in ``b`` of the fixed slope of the same
        variable that the term varies around, or None (the intercept, or a term without
        one).
    """

    block: str
    area_cols: tuple[int, ...]
    slope_coefs: tuple[int | None, ...]


def hierarchical_centring(md: ModelData, by_block: Mapping[str, bool]) -> HierarchicalCentring | None:
    """The block whose levels are sampled centred on the fixed effects, if any.

    Hierarchical centring (Gelfand, Sahu and Carlin 1995). For a centred block with an
    intercept, the sampler moves each level's own coefficients,

        m_g[j] = mu_g[j] + r_g[j] ~ MvNormal(mu_g[j], Sigma_g),
        mu_g[j] = (Intercept_c + xa_j . b_area,  b_t for each varying slope t),

    and the fit records ``r_g = m_g - mu_g`` as before. ``xa_j`` are the level's values of
    the area-level predictors (constant within the levels), centred as in the fixed
    design. The density is the same (the map has Jacobian 1); what changes is the geometry:
    with ``r_g`` free and the levels informative, the data fix only the sums ``Intercept_c
    + xa_j . b_area + r_g[j, 0]`` and ``b_t + r_g[j, t]``, so the intercept, the area
    coefficients and the fixed slopes trade off against the ``r_g`` along ridges that a
    diagonal mass matrix cannot follow. With ``m_g`` free they are informed by the spread
    of the ``m_g`` alone.

    The first block that is centred, not spatial and has an intercept term, in a model with
    an intercept and no area sampling weights; None otherwise.
    """
    if not md.has_intercept or md.group_weights:
        return None
    slope_cols = [j for j, t in enumerate(md.fixed_terms) if t != "Intercept"]  # b's columns of X
    for block in md.blocks:
        if by_block.get(block.name) and not block.spatial and "Intercept" in block.terms:
            area = tuple(
                k for k, j in enumerate(slope_cols) if constant_within(md.X[:, j], block.idx, block.n_levels)
            )
            in_b = {md.fixed_terms[j]: k for k, j in enumerate(slope_cols)}  # term -> position in b
            slopes = tuple(
                in_b[t] if t in in_b and np.array_equal(block.Z[:, k], md.X[:, slope_cols[in_b[t]]]) else None
                for k, t in enumerate(block.terms)
                if t != "Intercept"
            )
            return HierarchicalCentring(block.name, area, (None, *slopes))
    return None


def centring_values(md: ModelData, hc: HierarchicalCentring | None) -> dict[str, np.ndarray]:
    """Data of the hierarchical centring: ``X_centre`` (levels x area predictors, their
    values per level centred at their means as in `centred_design`,
    `models.sampling_form.per_level`), when it has area predictors. Reads only those columns."""
    if hc is None or not hc.area_cols:
        return {}
    slope_cols = [j for j, t in enumerate(md.fixed_terms) if t != "Intercept"]
    X = md.X[:, [slope_cols[k] for k in hc.area_cols]]
    block = next(b for b in md.blocks if b.name == hc.block)
    return {"X_centre": per_level(X - X.mean(axis=0), block)}


def _level_means(md: ModelData, hc: HierarchicalCentring, intercept_c, b):
    """``mu_g`` (levels x terms) of `hierarchical_centring`."""
    block = next(bl for bl in md.blocks if bl.name == hc.block)
    intercept = intercept_c
    if hc.area_cols:
        X_centre = pm.Data("X_centre", centring_values(md, hc)["X_centre"])
        intercept = intercept + pt.dot(X_centre, b[list(hc.area_cols)])
    columns = [
        pt.broadcast_to(intercept if term == "Intercept" else (0.0 if j is None else b[j]), (block.n_levels,))
        for term, j in zip(block.terms, hc.slope_coefs, strict=True)
    ]
    return pt.stack(columns, axis=1)


def _group_effects(block: GroupBlock, priors: dict[str, Prior], *, centered: bool, mean=None):
    """The effects ``r_g`` (levels x terms) of one ``(terms | factor)`` block, with their priors.

    ``mean`` (levels x terms; the hierarchically centred block only, `hierarchical_centring`):
    the levels are sampled as ``m_g ~ MvNormal(mean, Sigma_g)`` and ``r_g = m_g - mean``.
    """
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
        if centered and mean is not None:
            m = pm.MvNormal(f"m_{g}", mu=mean, chol=chol, dims=dims)
            return pm.Deterministic(f"r_{g}", m - mean, dims=dims)
        if centered:
            return pm.MvNormal(f"r_{g}", mu=np.zeros(k), chol=chol, dims=dims)
        z = pm.Normal(f"z_{g}", 0.0, 1.0, dims=dims)
        return pm.Deterministic(f"r_{g}", pt.dot(z, chol.T), dims=dims)
    sd = sd_prior.dist(f"sd_{g}", dims=block.term_dim)
    if centered and mean is not None:
        m = pm.Normal(f"m_{g}", mean, sd, dims=dims)
        return pm.Deterministic(f"r_{g}", m - mean, dims=dims)
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
    if md.weights is not None:  # survey pseudo-likelihood (models.weights)
        weighted_observation(md, eta)
        return
    # the outcome is registered as data so a compiled model can be reused for new outcomes
    y_obs = pm.Data("y_obs", md.y, dims="obs_id")
    if md.family == "bernoulli":
        pm.Bernoulli("y", logit_p=eta, observed=y_obs, dims="obs_id")
    else:
        trials = pm.Data("trials", md.trials, dims="obs_id")
        pm.Binomial("y", n=trials, logit_p=eta, observed=y_obs, dims="obs_id")


# the shared parts of the model, public for the other families (`models.cumulative`)
fixed_slopes = _fixed_slopes
group_effects = _group_effects
block_contribution = _block_contribution
