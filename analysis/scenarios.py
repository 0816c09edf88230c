"""Who gains, who loses: shift area factors for chosen LAs and predict the change by subgroup.

A scenario moves one or more area-level predictors (e.g. the volunteering rate up by 5
percentage points) for the people of chosen LAs, keeps everything else as observed, and
compares each person's predicted probability of each wellbeing outcome under the
scenario with the observed situation, draw by draw (LA effects included, so interactions
such as urban x turnout and the LA's own varying slopes act). Changes are averaged within
subgroups (age 50+ or not, income band, sociability, urban/rural) and reported as
percentage points with 95% equal-tailed intervals and the probability that the change is
positive. This is a model-based "what if" on cross-sectional associations, not a causal
forecast; the report and the table say so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.summaries.intervals import DEFAULT_PROB, interval_columns
from data.errors import DataError
from models.la_modes import LaMode

PROB = DEFAULT_PROB
CHANGE_LOW, CHANGE_HIGH = interval_columns("eti", PROB, "change_pp_")
CAVEAT = (
    "Model-based what-if on cross-sectional associations: it assumes the fitted associations would "
    "hold if the area factor changed, which the data cannot show."
)

#: Subgroups known by name (any other table column works too).
SUBGROUPS = ("all", "age50", "income_band", "sociability_band", "urban")
COLUMNS = [
    "subgroup",
    "level",
    "n",
    "baseline_pct",
    "change_pp_mean",
    "change_pp_median",
    CHANGE_LOW,
    CHANGE_HIGH,
    "p_positive",
    "suppressed",
]
_ORDER = {
    "age50": ["under 50", "50 and over"],
    "income_band": ["low", "middle", "high"],
    "sociability_band": ["less sociable", "more sociable"],
    "urban": ["rural", "urban"],
}


@dataclass(frozen=True)
class Shift:
    """One area factor moved by ``delta`` in ``units`` ("raw" units of ``<column>_raw``, or "sd")."""

    column: str
    delta: float
    units: str = "raw"

    @classmethod
    def parse(cls, text: str) -> Shift:
        """``"area_volunteering=+0.05"`` (raw units) or ``"area_volunteering=+0.5sd"``."""
        m = re.fullmatch(r"\s*(\w+)\s*=\s*([+-]?\d*\.?\d+(?:[eE][+-]?\d+)?)\s*(sd)?\s*", text)
        if not m:
            raise ValueError(f"cannot read shift {text!r}: write column=+0.05 (raw units) or column=+0.5sd")
        return cls(m.group(1), float(m.group(2)), "sd" if m.group(3) else "raw")

    def describe(self, table: pd.DataFrame | None = None) -> str:
        if self.units == "sd":
            return f"{self.column} {self.delta:+g} SD"
        return f"{self.column} {self.delta:+g} (raw units of {self.column}_raw)"


def sd_delta(shift: Shift, table: pd.DataFrame) -> float:
    """The shift in the model's units (SD of the standardised column)."""
    if shift.column not in table:
        raise DataError(f"scenario: column {shift.column!r} is not in the analysis table")
    if shift.units == "sd":
        return shift.delta
    raw = f"{shift.column}_raw"
    if raw not in table:
        raise DataError(
            f"scenario: {shift.column!r} has no raw column {raw!r} to convert {shift.delta:+g} raw units; "
            "give the shift in SD units instead (e.g. =+0.5sd)"
        )
    ok = table[[shift.column, raw]].dropna()
    z_sd, raw_sd = float(ok[shift.column].std()), float(ok[raw].std())
    if not raw_sd > 0:
        raise DataError(f"scenario: {raw!r} is constant; cannot convert a raw shift")
    return shift.delta * z_sd / raw_sd


def subgroup_labels(table: pd.DataFrame, name: str) -> pd.Series:
    """Subgroup label of every row for a subgroup name (see `SUBGROUPS`) or any column."""
    if name == "all":
        return pd.Series("everyone", index=table.index)
    if name == "age50":
        return table["age50"].map({0: "under 50", 1: "50 and over"})
    if name == "urban":
        return table["urban"].map({0: "rural", 1: "urban"})
    if name == "income_band":
        cuts = table["log_income"].quantile([1 / 3, 2 / 3]).to_numpy()
        return pd.cut(
            table["log_income"], [-np.inf, cuts[0], cuts[1], np.inf], labels=["low", "middle", "high"]
        ).astype(object)
    if name == "sociability_band":
        med = table["sociability"].median()
        return pd.Series(
            np.where(table["sociability"] > med, "more sociable", "less sociable"), index=table.index
        )
    if name in table:
        return table[name].astype(object)
    raise DataError(f"scenario: unknown subgroup {name!r}; use one of {', '.join(SUBGROUPS)} or a column")


def subgroup_levels(name: str, labels: Iterable[Any]) -> list[Any]:
    """The levels present in ``labels`` in the subgroup's reading order (the "gap" row is the
    last level minus the first): the known order of `SUBGROUPS`, else sorted by text."""
    values = np.asarray(list(labels), dtype=object)
    present = list(pd.unique(values[pd.notna(values)]))
    order = _ORDER.get(name, sorted(map(str, present)))
    return sorted(present, key=lambda v: order.index(str(v)) if str(v) in order else len(order))


def _model_columns(fit: Any) -> set[str]:
    """Data columns of the fixed part of a fit (parts of interactions included)."""
    return set(fit.md.fixed_columns)


def _model_rows(fit: Any, table: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` the model can use: the fit's own complete-case rule."""
    return table[fit.md.complete_rows(table)]


def scenario(
    fit: Any,
    table: pd.DataFrame,
    shifts: Sequence[Shift | str],
    *,
    las: Iterable[str] | None = None,
    by: Sequence[str] = SUBGROUPS,
    max_draws: int = 1000,
    min_cell: int = 0,
    name: str | None = None,
    la: str = "own_la",
) -> pd.DataFrame:
    """Predicted change in one outcome, by subgroup, when area factors are shifted.

    Parameters
    ----------
    fit : models.Fit
        A fit whose formula contains the shifted columns (others are not touched).
    table : pandas.DataFrame
        The analysis table the fit was made from (the people the scenario applies to are
        its complete cases for the fit's columns, in ``las``).
    shifts : sequence of Shift or str
        E.g. ``["area_volunteering=+0.05"]`` (raw units: the volunteering rate is a proportion,
        so +0.05 is 5 percentage points) or ``"area_turnout=+1sd"``.
    las : iterable of str, optional
        LA codes the scenario applies to (default: every LA).
    by : sequence of str
        Subgroups (`SUBGROUPS` or any table column); ``"all"`` is everyone.
    max_draws : int
        Posterior draws used.
    min_cell : int
        Suppress subgroup cells with fewer people (use the disclosure threshold on real data).
    name : str, optional
        Model name for the table.
    la : {"own_la", "average_la", "marginal", "new_la"}
        Which LA effects the people are predicted with (`models.la_modes`): default each
        person's own LA (its fitted effect). ``these_las`` is refused: choose the people's
        LAs with ``las``.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``outcome``, ``subgroup``, ``level``, ``n``, ``baseline_pct`` (mean predicted
        probability now, %), ``change_pp_mean``, ``change_pp_median``, ``change_pp_eti95_low``,
        ``change_pp_eti95_high`` (percentage points, 95% equal-tailed interval) and ``p_positive``.
        For each subgroup with two or more levels, a ``gap: <last> minus <first>`` row gives the
        difference in change between its last and first level (who gains more), with its
        interval and the probability that the last level gains more.
    """
    shifts = [Shift.parse(s) if isinstance(s, str) else s for s in shifts]
    used = _model_columns(fit)
    absent = [s.column for s in shifts if s.column not in used]
    if absent:
        raise DataError(f"scenario: {', '.join(absent)} not in the model {fit.md.formula!r}")
    rows = _model_rows(fit, table)
    if las is not None:
        las = list(las)
        unknown = sorted(set(las) - set(table["lad"]))
        if unknown:
            raise DataError(f"scenario: LA code(s) {', '.join(unknown[:5])} are not in the data")
        rows = rows[rows["lad"].isin(las)]
    if rows.empty:
        raise DataError("scenario: no complete rows for this model in the chosen LAs")
    mode = LaMode.parse(la)
    if mode.kind == "these_las":
        raise DataError("scenario: la='these_las' is not a scenario mode; choose the LAs with las=[...]")
    shifted = rows.copy()
    for s in shifts:
        shifted[s.column] = shifted[s.column] + sd_delta(s, table)
    with np.errstate(over="ignore"):
        p0 = np.asarray(fit.predict(rows, la=mode, max_draws=max_draws, seed=0))
        p1 = np.asarray(fit.predict(shifted, la=mode, max_draws=max_draws, seed=0))
    diff = (p1 - p0) * 100
    out = []
    for sub in by:
        labels = subgroup_labels(rows, sub).to_numpy()
        levels = subgroup_levels(sub, labels)
        changes: dict[str, np.ndarray] = {}
        for level in levels:
            m = labels == level
            n = int(m.sum())
            row: dict[str, Any] = {"subgroup": sub, "level": str(level), "n": n}
            if n < min_cell:
                row["suppressed"] = f"fewer than {min_cell} people"
                out.append(row)
                continue
            changes[str(level)] = d = diff[:, m].mean(axis=1)
            row["baseline_pct"] = float(p0[:, m].mean() * 100)
            row.update(_change_summary(d))
            out.append(row)
        if len(levels) >= 2 and str(levels[0]) in changes and str(levels[-1]) in changes:
            first, last = str(levels[0]), str(levels[-1])
            row = {"subgroup": sub, "level": f"gap: {last} minus {first}", "n": np.nan}
            row.update(_change_summary(changes[last] - changes[first]))
            out.append(row)
    result = pd.DataFrame(out).reindex(columns=COLUMNS)
    result.insert(0, "outcome", fit.md.response)
    result.insert(0, "model", name or fit.md.response)
    result.insert(2, "la_mode", mode.kind)
    result.attrs["la_mode"] = mode.describe()
    result.attrs["scenario"] = "; ".join(s.describe() for s in shifts)
    result.attrs["interval"] = "95% equal-tailed posterior interval of the change (percentage points)"
    result.attrs["caveat"] = CAVEAT
    return result


def _change_summary(d: np.ndarray) -> dict[str, float]:
    lo, med, hi = np.quantile(d, [(1 - PROB) / 2, 0.5, (1 + PROB) / 2])
    return {
        "change_pp_mean": float(d.mean()),
        "change_pp_median": float(med),
        CHANGE_LOW: float(lo),
        CHANGE_HIGH: float(hi),
        "p_positive": float((d > 0).mean()),
    }


def scenario_table(
    fits: Mapping[str, Any],
    table: pd.DataFrame,
    shifts: Sequence[Shift | str],
    **kwargs: Any,
) -> pd.DataFrame:
    """`scenario` for every fit that contains all shifted columns (others are skipped and listed).

    Returns
    -------
    pandas.DataFrame
        The rows of every applicable fit; ``attrs["skipped"]`` names fits without the columns.
    """
    shifts = [Shift.parse(s) if isinstance(s, str) else s for s in shifts]
    parts, skipped = [], []
    for name, f in fits.items():
        if all(s.column in _model_columns(f) for s in shifts):
            parts.append(scenario(f, table, shifts, name=name, **kwargs))
        else:
            skipped.append(name)
    if not parts:
        raise DataError(
            f"scenario: no model contains {', '.join(s.column for s in shifts)}; models: {', '.join(fits)}"
        )
    out = pd.concat(parts, ignore_index=True)
    out.attrs.update(parts[0].attrs)
    out.attrs["skipped"] = skipped
    return out


def scenario_plot(
    result: pd.DataFrame, path: str | Path, *, synthetic: bool, title: str | None = None
) -> Path:
    """Dot-and-interval figure of a scenario table: one panel per model, one row per subgroup level."""
    from analysis.figures import figure_title, new_figure, save

    res = result.dropna(subset=["change_pp_mean"]) if "change_pp_mean" in result else result.iloc[0:0]
    models = list(dict.fromkeys(res["model"]))
    if not models:
        raise ValueError("nothing to plot: every cell is suppressed or the table is empty")
    n_rows = max(len(res[res.model == m]) for m in models)
    fig = new_figure(5.5 * len(models) + 2.5, 0.42 * n_rows + 2.2)
    axes = fig.subplots(1, len(models), sharey=True, squeeze=False)[0]
    for ax, m in zip(axes, models, strict=True):
        t = res[res.model == m].reset_index(drop=True)
        y = np.arange(len(t))
        colours = np.where(t[CHANGE_LOW] > 0, "#1a7f37", np.where(t[CHANGE_HIGH] < 0, "#b42318", "#6b6b6b"))
        ax.hlines(y, t[CHANGE_LOW], t[CHANGE_HIGH], colors=colours, linewidth=3)
        ax.scatter(t.change_pp_median, y, color=colours, zorder=3)
        ax.axvline(0, color="#444444", linestyle="--", linewidth=1)
        ax.set_yticks(y, [f"{a}: {b}" for a, b in zip(t.subgroup, t.level, strict=True)], fontsize=11)
        ax.invert_yaxis()
        ax.set_title(f"{m}\n({t.outcome.iloc[0]})", fontsize=12)
        ax.set_xlabel("change, percentage points (95% ETI)", fontsize=11)
        ax.grid(True, axis="x", color="#dddddd")
    scen = result.attrs.get("scenario", "")
    mode = result.attrs.get("la_mode")
    figure_title(fig, title or f"Who gains, who loses: {scen}" + (f" [{mode}]" if mode else ""), synthetic)
    return save(fig, path)
