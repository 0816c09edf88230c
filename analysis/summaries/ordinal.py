"""Summaries of a cumulative-logit (ordinal) fit that read naturally for an ordinal outcome.

- `cumulative_odds_ratios`: each term's cumulative odds ratio, ``exp(b)``: the odds of
  answering in a higher category (above any cut-off: proportional odds) per unit of the
  term, with 95% ETI and HDI. The numbers are `summaries.fixed_effects`' (the one producer
  of odds ratios); this adds the reading.
- `cutpoint_summary`: the cutpoints (log-odds of answering at or below each category for a
  person with every predictor 0 in an average LA).
- `category_probabilities`: for chosen rows (subgroups) or for LAs, the predicted
  probability of each category, ``P(Y >= k)`` and the expected score, with intervals,
  draw by draw from `models.prediction.predict_proba` (LA mode named, as for the binary
  model).
- `ordinal_variance_partition`: latent-scale VPC (residual variance pi^2/3 of the logistic
  latent score) and MOR: the binary model's `summaries.variance_partition`, which applies
  unchanged to the latent scale of a cumulative logit.
- `ordinal_calibration`: per category, the observed share against the predicted share, in
  bins of the predicted expected score, with the posterior interval of the prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.summaries.draws import posterior_draws, reference_values
from analysis.summaries.effects import fixed_effects, variance_partition
from analysis.summaries.intervals import (
    DEFAULT_PROB,
    describe_interval,
    interval_columns,
    stamp,
    summarise_draws,
    warn_if_not_converged,
)
from models import Fit


def _require_ordinal(fit: Fit) -> None:
    if fit.md.family != "cumulative":
        raise ValueError(
            f"this summary is for a cumulative (ordinal) fit; {fit.md.formula!r} is {fit.md.family!r}"
        )


def category_scores(fit: Fit) -> np.ndarray:
    """The score of each category for the expected score: its value when every category reads
    as a number (a 1-7 scale), else 1, 2, ..., K."""
    try:
        return np.array([float(v) for v in fit.md.response_levels])
    except ValueError:
        return np.arange(1.0, len(fit.md.response_levels) + 1.0)


def cumulative_odds_ratios(fit: Fit, prob: float = DEFAULT_PROB, *, quiet: bool = False) -> pd.DataFrame:
    """Cumulative odds ratios of every term, with ETI and HDI (`summaries.fixed_effects`).

    Returns
    -------
    pandas.DataFrame
        `fixed_effects`' columns (``or_mean``, ``or_median``, ``or_eti95_low/high``,
        ``or_hdi95_low/high``, ``p_or_gt_1``, the log-odds ones) and ``reading``: what an
        odds ratio above 1 means on this outcome.
    """
    _require_ordinal(fit)
    table = fixed_effects(fit, prob, include_intercept=False, quiet=quiet)
    lv = fit.md.response_levels
    table["reading"] = (
        f"OR > 1: higher {fit.md.response} (odds of answering above any cut-off between "
        f"{lv[0]!r} and {lv[-1]!r} multiplied by OR per unit of the term)"
    )
    table.attrs["outcome"] = "cumulative odds ratio (proportional odds)"
    return table


def cutpoint_summary(fit: Fit, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    """Posterior of the cutpoints ``tau_k`` (log-odds of ``Y <= k`` at every predictor 0, in an
    average LA) and ``P(Y <= k)`` there, with intervals."""
    _require_ordinal(fit)
    warn_if_not_converged(fit)
    tau = posterior_draws(fit, "cutpoints")
    labels = [str(c) for c in fit.posterior()["cutpoint"].values]
    table = summarise_draws(tau, labels, prob=prob, hdi=True)
    cum = summarise_draws(1 / (1 + np.exp(-tau)), labels, prob=prob, prefix="p_le_")
    table = pd.concat([table, cum], axis=1).rename_axis("cutpoint").reset_index()
    return stamp(table, fit, describe_interval("eti", prob) + " (and HDI for the cutpoints)", prob=prob)


def category_probabilities(
    fit: Fit,
    new_data: pd.DataFrame | None = None,
    *,
    by: str | None = None,
    la: str | Sequence[str] | None = None,
    las: Sequence[str] | None = None,
    prob: float = DEFAULT_PROB,
    max_draws: int | None = 1000,
    seed: int | None = 1,
) -> pd.DataFrame:
    """Predicted P(Y = k), P(Y >= k) and the expected score, with intervals, row by row.

    Parameters
    ----------
    fit : models.Fit
        A cumulative fit.
    new_data : pandas.DataFrame, optional
        The rows to predict for (subgroups: one row each). Default: one row at the
        reference values (`summaries.reference_values`: means, reference levels).
    by : str, optional
        Column of ``new_data`` naming each row (default: its index).
    la, las
        The LA mode (`models.prediction.predict_proba`): default ``"average_la"`` when
        ``las`` is not given, ``"these_las"`` (each named LA) when it is.
    prob : float
        Interval probability.
    max_draws, seed
        Thinning and the seed of new-LA draws.

    Returns
    -------
    pandas.DataFrame
        One row per predicted row (and LA) and quantity: ``row``, ``la`` (for
        ``these_las``), ``quantity`` (``P(Y = k)``, ``P(Y >= k)`` for k above the first
        category, ``expected score``), ``category``, ``mean``, ``median``, ``sd`` and the ETI
        columns.
    """
    _require_ordinal(fit)
    warn_if_not_converged(fit)
    if new_data is None:
        new_data = pd.DataFrame([reference_values(fit)])
    if la is None:
        la = "these_las" if las is not None else "average_la"
    p = fit.predict(new_data, la=la, las=las, max_draws=max_draws, seed=seed)  # (S, row, K)
    levels = list(fit.md.response_levels)
    scores = category_scores(fit)
    names = new_data[by].astype(str).tolist() if by is not None else [str(i) for i in new_data.index]
    la_codes = list(p.coords["la"].values) if "la" in p.coords else [None] * p.sizes["row"]
    if "la" in p.coords:
        names = names * (p.sizes["row"] // len(names))
    values = p.values
    tail = np.cumsum(values[..., ::-1], axis=-1)[..., ::-1]  # P(Y >= k)
    expected = values @ scores
    tables = []
    for i in range(values.shape[1]):
        cols = [values[:, i, k] for k in range(len(levels))]
        labels = [(f"P({fit.md.response} = {lv})", lv) for lv in levels]
        cols += [tail[:, i, k] for k in range(1, len(levels))]
        labels += [(f"P({fit.md.response} >= {lv})", lv) for lv in levels[1:]]
        cols.append(expected[:, i])
        labels.append(("expected score", ""))
        t = summarise_draws(np.column_stack(cols), prob=prob)
        t.insert(0, "row", names[i])
        t.insert(1, "la", la_codes[i])
        t.insert(2, "quantity", [q for q, _ in labels])
        t.insert(3, "category", [c for _, c in labels])
        tables.append(t)
    table = pd.concat(tables, ignore_index=True)
    if "la" not in p.coords:
        table = table.drop(columns="la")
    return stamp(
        table,
        fit,
        describe_interval("eti", prob),
        prob=prob,
        la_mode=p.attrs.get("la_mode"),
        la_mode_description=p.attrs.get("la_mode_description"),
        scores=dict(zip(levels, scores.tolist(), strict=True)),
    )


def ordinal_variance_partition(
    fit: Fit, group: str | None = None, prob: float = DEFAULT_PROB
) -> pd.DataFrame:
    """Latent-scale VPC (residual pi^2/3) and MOR of a cumulative fit (`summaries.variance_partition`:
    a cumulative logit is a logistic latent score cut at the cutpoints, so both read the same;
    the MOR is the median cumulative odds ratio between two LAs)."""
    _require_ordinal(fit)
    table = variance_partition(fit, group, prob=prob)
    table.attrs["note"] = (
        "latent scale of the cumulative logit: VPC = sd^2 / (sd^2 + pi^2/3); MOR compares the "
        "cumulative odds of a higher category for the same person in two random LAs"
    )
    return table


def ordinal_calibration(
    fit: Fit, bins: int = 5, prob: float = DEFAULT_PROB, max_draws: int = 400, seed: int = 1
) -> pd.DataFrame:
    """Per-category calibration on the fitted rows: observed share against predicted share.

    Rows are put in ``bins`` groups of equal size by their posterior mean expected score
    (own LA effects); in each bin and for each category the observed share of rows in the
    category is set beside the posterior mean and interval of the predicted share.
    ``inside`` says whether the observed share lies in the interval widened by its binomial
    sampling error (1.96 binomial SDs).

    Returns
    -------
    pandas.DataFrame
        ``bin``, ``n``, ``category``, ``observed``, ``predicted_mean``, ETI columns of the
        prediction, ``inside``.
    """
    _require_ordinal(fit)
    warn_if_not_converged(fit)
    md = fit.md
    p = fit.predict(md.frame, la="own_la", max_draws=max_draws, seed=seed).values  # (S, n, K)
    scores = category_scores(fit)
    order = np.argsort(np.argsort(p.mean(axis=0) @ scores, kind="stable"), kind="stable")
    which = (order * bins) // md.n_obs
    lo_name, hi_name = interval_columns("eti", prob)
    rows = []
    for j in range(bins):
        members = which == j
        n = int(members.sum())
        share = p[:, members, :].mean(axis=1)  # (S, K)
        lo, hi = np.quantile(share, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        for k, lv in enumerate(md.response_levels):
            obs = float(np.mean(md.y[members] == k))
            se = np.sqrt(max(share[:, k].mean() * (1 - share[:, k].mean()), 1e-12) / n)
            rows.append(
                {
                    "bin": j + 1,
                    "n": n,
                    "category": lv,
                    "observed": obs,
                    "predicted_mean": float(share[:, k].mean()),
                    lo_name: float(lo[k]),
                    hi_name: float(hi[k]),
                    "inside": bool(lo[k] - 1.96 * se <= obs <= hi[k] + 1.96 * se),
                }
            )
    table = pd.DataFrame(rows)
    return stamp(table, fit, describe_interval("eti", prob) + " of the predicted share", prob=prob, bins=bins)
