"""Tipping points: non-linear effects of an area-level factor, as a hinge or as a smooth.

For person i in LA j = g[i], with the area factor x_j (constant within the LA, e.g. the
LA's unemployment rate) entering the formula linearly with slope ``b[x]``, both models add
one curve ``h(x_j)`` to the linear predictor of `models.logistic`:

    eta_i = Intercept + x_i . b + r[j] + h(x_j)
    y_i   ~ Bernoulli(logit^-1(eta_i))
    r[j]  = sd * z[j],  z ~ Normal(0, 1)

**Hinge** (a change point): ``h(x) = delta * h_perp(x; c)``

    h(x; c)      = max(0, x - c)
    h_perp(x; c) = h(x; c) minus its respondent-weighted projection on (1, x)
    c            ~ Uniform(q_lo, q_hi)     the threshold, between two quantiles of the LAs' x_j
    delta        = s(c) * z,  z ~ Normal(0, 1),  s(c) = 1 / sqrt(mean_i h_perp(x_i; c)^2 / 4)

so ``delta`` is the change of slope at ``c`` and ``b[x]`` stays the best straight-line
slope (the slopes below and above are ``b[x] - delta * k(c)`` and that plus ``delta``,
``k(c)`` the projection's slope; `hinge_projection`). Removing the projection is what
keeps the posterior sampleable where the data hold no threshold: with ``max(0, x - c)``
itself, a threshold near the lowest LA values made ``delta`` collinear with ``b[x]`` and
the intercept, and chains stuck in different modes (R-hat of delta 1.51 at 25k). The prior
of delta given c is unit-information (one person's information about delta at p = 1/2), so
z's posterior has about the same scale at every c. The log density is continuous in ``c``;
its gradient jumps where ``c`` crosses an LA's value, which NUTS tolerates. Posterior names:
the linear model's plus ``threshold``, ``z_delta`` and ``delta``.

**Smooth** (a Hilbert-space Gaussian process, Solin & Sarkka 2020; Riutort-Mayol et al.
2022): ``h(x) = Phi_perp(x) (sqrt(S(sqrt(lambda))) * beta)``

    u         = (x - centre) / half_range              the LAs' values mapped onto [-1, 1]
    phi_k(u)  = sin(sqrt(lambda_k) (u + L)) / sqrt(L),  lambda_k = (k pi / (2 L))^2,  L = c_L
    S(w)      = alpha^2 sqrt(2 pi) ell exp(-(ell w)^2 / 2)   exponentiated-quadratic spectrum
    beta_k    ~ Normal(0, 1),  alpha ~ HalfNormal(1),  ell ~ InverseGamma(4, 1.5)
    Phi_perp  = the basis with its respondent-weighted projection on (1, x) removed

Removing the projection keeps ``b[x]`` the best linear slope and the intercept unchanged:
the smooth is the departure from the straight line, so "where the slope changes" is where
the smooth's derivative is credibly away from 0 (`analysis.tipping_points.smooth_summary`).
Because x_j is per LA, the curve is computed once per LA and read like a random intercept.
Posterior names: the linear model's plus ``gp_alpha``, ``gp_ell`` and ``gp_beta``.

`fit_hinge` and `fit_smooth` fit them with nutpie and keep the convergence gate's verdict;
read them with `analysis.tipping_points`. `AreaCurveFit.log_likelihood` gives the pointwise
log-likelihood for PSIS-LOO against the linear model (`analysis.twins`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from models.convergence import Convergence, check_convergence
from models.escalation import TARGET_ACCEPT_STEPS, attempt_seed, draws_for_ess
from models.formula import FormulaError, ModelData, build_model_data
from models.priors import Prior, resolve_priors
from models.sampling_form import centred_design, constant_within

__all__ = [
    "CURVE_KINDS",
    "MAX_ATTEMPTS",
    "TARGET_ACCEPT",
    "SMOOTH_BASIS",
    "SMOOTH_BOUNDARY",
    "THRESHOLD_QUANTILES",
    "AreaCurveFit",
    "HsgpBasis",
    "area_curve_model",
    "fit_area_curve",
    "fit_hinge",
    "fit_smooth",
    "hinge_projection",
    "hinge_model",
    "smooth_model",
]

#: The threshold's prior range: between these quantiles of the LAs' values of the factor.
THRESHOLD_QUANTILES = (0.05, 0.95)
#: Number of HSGP basis functions and the boundary factor L (on the [-1, 1] scale).
SMOOTH_BASIS = 12
SMOOTH_BOUNDARY = 1.5
#: The curves this module fits.
CURVE_KINDS = ("hinge", "smooth")
#: Sampling attempts of a curve fit: a failed gate raises target_accept on divergences (along
#: `models.escalation.TARGET_ACCEPT_STEPS`) or draws what the observed ESS per draw says is needed.
MAX_ATTEMPTS = 3
#: Default target_accept of each curve. Measured on 8,000 people with a 6.5% hinge (2 chains x
#: 1,000 draws): the smooth had 2-7 divergent transitions at 0.9 and none at 0.95.
TARGET_ACCEPT = {"hinge": 0.9, "smooth": 0.95}


@dataclass
class AreaCurveFit:
    """A fitted hinge or smooth model of one area factor.

    Attributes
    ----------
    idata : xarray.DataTree
        Posterior: ``b``, ``Intercept``, ``sd_<g>``, ``r_<g>`` and, for a hinge,
        ``threshold`` and ``delta``; for a smooth, ``gp_alpha``, ``gp_ell``, ``gp_beta``.
    md : ModelData
    factor : str
        The area factor with the curve.
    kind : str
        ``"hinge"`` or ``"smooth"``.
    level_values : numpy.ndarray
        The factor's value in each level of the grouping factor.
    level_counts : numpy.ndarray
        Rows in each level (the weights of the smooth's projection).
    convergence : Convergence
    settings : dict
    priors : dict
    """

    idata: xr.DataTree
    md: ModelData
    factor: str
    kind: str
    level_values: np.ndarray
    level_counts: np.ndarray
    convergence: Convergence
    settings: dict
    priors: dict

    @property
    def converged(self) -> bool:
        """Whether the fit passed the convergence gate."""
        return self.convergence.passed

    @property
    def headline(self) -> str:
        """The gate's one-line verdict."""
        return self.convergence.headline

    def draws(self, name: str) -> np.ndarray:
        """Draws of a posterior variable, chains and draws stacked first."""
        da = self.idata["posterior"][name].stack(sample=("chain", "draw"))
        return np.moveaxis(np.asarray(da.values, dtype=float), -1, 0)

    def basis(self) -> HsgpBasis:
        """The smooth's basis (a smooth fit only)."""
        if self.kind != "smooth":
            raise ValueError(f"a {self.kind} fit has no smooth basis")
        return HsgpBasis.for_levels(self.level_values, self.level_counts, self.settings["basis"])

    def log_likelihood(self) -> xr.Dataset:
        """Pointwise log-likelihood ``y`` over (chain, draw, obs_id), for PSIS-LOO."""
        import pymc as pm

        model = area_curve_model(self.md, self.factor, self.priors, self.kind, self.settings.get("basis"))
        return pm.compute_log_likelihood(
            self.idata, model=model, extend_inferencedata=False, progressbar=False
        )


@dataclass(frozen=True)
class HsgpBasis:
    """The smooth's Hilbert-space basis on one factor (module docstring).

    Attributes
    ----------
    centre, half_range : float
        ``u = (x - centre) / half_range`` maps the LAs' values onto [-1, 1].
    boundary : float
        L.
    m : int
        Number of basis functions.
    projection : numpy.ndarray
        (2, m): coefficients of each basis function on (1, x - x_bar), weighted by rows.
    x_bar : float
        Row-weighted mean of the factor.
    """

    centre: float
    half_range: float
    boundary: float
    m: int
    projection: np.ndarray
    x_bar: float

    @property
    def sqrt_lambda(self) -> np.ndarray:
        """Square roots of the eigenvalues, ``k pi / (2 L)``."""
        return np.arange(1, self.m + 1) * np.pi / (2 * self.boundary)

    def phi(self, x: np.ndarray) -> np.ndarray:
        """The basis at ``x`` (n, m), its projection on (1, x) removed."""
        u = (np.asarray(x, dtype=float) - self.centre) / self.half_range
        raw = np.sin(np.outer(u + self.boundary, self.sqrt_lambda)) / np.sqrt(self.boundary)
        lin = np.column_stack([np.ones_like(u), np.asarray(x, dtype=float) - self.x_bar])
        return raw - lin @ self.projection

    def dphi(self, x: np.ndarray) -> np.ndarray:
        """Derivative of `phi` in x (n, m)."""
        u = (np.asarray(x, dtype=float) - self.centre) / self.half_range
        raw = self.sqrt_lambda * np.cos(np.outer(u + self.boundary, self.sqrt_lambda))
        return raw / np.sqrt(self.boundary) / self.half_range - self.projection[1]

    def spectral_sd(self, alpha: np.ndarray, ell: np.ndarray) -> np.ndarray:
        """``sqrt(S(sqrt(lambda)))`` per draw (draws, m), ``ell`` on the [-1, 1] scale."""
        alpha, ell = np.asarray(alpha)[:, None], np.asarray(ell)[:, None]
        s = alpha**2 * np.sqrt(2 * np.pi) * ell * np.exp(-0.5 * (ell * self.sqrt_lambda) ** 2)
        return np.sqrt(s)

    @classmethod
    def for_levels(cls, x_level: np.ndarray, counts: np.ndarray, m: int = SMOOTH_BASIS) -> HsgpBasis:
        """The basis of the LAs' values ``x_level`` with ``counts`` rows each."""
        lo, hi = float(np.min(x_level)), float(np.max(x_level))
        centre, half = (lo + hi) / 2, max((hi - lo) / 2, 1e-12)
        w = np.asarray(counts, dtype=float) / float(np.sum(counts))
        x_bar = float(w @ x_level)
        u = (x_level - centre) / half
        sqrt_lambda = np.arange(1, m + 1) * np.pi / (2 * SMOOTH_BOUNDARY)
        raw = np.sin(np.outer(u + SMOOTH_BOUNDARY, sqrt_lambda)) / np.sqrt(SMOOTH_BOUNDARY)
        lin = np.column_stack([np.ones_like(u), x_level - x_bar])
        wl = lin * w[:, None]
        projection = np.linalg.solve(lin.T @ wl, wl.T @ raw)
        return cls(centre, half, SMOOTH_BOUNDARY, m, projection, x_bar)


def hinge_projection(h, w: np.ndarray, xc: np.ndarray, xp=np):  # noqa: ANN001, ANN201
    """Intercept and slope of the respondent-weighted least-squares line of the hinge
    ``h = max(0, x_j - c)`` on the LAs' centred values ``xc`` (weights ``w``, summing to 1).

    ``h`` has the LAs on its last axis; ``xp`` is ``numpy`` or ``pytensor.tensor`` (the
    model and `analysis.tipping_points` compute the same projection with it).
    """
    level = xp.sum(w * h, axis=-1)
    slope = xp.sum(w * xc * h, axis=-1) / float(w @ xc**2)
    return level, slope


def _area_block(md: ModelData, factor: str, kind: str):
    if factor not in md.fixed_terms:
        raise FormulaError(f"the {kind} factor {factor!r} must be a linear term of {md.formula!r}")
    if len(md.blocks) != 1 or md.blocks[0].terms != ["Intercept"] or md.blocks[0].spatial:
        raise FormulaError(f"the {kind} model needs exactly one random intercept (1 | g): {md.formula!r}")
    if md.family not in ("bernoulli", "binomial"):
        raise FormulaError(f"the {kind} model is for binary or binomial outcomes, not {md.family!r}")
    block = md.blocks[0]
    x = md.X[:, md.fixed_terms.index(factor)]
    if not constant_within(x, block.idx, block.n_levels):
        raise FormulaError(f"{factor!r} varies within the levels of {block.factor!r}: not an area factor")
    x_level = np.zeros(block.n_levels)
    x_level[block.idx] = x
    counts = np.bincount(block.idx, minlength=block.n_levels)
    return block, x_level, counts


def hinge_model(md: ModelData, factor: str, priors: dict[str, Prior]):
    """The PyMC hinge model (module docstring)."""
    return area_curve_model(md, factor, priors, "hinge")


def smooth_model(md: ModelData, factor: str, priors: dict[str, Prior], basis: int = SMOOTH_BASIS):
    """The PyMC HSGP smooth model (module docstring)."""
    return area_curve_model(md, factor, priors, "smooth", basis)


def area_curve_model(
    md: ModelData, factor: str, priors: dict[str, Prior], kind: str, basis: int | None = None
):
    """The PyMC model of the linear formula plus a hinge or a smooth of ``factor``.

    ``md``'s formula must have ``factor`` as a linear fixed term and one random intercept
    ``(1 | g)`` within whose levels it is constant; ``kind`` is ``"hinge"`` or ``"smooth"``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    if kind not in CURVE_KINDS:
        raise ValueError(f"kind must be one of {CURVE_KINDS}, got {kind!r}")
    block, x_level, counts = _area_block(md, factor, kind)
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
        if kind == "hinge":
            lo, hi = np.quantile(x_level, THRESHOLD_QUANTILES)
            c = pm.Uniform("threshold", lower=lo, upper=hi)
            w = counts / counts.sum()
            xc = x_level - float(w @ x_level)
            h = pt.maximum(0.0, x_level - c)
            level, slope = hinge_projection(h, w, xc, pt)
            h_perp = h - level - slope * xc
            scale = 1.0 / pt.sqrt(0.25 * pt.sum(w * h_perp**2))
            z_delta = pm.Normal("z_delta", 0.0, 1.0)
            delta = pm.Deterministic("delta", z_delta * scale)
            curve = delta * h_perp
        else:
            hs = HsgpBasis.for_levels(x_level, counts, basis or SMOOTH_BASIS)
            model.add_coord("basis", np.arange(hs.m))
            alpha = pm.HalfNormal("gp_alpha", 1.0)
            ell = pm.InverseGamma("gp_ell", alpha=4.0, beta=1.5)
            beta = pm.Normal("gp_beta", 0.0, 1.0, dims="basis")
            spectrum = alpha**2 * np.sqrt(2 * np.pi) * ell * pt.exp(-0.5 * (ell * hs.sqrt_lambda) ** 2)
            curve = pt.dot(hs.phi(x_level), pt.sqrt(spectrum) * beta)
        per_level = r + curve
        eta = intercept_c + pt.dot(Xc, b) + per_level[block.idx]
        if md.family == "bernoulli":
            pm.Bernoulli("y", logit_p=eta, observed=md.y, dims="obs_id")
        else:
            pm.Binomial("y", n=md.trials, logit_p=eta, observed=md.y, dims="obs_id")
    return model


def fit_area_curve(
    formula: str,
    data: pd.DataFrame,
    factor: str,
    kind: str,
    *,
    priors: dict | None = None,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    seed: int = 1,
    target_accept: float | None = None,
    basis: int = SMOOTH_BASIS,
    escalate: bool = True,
) -> AreaCurveFit:
    """Fit the hinge or smooth model of ``factor`` with nutpie; the gate's verdict is kept.

    A fit that fails the gate is retried (at most `MAX_ATTEMPTS` runs, the compiled model
    reused): on divergences with a higher ``target_accept``, otherwise with the draws the
    observed ESS per draw needs (`models.escalation`). Every run is in ``settings["attempts"]``.

    Parameters
    ----------
    formula : str
        lme4 formula with ``factor`` as a linear term and one random intercept ``(1 | g)``.
    data : pandas.DataFrame
    factor : str
        The area factor (constant within the levels of g).
    kind : str
        ``"hinge"`` or ``"smooth"``.
    priors : dict, optional
        Overrides of the linear model's default priors, by name.
    chains, draws, tune, seed, target_accept
        nutpie's settings; ``target_accept`` defaults to `TARGET_ACCEPT` of the kind (the
        smooth's amplitude and length scale make a funnel that 0.9 leaves divergent).
    basis : int
        Number of HSGP basis functions (smooth only).
    escalate : bool
        Retry a fit that fails the gate (default True); False: one run, as given.

    Returns
    -------
    AreaCurveFit
    """
    import nutpie

    md = build_model_data(formula, data)
    resolved = resolve_priors(md, priors)
    t0 = time.perf_counter()
    model = area_curve_model(md, factor, resolved, kind, basis)
    compiled = nutpie.compile_pymc_model(model, backend="numba")
    compile_s = time.perf_counter() - t0
    attempts: list[dict] = []
    run = {"draws": draws, "tune": tune, "target_accept": target_accept or TARGET_ACCEPT[kind]}
    for attempt in range(MAX_ATTEMPTS if escalate else 1):
        t1 = time.perf_counter()
        idata = nutpie.sample(
            compiled,
            chains=chains,
            cores=min(chains, os.cpu_count() or 1),
            seed=attempt_seed(seed, attempt),
            progress_bar=False,
            **run,
        )
        conv = check_convergence(idata)
        attempts.append(
            {
                **run,
                "attempt": attempt + 1,
                "verdict": conv.headline,
                "seconds": round(time.perf_counter() - t1, 2),
            }
        )
        if conv.passed or not escalate or attempt == MAX_ATTEMPTS - 1:
            break
        run = dict(run)
        if conv.divergences:  # the funnel or the hinge's kink: smaller steps
            higher = [t for t in TARGET_ACCEPT_STEPS if t > run["target_accept"]]
            if not higher:
                break
            run["target_accept"] = higher[0]
        else:  # low ESS or high R-hat: as many draws as the ESS per draw seen says
            ess = min(conv.min_ess_bulk, conv.min_ess_tail)
            run["draws"] = max(run["draws"], draws_for_ess(run["draws"], ess, 400.0))
    _, x_level, counts = _area_block(md, factor, kind)
    return AreaCurveFit(
        idata=idata,
        md=md,
        factor=factor,
        kind=kind,
        level_values=x_level,
        level_counts=counts,
        convergence=conv,
        settings={
            "chains": chains,
            "draws": run["draws"],
            "tune": run["tune"],
            "seed": seed,
            "target_accept": run["target_accept"],
            "attempts": attempts,
            "basis": basis,
            "compile_seconds": round(compile_s, 2),
            "seconds": round(time.perf_counter() - t0, 2),
        },
        priors=resolved,
    )


def fit_hinge(formula: str, data: pd.DataFrame, factor: str, **kwargs) -> AreaCurveFit:
    """Fit the hinge model of ``factor`` (`fit_area_curve` with ``kind="hinge"``).

    Examples
    --------
    >>> f = fit_hinge("life_satisfied ~ log_income + area_unemployment_raw + (1 | lad)",
    ...               table, "area_unemployment_raw")                   # doctest: +SKIP
    """
    return fit_area_curve(formula, data, factor, "hinge", **kwargs)


def fit_smooth(formula: str, data: pd.DataFrame, factor: str, **kwargs) -> AreaCurveFit:
    """Fit the HSGP smooth of ``factor`` (`fit_area_curve` with ``kind="smooth"``).

    Examples
    --------
    >>> f = fit_smooth("life_satisfied ~ log_income + area_unemployment_raw + (1 | lad)",
    ...                table, "area_unemployment_raw")                  # doctest: +SKIP
    """
    return fit_area_curve(formula, data, factor, "smooth", **kwargs)
