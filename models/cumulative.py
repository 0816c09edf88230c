"""The cumulative-logit (proportional-odds) multilevel model family, written as the math reads.

For person (or cell) i with fixed design x_i (no intercept column: the cutpoints take its
place, as in ``ordinal::clmm``), group blocks g with level j = g[i] and slope design z_gi,
and an ordinal response with categories 1 < 2 < ... < K:

    eta_i = x_i . b + sum_g z_gi . r_g[j]
    P(Y_i <= k) = logit^-1(tau_k - eta_i)          k = 1 .. K-1,  tau_1 < ... < tau_{K-1}
    Y_i ~ OrderedLogistic(eta_i, tau)

    r_g[j] ~ MvNormal(0, diag(sd_g) C_g diag(sd_g))     as in `models.logistic`

A positive ``b`` moves people to higher categories: ``exp(b)`` is the cumulative odds ratio
of a higher category, the same for every cut-off (proportional odds). The sign convention
is clmm's and brms' (``tau_k - eta``).

While sampling, the fixed design is centred at its means and the sampled cutpoints
``cutpoints_c`` are those of a person with average predictors; the reported ``cutpoints``
(dim ``cutpoint``, labelled ``"1|2"``, ``"2|3"``, ... as clmm does) are on the original
scale, ``tau_k = tau_c_k + xbar . b``. Their prior (name ``cutpoints``, default
``normal(0, 2.5)``, `models.priors`) is on the centred cutpoints, restricted to
increasing values by PyMC's ordered transform.

The group effects (centred or non-centred per block, `centring_by_block`), fixed slopes and
their priors are those of `models.logistic`. The default model's observed variable is
``pm.OrderedLogistic`` (pointwise log-likelihood, posterior predictive draws). The sampling
form (``fast_likelihood=True``) replaces it by ``pm.Potential("y_loglik")`` computed by
`models.ops.cumulative_loglik` over `models.kernels.cumulative_logit`, with the sampling
layout of `models.sampling_form` (area-level predictors once per level; rows that agree on
everything the likelihood reads, category included, pooled into counted entries when that at
least halves the rows): same parameters, same log density and gradient
(tests/test_ordinal_fast.py).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.transforms import ordered

from models.formula import ModelData
from models.logistic import (
    Centring,
    block_contribution,
    centring_by_block,
    fixed_slopes,
    group_effects,
    hierarchical_logistic,
    model_coords,
)
from models.ops import cumulative_loglik
from models.priors import Prior
from models.sampling_form import centred_design, likelihood_inputs


def cutpoint_labels(md: ModelData) -> list[str]:
    """clmm's names of the cutpoints: ``"1|2"``, ``"2|3"``, ... from the response's categories."""
    lv = md.response_levels
    return [f"{lv[k]}|{lv[k + 1]}" for k in range(len(lv) - 1)]


def hierarchical_cumulative(
    md: ModelData,
    priors: dict[str, Prior],
    *,
    centered: Centring = False,
    fast_likelihood: bool = False,
    initval: bool = True,
) -> pm.Model:
    """Build the PyMC cumulative-logit model for an ordinal `ModelData` and resolved priors.

    Parameters
    ----------
    md : ModelData
        With ``family == "cumulative"`` (`models.formula.build_model_data`).
    priors : dict
        From `models.priors.resolve_priors` (with ``cutpoints``).
    centered : bool or dict
        Parameterisation of the group effects (`models.logistic.centring_by_block`).
    fast_likelihood : bool
        For sampling only: the likelihood as ``pm.Potential("y_loglik", ...)`` by
        `models.ops.cumulative_loglik` instead of the observed ``y``.
    initval : bool
        Start the sampler's cutpoints at increasing values (the prior's centre, all cutpoints
        0, is not a valid ordered vector). False for models only evaluated at posterior draws
        (pointwise log-likelihood, posterior predictive), which PyMC refuses to transform
        with a non-default initial value.

    Returns
    -------
    pymc.Model
    """
    if md.family != "cumulative":
        raise ValueError(f"hierarchical_cumulative needs an ordinal response, got family {md.family!r}")
    spatial = [b.factor for b in md.blocks if getattr(b, "spatial", ())]
    if spatial:
        raise ValueError(
            f"the cumulative (ordinal) family has no spatial term yet: write (1 | {spatial[0]}) "
            f"instead of car({spatial[0]}, ...)"
        )
    Xc, x_mean = centred_design(md)
    has_slopes = Xc.shape[1] > 0
    by_block = centring_by_block(md, centered)
    coords = model_coords(md)
    coords["cutpoint"] = cutpoint_labels(md)
    n_cut = len(coords["cutpoint"])
    with pm.Model(coords=coords) as model:
        b = fixed_slopes(md, priors) if has_slopes else None
        tau_c = priors["cutpoints"].dist(
            "cutpoints_c",
            dims="cutpoint",
            transform=ordered,
            **({"initval": np.linspace(-1.5, 1.5, n_cut)} if initval else {}),
        )
        if has_slopes:
            x_bar = pm.Data("x_mean", x_mean, dims="coef")
            pm.Deterministic("cutpoints", tau_c + pt.dot(x_bar, b), dims="cutpoint")
        else:
            pm.Deterministic("cutpoints", tau_c + 0.0, dims="cutpoint")
        effects = [group_effects(block, priors, centered=by_block[block.name]) for block in md.blocks]
        if fast_likelihood:
            layout, data, b_rows, R = likelihood_inputs(md, Xc, b, effects)
            loglik = cumulative_loglik(
                data["XT_rows"],
                b_rows,
                R,
                data["P_effects"],
                data["W_effects"] if not layout.unit_w else np.zeros((0, 0)),
                data["y_lik"],
                data["n_lik"],
                tau_c,
                unit_w=layout.unit_w,
                XS=data["XS_rows"],
                xm=data["x_mean_rows"],
            )
            pm.Potential("y_loglik", loglik)
        else:
            eta = pt.zeros(md.n_obs)
            if has_slopes:
                eta = pt.dot(pm.Data("X_centred", Xc, dims=("obs_id", "coef")), b)
            for block, r in zip(md.blocks, effects, strict=True):
                eta = eta + block_contribution(block, r)
            y_obs = pm.Data("y_obs", md.y, dims="obs_id")
            pm.OrderedLogistic("y", eta=eta, cutpoints=tau_c, observed=y_obs, dims="obs_id", compute_p=False)
    return model


def build_model(
    md: ModelData,
    priors: dict[str, Prior],
    *,
    centered: Centring = False,
    fast_likelihood: bool = False,
    initval: bool = True,
) -> pm.Model:
    """The PyMC model of the model data's family: `hierarchical_cumulative` for an ordinal
    response (``initval`` as there), `models.logistic.hierarchical_logistic` otherwise."""
    if md.family == "cumulative":
        return hierarchical_cumulative(
            md, priors, centered=centered, fast_likelihood=fast_likelihood, initval=initval
        )
    return hierarchical_logistic(md, priors, centered=centered, fast_likelihood=fast_likelihood)


def category_probabilities(eta: np.ndarray, cutpoints: np.ndarray) -> np.ndarray:
    """``P(Y = k)`` for every category from linear predictors and cutpoints (numpy).

    Parameters
    ----------
    eta : array (..., n)
        Linear predictors (no intercept).
    cutpoints : array (..., K-1)
        Increasing cutpoints, broadcast against ``eta``'s leading dimensions.

    Returns
    -------
    numpy.ndarray (..., n, K)
    """
    z = cutpoints[..., None, :] - eta[..., :, None]
    cum = 1.0 / (1.0 + np.exp(-z))
    zeros = np.zeros((*cum.shape[:-1], 1))
    ones = np.ones((*cum.shape[:-1], 1))
    return np.diff(np.concatenate([zeros, cum, ones], axis=-1), axis=-1)
