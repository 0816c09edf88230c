"""Calibration studies on the grid runner: simulation-based calibration (SBC) and interval
coverage, one replicate per task.

A study (`CalibrationStudy`) names the formula, the sampler settings and the scalar
quantities checked; each replicate (`Replicate`) carries its simulated data set, its true
values and its seed. `run_replicates` fits every replicate with `models.fit` (the
project's own path: compiled models from the structure-keyed cache, so a worker compiles
each structure once) through `analysis.grid.run_tasks`: on a local Dask cluster by
default, a running scheduler when given its address, or in this process
(``scheduler="serial"``). A replicate's row depends only on the replicate (its seed and
data), so the table is the same whichever worker fits it, in whichever order.

* `sbc_replicate`: the rank of each true value among ``keep`` evenly thinned posterior
  draws (Talts et al. 2018); a replicate whose smallest bulk ESS of the ranked quantities
  is below ``keep`` is sampled again ``refit_factor`` times longer (their algorithm 2).
* `coverage_replicate`: the equal-tailed interval of each quantity
  (`analysis.summaries.interval_bounds`) and whether it covers the truth.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CalibrationStudy:
    """What every replicate of a study shares.

    Attributes
    ----------
    formula : str
        Model formula (default priors unless ``priors``).
    quantities : dict of str to (str, dict)
        Checked scalar quantities: name -> (posterior variable, coordinate selection),
        e.g. ``{"sd_g[x]": ("sd_g", {"g_term": "x"})}``.
    chains, tune, draws : int
        Sampler settings of every fit (no escalation).
    target_accept : float
    centered : bool
        Parameterisation of the group effects (one per study, so one compiled structure).
    keep : int
        SBC: posterior draws kept per replicate (ranks take ``keep + 1`` values).
    refit_factor : int
        SBC: draws multiplier of the second fit of a replicate with too low an ESS.
    prob : float
        Coverage: interval probability.
    priors : dict, optional
        Prior overrides.
    cores : int, optional
        Chains sampled at once in one fit (None: all cores; 1 in a one-thread worker).
    """

    formula: str
    quantities: Mapping[str, tuple[str, Mapping[str, str]]]
    chains: int = 2
    tune: int = 500
    draws: int = 1000
    target_accept: float = 0.9
    centered: bool = False
    keep: int = 99
    refit_factor: int = 4
    prob: float = 0.95
    priors: Mapping[str, str] | None = None
    cores: int | None = 1

    def key(self) -> str:
        """Hash of the study's settings."""
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]


@dataclass(frozen=True)
class Replicate:
    """One simulated data set of a study.

    Attributes
    ----------
    index : int
    seed : int
        Sampling seed of its fit.
    data : pandas.DataFrame
        The formula's columns, outcome included.
    truth : dict of str to float
        True value of each quantity.
    study : str
        Study name (in the task name).
    """

    index: int
    seed: int
    data: pd.DataFrame
    truth: Mapping[str, float] = field(default_factory=dict)
    study: str = "replicate"

    @property
    def name(self) -> str:
        """Task name, e.g. ``sbc-r007``."""
        return f"{self.study}-r{self.index:03d}"

    @property
    def key(self) -> str:
        """Hash of the replicate's seed, truth and data."""
        h = hashlib.sha256(json.dumps([self.index, self.seed, dict(self.truth)], default=float).encode())
        h.update(pd.util.hash_pandas_object(self.data, index=False).to_numpy().tobytes())
        return h.hexdigest()[:16]


def quantity_draws(ds: Any, quantity: tuple[str, Mapping[str, str]]) -> np.ndarray:
    """Draws of one scalar quantity, chains concatenated in order.

    Parameters
    ----------
    ds : xarray.Dataset
        Posterior or prior draws with ``chain`` and ``draw`` dims.
    quantity : (str, dict)
        Variable name and coordinate selection.

    Returns
    -------
    numpy.ndarray
        Shape ``(chain * draw,)``.
    """
    var, sel = quantity
    da = ds[var].sel(dict(sel)) if sel else ds[var]
    return np.asarray(da.transpose("chain", "draw").values, dtype=float).reshape(-1)


def min_bulk_ess(post: Any, quantities: Mapping[str, tuple[str, Mapping[str, str]]]) -> float:
    """Smallest bulk ESS (`arviz.ess`) over the study's quantities."""
    import arviz as az

    variables = sorted({v for v, _ in quantities.values()})
    ess = az.ess(post[variables], method="bulk")
    return float(min(float(ess[v].sel(dict(s)) if s else ess[v]) for v, s in quantities.values()))


def sbc_rank(draws: np.ndarray, truth: float, rng: np.random.Generator) -> int:
    """Number of draws below the true value, ties split at random (0 .. len(draws))."""
    below = int(np.sum(draws < truth))
    ties = int(np.sum(draws == truth))
    return below + (int(rng.integers(0, ties + 1)) if ties else 0)


def _fit(rep: Replicate, study: CalibrationStudy, draws: int, seed: int) -> Any:
    import models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return models.fit(
            study.formula,
            rep.data,
            priors=dict(study.priors) if study.priors else None,
            centered=study.centered,
            chains=study.chains,
            tune=study.tune,
            draws=draws,
            seed=seed,
            target_accept=study.target_accept,
            cores=study.cores,
            escalate=False,
            progressbar=False,
            accept_failed=True,
        )


def _divergences(fit: Any) -> int:
    return int(fit.idata["sample_stats"]["diverging"].values.sum())


def sbc_replicate(rep: Replicate, study: CalibrationStudy) -> dict:
    """Fit one SBC replicate and rank its true values.

    Returns
    -------
    dict
        ``replicate``, ``mean_y``, ``first_min_ess_bulk``, ``first_divergences``,
        ``refit``, ``sampling_s``, ``divergences``, ``min_ess_bulk``, ``pid`` (the process
        that fitted it), and per quantity its rank and ``<name>_true``.
    """
    t0 = time.perf_counter()
    fit = _fit(rep, study, study.draws, rep.seed)
    first = min_bulk_ess(fit.posterior(), study.quantities)
    row: dict[str, Any] = {
        "replicate": rep.index,
        "mean_y": float(fit.md.y.mean()),
        "first_min_ess_bulk": first,
        "first_divergences": _divergences(fit),
        "refit": bool(first < study.keep),
    }
    if row["refit"]:
        fit = _fit(rep, study, study.refit_factor * study.draws, rep.seed + 10_000)
    row["sampling_s"] = time.perf_counter() - t0
    post = fit.posterior()
    total = post.sizes["chain"] * post.sizes["draw"]
    keep = np.arange(0, total, total // (study.keep + 1))[: study.keep]
    row["divergences"] = _divergences(fit)
    row["min_ess_bulk"] = min_bulk_ess(post, study.quantities)
    row["pid"] = os.getpid()
    rng = np.random.default_rng([rep.seed, 1])
    for name, q in study.quantities.items():
        row[name] = sbc_rank(quantity_draws(post, q)[keep], rep.truth[name], rng)
        row[f"{name}_true"] = float(rep.truth[name])
    return row


def coverage_replicate(rep: Replicate, study: CalibrationStudy) -> dict:
    """Fit one coverage replicate: each quantity's equal-tailed interval and whether it covers.

    Returns
    -------
    dict
        ``replicate``, ``divergences``, ``mean_y``, ``sampling_s``, ``min_ess_bulk``,
        ``pid``, and per quantity ``<name>_lo``, ``_hi``, ``_mean``, ``_covered``.
    """
    from analysis.summaries import interval_bounds

    t0 = time.perf_counter()
    fit = _fit(rep, study, study.draws, rep.seed)
    post = fit.posterior()
    row: dict[str, Any] = {
        "replicate": rep.index,
        "divergences": _divergences(fit),
        "mean_y": float(fit.md.y.mean()),
        "sampling_s": time.perf_counter() - t0,
    }
    for name, truth in rep.truth.items():
        d = quantity_draws(post, study.quantities[name])
        lo, hi = interval_bounds(d, study.prob, "eti")
        row[f"{name}_lo"], row[f"{name}_hi"] = float(lo), float(hi)
        row[f"{name}_mean"] = float(d.mean())
        row[f"{name}_covered"] = bool(lo <= truth <= hi)
    row["min_ess_bulk"] = min_bulk_ess(post, study.quantities)
    row["pid"] = os.getpid()
    return row


def run_replicates(
    task: Callable[[Replicate, CalibrationStudy], dict],
    study: CalibrationStudy,
    replicates: Sequence[Replicate],
    *,
    scheduler: str = "local",
    workers: int = 2,
    progress: bool = False,
    log: Callable[[str], None] = print,
    **options: Any,
) -> pd.DataFrame:
    """Run a calibration task on every replicate through the grid runner.

    Parameters
    ----------
    task : callable
        `sbc_replicate` or `coverage_replicate`.
    study : CalibrationStudy
    replicates : sequence of Replicate
    scheduler : str
        ``"local"`` (a LocalCluster of ``workers`` one-thread processes), ``"serial"``
        or a scheduler address (`analysis.grid.run_tasks`).
    workers : int
    progress : bool
    log : callable
    **options
        More options of `analysis.grid.run_tasks` (``client``, ``retries``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per replicate, in replicate order.

    Raises
    ------
    RuntimeError
        A replicate failed (the message names it and the error).
    """
    from analysis.grid import run_tasks

    if scheduler == "serial" and study.cores == 1:
        from dataclasses import replace

        study = replace(study, cores=None)  # in this process the chains may share the cores
    rows, failed = run_tasks(
        task,
        list(replicates),
        (study,),
        scheduler=scheduler,
        workers=workers,
        progress=progress,
        log=log,
        **options,
    )
    if failed:
        raise RuntimeError("replicates failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return pd.DataFrame([rows[r.name] for r in replicates])


__all__ = [
    "CalibrationStudy",
    "Replicate",
    "coverage_replicate",
    "min_bulk_ess",
    "quantity_draws",
    "run_replicates",
    "sbc_rank",
    "sbc_replicate",
]
