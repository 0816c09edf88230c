"""Matplotlib figures for decision makers: large fonts, labelled axes with their scale, and
titles that say which interval is shown. Figures are drawn on the Agg canvas (no pyplot, no
display), saved as PNG at 120 dpi, and the path is returned.

Every function takes ``synthetic``: when True the title says "SYNTHETIC DATA" and a red
footnote says the numbers are not real survey results.

Figures: `forest_plot` (fixed-effect odds ratios), `caterpillar_plot` (ranked level
effects; all levels as a band plus the top/bottom ones named when there are many),
`conditional_effects_plot`, `shrinkage_plot`, `calibration_figure`/`calibration_plot`,
`varying_slopes_plot`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

__all__ = [
    "DPI",
    "calibration_figure",
    "calibration_plot",
    "caterpillar_plot",
    "conditional_effects_plot",
    "forest_plot",
    "save",
    "shrinkage_plot",
    "varying_slopes_plot",
]

DPI = 120
SYNTHETIC_NOTE = "SYNTHETIC DATA - not real survey results"
_RC = {"title": 15, "label": 13, "tick": 12, "small": 10.5}
_POINT = "#1f4e79"
_BAND = "#9ecae1"
_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


# --------------------------------------------------------------------------- helpers


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_title(fig: Figure, text: str, synthetic: bool) -> None:
    if synthetic:
        text = f"SYNTHETIC DATA - {text}"
        # supxlabel takes part in the constrained layout, so the note never overlaps an axis label
        fig.supxlabel(SYNTHETIC_NOTE, color="#b00000", fontsize=_RC["small"], x=0.01, ha="left")
    width = int(fig.get_figwidth() * 72 / (_RC["title"] * 0.62))  # characters that fit on one line
    fig.suptitle(textwrap.fill(text, width), fontsize=_RC["title"], fontweight="bold")


def save(fig: Figure, path: str | Path) -> Path:
    """Save a figure as PNG at `DPI` and return the path (parents are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def _style(ax: Axes) -> None:
    ax.tick_params(labelsize=_RC["tick"])
    ax.grid(True, axis="x", color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


_OR_TICKS = (0.02, 0.05, 0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 10, 20, 50)
_COUNT_TICKS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)


def _nice_ticks(lo: float, hi: float, candidates: tuple[float, ...], keep: float | None = 1.0) -> list[float]:
    """Round-number ticks within [lo, hi]: at most 9, always ``keep`` when in range, at least 3."""
    ticks = [t for t in candidates if lo <= t <= hi]
    while len(ticks) > 9:
        ticks = ticks[::2]
        if keep is not None and lo <= keep <= hi and keep not in ticks:
            ticks = sorted({*ticks, keep})
    if len(ticks) < 3 and lo > 0:
        ticks = sorted({float(f"{v:.2g}") for v in np.geomspace(lo, hi, 5)} | set(ticks))
    return ticks


def or_axis(ax: Axes, axis: str = "x") -> None:
    """Log scale with plain-number ticks (0.5, 0.8, 1, 1.25, 2) for odds ratios; line at 1.

    Call after the data are drawn (the ticks are chosen from the data limits).
    """
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    if axis == "x":
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ax.xaxis.set_major_locator(FixedLocator(_nice_ticks(lo, hi, _OR_TICKS)))
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.axvline(1.0, color="#444444", linewidth=1.2, linestyle="--", zorder=1)
    else:
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        ax.yaxis.set_major_locator(FixedLocator(_nice_ticks(lo, hi, _OR_TICKS)))
        ax.yaxis.set_major_formatter(fmt)
        ax.yaxis.set_minor_locator(NullLocator())
        ax.axhline(1.0, color="#444444", linewidth=1.2, linestyle="--", zorder=1)
        ax.grid(True, axis="y", color="#dddddd", linewidth=0.8)


def _interval_cols(table: pd.DataFrame, prefix: str, kind: str = "eti") -> tuple[str, str, str]:
    """Find ``<prefix><kind><p>_low/high`` in a table; return (low, high, 'p%')."""
    for c in table.columns:
        if c.startswith(f"{prefix}{kind}") and c.endswith("_low"):
            tag = c[len(prefix) + len(kind) : -len("_low")]
            try:
                float(tag)
            except ValueError:
                continue
            return c, f"{prefix}{kind}{tag}_high", f"{tag}%"
    raise ValueError(f"table has no {prefix}{kind}<p>_low column: {list(table.columns)}")


_KIND_TEXT = {"eti": "equal-tailed interval", "hdi": "highest-density interval"}


# --------------------------------------------------------------------------- forest plot


def forest_plot(
    fixed: pd.DataFrame,
    path: str | Path,
    *,
    synthetic: bool,
    kind: str = "eti",
    title: str | None = None,
    include_intercept: bool = False,
) -> Path:
    """Forest plot of fixed-effect odds ratios (log scale) from `summaries.fixed_effects`.

    Parameters
    ----------
    fixed : pandas.DataFrame
        Output of `analysis.summaries.fixed_effects`.
    path : path
        PNG file to write.
    synthetic : bool
        Mark as synthetic data.
    kind : {"eti", "hdi"}
        Interval shown.
    title : str, optional
        First part of the title (the interval is always added).
    include_intercept : bool
        Also show the intercept (baseline odds).

    Returns
    -------
    pathlib.Path
    """
    t = fixed if include_intercept else fixed[fixed["term"] != "Intercept"]
    t = t.iloc[::-1].reset_index(drop=True)
    lo, hi, pct = _interval_cols(t, "or_", kind)
    fig = new_figure(10, max(3.0, 0.5 * len(t) + 1.8))
    ax = fig.add_subplot()
    y = np.arange(len(t))
    ax.hlines(y, t[lo], t[hi], color=_POINT, linewidth=3)
    ax.plot(t["or_median"], y, "o", color=_POINT, markersize=8, zorder=3)
    ax.set_yticks(y, t["term"], fontsize=_RC["tick"])
    ax.set_xscale("log")
    ax.set_xlim(min(t[lo].min(), 0.9) / 1.15, max(t[hi].max(), 1.1) * 1.15)
    or_axis(ax)
    for yi, (m, a, b) in enumerate(zip(t["or_median"], t[lo], t[hi], strict=True)):
        ax.annotate(
            f"{m:.2f} [{a:.2f}, {b:.2f}]",
            (1.0, yi),
            xycoords=("axes fraction", "data"),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=_RC["small"],
        )
    ax.set_xlabel("Odds ratio (log scale; 1 = no association)", fontsize=_RC["label"])
    _style(ax)
    figure_title(
        fig,
        f"{title or 'Fixed effects'}: posterior median odds ratio and {pct} {_KIND_TEXT[kind]}",
        synthetic,
    )
    return save(fig, path)


# --------------------------------------------------------------------------- caterpillar


def _label(row: pd.Series, name_col: str | None) -> str:
    name = str(row[name_col]) if name_col and name_col in row else str(row["level"])
    return f"{name} (n={int(row['n'])})" if "n" in row else name


def _named_forest(ax: Axes, t: pd.DataFrame, lo: str, hi: str, mid: str, name_col: str | None) -> None:
    y = np.arange(len(t))[::-1]
    ax.hlines(y, t[lo], t[hi], color=_POINT, linewidth=2.2)
    ax.plot(t[mid], y, "o", color=_POINT, markersize=6, zorder=3)
    ax.set_yticks(y, [_label(r, name_col) for _, r in t.iterrows()], fontsize=_RC["small"])
    _style(ax)


def caterpillar_plot(
    effects: pd.DataFrame,
    path: str | Path,
    *,
    synthetic: bool,
    label_n: int = 10,
    max_named: int = 40,
    title: str | None = None,
    value: str = "or",
    unit: str = "LA",
    xlabel: str | None = None,
) -> Path:
    """Ranked level effects (odds ratios against the average level) from `summaries.group_effects`.

    With at most ``max_named`` levels every level is named; with more, the left panel shows
    all levels as a ranked band (median and interval) and the right panel names the
    ``label_n`` highest and lowest.

    Parameters
    ----------
    effects : pandas.DataFrame
        Output of `analysis.summaries.group_effects` (after disclosure control).
    path : path
        PNG file.
    synthetic : bool
        Mark as synthetic data.
    label_n : int
        Levels named at each end when there are many.
    max_named : int
        Name every level up to this many.
    title : str, optional
        First part of the title.
    value : {"or", "log_odds"}
        Scale.
    unit : str
        What a level is called ("LA").
    xlabel : str, optional
        Axis label of the effect (default: odds ratio vs the average level).

    Returns
    -------
    pathlib.Path
    """
    prefix = "or_" if value == "or" else "log_odds_"
    lo, hi, pct = _interval_cols(effects, prefix)
    mid = f"{prefix}median"
    name_col = "name" if "name" in effects else None
    t = effects.sort_values(mid, ascending=False).reset_index(drop=True)
    n = len(t)
    if xlabel is None:
        xlabel = (
            f"Odds ratio vs the average {unit} (log scale)"
            if value == "or"
            else f"Log-odds vs average {unit}"
        )
    head = f"{title or unit + ' effects'}: posterior median and {pct} equal-tailed interval"
    if n == 0:
        fig = new_figure(9, 3)
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, f"No {unit}s to show (all suppressed or none fitted)", ha="center", fontsize=13)
        ax.set_axis_off()
        figure_title(fig, head, synthetic)
        return save(fig, path)
    if n <= max_named:
        fig = new_figure(10, max(3.5, 0.3 * n + 1.8))
        ax = fig.add_subplot()
        _named_forest(ax, t, lo, hi, mid, name_col)
        if value == "or":
            or_axis(ax)
        else:
            ax.axvline(0, color="#444444", linestyle="--")
        ax.set_xlabel(xlabel, fontsize=_RC["label"])
        figure_title(fig, f"{head} ({n} {unit}s)", synthetic)
        return save(fig, path)

    k = min(label_n, n // 2)
    fig = new_figure(13, 8)
    gs = fig.add_gridspec(1, 2, width_ratios=[1.1, 1])
    ax = fig.add_subplot(gs[0])
    rank = np.arange(1, n + 1)
    ax.fill_between(rank, t[lo], t[hi], color=_BAND, alpha=0.8, linewidth=0, label=f"{pct} interval")
    ax.plot(rank, t[mid], color=_POINT, linewidth=1.8, label="posterior median")
    ax.axvspan(0.5, k + 0.5, color="#fde0c5", alpha=0.6, zorder=0)
    ax.axvspan(
        n - k + 0.5, n + 0.5, color="#fde0c5", alpha=0.6, zorder=0, label=f"named at right (top/bottom {k})"
    )
    if value == "or":
        or_axis(ax, "y")
    else:
        ax.axhline(0, color="#444444", linestyle="--")
    ax.set_xlim(0.5, n + 0.5)
    ax.set_xlabel(f"{unit} rank (1 = highest)", fontsize=_RC["label"])
    ax.set_ylabel(xlabel, fontsize=_RC["label"])
    ax.set_title(f"All {n} {unit}s, ranked", fontsize=_RC["label"])
    ax.tick_params(labelsize=_RC["tick"])
    ax.legend(fontsize=_RC["small"], loc="upper right", frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    ax2 = fig.add_subplot(gs[1])
    sel = pd.concat([t.iloc[:k], t.iloc[-k:]], ignore_index=True)
    y = np.concatenate([np.arange(2 * k + 1, k + 1, -1), np.arange(k, 0, -1)]).astype(float)
    ax2.hlines(y, sel[lo], sel[hi], color=_POINT, linewidth=2.2)
    ax2.plot(sel[mid], y, "o", color=_POINT, markersize=6, zorder=3)
    ax2.set_yticks(y, [_label(r, name_col) for _, r in sel.iterrows()], fontsize=_RC["small"])
    ax2.axhline(k + 1, color="#999999", linewidth=0.8, linestyle=":")
    ax2.text(
        1.0,
        k + 1,
        f"  ... {n - 2 * k} {unit}s in between  ",
        transform=ax2.get_yaxis_transform(),
        ha="right",
        va="center",
        fontsize=_RC["small"],
        color="#555555",
        bbox={"facecolor": "white", "edgecolor": "none"},
    )
    if value == "or":
        or_axis(ax2)
    else:
        ax2.axvline(0, color="#444444", linestyle="--")
    ax2.set_xlabel(xlabel, fontsize=_RC["label"])
    ax2.set_title(f"Highest and lowest {k}", fontsize=_RC["label"])
    _style(ax2)
    figure_title(fig, head, synthetic)
    return save(fig, path)


def varying_slopes_plot(
    slopes: pd.DataFrame,
    path: str | Path,
    *,
    synthetic: bool,
    term: str | None = None,
    label_n: int = 10,
    unit: str = "LA",
) -> Path:
    """Each level's total slope of a varying term, as odds ratios per unit (ranked).

    Parameters
    ----------
    slopes : pandas.DataFrame
        `VaryingSlopes.slopes` from `analysis.summaries.varying_slopes`.
    path : path
        PNG file.
    synthetic : bool
        Mark as synthetic data.
    term : str, optional
        Which slope (default the first).
    label_n : int
        Levels named at each end when there are many.
    unit : str
        What a level is called.

    Returns
    -------
    pathlib.Path
    """
    term = term or str(slopes["term"].iloc[0])
    t = slopes[slopes["term"] == term].copy()
    lo, hi, _ = _interval_cols(t, "")
    t["or_median"] = np.exp(t["median"])
    t[lo.replace("eti", "or_eti", 1)] = np.exp(t[lo])
    t[hi.replace("eti", "or_eti", 1)] = np.exp(t[hi])
    return caterpillar_plot(
        t,
        path,
        synthetic=synthetic,
        label_n=label_n,
        title=f"Odds ratio per unit of {term}, by {unit}",
        unit=unit,
        xlabel=f"Odds ratio per unit of {term} (log scale)",
    )


# --------------------------------------------------------------------------- conditional effects


def conditional_effects_plot(
    table: pd.DataFrame,
    path: str | Path,
    *,
    synthetic: bool,
    title: str | None = None,
    outcome: str = "outcome",
) -> Path:
    """Predicted probability across a moderator, one line and band per value of ``by``.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of `analysis.summaries.conditional_effects`.
    path : path
        PNG file.
    synthetic : bool
        Mark as synthetic data.
    title : str, optional
        First part of the title.
    outcome : str
        Outcome name for the y-axis label.

    Returns
    -------
    pathlib.Path
    """
    moderator, by = table.attrs.get("moderator"), table.attrs.get("by")
    moderator = moderator or table.columns[0]
    lo, hi, pct = _interval_cols(table, "p_")
    fig = new_figure(10, 6)
    ax = fig.add_subplot()
    groups = [(None, table)] if not by else list(table.groupby(by, sort=False, observed=True))
    for i, (val, g) in enumerate(groups):
        c = _COLOURS[i % len(_COLOURS)]
        label = (
            None if val is None else f"{by} = {val:g}" if isinstance(val, float | int) else f"{by} = {val}"
        )
        ax.fill_between(g[moderator], g[lo], g[hi], color=c, alpha=0.18, linewidth=0)
        ax.plot(g[moderator], g["p_mean"], color=c, linewidth=2.6, label=label)
    ax.set_xlabel(f"{moderator} ({table.attrs.get('range', '')})", fontsize=_RC["label"])
    ax.set_ylabel(f"Predicted probability of {outcome}", fontsize=_RC["label"])
    ax.set_ylim(0, 1)
    ax.grid(True, color="#eeeeee")
    ax.tick_params(labelsize=_RC["tick"])
    if by:
        ax.legend(fontsize=_RC["tick"], frameon=False)
    held = table.attrs.get("held") or {}
    la_mode = table.attrs.get("la_mode", "average LA: LA effects at zero")
    note = f"Other predictors at their means (reference level if categorical); LA mode: {la_mode}."
    if held:
        shown = ", ".join(
            f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(held.items())[:6]
        )
        note += f" Held: {shown}{' ...' if len(held) > 6 else ''}"
    ax.set_title(note, fontsize=_RC["small"], color="#444444", wrap=True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    figure_title(
        fig,
        f"{title or f'{moderator} x {by}'}: posterior mean and {pct} equal-tailed band "
        f"[{la_mode.split(':')[0]}]",
        synthetic,
    )
    return save(fig, path)


# --------------------------------------------------------------------------- shrinkage


def shrinkage_plot(
    table: pd.DataFrame,
    path: str | Path,
    *,
    synthetic: bool,
    unit: str = "LA",
) -> Path:
    """No-pooling, lme4 and posterior estimates of each level against its sample size.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of `analysis.compare.shrinkage_table` (after disclosure control).
    path : path
        PNG file.
    synthetic : bool
        Mark as synthetic data.
    unit : str
        What a level is called.

    Returns
    -------
    pathlib.Path
    """
    fig = new_figure(11, 6.5)
    ax = fig.add_subplot()
    n = table["n"].to_numpy(dtype=float)
    jitter = np.exp(np.random.default_rng(0).uniform(-0.04, 0.04, len(n)))
    x = n * jitter
    ax.vlines(x, table["no_pooling"], table["posterior_mean"], color="#bbbbbb", linewidth=0.8, zorder=1)
    ax.scatter(
        x,
        table["no_pooling"],
        s=26,
        color="#ff7f0e",
        label=f"no pooling (glm with the {unit} as a fixed factor, same covariates)",
        zorder=2,
    )
    if "glmer" in table and table["glmer"].notna().any():
        ax.scatter(
            x,
            table["glmer"],
            s=30,
            marker="x",
            color="#2ca02c",
            label="lme4 glmer (conditional mode)",
            zorder=3,
        )
    ax.scatter(x, table["posterior_mean"], s=26, color=_POINT, label="Bayesian posterior mean", zorder=4)
    if "population" in table:
        ax.scatter(
            x,
            table["population"],
            s=10,
            marker="_",
            color="#444444",
            label="fixed part alone (no own effect)",
        )
    if "estimable" in table and not table["estimable"].all():
        # all-0 or all-1 levels: no finite no-pooling estimate; drawn at the edge, hollow
        lo, hi = ax.get_ylim()
        bad = ~table["estimable"].to_numpy(dtype=bool)
        edge = np.where(table["raw_rate"].to_numpy()[bad] >= 0.5, hi, lo)
        ax.scatter(
            x[bad],
            edge,
            s=40,
            facecolors="none",
            edgecolors="#ff7f0e",
            label=f"no finite no-pooling estimate (all 0 or all 1): {int(bad.sum())} {unit}s",
            zorder=2,
            clip_on=False,
        )
        ax.set_ylim(lo, hi)
    ax.set_xscale("log")
    ax.set_xlim(n.min() / 1.2, n.max() * 1.2)
    ax.xaxis.set_major_locator(FixedLocator(_nice_ticks(n.min() / 1.2, n.max() * 1.2, _COUNT_TICKS, None)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(f"Respondents in the {unit} (log scale)", fontsize=_RC["label"])
    ax.set_ylabel(f"Mean log-odds of the {unit}'s respondents", fontsize=_RC["label"])
    ax.tick_params(labelsize=_RC["tick"])
    ax.grid(True, color="#eeeeee")
    ax.legend(fontsize=_RC["small"], frameon=False, loc="best")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    figure_title(fig, f"Shrinkage: small {unit}s are pulled towards the average (point estimates)", synthetic)
    return save(fig, path)


# --------------------------------------------------------------------------- calibration


def calibration_figure(
    curve: pd.DataFrame, *, prob: float = 0.95, synthetic: bool = False, title: str | None = None
) -> Figure:
    """PAV calibration plot from `Calibration.curve` (predicted vs calibrated event probability).

    Parameters
    ----------
    curve : pandas.DataFrame
        ``predicted``, ``cep``, ``band_low``, ``band_high``.
    prob : float
        Probability of the consistency band (for the labels).
    synthetic : bool
        Mark as synthetic data.
    title : str, optional
        First part of the title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = new_figure(8, 7)
    ax = fig.add_subplot()
    step = max(1, len(curve) // 4000)
    c = curve.iloc[::step]
    ax.fill_between(
        c["predicted"],
        c["band_low"],
        c["band_high"],
        color=_BAND,
        alpha=0.7,
        linewidth=0,
        label=f"{100 * prob:g}% consistency band (if the model were true)",
    )
    ax.plot(c["predicted"], c["cep"], color=_POINT, linewidth=2.4, label="PAV-calibrated observed rate")
    ax.plot([0, 1], [0, 1], color="#444444", linestyle="--", linewidth=1.2, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("Predicted probability (posterior mean)", fontsize=_RC["label"])
    ax.set_ylabel("Calibrated event probability (observed)", fontsize=_RC["label"])
    ax.tick_params(labelsize=_RC["tick"])
    ax.grid(True, color="#eeeeee")
    ax.legend(fontsize=_RC["small"], frameon=False, loc="upper left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    figure_title(fig, f"{title or 'Calibration'} (PAV, {100 * prob:g}% band)", synthetic)
    return fig


def calibration_plot(cal, path: str | Path, *, synthetic: bool, title: str | None = None) -> Path:
    """Save the calibration plot of a `summaries.Calibration`; return the path."""
    fig = calibration_figure(cal.curve, prob=cal.prob, synthetic=synthetic, title=title)
    return save(fig, path)
