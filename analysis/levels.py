"""The levels-model figure, drawn from fitted models.

The study's conceptual model: objective community factors (area volunteering,
unemployment, sociability, ...) -> the "links" (belonging, loneliness, valuing local
friendships, access to local services) -> individual and community subjective wellbeing.
Each arrow carries the posterior odds ratio (median) and 95% equal-tailed interval of the
coefficient in the fitted model of the arrow's target: area -> link arrows from the link
models, link -> wellbeing arrows from the wellbeing models. A second panel shows the
direct associations of the area factors with each wellbeing outcome. Nothing is drawn by
hand: an arrow exists only where a fitted model estimates it, and an arrow from a fit
that did not converge is drawn dotted and labelled so.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from analysis.figures import figure_title, new_figure, or_axis, save
from analysis.summaries import fixed_effects, interval_columns

LINKS = ("belonging", "lonely", "local_friends")
UNMEASURED_LINKS = ("access to local services\n(not measured in this cohort)",)
OUTCOMES = ("life_satisfied", "mental_wellbeing_high", "community_abs")
AREA_ORDER = (
    "area_volunteering",
    "area_unemployment",
    "area_sociability",
    "area_turnout",
    "area_income",
    "area_walkability",
    "area_turnover",
)
_POS, _NEG, _NULL = "#1a7f37", "#b42318", "#8c8c8c"


@dataclass(frozen=True)
class Arrow:
    """One estimated arrow: source term -> target outcome, from one fitted model."""

    source: str
    target: str
    model: str
    median: float
    low: float
    high: float
    converged: bool

    @property
    def colour(self) -> str:
        if not self.converged:
            return _NULL
        return _POS if self.low > 1 else _NEG if self.high < 1 else _NULL

    @property
    def label(self) -> str:
        text = f"{self.median:.2f} ({self.low:.2f}-{self.high:.2f})"
        return text if self.converged else f"{text} NOT CONVERGED"


def _fits_by_outcome(results: Mapping[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    by: dict[str, list[tuple[str, Any]]] = {}
    for name, r in results.items():
        f = getattr(r, "fit", r)
        by.setdefault(f.md.response, []).append((name, f))
    return by


def level_arrows(results: Mapping[str, Any], prob: float = 0.95) -> list[Arrow]:
    """Every arrow of the levels model that some fitted model estimates.

    For each target outcome the first fit of it (in the given order) supplies every arrow
    into that target, so all arrows into one box come from one model.

    Parameters
    ----------
    results : mapping
        Name -> `analysis.catalogue.EntryResult` or `models.Fit`.
    prob : float
        Interval probability.

    Returns
    -------
    list of Arrow
    """
    arrows = []
    or_lo, or_hi = interval_columns("eti", prob, "or_")
    for target, fits in _fits_by_outcome(results).items():
        if target not in LINKS + OUTCOMES:
            continue
        sources = AREA_ORDER + (LINKS if target in OUTCOMES else ())
        name, f = fits[0]
        fe = fixed_effects(f, prob, quiet=True).set_index("term")
        for s in sources:
            if s in fe.index:
                row = fe.loc[s]
                arrows.append(
                    Arrow(s, target, name, row["or_median"], row[or_lo], row[or_hi], bool(f.converged))
                )
    return arrows


def _box(ax, x: float, y: float, text: str, *, colour: str = "#1f4e79", dashed: bool = False) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - 0.105, y - 0.045),
            0.21,
            0.09,
            boxstyle="round,pad=0.01",
            facecolor="white" if dashed else "#eaf1f8",
            edgecolor=colour,
            linestyle="--" if dashed else "-",
            linewidth=1.5,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=10.5, color="#333333" if dashed else "#111111")


def levels_figure(
    results: Mapping[str, Any],
    catalogue: Any,
    path: str | Path,
    *,
    synthetic: bool,
    prob: float = 0.95,
) -> Path:
    """Draw the levels model with posterior odds ratios on its arrows and save it as PNG.

    Parameters
    ----------
    results : mapping
        Name -> `analysis.catalogue.EntryResult` (or `models.Fit`): link models
        (outcome ``belonging``, ``lonely`` or ``local_friends``) and wellbeing models.
    catalogue : Catalogue or None
        For plain-language labels.
    path : path
        PNG file.
    synthetic : bool
        Mark the figure as synthetic data.
    prob : float
        Interval probability (default 0.95, equal-tailed).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        When the fits estimate no area -> link or link -> wellbeing arrow.
    """
    arrows = level_arrows(results, prob)
    path_arrows = [a for a in arrows if a.target in LINKS or a.source in LINKS]
    if not any(a.target in LINKS for a in arrows) or not any(a.source in LINKS for a in arrows):
        raise ValueError(
            "the levels figure needs at least one link model (belonging, lonely or local_friends as "
            "outcome) and one wellbeing model with a link as predictor"
        )

    def label(col: str) -> str:
        text = catalogue.label(col) if catalogue is not None else col.replace("_", " ")
        return "\n".join(_wrap(text, 22))

    areas = [a for a in AREA_ORDER if any(x.source == a and x.target in LINKS for x in arrows)]
    links = [lk for lk in LINKS if any(x.target == lk or x.source == lk for x in arrows)]
    outcomes = [o for o in OUTCOMES if any(x.target == o for x in arrows)]
    fig = new_figure(18, 10)
    fig.set_layout_engine("none")
    ax = fig.add_axes((0.01, 0.1, 0.63, 0.8))
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0, 1)
    ax.axis("off")

    def ys(n: int) -> list[float]:
        return list(np.linspace(0.88, 0.12, n)) if n > 1 else [0.5]

    pos: dict[str, tuple[float, float]] = {}
    for col, xs, names in ((0.1, areas, "area"), (0.5, links, "link"), (0.9, outcomes, "outcome")):
        extra = list(UNMEASURED_LINKS) if names == "link" else []
        for name, y in zip(xs + extra, ys(len(xs) + len(extra)), strict=True):
            pos[name] = (col, y)
            _box(ax, col, y, label(name) if name in xs else name, dashed=name in extra)
    for head, x in (("Objective community factors", 0.1), ("Links", 0.5), ("Subjective wellbeing", 0.9)):
        ax.text(max(x, 0.12), 0.97, head, ha="center", va="bottom", fontsize=12.5, fontweight="bold")

    by_source: dict[str, list[Arrow]] = {}
    for a in path_arrows:
        if a.source in pos and a.target in pos:
            by_source.setdefault(a.source, []).append(a)
    for group in by_source.values():
        for k, a in enumerate(sorted(group, key=lambda a: -pos[a.target][1])):
            (x0, y0), (x1, y1) = pos[a.source], pos[a.target]
            width = 1.0 + 10 * min(abs(np.log(a.median)), 0.6)
            ax.add_patch(
                FancyArrowPatch(
                    (x0 + 0.107, y0),
                    (x1 - 0.107, y1),
                    arrowstyle="-|>",
                    mutation_scale=14,
                    linewidth=width if a.converged else 1.2,
                    linestyle="-" if a.converged else ":",
                    color=a.colour,
                    alpha=0.8,
                )
            )
            t = 0.3 + 0.2 * (k % 3)
            lx, ly = x0 + 0.107 + t * (x1 - x0 - 0.214), y0 + t * (y1 - y0)
            ax.text(
                lx,
                ly,
                a.label,
                ha="center",
                va="center",
                fontsize=8.5,
                color=a.colour if a.converged else "#555555",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
            )
    caption = (
        f"Arrows: posterior odds ratio (median) and {round(prob * 100)}% equal-tailed interval, per 1 SD "
        "of an area factor or for having the link (0/1); green = interval above 1, red = below 1, "
        "grey = includes 1; width = size of the log odds ratio. Associations in cross-sectional data, "
        "not causal effects. Each box's incoming arrows come from one model of that box "
        "(the catalogue's first model of it)."
    )
    ax.text(
        0.0,
        -0.02,
        textwrap.fill(caption, 170),
        fontsize=10,
        color="#333333",
        va="top",
        transform=ax.transAxes,
    )

    ax2 = fig.add_axes((0.83, 0.12, 0.16, 0.74))
    direct = [a for a in arrows if a.target in OUTCOMES and a.source in AREA_ORDER]
    rows = sorted(direct, key=lambda a: (OUTCOMES.index(a.target), AREA_ORDER.index(a.source)))
    for i, a in enumerate(rows):
        ax2.plot(
            [a.low, a.high], [i, i], color=a.colour, linewidth=2.5, linestyle="-" if a.converged else ":"
        )
        ax2.plot([a.median], [i], "o", color=a.colour)
    ax2.set_yticks(range(len(rows)))
    ax2.set_yticklabels(
        [f"{label(a.source)} -> {_short(a.target)}".replace("\n", " ") for a in rows], fontsize=9
    )
    ax2.invert_yaxis()
    or_axis(ax2)
    ax2.set_xlabel(f"odds ratio ({round(prob * 100)}% ETI)", fontsize=11)
    ax2.set_title("Direct associations of area factors\nwith wellbeing (same models)", fontsize=12)
    ax2.grid(True, axis="x", color="#dddddd")
    figure_title(fig, "The levels model: community factors, links and wellbeing", synthetic)
    return save(fig, path)


def _short(outcome: str) -> str:
    return {
        "life_satisfied": "life sat.",
        "mental_wellbeing_high": "mental wb.",
        "community_abs": "community wb.",
    }.get(outcome, outcome)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width) or [text]
