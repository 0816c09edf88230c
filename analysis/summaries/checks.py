"""Model checks: PSIS-LOO comparison, calibration, recovery of known values."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import isotonic_regression

from analysis.summaries.draws import fixed_draws, posterior_draws
from analysis.summaries.intervals import (
    describe_interval,
    interval_columns,
    percent_label,
    stamp,
    summarise_draws,
    warn_if_not_converged,
)
from models.fitting import Fit

# --------------------------------------------------------------------------- model comparison


@dataclass
class ModelComparison:
    """PSIS-LOO comparison of fits to the same data.

    Attributes
    ----------
    table : pandas.DataFrame
        `arviz.compare` output (best first): ``elpd``, ``se``, ``elpd_diff``, ``dse``, ``p``,
        ``weight``...
    pareto : pandas.DataFrame
        Pareto-k diagnostics per model: threshold, counts above it and above 1, max k.
    notes : list of str
        Problems to read before the table (high Pareto k, warnings).
    loo : dict
        The `ELPDData` of each model.
    """

    table: pd.DataFrame
    pareto: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    loo: dict[str, Any] = field(default_factory=dict)


def same_rows_sets(fits: Mapping[str, Fit]) -> list[list[str]]:
    """Names of fits that model the same outcome on the same rows, in sets of two or more
    (only those can be compared by PSIS-LOO)."""
    groups: dict[tuple, list[str]] = {}
    for name, f in fits.items():
        key = (f.md.response, f.md.n_obs, hash(np.asarray(f.md.y).tobytes()))
        groups.setdefault(key, []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def loo_comparisons(fits: Mapping[str, Fit]) -> list[ModelComparison | str]:
    """PSIS-LOO comparison of every set of fits to the same rows (`same_rows_sets`); a set
    that cannot be compared gives the reason instead. For the report, which only renders."""
    out: list[ModelComparison | str] = []
    for names in same_rows_sets(fits):
        try:
            out.append(compare_models({n: fits[n] for n in names}))
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the rest of the report goes on
            out.append(f"LOO comparison of {', '.join(names)} could not be computed: {exc}")
    return out


def with_log_likelihood(fit: Fit) -> xr.DataTree:
    """Copy of the fit's DataTree with a ``log_likelihood`` group added."""
    tree = fit.idata.copy()
    ll = fit.log_likelihood()
    if isinstance(ll, xr.DataTree):
        ll = ll["log_likelihood"].to_dataset() if "log_likelihood" in ll.children else ll.to_dataset()
    tree["log_likelihood"] = xr.DataTree(ll)
    return tree


def compare_models(fits: Mapping[str, Fit]) -> ModelComparison:
    """Compare fits of the same outcome and rows by PSIS-LOO (`arviz.loo`, `arviz.compare`).

    Parameters
    ----------
    fits : mapping of str to models.Fit
        At least one fit; all must use the same response values (same rows).

    Returns
    -------
    ModelComparison

    Raises
    ------
    ValueError
        When the fits were made on different rows or outcomes (their ELPDs would not be
        comparable).
    """
    import arviz as az

    if not fits:
        raise ValueError("compare_models needs at least one fit")
    names = list(fits)
    ref = fits[names[0]].md
    for name in names[1:]:
        md = fits[name].md
        same = md.n_obs == ref.n_obs and np.array_equal(md.y, ref.y)
        if not same:
            raise ValueError(
                f"fits {names[0]!r} ({ref.n_obs} rows of {ref.response}) and {name!r} ({md.n_obs} rows "
                f"of {md.response}) are not fitted to the same data: LOO cannot compare them"
            )
    loos, rows, notes = {}, [], []
    for name, f in fits.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loos[name] = az.loo(with_log_likelihood(f), pointwise=True)
        k = np.asarray(loos[name].pareto_k).ravel()
        thr = float(loos[name].good_k)
        n_bad, n_very = int((k > thr).sum()), int((k > 1).sum())
        rows.append(
            {
                "model": name,
                "n_obs": len(k),
                "k_threshold": thr,
                "n_k_above_threshold": n_bad,
                "n_k_above_1": n_very,
                "max_k": float(k.max()),
            }
        )
        if not f.converged:
            notes.append(f"{name}: {f.headline}")
        if n_bad:
            notes.append(
                f"{name}: {n_bad} of {len(k)} observations have Pareto k > {thr:.2f} "
                f"({n_very} above 1): its PSIS-LOO estimate may be unreliable"
            )
        for w in caught:
            if "Pareto" not in str(w.message):
                notes.append(f"{name}: {w.message}")
    if len(loos) > 1:
        table = az.compare(loos, round_to="none")
    else:
        only = next(iter(loos.values()))
        table = pd.DataFrame({"rank": [0], "elpd": [only.elpd], "se": [only.se], "p": [only.p]}, index=names)
    table.index.name = "model"
    table.attrs["note"] = "PSIS-LOO expected log predictive density; higher is better"
    return ModelComparison(table=table, pareto=pd.DataFrame(rows), notes=notes, loo=loos)


# --------------------------------------------------------------------------- calibration


@dataclass
class Calibration:
    """PAV-adjusted calibration of a fit on the rows it used.

    Attributes
    ----------
    table : pandas.DataFrame
        Per bin of predicted probability: ``n``, ``mean_predicted``, ``observed_rate``,
        ``cep_mean`` (PAV-calibrated event probability), ``band_low``/``band_high``.
    curve : pandas.DataFrame
        The full PAV curve: ``predicted`` (sorted posterior mean probability), ``cep`` and
        the consistency band ``band_low``/``band_high`` under the model.
    figure : matplotlib.figure.Figure or None
        The calibration plot (`analysis.figures.calibration_figure`).
    prob : float
        Probability of the consistency band.
    """

    table: pd.DataFrame
    curve: pd.DataFrame
    figure: Any = None
    prob: float = 0.95


def in_sample_probabilities(fit: Fit, max_draws: int | None = 400) -> np.ndarray:
    """Posterior draws of P(y = 1) for the fit's own rows, group effects included: (S, rows)."""
    p = fit.predict(fit.md.frame, include_groups=True, unseen="error", max_draws=max_draws)
    return np.asarray(p.values)


def calibration(
    fit: Fit,
    *,
    n_bins: int = 10,
    prob: float = 0.95,
    n_draws: int = 200,
    seed: int = 0,
    figure: bool = True,
    synthetic: bool = False,
) -> Calibration:
    """PAV-adjusted calibration: isotonic regression of y on the posterior mean probability.

    The band shows where the PAV curve falls when the outcomes are drawn from the model
    itself (posterior predictive replicates): a curve outside it is miscalibration. This is
    the calculation of `arviz.plot_ppc_pava`, done on the fit's rows directly.

    Parameters
    ----------
    fit : models.Fit
    n_bins : int
        Bins (quantiles of predicted probability) of the table.
    prob : float
        Probability of the consistency band.
    n_draws : int
        Posterior predictive replicates for the band.
    seed : int
        Seed of the replicates.
    figure : bool
        Make the figure (`Calibration.figure`).
    synthetic : bool
        Mark the figure as made from synthetic data.

    Returns
    -------
    Calibration
    """
    warn_if_not_converged(fit)
    p = in_sample_probabilities(fit, max_draws=max(n_draws, 400))
    trials = fit.md.trials if fit.md.family == "binomial" else np.ones(fit.md.n_obs)
    trials = np.asarray(trials, dtype=float)
    obs = fit.md.y / trials
    pbar = p.mean(axis=0)
    order = np.argsort(pbar, kind="stable")
    w = trials[order]
    cep = isotonic_regression(obs[order], weights=w, increasing=True).x
    rng = np.random.default_rng(seed)
    pick = rng.choice(p.shape[0], size=min(n_draws, p.shape[0]), replace=False)
    reps = np.empty((len(pick), len(order)))
    for i, s in enumerate(pick):
        yrep = rng.binomial(trials[order].astype(int), p[s, order]) / trials[order]
        reps[i] = isotonic_regression(yrep, weights=w, increasing=True).x
    band_low, band_high = np.quantile(reps, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    curve = pd.DataFrame({"predicted": pbar[order], "cep": cep, "band_low": band_low, "band_high": band_high})
    bins = pd.qcut(curve["predicted"].rank(method="first"), q=min(n_bins, len(curve)), labels=False)
    frame = curve.assign(observed=obs[order], w=w, bin=bins.to_numpy() + 1)
    table = frame.groupby("bin").apply(
        lambda g: pd.Series(
            {
                "n": g["w"].sum(),
                "mean_predicted": np.average(g["predicted"], weights=g["w"]),
                "observed_rate": np.average(g["observed"], weights=g["w"]),
                "cep_mean": np.average(g["cep"], weights=g["w"]),
                "band_low": np.average(g["band_low"], weights=g["w"]),
                "band_high": np.average(g["band_high"], weights=g["w"]),
            }
        ),
        include_groups=False,
    )
    table = table.reset_index()
    table["n"] = table["n"].astype(int)
    outside = float(((curve.cep < curve.band_low) | (curve.cep > curve.band_high)).mean())
    interval = f"{percent_label(prob)}% consistency band (PAV curves of outcomes replicated from the model)"
    stamp(
        table,
        fit,
        interval,
        share_outside_band=outside,
        mean_predicted=float(np.average(pbar, weights=trials)),
        observed_rate=float(np.average(obs, weights=trials)),
    )
    fig = None
    if figure:
        from analysis.figures import calibration_figure

        fig = calibration_figure(curve, prob=prob, synthetic=synthetic, title=None)
    return Calibration(table=table, curve=curve, figure=fig, prob=prob)


# --------------------------------------------------------------------------- recovery


def flatten_truth(truth: Mapping[str, Any] | Any) -> dict[str, float]:
    """Truth as ``{name: value}``: fixed terms, ``sd_<g>[term]``, ``cor_<g>[t1,t2]``."""
    if hasattr(truth, "to_json"):
        truth = truth.to_json()
    if "fixed" in truth and isinstance(truth["fixed"], Mapping):
        flat = {str(k): float(v) for k, v in truth["fixed"].items()}
        for g, spec in (truth.get("groups") or {}).items():
            terms = list(spec["terms"])
            for t, s in zip(terms, spec["sd"], strict=True):
                flat[f"sd_{g}[{t}]"] = float(s)
            corr = spec.get("corr")
            if corr is not None:
                for i in range(len(terms)):
                    for j in range(i + 1, len(terms)):
                        flat[f"cor_{g}[{terms[i]},{terms[j]}]"] = float(corr[i][j])
        return flat
    return {str(k): float(v) for k, v in truth.items()}


def truth_draws(fit: Fit, name: str, post: xr.Dataset, fixed: dict[str, np.ndarray]) -> np.ndarray | None:
    key = name.replace(" ", "")
    if key in fixed:
        return fixed[key]
    if ":" in key:
        parts = sorted(key.split(":"))
        for t, x in fixed.items():
            if sorted(t.split(":")) == parts:
                return x
    m = re.fullmatch(r"(sd|cor)_(\w+?)(?:\[(.+)\])?", key)
    if not m:
        return None
    kind, g, inner = m.groups()
    blocks = [b for b in fit.md.blocks if g in (b.name, b.factor)]
    if not blocks:
        return None
    block = blocks[0]
    if kind == "sd":
        term = inner or "Intercept"
        if term not in block.terms:
            return None
        return posterior_draws(fit, f"sd_{block.name}", post)[:, block.terms.index(term)]
    if not inner or f"cor_{block.name}" not in post:
        return None
    t1, t2 = (s.strip() for s in inner.split(","))
    if t1 not in block.terms or t2 not in block.terms:
        return None
    c = posterior_draws(fit, f"cor_{block.name}", post)
    return c[:, block.terms.index(t1), block.terms.index(t2)]


def recovery(fit: Fit, truth: Mapping[str, Any] | Any, prob: float = 0.95) -> pd.DataFrame:
    """Known true values against the posterior (for fits to simulated data).

    Parameters
    ----------
    fit : models.Fit
    truth : mapping or object with ``to_json()``
        ``{name: value}`` with fixed terms (``"x"``, ``"x:w"``), ``"sd_lad"`` or
        ``"sd_lad[x]"`` and ``"cor_lad[Intercept,x]"``; or the ``truth.json`` layout
        ``{"fixed": {...}, "groups": {"lad": {"terms", "sd", "corr"}}}``.
    prob : float
        Interval probability.

    Returns
    -------
    pandas.DataFrame
        ``parameter``, ``true``, ``mean``, ``median``, ``sd``, ``eti95_low``, ``eti95_high``,
        ``covered`` ("yes"/"no"; "not in model" when the model lacks the parameter).
    """
    warn_if_not_converged(fit)
    post = fit.posterior()
    fixed = fixed_draws(fit, post)
    lo, hi = interval_columns("eti", prob)
    rows = []
    for name, value in flatten_truth(truth).items():
        x = truth_draws(fit, name, post, fixed)
        row: dict[str, Any] = {"parameter": name, "true": value}
        if x is None:
            row["covered"] = "not in model"
        else:
            s = summarise_draws(x, prob=prob).iloc[0].to_dict()
            row.update(s)
            row["covered"] = "yes" if s[lo] <= value <= s[hi] else "no"
        rows.append(row)
    cols = ["parameter", "true", "mean", "median", "sd", lo, hi, "covered"]
    table = pd.DataFrame(rows).reindex(columns=cols)
    return stamp(table, fit, describe_interval("eti", prob))
