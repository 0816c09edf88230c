"""Prior sensitivity of a fit by power-scaling (Kallioinen, Paananen, Bürkner and Vehtari 2024).

Power-scaling raises the prior (or the likelihood) to a power ``alpha`` near 1 and measures,
by Pareto-smoothed importance sampling of the draws already made (no refit), how far each
parameter's posterior moves: the cumulative Jensen-Shannon distance per unit of
``log2(alpha)``. ArviZ computes it (`arviz_stats.psense_summary`); this module supplies what
the fit lacks and reads the answer:

* `with_log_densities`: a copy of the fit's DataTree with a ``log_prior`` group (the
  top-level priors: ``Intercept_c``, ``b``, the group SDs ``sd_<g>`` or, for correlated
  blocks, the LKJ Cholesky factor ``chol_<g>`` that carries the SD and correlation priors)
  and a ``log_likelihood`` group (``y``: the log-likelihood summed over rows, per draw).
  Both are computed after sampling from the default model (`models.hierarchical_logistic`
  with the observed ``y``, the fit's priors and centring), not from the sampling form.
  The group effects (``z_<g>`` / ``r_<g>``, and a spatial term's ``theta_<g>`` /
  ``phi_<g>``) are hierarchical, not prior: they are not scaled (as priorsense does for
  brms, whose ``lprior`` leaves them out). An ordinal fit uses its cumulative-logit model.
* `prior_sensitivity`: one row per reported parameter (``Intercept``, ``b[term]``,
  ``sd_<g>[term]``, the off-diagonal ``cor_<g>[a, b]``) with the prior and likelihood
  sensitivities and the flags.

Thresholds (`PSENSE_THRESHOLD` = 0.05, the value the psense paper and ArviZ use):

* **prior-sensitive**: prior sensitivity >= 0.05. The prior is informative for this
  parameter: a change in its strength moves the posterior.
* **likelihood-weak**: likelihood sensitivity < 0.05. The data say little about it.
* ArviZ's diagnosis: both above the threshold, "potential prior-data conflict"; prior
  above and likelihood below, "potential strong prior / weak likelihood"; else "✓".

A parameter is *flagged* when it is prior-sensitive or likelihood-weak. Typical flags in
these models: the SD of a grouping factor with few levels, and the SD of a varying slope.
The measure is local (alpha in 0.99-1.01) and needs reliable importance weights; the
Pareto k of each weighting is not reported by ArviZ here, so a flag is a prompt to refit
with another prior (a prior set of the grid), not a verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import xarray as xr

if TYPE_CHECKING:
    from models import Fit

#: The psense threshold on both sensitivities (Kallioinen et al. 2024; ArviZ's default).
PSENSE_THRESHOLD = 0.05

#: Columns of `prior_sensitivity`, in order.
SENSITIVITY_COLUMNS = (
    "parameter",
    "prior",
    "likelihood",
    "diagnosis",
    "prior_sensitive",
    "likelihood_weak",
    "flagged",
)


def prior_variables(fit: Fit) -> list[str]:
    """Names of the model's free variables whose densities are the scaled prior.

    Every free variable except the group effects: those over a grouping factor's levels
    (``z_<g>``, ``r_<g>``), over a spatial term's graph nodes (``theta_<g>``) or over its
    ICAR's eigenbasis (``phi_std_<g>``, of which ``phi_<g>`` is a transform).
    """
    model = _default_model(fit)
    level_dims = {b.dim for b in fit.md.blocks} | {
        f"{b.name}_{graph_dim}" for b in fit.md.blocks for graph_dim in ("node", "eigen")
    }
    dims = model.named_vars_to_dims
    return [rv.name for rv in model.free_RVs if not level_dims & set(dims.get(rv.name, ()) or ())]


def _default_model(fit: Fit):  # noqa: ANN202 - pymc.Model, imported lazily
    """The observed-variable model of the fit's family, priors and centring (not the sampling
    form), built as `models.Fit.log_likelihood` builds it (no sampler initial values)."""
    from models.cumulative import build_model

    return build_model(fit.md, fit.priors, centered=fit.settings.get("centered", False), initval=False)


def with_log_densities(fit: Fit) -> xr.DataTree:
    """Copy of the fit's DataTree with ``log_prior`` and ``log_likelihood`` groups for psense.

    Parameters
    ----------
    fit : models.Fit

    Returns
    -------
    xarray.DataTree
        ``log_prior``: one variable per `prior_variables` name, its log density at each
        draw (elementwise over its dims). ``log_likelihood``: ``y`` over (chain, draw), the
        log-likelihood of all rows at each draw (power-scaling only uses the sum, and the
        pointwise array would be rows x draws).
    """
    import pymc as pm
    from pymc.backends.arviz import apply_function_over_dataset
    from pymc.model.transform.conditioning import remove_value_transforms

    model = _default_model(fit)
    names = prior_variables(fit)
    post = fit.idata["posterior"].to_dataset()
    log_prior = pm.stats.compute_log_prior(
        fit.idata, var_names=names, model=model, extend_inferencedata=False, progressbar=False
    )
    if isinstance(log_prior, xr.DataTree):
        log_prior = log_prior.to_dataset()
    umodel = remove_value_transforms(model)
    fn = umodel.compile_fn(
        inputs=umodel.value_vars,
        outs=[umodel.logp(vars=list(umodel.observed_RVs), sum=True)],
        on_unused_input="ignore",
    )
    free = [rv.name for rv in model.free_RVs]
    inputs = post[free].astype({umodel.rvs_to_values[rv].name: rv.type.dtype for rv in umodel.free_RVs})
    loglik = apply_function_over_dataset(
        fn,
        inputs,
        output_var_names=["y"],
        sample_dims=["chain", "draw"],
        dims={},
        coords={},
        progressbar=False,
    )
    tree = fit.idata.copy()
    tree["log_prior"] = xr.DataTree(log_prior)
    tree["log_likelihood"] = xr.DataTree(loglik)
    return tree


def prior_sensitivity(fit: Fit, threshold: float = PSENSE_THRESHOLD) -> pd.DataFrame:
    """Power-scaling prior and likelihood sensitivity of each reported parameter.

    Parameters
    ----------
    fit : models.Fit
    threshold : float
        Threshold on both sensitivities (default `PSENSE_THRESHOLD`, 0.05).

    Returns
    -------
    pandas.DataFrame
        `SENSITIVITY_COLUMNS`: ``parameter`` (e.g. ``sd_lad[Intercept]``), ``prior`` and
        ``likelihood`` (ArviZ's `psense` values), ``diagnosis`` (ArviZ's wording),
        ``prior_sensitive`` (prior >= threshold), ``likelihood_weak`` (likelihood <
        threshold) and ``flagged`` (either). The unit diagonal and the repeated upper
        triangle of a correlation matrix are left out.
    """
    import warnings

    from arviz_stats import psense_summary

    tree = with_log_densities(fit)
    names = fit.parameter_names()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = psense_summary(tree, var_names=names, threshold=threshold, round_to=6)
    table = table.rename(columns=str.lower)
    keep = [p for p in table.index if _reported(str(p), fit)]
    out = pd.DataFrame(
        {
            "parameter": [str(p) for p in keep],
            "prior": table.loc[keep, "prior"].astype(float).to_numpy(),
            "likelihood": table.loc[keep, "likelihood"].astype(float).to_numpy(),
            "diagnosis": table.loc[keep, "diagnosis"].astype(str).to_numpy(),
        }
    )
    out["prior_sensitive"] = out["prior"] >= threshold
    out["likelihood_weak"] = out["prior_sensitive"] & (out["likelihood"] < threshold)
    out["flagged"] = out["prior_sensitive"]
    return out[list(SENSITIVITY_COLUMNS)]


def _reported(label: str, fit: Fit) -> bool:
    """Keep a psense row unless it is a correlation's diagonal or its upper triangle."""
    if not label.startswith("cor_") or "[" not in label:
        return True
    name, inner = label.split("[", 1)
    a, b = (s.strip() for s in inner.rstrip("]").split(",", 1))
    block = next((bl for bl in fit.md.blocks if f"cor_{bl.name}" == name), None)
    if block is None:
        return True
    terms = list(block.terms)
    return a in terms and b in terms and terms.index(a) > terms.index(b)


def flagged_summary(table: pd.DataFrame) -> str:
    """One line naming the flagged parameters of a `prior_sensitivity` table ("none flagged")."""
    rows = table[table["flagged"]]
    if rows.empty:
        return "none flagged"
    parts = []
    for r in rows.itertuples():
        why = [
            w
            for w, on in (("prior-sensitive", r.prior_sensitive), ("likelihood-weak", r.likelihood_weak))
            if on
        ]
        parts.append(f"{r.parameter} ({', '.join(why)}; prior {r.prior:.3f}, likelihood {r.likelihood:.3f})")
    return "; ".join(parts)


__all__ = [
    "PSENSE_THRESHOLD",
    "SENSITIVITY_COLUMNS",
    "flagged_summary",
    "prior_sensitivity",
    "prior_variables",
    "with_log_densities",
]
