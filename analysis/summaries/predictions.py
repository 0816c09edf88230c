"""Predicted probabilities, average marginal effects and conditional effects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.summaries.draws import nearly_constant_within, predictor_columns, reference_values
from analysis.summaries.intervals import describe_interval, stamp, summarise_draws, warn_if_not_converged
from models.fitting import Fit
from models.la_modes import LaMode

# --------------------------------------------------------------------------- predictions


def summarise_probabilities(p: np.ndarray, prob: float) -> pd.DataFrame:
    """Summaries of probability draws (S, rows) with ``p_`` column names."""
    return summarise_draws(p, prob=prob, prefix="p_")


def predicted_probabilities(
    fit: Fit,
    grid: pd.DataFrame,
    *,
    la: str | Sequence[str] | LaMode | None = None,
    las: Sequence[str] | None = None,
    include_groups: bool = False,
    unseen: str = "zero",
    prob: float = 0.95,
    max_draws: int | None = 1000,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Posterior predicted probability for each row of a grid of predictor values.

    Parameters
    ----------
    fit : models.Fit
    grid : pandas.DataFrame
        Rows of predictor values (every predictor of the formula; grouping columns only
        for ``la="own_la"``).
    la : str or sequence of str, optional
        Which LA the prediction is for (`models.la_modes`): ``"average_la"`` (default: LA
        effects at zero), ``"marginal"``, ``"new_la"``, ``"these_las"`` (with ``las``, or
        a list of LA codes: the grid is predicted in each), ``"own_la"`` (the grid's own
        grouping column). ``include_groups=True`` without ``la`` means ``"own_la"``.
    las : sequence of str, optional
        LA codes for ``these_las``.
    include_groups : bool
        Kept for callers without ``la``.
    unseen : {"zero", "population", "error"}
        Group levels not in the fit (``own_la`` only).
    prob : float
        Interval probability.
    max_draws : int, optional
        Thin the posterior to at most this many draws.
    seed : int, optional
        Seed for new-LA draws.

    Returns
    -------
    pandas.DataFrame
        The grid (for ``these_las``: with the LA code in the grouping factor's column, one
        block of rows per LA) with ``la_mode``, ``p_mean``, ``p_median``, ``p_sd``,
        ``p_eti95_low``, ``p_eti95_high``; ``attrs["la_mode"]`` describes the mode.
    """
    warn_if_not_converged(fit)
    mode = resolve_la_mode(la, las, include_groups)
    p = fit.predict(grid, la=mode, unseen=unseen, seed=seed, max_draws=max_draws)
    summary = summarise_probabilities(np.asarray(p.values), prob)
    rows = grid.reset_index(drop=True)
    if mode.kind == "these_las":
        factor = la_factor(fit)
        rows = pd.concat([rows.assign(**{factor: code}) for code in mode.las], ignore_index=True)
    out = pd.concat([rows, summary], axis=1)
    out.insert(len(rows.columns), "la_mode", mode.kind)
    return stamp(
        out,
        fit,
        describe_interval("eti", prob),
        groups=mode.describe(),
        la_mode=mode.describe(),
    )


def resolve_la_mode(
    la: str | Sequence[str] | LaMode | None, las: Sequence[str] | None = None, include_groups: bool = False
) -> LaMode:
    """The LA mode of a call: ``la`` (with ``las``), else ``own_la`` / ``average_la`` from
    ``include_groups``."""
    if la is None:
        return LaMode.parse("own_la" if include_groups else "average_la")
    return LaMode.parse(la, las)


def la_factor(fit: Fit) -> str:
    """The grouping factor an LA mode speaks of: ``lad``, else the model's only factor."""
    factors = list(dict.fromkeys(b.factor for b in fit.md.blocks))
    if "lad" in factors or not factors:
        return "lad"
    if len(factors) == 1:
        return factors[0]
    raise ValueError(f"the model has several grouping factors {factors}; an LA mode needs 'lad'")


def is_binary(s: pd.Series) -> bool:
    vals = set(pd.unique(s.dropna().astype(float)))
    return vals <= {0.0, 1.0} and len(vals) == 2


def average_marginal_effect(
    fit: Fit,
    term: str,
    data: pd.DataFrame | None = None,
    *,
    la: str | Sequence[str] | LaMode = "own_la",
    las: Sequence[str] | None = None,
    prob: float = 0.95,
    max_draws: int | None = 500,
    chunk_rows: int = 4000,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Average marginal effect of a predictor on the probability scale.

    Counterfactual predictions for every row of ``data`` (default: the fit's model
    frame), with the LA effects of the LA mode ``la`` (default ``own_la``: each row's
    group effects at their posterior values); per posterior draw the row differences are
    averaged, then summarised.

    - binary 0/1 predictor: mean of P(y=1 | x=1) - P(y=1 | x=0);
    - categorical predictor: each level against the reference level;
    - continuous predictor: mean derivative dP/dx per unit of x (central difference).

    Interactions involving the predictor are recomputed from the changed values.

    Parameters
    ----------
    fit : models.Fit
    term : str
        Predictor variable (a column of the data, not an interaction).
    data : pandas.DataFrame, optional
        Rows to average over; default the rows the model used.
    prob : float
        Interval probability.
    max_draws : int, optional
        Thin the posterior to at most this many draws (memory: draws x rows).
    chunk_rows : int
        Rows predicted at a time.
    seed : int, optional
        Seed for levels unseen in the fit and new-LA draws.
    la, las :
        LA mode (`models.la_modes`): ``"own_la"``, ``"average_la"``, ``"marginal"``,
        ``"new_la"``, or ``"these_las"`` with ``las`` (one AME per named LA: every row
        placed in that LA).

    Returns
    -------
    pandas.DataFrame
        One row per contrast (and named LA): ``term``, ``contrast``, [``lad``], ``la_mode``,
        ``ame_mean``, ``ame_median``, ``ame_sd``, ``ame_eti95_low``, ``ame_eti95_high``,
        ``p_gt_0``, ``n_rows``. The scale is a difference in probability (x 100 = percentage points).
    """
    warn_if_not_converged(fit)
    data = fit.md.frame if data is None else data
    if term not in predictor_columns(fit) or term not in data:
        raise ValueError(
            f"{term!r} is not a predictor variable of {fit.md.formula!r}; "
            f"choose one of {predictor_columns(fit)}"
        )
    s = fit.md.frame[term]
    if isinstance(s.dtype, pd.CategoricalDtype):
        ref = s.cat.categories[0]
        contrasts = [(f"{lv} vs {ref}", lv, ref, 1.0) for lv in s.cat.categories[1:]]
    elif is_binary(s):
        contrasts = [("1 vs 0", 1, 0, 1.0)]
    else:
        h = 1e-3 * float(s.std()) or 1e-3
        contrasts = [(f"dP/d{term} per unit (derivative)", h, -h, 2 * h)]
    continuous = not isinstance(s.dtype, pd.CategoricalDtype) and not is_binary(s)
    mode = resolve_la_mode(la, las)
    n_la = len(mode.las) if mode.kind == "these_las" else 1
    rows, draws, row_las = [], [], []
    for label, v1, v0, width in contrasts:
        total = None
        for start in range(0, len(data), chunk_rows):
            chunk = data.iloc[start : start + chunk_rows]
            d1, d0 = chunk.copy(), chunk.copy()
            if continuous:
                d1[term] = chunk[term].astype(float) + v1
                d0[term] = chunk[term].astype(float) + v0
            else:
                d1[term], d0[term] = v1, v0
            kw = dict(la=mode, unseen="population", seed=seed, max_draws=max_draws)
            diff = fit.predict(d1, **kw).values - fit.predict(d0, **kw).values
            diff = diff.reshape(diff.shape[0], n_la, len(chunk)).sum(axis=2)
            total = diff if total is None else total + diff
        for j in range(n_la):
            draws.append(total[:, j] / (len(data) * width))
            rows.append(label)
            row_las.append(mode.las[j] if mode.kind == "these_las" else None)
    x = np.column_stack(draws)
    table = summarise_draws(x, prob=prob, prefix="ame_")
    table.insert(0, "term", term)
    table.insert(1, "contrast", rows)
    if mode.kind == "these_las":
        table.insert(2, la_factor(fit), row_las)
    table.insert(3 if mode.kind == "these_las" else 2, "la_mode", mode.kind)
    table["p_gt_0"] = (x > 0).mean(axis=0)
    table["n_rows"] = len(data)
    return stamp(
        table,
        fit,
        describe_interval("eti", prob),
        scale="difference in probability (x 100 = percentage points)",
        groups=mode.describe(),
        la_mode=mode.describe(),
    )


def moderator_range(fit: Fit, moderator: str, percentiles: tuple[float, float]) -> tuple[np.ndarray, str]:
    """Percentile range over levels when the moderator is area-level, else over rows."""
    frame = fit.md.frame
    vals = frame[moderator].to_numpy(dtype=float)
    for block in fit.md.blocks:
        if nearly_constant_within(vals, block.idx):
            per_level = pd.Series(vals).groupby(block.idx).first().to_numpy()
            where = f"over levels of {block.factor}"
            return per_level, f"{percentiles[0]:g}th to {percentiles[1]:g}th percentile {where}"
    return vals, f"{percentiles[0]:g}th to {percentiles[1]:g}th percentile over respondents"


def conditional_effects(
    fit: Fit,
    moderator: str,
    by: str | None = None,
    values: Sequence[float] | None = None,
    *,
    by_values: Sequence[Any] | None = None,
    percentiles: tuple[float, float] = (5, 95),
    n_points: int = 25,
    at: Mapping[str, Any] | None = None,
    la: str | Sequence[str] | LaMode = "average_la",
    las: Sequence[str] | None = None,
    prob: float = 0.95,
    max_draws: int | None = 1000,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Predicted probability across a moderator's range, for each value of ``by``.

    Other predictors are held at their means (numeric) or reference level (categorical),
    unless given in ``at``; the LA effects follow the LA mode ``la`` (default
    ``average_la``: every group effect zero, a typical level).

    Parameters
    ----------
    fit : models.Fit
    moderator : str
        Numeric predictor on the x-axis, e.g. ``"area_sociability"``.
    by : str, optional
        Predictor giving one line per value, e.g. ``"age50"``.
    values : sequence of float, optional
        Moderator values; default ``n_points`` from the ``percentiles`` (over levels of
        the grouping factor when the moderator is area-level, else over respondents).
    by_values : sequence, optional
        Values of ``by``; default its categories, its values when it has at most 5, else
        its 10th, 50th and 90th percentiles.
    percentiles : (float, float)
        Range of the moderator.
    n_points : int
        Points along the moderator.
    at : mapping, optional
        Values for other predictors.
    la, las :
        LA mode (`models.la_modes`): ``"average_la"``, ``"marginal"``, ``"new_la"`` or
        ``"these_las"`` with ``las`` (one curve per named LA, LA code in the ``lad``
        column). ``own_la`` has no meaning on a grid and is refused.
    seed : int, optional
        Seed for new-LA draws.
    prob : float
        Interval probability.
    max_draws : int, optional
        Thin the posterior.

    Returns
    -------
    pandas.DataFrame
        ``moderator``, [``by``], [``lad``], ``la_mode``, ``p_mean``, ``p_median``, ``p_sd``, ``p_eti95_low``,
        ``p_eti95_high``; ``.attrs["held"]`` holds the values of the other predictors.
    """
    warn_if_not_converged(fit)
    preds = predictor_columns(fit)
    for name in [moderator] + ([by] if by else []):
        if name not in preds:
            raise ValueError(f"{name!r} is not a predictor of {fit.md.formula!r}; choose from {preds}")
    base = reference_values(fit)
    unknown = set(at or {}) - set(preds)
    if unknown:
        raise ValueError(f"'at' names {sorted(unknown)} that are not predictors of {fit.md.formula!r}")
    base.update(at or {})
    range_note = "values given"
    if values is None:
        pool, range_note = moderator_range(fit, moderator, percentiles)
        lo, hi = np.percentile(pool, percentiles)
        values = np.linspace(lo, hi, n_points)
    grid = pd.DataFrame({moderator: np.asarray(values, dtype=float)})
    if by:
        s = fit.md.frame[by]
        if by_values is None:
            if isinstance(s.dtype, pd.CategoricalDtype):
                by_values = list(s.cat.categories)
            elif s.nunique() <= 5:
                by_values = sorted(pd.unique(s))
            else:
                by_values = list(np.percentile(s.astype(float), [10, 50, 90]))
        grid = grid.merge(pd.DataFrame({by: list(by_values)}), how="cross")
    held = {k: v for k, v in base.items() if k not in (moderator, by)}
    full = grid.copy()
    for k, v in held.items():
        full[k] = v
    for c, levels in fit.md.categorical_levels.items():
        if c in full and c in preds:
            full[c] = pd.Categorical(full[c].astype(str), categories=levels)
    mode = resolve_la_mode(la, las)
    if mode.kind == "own_la":
        raise ValueError(
            "conditional_effects: la='own_la' needs each row's LA; use 'these_las' with las=[...]"
        )
    p = fit.predict(full, la=mode, max_draws=max_draws, seed=seed)
    rows = grid.reset_index(drop=True)
    if mode.kind == "these_las":
        rows = pd.concat([rows.assign(**{la_factor(fit): c}) for c in mode.las], ignore_index=True)
    rows["la_mode"] = mode.kind
    out = pd.concat([rows, summarise_probabilities(np.asarray(p.values), prob)], axis=1)
    return stamp(
        out,
        fit,
        describe_interval("eti", prob),
        moderator=moderator,
        by=by,
        held=held,
        range=range_note,
        groups=mode.describe(),
        la_mode=mode.describe(),
    )
