"""Fit a formula to a data frame, check convergence, save and load fits.

>>> from models import fit
>>> f = fit("y ~ x + (1 + x | g)", df, seed=1)          # doctest: +SKIP
>>> print(f)                                           # verdict first, then the table
>>> f.save("fit.nc"); f2 = load_fit("fit.nc")           # same summaries

A fit that fails the convergence gate is tried again (`models.escalation`: more draws,
higher ``target_accept``, the other parameterisation of a block) within a budget; every
attempt is kept in ``f.attempts``.
"""

from __future__ import annotations

import json
import os
import platform
import time
import warnings
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import scipy.linalg.cython_blas  # noqa: F401  (load numba's BLAS so its threads can be limited)
import xarray as xr
from threadpoolctl import threadpool_limits

from models.convergence import DEFAULT_THRESHOLDS, Convergence, check_convergence
from models.cumulative import build_model
from models.escalation import (
    DEFAULT_MAX_DEPTH,
    Budget,
    BudgetError,
    attempt_seed,
    choose_centring,
    describe_attempt,
    first_draws,
    fit_to_budget,
    funnel_blocks,
    information_ratio,
    nested_factors,
    next_attempt,
)
from models.formula import DataWarning, ModelData, build_model_data
from models.logistic import Centring, centring_by_block
from models.priors import Prior, priors_from_json, priors_to_json, resolve_priors
from models.stopping import PROGRESS_MS, StopRecord, sample_until
from models.weights import describe_weights, restore_weights, weight_columns, weighted_model_data

# The samplers run compiled (numba) code with its own BLAS; PyTensor's C backend only
# serves small post-processing graphs here, so its "could not link to a BLAS" notice is noise.
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation")

SAMPLERS = ("nutpie", "pymc", "numpyro")
_VERSIONED = ("pymc", "pytensor", "arviz", "nutpie", "formulae", "numpy", "pandas", "xarray")


class SamplerSettingsError(ValueError):
    """Invalid sampler name or settings."""


class ConvergenceWarning(UserWarning):
    """Summaries made from a fit that failed the convergence gate."""


class FitFileError(ValueError):
    """A fit file that cannot be read (missing, truncated, or not a fit of this project)."""


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class Fit:
    """A fitted hierarchical logistic model: posterior, model data, priors and verdict.

    Attributes
    ----------
    idata : xarray.DataTree
        Posterior and sampler statistics (PyMC 6 / ArviZ 1.x tree).
    md : ModelData
        The model data (formula, design, groups, drops).
    priors : dict
        The priors used, by parameter name.
    convergence : Convergence
        The gate's verdict.
    settings : dict
        Sampler, chains, draws, tune, seed, target_accept, centred (``{block: bool}``) of
        the attempt whose draws these are (the last), the ESS asked for, the budget.
    accept_failed : bool
        Set True to summarise a failed fit without the warning headline.
    attrs : dict
        The user's own attributes, saved with the fit.
    attempts : list of dict
        Every sampling run of the fit, in order: ``attempt`` (1-based), ``reason`` (why it
        was made; empty for the first), ``chains``, ``draws``, ``tune``,
        ``target_accept``, ``centered``, ``seed``, ``seconds`` (compilation included),
        ``passed`` and ``verdict`` (the gate's headline). The posterior is the last one's.
    """

    idata: xr.DataTree
    md: ModelData
    priors: dict[str, Prior]
    convergence: Convergence
    settings: dict
    accept_failed: bool = False
    attrs: dict = field(default_factory=dict)
    attempts: list[dict] = field(default_factory=list)

    # ----------------------------------------------------------------- summaries
    @property
    def converged(self) -> bool:
        return self.convergence.passed

    @property
    def headline(self) -> str:
        h = self.convergence.headline
        if not self.converged and self.accept_failed:
            h = "ACCEPTED BY USER DESPITE FAILED CONVERGENCE: " + "; ".join(self.convergence.problems)
        return h

    def posterior(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()

    def summary(
        self, var_names: list[str] | None = None, prob: float = 0.95, ci_kind: str = "eti"
    ) -> pd.DataFrame:
        """Posterior summary table (mean, sd, interval, ESS, R-hat).

        The interval kind and probability are in the column names (e.g. ``eti95_lb``) and in
        ``.attrs["interval"]``; the verdict is in ``.attrs["headline"]``. A fit that failed
        the gate raises a `ConvergenceWarning` unless ``accept_failed`` is set.
        """
        if not self.converged and not self.accept_failed:
            warnings.warn(self.convergence.headline, ConvergenceWarning, stacklevel=2)
        names = var_names or self.parameter_names()
        with warnings.catch_warnings():
            # constant elements (the unit diagonal of a correlation matrix) have no R-hat
            warnings.simplefilter("ignore", RuntimeWarning)
            table = az.summary(self.idata, var_names=names, ci_prob=prob, ci_kind=ci_kind)
        table.attrs["headline"] = self.headline
        table.attrs["interval"] = (
            f"{prob:.0%} equal-tailed interval" if ci_kind == "eti" else f"{prob:.0%} HDI"
        )
        return table

    def parameter_names(self) -> list[str]:
        """Reported parameters: Intercept, b, and each block's sd and cor."""
        post = self.posterior()
        names = [n for n in ("Intercept", "cutpoints", "b") if n in post]
        for block in self.md.blocks:
            names.append(f"sd_{block.name}")
            if f"cor_{block.name}" in post:
                names.append(f"cor_{block.name}")
            if f"rho_{block.name}" in post:  # a car() term (models.spatial)
                names.append(f"rho_{block.name}")
        return names

    def __str__(self) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            table = self.summary()
        drops = ", ".join(f"{k}: {v}" for k, v in self.md.drops.items()) or "none"
        return (
            f"{self.headline}\n"
            f"formula: {self.md.formula}  ({self.md.family}, {self.md.n_obs} rows used of "
            f"{self.md.n_input}; dropped {drops})\n"
            f"{self.attempts_text()}"
            f"{describe_weights(self.attrs)}"
            f"intervals: {table.attrs['interval']}\n{table.to_string()}"
        )

    def attempts_text(self) -> str:
        """The sampling attempts, one line each (empty for a fit saved without them)."""
        if not self.attempts:
            return ""
        lines = [f"  {describe_attempt(a)}" for a in self.attempts]
        stopped = self.settings.get("escalation_stopped")
        if stopped and not self.converged:
            lines.append(f"  stopped: {stopped}")
        return f"attempts ({len(self.attempts)}):\n" + "\n".join(lines) + "\n"

    # ----------------------------------------------------------------- predictions
    def posterior_predictive(self, seed: int | None = None) -> xr.DataTree:
        """Posterior predictive draws of the observed outcome for the data used."""
        model = build_model(
            self.md, self.priors, centered=self.settings.get("centered", False), initval=False
        )
        # every parameter keeps its posterior draws: the prior locations are data only so a
        # compiled model can be reused, not a reason to redraw ``b`` from its prior
        posterior = self.idata["posterior"]
        frozen = [v.name for v in model.free_RVs + model.deterministics if v.name in posterior]
        return pm.sample_posterior_predictive(
            self.idata, model=model, random_seed=seed, progressbar=False, freeze_vars=frozen
        )

    def log_likelihood(self) -> xr.Dataset:
        """Pointwise log-likelihood (for PSIS-LOO), computed from the stored posterior.

        Computed from the observed-variable model, whatever sampler produced the draws;
        returns a Dataset with variable ``y`` over (chain, draw, obs_id).
        """
        model = build_model(
            self.md, self.priors, centered=self.settings.get("centered", False), initval=False
        )
        return pm.compute_log_likelihood(
            self.idata, model=model, extend_inferencedata=False, progressbar=False
        )

    def predict(self, new_data: pd.DataFrame, **kwargs) -> xr.DataArray:
        """Predicted probabilities for new rows; see `models.prediction.predict_proba`."""
        from models.prediction import predict_proba

        return predict_proba(self, new_data, **kwargs)

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fit as NetCDF (written to a temporary name, then renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tree = self.idata.copy()
        tree.attrs.update(self._attrs())
        tree.attrs["posterior_sha256"] = _posterior_digest(self.idata)
        frame = self.md.frame.copy()
        for c, values in weight_columns(self.md).items():  # a weighted fit's weights
            frame[c] = values
        for c in frame.columns:
            if isinstance(frame[c].dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(frame[c]):
                frame[c] = frame[c].astype(str).astype(object)
        frame.index.name = "row"
        tree["model_frame"] = xr.DataTree(xr.Dataset.from_dataframe(frame))
        tmp = path.with_name(path.name + ".partial")
        tree.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
        return path

    def _attrs(self) -> dict:
        return {
            "sameplace_fit": "1",
            "formula": self.md.formula,
            "priors": priors_to_json(self.priors),
            "seed": str(self.settings.get("seed")),
            "settings": json.dumps(self.settings),
            "data_fingerprint": self.md.fingerprint(),
            "package_versions": json.dumps(package_versions()),
            "convergence": self.convergence.to_json(),
            "drops": json.dumps({"n_input": self.md.n_input, **self.md.drops}),
            "categorical_levels": json.dumps(self.md.categorical_levels),
            "family": "cumulative" if self.md.family == "cumulative" else "",
            "accept_failed": str(bool(self.accept_failed)),
            "attempts": json.dumps(self.attempts),
            **{k: str(v) for k, v in self.attrs.items()},
        }


#: Attributes every saved fit carries (the rest are the user's `Fit.attrs`, restored on loading).
_STANDARD_ATTRS = {
    "sameplace_fit",
    "formula",
    "priors",
    "seed",
    "settings",
    "data_fingerprint",
    "package_versions",
    "convergence",
    "drops",
    "categorical_levels",
    "family",
    "accept_failed",
    "attempts",
    "posterior_sha256",
}


def load_fit(path: str | os.PathLike) -> Fit:
    """Load a fit saved by `Fit.save` (same summaries and predictions as before saving)."""
    path = Path(path)
    if not path.exists():
        raise FitFileError(f"fit file {path} does not exist")
    try:
        tree = az.from_netcdf(path)
        attrs = dict(tree.attrs)
    except Exception as exc:
        raise FitFileError(f"cannot read fit file {path}: not a complete NetCDF file ({exc})") from None
    if attrs.get("sameplace_fit") != "1" or "model_frame" not in tree.children:
        raise FitFileError(f"{path} is a NetCDF file but not a fit saved by this project")
    lacking = [k for k in _REQUIRED_ATTRS if k not in attrs]
    if lacking or "posterior" not in tree.children:
        raise FitFileError(
            f"fit file {path} is damaged or from an incompatible version: it lacks "
            f"{', '.join(lacking) or 'the posterior group'}; re-run the fit"
        )
    if "posterior_sha256" in attrs and attrs["posterior_sha256"] != _posterior_digest(tree):
        raise FitFileError(
            f"fit file {path} is damaged: its posterior draws do not match the checksum written when it "
            "was saved (posterior_sha256); restore the file or re-run the fit"
        )
    frame = tree["model_frame"].to_dataset().to_dataframe().reset_index(drop=True)
    levels = json.loads(attrs["categorical_levels"])
    for col, lv in levels.items():
        frame[col] = pd.Categorical(frame[col].astype(str), categories=lv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # said when the fit was made
        md = build_model_data(attrs["formula"], frame, family=attrs.get("family") or None)
    restore_weights(md, frame)
    drops = json.loads(attrs["drops"])
    md.n_input = int(drops.pop("n_input"))
    md.drops = drops
    if md.fingerprint() != attrs["data_fingerprint"]:
        warnings.warn(f"{path}: stored model frame does not match its fingerprint", stacklevel=2)
    idata = tree.copy()
    del idata["model_frame"]
    return Fit(
        idata=idata,
        md=md,
        priors=priors_from_json(attrs["priors"]),
        convergence=Convergence.from_json(attrs["convergence"]),
        settings=json.loads(attrs["settings"]),
        accept_failed=attrs.get("accept_failed") == "True",
        attrs={k: str(v) for k, v in attrs.items() if k not in _STANDARD_ATTRS},
        attempts=json.loads(attrs.get("attempts", "[]")),  # none in fits saved before escalation
    )


_REQUIRED_ATTRS = (
    "formula",
    "priors",
    "settings",
    "data_fingerprint",
    "convergence",
    "drops",
    "categorical_levels",
)


def _posterior_digest(tree: xr.DataTree) -> str:
    """SHA-256 of the posterior draws (variable names and float64 values), to detect damage."""
    import hashlib

    post = tree["posterior"].to_dataset()
    h = hashlib.sha256()
    for name in sorted(post.data_vars):
        h.update(str(name).encode())
        h.update(np.ascontiguousarray(post[name].values, dtype=np.float64).tobytes())
    return h.hexdigest()


#: Tuning steps per chain when ``fit(tune=None)``, by sampler. A BYM2 term needs no more:
#: its ICAR is sampled in its eigenbasis (`models.spatial.icar_basis`). With ``phi`` sampled
#: itself it had needed 1000 (R-hat 1.029 on phi at 25,000 people with 500).
DEFAULT_TUNE = {"nutpie": 300, "pymc": 1000, "numpyro": 1000}


def _check_settings(
    sampler: str,
    chains: int,
    draws: int,
    tune: int,
    target_accept: float,
    seed: int | None = None,
    cores: int | None = None,
) -> None:
    if sampler not in SAMPLERS:
        raise SamplerSettingsError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    for name, val, low in (("chains", chains, 1), ("draws", draws, 1), ("tune", tune, 0)):
        if not isinstance(val, int | np.integer) or isinstance(val, bool) or val < low:
            raise SamplerSettingsError(f"{name} must be an integer >= {low}, got {val!r}")
    if (
        not isinstance(target_accept, int | float | np.integer | np.floating)
        or isinstance(target_accept, bool)
        or not 0 < target_accept < 1
    ):
        raise SamplerSettingsError(
            f"target_accept must be between 0 and 1 (exclusive), got {target_accept!r}"
        )
    if seed is not None and (
        not isinstance(seed, int | np.integer) or isinstance(seed, bool) or not 0 <= seed < 2**32
    ):
        raise SamplerSettingsError(f"seed must be an integer from 0 to 2**32 - 1 (or None), got {seed!r}")
    if cores is not None and (
        not isinstance(cores, int | np.integer) or isinstance(cores, bool) or cores < 1
    ):
        raise SamplerSettingsError(f"cores must be an integer >= 1 (or None), got {cores!r}")
    if sampler == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError:
            raise SamplerSettingsError(
                "sampler 'numpyro' needs numpyro and jax: pip install 'sameplace[numpyro]'"
            ) from None


def fit(
    formula: str,
    data: pd.DataFrame | ModelData,
    *,
    priors: dict[str, str | Prior] | None = None,
    centered: Centring | None = None,
    sampler: str = "nutpie",
    chains: int = 4,
    draws: int | None = None,
    tune: int | None = None,
    seed: int | None = None,
    target_accept: float = 0.8,
    cores: int | None = None,
    progressbar: bool = True,
    thresholds: dict | None = None,
    accept_failed: bool = False,
    adaptation: str = "diag",
    escalate: bool = True,
    ess: float | None = None,
    budget: dict | Budget | None = None,
    family: str | None = None,
    weights: str | None = None,
    weight_scaling: str = "size",
    group_weights: str | dict[str, str] | None = None,
) -> Fit:
    """Fit a hierarchical logistic (or cumulative-logit, for an ordinal response) model given by
    an lme4-style formula.

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"y ~ x * area + (1 + x | lad)"``; binomial responses as
        ``cbind(successes, failures)`` or ``p(successes, trials)``.
    data : pandas.DataFrame or ModelData
        Any data frame holding the formula's columns, or the `ModelData` that
        `build_model_data(formula, frame)` already made of it (not built again).
    priors : dict, optional
        Overrides by parameter name (see `models.priors`).
    centered : None, bool or dict
        Parameterisation of the group effects. None (default): chosen per block from the
        data (`models.escalation.choose_centring`: centred where the data pin each level's
        effect, non-centred where the prior dominates); True / False: every block;
        ``{block name: bool}``: per block (blocks not named are non-centred). Escalation
        may switch a block that shows a funnel (recorded in ``attempts``).
    sampler : {"nutpie", "pymc", "numpyro"}
        NUTS implementation (default nutpie).
    chains : int
        Number of chains.
    tune : int, optional
        Tuning steps per chain. None (default): `DEFAULT_TUNE` of the sampler, 300 for
        nutpie (its own default: its mass-matrix adaptation needs fewer steps than PyMC's)
        and 1000 for PyMC's samplers. Escalation
        doubles it on persistent divergences.
    draws : int, optional
        Retained draws per chain of the first attempt. None (default): set by the ESS
        asked for (``5 * ess / chains``, 500 for the default 400 and 4 chains), then
        as many more as the observed ESS per draw says are needed; 1000 when
        ``escalate=False``. A number is used as given (changed only by escalation).
    seed : int, optional
        Random seed; drawn and recorded when not given, so every fit can be repeated.
        Attempt k (k > 0) uses a seed derived from it (`models.escalation.attempt_seed`).
    target_accept : float
        NUTS target acceptance rate of the first attempt (escalation raises it to 0.9,
        0.95, 0.99 on divergences).
    cores : int, optional
        Chains run in parallel (default: all cores, at most ``chains``).
    progressbar : bool
        Show a progress bar while sampling.
    thresholds : dict, optional
        Overrides of the convergence thresholds (`models.convergence.DEFAULT_THRESHOLDS`).
    accept_failed : bool
        Summarise without the failure headline even if the gate fails.
    adaptation : {"diag", "low_rank", "draw_diag"}
        nutpie's mass-matrix adaptation. ``"diag"`` (default) is cheapest per step.
        ``"low_rank"`` also learns the posterior correlation between the intercept and the
        mean of the group effects: on the 1988 polls (52 parameters, ~240 people per
        state) it gave 10x the bulk ESS of the intercept for 15% more time, but on 25,000
        people in 380 LAs (400 parameters) it cost about twice as much per step for no
        gain in ESS (benchmarks/results.md), hence not the default.
    escalate : bool
        When the gate fails, try again (`models.escalation.next_attempt`) while the
        budget allows (default True). False: one attempt, as given.
    ess : float, optional
        Bulk and tail ESS asked for on every parameter; it is also the gate's ESS
        threshold (default: the gate's own, 400).
    budget : dict, optional
        Cap on all attempts together: ``{"draws": total iterations, tuning included, over
        chains and attempts, "seconds": wall time}``; default ``{"draws": 120000,
        "seconds": None}``. The first attempt always runs.
    family : {None, "cumulative"}
        ``"cumulative"``: the cumulative-logit (proportional-odds) model of an ordinal
        response (`models.cumulative`). None (default): ordinal when the response is an
        ordered pandas categorical, else logistic (0/1 or binomial counts).
    weights : str, optional
        Column of survey weights (e.g. ``"weight_sc"``): the fit is a pseudo-posterior, each
        row's log-likelihood multiplied by its scaled weight (`models.weights`). Rows with a
        missing or zero weight are dropped and counted. Its intervals ignore the design;
        `analysis.survey.design_adjusted` corrects them with the PSU/strata sandwich.
    weight_scaling : {"size", "effective", "none"}
        Scaling of the weights within the levels of the first grouping factor (all rows when
        there is none): ``"size"`` (default) makes each group's weights sum to its sample size
        ``n_j``; ``"effective"`` to its effective sample size ``(sum w)^2 / sum w^2``;
        ``"none"`` uses them as given.
    group_weights : str or dict, optional
        Weights of the areas, when the areas themselves were sampled: a column (constant within
        the first grouping factor's levels), or ``{block name: column}``. They weight each
        level's term in the group effects' prior and multiply its rows' likelihood weights
        (scaled to mean 1 over the levels). Independent effects only.

    Returns
    -------
    Fit
        The last attempt's posterior and verdict; every attempt in ``Fit.attempts``.
    """
    _check_settings(
        sampler,
        chains,
        1000 if draws is None else draws,
        1000 if tune is None else tune,
        target_accept,
        seed,
        cores,
    )
    if adaptation not in ("low_rank", "diag", "draw_diag"):
        raise SamplerSettingsError(
            f"adaptation must be 'low_rank', 'diag' or 'draw_diag', got {adaptation!r}"
        )
    if ess is not None and (isinstance(ess, bool) or not isinstance(ess, int | float) or not ess > 0):
        raise SamplerSettingsError(f"ess must be a positive number, got {ess!r}")
    try:
        budget = Budget.parse(budget)
    except BudgetError as exc:
        raise SamplerSettingsError(str(exc)) from None
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    survey_attrs: dict[str, str] = {}
    if isinstance(data, ModelData):
        if data.formula != formula:
            raise ValueError(f"model data were built for {data.formula!r}, not {formula!r}")
        if weights is not None or group_weights is not None:
            raise ValueError("weights need the data frame; with model data, attach them (models.weights)")
        md = data
    elif weights is not None or group_weights is not None:
        md, survey_attrs = weighted_model_data(
            formula,
            data,
            weights=weights,
            weight_scaling=weight_scaling,
            group_weights=group_weights,
            family=family,
        )
    else:
        md = build_model_data(formula, data, family=family)
    if isinstance(data, ModelData) and md.weights is not None:
        survey_attrs = {"weights": "(given with the model data)", "weight_scaling": "", "group_weights": ""}
    if tune is None:
        tune = DEFAULT_TUNE.get(sampler, 1000)
    resolved = resolve_priors(md, priors)
    info = information_ratio(md, resolved)
    nested = nested_factors(md)
    try:
        centring = choose_centring(md, resolved) if centered is None else centring_by_block(md, centered)
    except ValueError as exc:
        raise SamplerSettingsError(str(exc)) from None
    gate = dict(thresholds or {})
    if ess is not None:
        gate["ess_bulk_min"] = gate["ess_tail_min"] = float(ess)
    full_gate = {**DEFAULT_THRESHOLDS, **gate}
    ess_target = float(max(full_gate["ess_bulk_min"], full_gate["ess_tail_min"]))
    # draws=None: nutpie attempts draw until the gate passes, up to a ceiling (models.stopping)
    until_gate = draws is None and escalate and sampler == "nutpie" and chains >= 2
    if draws is None:
        draws = first_draws(ess_target, chains, ceiling=until_gate) if escalate else 1000

    current = {
        "draws": int(draws),
        "tune": int(tune),
        "target_accept": float(target_accept),
        "centered": centring,
        "max_depth": DEFAULT_MAX_DEPTH,
    }
    attempts: list[dict] = []
    flipped: set[str] = set()
    reason, stopped = "", ""
    spent_draws, spent_seconds = 0, 0.0
    while True:
        k = len(attempts)
        t0 = time.perf_counter()
        stop_at = {"ess_target": ess_target, "thresholds": gate} if until_gate else None
        idata, timing, conv, stop = _sample(
            md,
            resolved,
            current,
            sampler,
            chains,
            cores,
            attempt_seed(seed, k),
            adaptation,
            progressbar,
            stop_at,
        )
        seconds = time.perf_counter() - t0
        if conv is None:
            conv = check_convergence(idata, gate)
        ran = current if stop is None else {**current, "draws": stop.length}
        iterations = chains * current["tune"] + (chains * current["draws"] if stop is None else stop.drawn)
        spent_draws += iterations
        spent_seconds += seconds
        attempts.append(
            {
                "attempt": k + 1,
                "reason": reason,
                "chains": int(chains),
                **ran,
                **({} if stop is None else stop.as_attempt()),
                "seed": attempt_seed(seed, k),
                "seconds": round(seconds, 2),
                "passed": bool(conv.passed),
                "verdict": conv.headline,
            }
        )
        if conv.passed or not escalate:
            break
        if chains < 2:
            stopped = "one chain: R-hat needs two or more, so no attempt can pass the gate"
            break
        proposed, reason = next_attempt(
            conv,
            ran,
            info=info,
            funnel=funnel_blocks(idata, current["centered"]),
            ess_target=ess_target,
            flipped=flipped,
            nested=nested,
        )
        if proposed is not None and stop is not None:  # a ceiling never shrinks from one attempt to the next
            proposed["draws"] = max(proposed["draws"], current["draws"])
        if proposed is not None:
            sampling = timing.get("sampling_seconds", timing.get("wall_seconds", seconds))
            proposed, why = fit_to_budget(
                proposed,
                current,
                chains=chains,
                budget=budget,
                spent_draws=spent_draws,
                spent_seconds=spent_seconds,
                seconds_per_draw=sampling / max(iterations, 1),
            )
            reason = reason if proposed is not None else why
        if proposed is None:
            stopped = reason
            break
        flipped |= {b for b, c in proposed["centered"].items() if c != current["centered"][b]}
        current = proposed
    settings = {
        "sampler": sampler,
        "chains": chains,
        **ran,
        "draws_until_gate": bool(until_gate),
        "seed": seed,
        "adaptation": adaptation if sampler == "nutpie" else "pymc default",
        "escalate": bool(escalate),
        "ess_target": ess_target,
        "budget": budget.to_dict(),
        "information_ratio": {b: round(v, 2) for b, v in info.items()},
        "escalation_stopped": stopped,
        "total_seconds": round(spent_seconds, 2),
        "total_draws": spent_draws,
        **timing,
    }
    return Fit(
        idata=idata,
        md=md,
        priors=resolved,
        convergence=conv,
        settings=settings,
        accept_failed=accept_failed,
        attempts=attempts,
        attrs=dict(survey_attrs),
    )


def _sample(
    md: ModelData,
    priors: dict[str, Prior],
    current: dict,
    sampler: str,
    chains: int,
    cores: int | None,
    seed: int,
    adaptation: str,
    progressbar: bool,
    stop_at: dict | None = None,
) -> tuple[xr.DataTree, dict, Convergence | None, StopRecord | None]:
    """One sampling run with an attempt's settings.

    Parameters
    ----------
    md, priors
        The model data and resolved priors.
    current : dict
        The attempt's ``draws``, ``tune``, ``target_accept`` and ``centered`` (by block).
    sampler, chains, cores, seed, adaptation, progressbar
        As in `fit` (``seed`` is the attempt's).
    stop_at : dict, optional
        ``{"ess_target": ..., "thresholds": ...}``: nutpie only; ``current["draws"]`` is a
        ceiling and the run stops at the first checkpoint where the gate passes
        (`models.stopping.sample_until`).

    Returns
    -------
    idata : xarray.DataTree
        The draws and sampler statistics.
    timing : dict
        Compilation and sampling times (nutpie), or the wall time (PyMC samplers).
    conv : Convergence or None
        The gate's verdict on ``idata`` when the run was stopped by it (None: not run yet).
    stop : StopRecord or None
        What a stopping run did (None without ``stop_at``).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        # Chains run in parallel on the cores; a multithreaded BLAS inside each chain's
        # gradient oversubscribes them (measured 5x slower gradients on 2 cores).
        if sampler == "nutpie":
            return _sample_nutpie(
                md,
                priors,
                current["centered"],
                current["draws"],
                current["tune"],
                chains,
                cores,
                seed,
                current["target_accept"],
                adaptation,
                progressbar,
                max_depth=current.get("max_depth", DEFAULT_MAX_DEPTH),
                stop_at=stop_at,
            )
        idata, timing = _sample_pymc(
            md,
            priors,
            current["centered"],
            sampler,
            current["draws"],
            current["tune"],
            chains,
            cores,
            seed,
            current["target_accept"],
            progressbar,
            max_depth=current.get("max_depth", DEFAULT_MAX_DEPTH),
        )
        return idata, timing, None, None


def _sample_nutpie(
    md,
    priors,
    centered,
    draws,
    tune,
    chains,
    cores,
    seed,
    target_accept,
    adaptation,
    progressbar,
    max_depth=DEFAULT_MAX_DEPTH,
    stop_at=None,
):
    import nutpie

    from models.compiled import compiled_model

    compiled, info = compiled_model(md, priors, centered=centered)
    t0 = time.perf_counter()
    options = {
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "seed": int(seed),
        "target_accept": target_accept,
        "adaptation": adaptation,
        "progress_bar": progressbar,
        "maxdepth": int(max_depth),
    }
    if stop_at is None:
        idata = nutpie.sample(compiled, cores=cores or min(chains, os.cpu_count() or 1), **options)
        return idata, {**info, "sampling_seconds": time.perf_counter() - t0}, None, None
    # one thread per chain, so every chain reaches each checkpoint at about the same time
    # (with fewer threads than chains, nutpie runs the later chains after the first finish)
    idata, conv, stop = sample_until(
        lambda progress: nutpie.sample(
            compiled,
            cores=cores or chains,
            blocking=False,
            progress_callback=progress,
            progress_rate=PROGRESS_MS,
            save_warmup=False,  # every look reads the trace: the warm-up draws only slow it
            **options,
        ),
        chains=chains,
        tune=tune,
        ceiling=draws,
        ess_target=stop_at["ess_target"],
        thresholds=stop_at["thresholds"],
    )
    return idata, {**info, "sampling_seconds": time.perf_counter() - t0}, conv, stop


def _sample_pymc(
    md,
    priors,
    centered,
    sampler,
    draws,
    tune,
    chains,
    cores,
    seed,
    target_accept,
    progressbar,
    max_depth=DEFAULT_MAX_DEPTH,
):
    t0 = time.perf_counter()
    model = build_model(md, priors, centered=centered)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*rhat statistic.*")
        warnings.filterwarnings("ignore", message=".*effective sample size.*")
        warnings.filterwarnings("ignore", message=".*We recommend running at least 4 chains.*")
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores or min(chains, os.cpu_count() or 1),
            random_seed=seed,
            target_accept=target_accept,
            nuts_sampler=sampler,
            progressbar=progressbar,
            model=model,
            **_depth_kwargs(sampler, int(max_depth)),
        )
    total = time.perf_counter() - t0
    return idata, {"reused": False, "wall_seconds": total}


def _depth_kwargs(sampler: str, max_depth: int) -> dict:
    """The maximum tree depth in each PyMC-driven sampler's own spelling (nothing at the default)."""
    if max_depth == DEFAULT_MAX_DEPTH:
        return {}
    if sampler == "pymc":
        return {"max_treedepth": max_depth}
    return {"nuts_sampler_kwargs": {"max_tree_depth": max_depth}}  # numpyro


def sample_prior_predictive(
    formula: str,
    data: pd.DataFrame,
    *,
    priors: dict[str, str | Prior] | None = None,
    draws: int = 500,
    seed: int | None = None,
) -> xr.DataTree:
    """Draws from the prior and the prior predictive distribution for the data's design."""
    md = build_model_data(formula, data)
    if md.family == "cumulative":  # forward draws ignore the ordered transform: unsorted cutpoints
        raise ValueError(
            "prior predictive draws of a cumulative (ordinal) model are not available: PyMC's forward "
            "sampling does not order the cutpoints"
        )
    model = build_model(md, resolve_priors(md, priors))
    return pm.sample_prior_predictive(draws=draws, model=model, random_seed=seed)
