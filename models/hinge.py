"""Tipping points: a hinge (change point) in the slope of an area-level factor.

For person i in LA j = g[i], with the area factor x_j (constant within the LA, e.g. the
LA's unemployment rate) entering the formula linearly with slope ``b[x]``:

    eta_i = Intercept + x_i . b + r[j] + delta * max(0, x_j - c)
    y_i   ~ Bernoulli(logit^-1(eta_i))

    c     ~ Uniform(q_lo, q_hi)     the threshold, between two quantiles of the LAs' x_j
    delta ~ Normal(0, 2.5 / sd(x))  the change of slope above it
    r[j]  = sd * z[j],  z ~ Normal(0, 1)   as in `models.logistic`

so the slope of x is ``b[x]`` below ``c`` and ``b[x] + delta`` above. Because ``x_j``
is per LA, the hinge is computed once per LA and read like a random intercept (the log
density is continuous in ``c``; its gradient jumps where ``c`` crosses an LA's value,
which NUTS tolerates). Posterior names: those of the linear model plus ``threshold`` and
``delta``.

`fit_hinge` fits it with nutpie and the project's convergence gate; read the threshold's
location with `analysis.tipping_points.threshold_summary` and draw it with
`analysis.tipping_points.threshold_figure`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from models.convergence import Convergence, check_convergence
from models.formula import FormulaError, ModelData, build_model_data
from models.priors import Prior, resolve_priors
from models.sampling_form import centred_design, constant_within

#: The threshold's prior range: between these quantiles of the LAs' values of the factor.
THRESHOLD_QUANTILES = (0.05, 0.95)


@dataclass
class HingeFit:
    """A fitted hinge model.

    Attributes
    ----------
    idata : xarray.DataTree
        Posterior (``threshold``, ``delta``, ``b``, ``Intercept``, ``sd_<g>``, ``r_<g>``).
    md : ModelData
    factor : str
        The area factor with the hinge.
    level_values : numpy.ndarray
        The factor's value in each level of the grouping factor.
    convergence : Convergence
    settings : dict
    """

    idata: xr.DataTree
    md: ModelData
    factor: str
    level_values: np.ndarray
    convergence: Convergence
    settings: dict

    def draws(self, name: str) -> np.ndarray:
        """Draws of a posterior variable, chains and draws stacked first."""
        da = self.idata["posterior"][name].stack(sample=("chain", "draw"))
        return np.moveaxis(np.asarray(da.values, dtype=float), -1, 0)


def hinge_model(md: ModelData, factor: str, priors: dict[str, Prior]):
    """The PyMC hinge model (module docstring) for model data whose formula has ``factor``
    as a linear fixed term and one random intercept ``(1 | g)`` within which it is constant."""
    import pymc as pm
    import pytensor.tensor as pt

    if factor not in md.fixed_terms:
        raise FormulaError(f"the hinge factor {factor!r} must be a linear term of {md.formula!r}")
    if len(md.blocks) != 1 or md.blocks[0].terms != ["Intercept"] or md.blocks[0].spatial:
        raise FormulaError(f"the hinge model needs exactly one random intercept (1 | g): {md.formula!r}")
    block = md.blocks[0]
    x = md.X[:, md.fixed_terms.index(factor)]
    if not constant_within(x, block.idx, block.n_levels):
        raise FormulaError(f"{factor!r} varies within the levels of {block.factor!r}: not an area factor")
    x_level = np.zeros(block.n_levels)
    x_level[block.idx] = x
    lo, hi = np.quantile(x_level, THRESHOLD_QUANTILES)
    Xc, x_mean = centred_design(md)
    names = [t for t in md.fixed_terms if t != "Intercept"]
    g = block.name
    coords = {"coef": names, block.dim: block.levels, "obs_id": np.arange(md.n_obs)}
    with pm.Model(coords=coords) as model:
        b = pm.Normal(
            "b",
            mu=np.array([priors[f"b[{t}]"].params[0] for t in names]),
            sigma=np.array([priors[f"b[{t}]"].params[1] for t in names]),
            dims="coef",
        )
        intercept_c = priors["Intercept"].dist("Intercept_c")
        pm.Deterministic("Intercept", intercept_c - pt.dot(x_mean, b))
        sd = priors[f"sd_{g}"].dist(f"sd_{g}")
        z = pm.Normal(f"z_{g}", 0.0, 1.0, dims=block.dim)
        r = pm.Deterministic(f"r_{g}", sd * z, dims=block.dim)
        c = pm.Uniform("threshold", lower=lo, upper=hi)
        delta = pm.Normal("delta", 0.0, 2.5 / float(np.std(x_level)))
        per_level = r + delta * pt.maximum(0.0, x_level - c)
        eta = intercept_c + pt.dot(Xc, b) + per_level[block.idx]
        if md.family == "bernoulli":
            pm.Bernoulli("y", logit_p=eta, observed=md.y, dims="obs_id")
        else:
            pm.Binomial("y", n=md.trials, logit_p=eta, observed=md.y, dims="obs_id")
    return model


def fit_hinge(
    formula: str,
    data: pd.DataFrame,
    factor: str,
    *,
    priors: dict | None = None,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    seed: int = 1,
    target_accept: float = 0.9,
) -> HingeFit:
    """Fit the hinge model of ``factor`` (a linear term of ``formula``, constant within its
    one random intercept's levels) with nutpie; the verdict of the convergence gate is kept.

    Examples
    --------
    >>> f = fit_hinge("life_satisfied ~ log_income + area_unemployment_raw + (1 | lad)",
    ...               table, "area_unemployment_raw")                   # doctest: +SKIP
    """
    import nutpie

    md = build_model_data(formula, data)
    resolved = resolve_priors(md, priors)
    t0 = time.perf_counter()
    model = hinge_model(md, factor, resolved)
    compiled = nutpie.compile_pymc_model(model, backend="numba")
    compile_s = time.perf_counter() - t0
    idata = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=min(chains, os.cpu_count() or 1),
        seed=seed,
        target_accept=target_accept,
        progress_bar=False,
    )
    block = md.blocks[0]
    x_level = np.zeros(block.n_levels)
    x_level[block.idx] = md.X[:, md.fixed_terms.index(factor)]
    return HingeFit(
        idata=idata,
        md=md,
        factor=factor,
        level_values=x_level,
        convergence=check_convergence(idata),
        settings={
            "chains": chains,
            "draws": draws,
            "tune": tune,
            "seed": seed,
            "target_accept": target_accept,
            "compile_seconds": round(compile_s, 2),
            "seconds": round(time.perf_counter() - t0, 2),
        },
    )
