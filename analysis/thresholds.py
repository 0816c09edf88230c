"""Threshold sensitivity: where the cut of an ordinal scale changes the answer.

The study cut each wellbeing scale in two (life satisfaction 1-7 at ``>= 6``, ...). For an
ordinal score and a model's right-hand side, `threshold_sensitivity` fits the binary
(logistic) model at every possible cut-off of the scale, ``score >= c``, and the cumulative
-logit model of the whole scale once, and sets each term's binary odds ratio at every
cut-off beside the ordinal (cumulative) odds ratio. Under proportional odds every binary OR
estimates the same number as the ordinal one; where they part, either the cut changes the
finding (a binary interval that excludes 1 at one cut-off and not at another, or on the
other side) or the proportional-odds assumption strains for that term.

`threshold_table` is the tidy table (one row per term, cut-off and model, odds ratios from
`summaries.fixed_effects` / `summaries.cumulative_odds_ratios`, intervals named by
`summaries.interval_columns`); `threshold_figure` draws it (binary ORs with intervals by
cut-off, the ordinal OR as a band).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.summaries import DEFAULT_PROB, cumulative_odds_ratios, fixed_effects, interval_columns
from models import Fit, fit

#: The synthetic cohort's (and UKHLS's) raw scales in the analysis table, with the study's cut.
SCALES = {
    "lifesat_score": ("life satisfaction (1-7)", 6),
    "ghq_score": ("GHQ-12 caseness score (0-12)", 4),
    "swemwbs": ("SWEMWBS (7-35)", 24),
}


@dataclass
class ThresholdSensitivity:
    """The fits and table of one threshold-sensitivity analysis.

    Attributes
    ----------
    score : str
        The ordinal score column.
    table : pandas.DataFrame
        `threshold_table`'s rows.
    ordinal : models.Fit
        The cumulative-logit fit of the whole scale.
    binary : dict
        The binary fit at each cut-off (``{c: Fit}``, the outcome ``score >= c``).
    study_cut : float or None
        The study's cut-off, marked in the figure.
    """

    score: str
    table: pd.DataFrame
    ordinal: Fit
    binary: dict[float, Fit] = field(default_factory=dict)
    study_cut: float | None = None


def threshold_sensitivity(
    data: pd.DataFrame,
    score: str,
    rhs: str,
    *,
    terms: Sequence[str] | None = None,
    cutoffs: Sequence[float] | None = None,
    min_share: float = 0.02,
    study_cut: float | None = None,
    prob: float = DEFAULT_PROB,
    fitted: Mapping[float, Fit] | None = None,
    **fit_kwargs,
) -> ThresholdSensitivity:
    """Fit the binary model at every cut-off of an ordinal score and the ordinal model once.

    Parameters
    ----------
    data : pandas.DataFrame
        The analysis table (any frame with ``score`` and the formula's columns).
    score : str
        A numeric ordinal score (e.g. ``"lifesat_score"``, 1-7).
    rhs : str
        The right-hand side, lme4 syntax, e.g. ``"belonging + log_income + (1 | lad)"``.
    terms : sequence of str, optional
        Terms to tabulate (default: every fixed term).
    cutoffs : sequence of float, optional
        Cut-offs ``c`` of the binary outcomes ``score >= c`` (default: every observed value
        above the lowest, keeping those with at least ``min_share`` of the rows on each side).
    min_share : float
        Smallest share of rows on either side of a default cut-off.
    study_cut : float, optional
        The study's cut-off (default: `SCALES`' for a known score).
    prob : float
        Interval probability.
    fitted : mapping of float to models.Fit, optional
        Binary fits already made at some cut-offs (e.g. a catalogue fit of the study's cut,
        same right-hand side, outcome ``score >= c`` on the same rows): used as they are, not
        refitted.
    **fit_kwargs
        Passed to every `models.fit` (seed, chains, draws, ...).

    Returns
    -------
    ThresholdSensitivity
    """
    if score not in data.columns:
        raise KeyError(f"score column {score!r} is not in the data")
    frame = data.copy()
    values = frame[score].dropna()
    if cutoffs is None:
        levels = np.sort(values.unique())
        cutoffs = [c for c in levels[1:] if min_share <= (values >= c).mean() <= 1 - min_share]
    if study_cut is None and score in SCALES:
        study_cut = SCALES[score][1]
    levels = np.sort(values.unique())
    frame["_ordinal_score"] = pd.Categorical(frame[score], categories=levels, ordered=True)
    ordinal = fit(f"_ordinal_score ~ {rhs}", frame, **fit_kwargs)
    binary: dict[float, Fit] = {}
    done = {float(c): f for c, f in (fitted or {}).items()}
    for c in cutoffs:
        if float(c) in done:
            binary[float(c)] = done[float(c)]
            continue
        frame["_above_cut"] = np.where(frame[score].isna(), np.nan, (frame[score] >= c).astype(float))
        binary[float(c)] = fit(f"_above_cut ~ {rhs}", frame, **fit_kwargs)
    table = threshold_table(ordinal, binary, score=score, terms=terms, prob=prob, study_cut=study_cut)
    return ThresholdSensitivity(score, table, ordinal, binary, study_cut)


def or_direction(low: float, high: float) -> str:
    """The direction an odds-ratio interval reads: ``"+"`` (above 1), ``"-"`` (below 1) or
    ``"0"`` (across 1: no clear association)."""
    return "+" if low > 1 else "-" if high < 1 else "0"


def threshold_table(
    ordinal: Fit,
    binary: dict[float, Fit],
    *,
    score: str = "score",
    terms: Sequence[str] | None = None,
    prob: float = DEFAULT_PROB,
    study_cut: float | None = None,
) -> pd.DataFrame:
    """One row per term and model: the ordinal OR, then the binary OR at each cut-off.

    Columns: ``term``, ``model`` (``"ordinal"`` or ``"binary"``), ``cutoff`` (``c`` of
    ``score >= c``; NaN for the ordinal row), ``share_above`` (rows at or above the cut),
    ``or_median``, the OR ETI columns, ``p_or_gt_1``, ``converged``, ``study_cut`` (the
    study's cut-off row), ``direction`` (``"+"``, ``"-"`` or ``"0"``: the interval above,
    below or across 1) and ``differs_from_ordinal`` (a binary row whose direction is not the
    ordinal one's: the cut changes the finding).
    """
    lo, hi = interval_columns("eti", prob, "or_")
    ords = cumulative_odds_ratios(ordinal, prob, quiet=True).set_index("term")
    wanted = list(terms) if terms is not None else list(ords.index)
    missing = [t for t in wanted if t not in ords.index]
    if missing:
        raise KeyError(f"terms {missing} are not fixed terms of {ordinal.md.formula!r}")
    rows = []

    def direction(r) -> str:
        return or_direction(r[lo], r[hi])

    for t in wanted:
        r = ords.loc[t]
        rows.append(
            {
                "term": t,
                "model": "ordinal",
                "cutoff": np.nan,
                "share_above": np.nan,
                "or_median": r["or_median"],
                lo: r[lo],
                hi: r[hi],
                "p_or_gt_1": r["p_or_gt_1"],
                "converged": ordinal.converged,
                "study_cut": False,
                "direction": direction(r),
            }
        )
    for c, f in binary.items():
        fe = fixed_effects(f, prob, quiet=True).set_index("term")
        share = float(np.mean(f.md.y))
        for t in wanted:
            r = fe.loc[t]
            rows.append(
                {
                    "term": t,
                    "model": "binary",
                    "cutoff": c,
                    "share_above": share,
                    "or_median": r["or_median"],
                    lo: r[lo],
                    hi: r[hi],
                    "p_or_gt_1": r["p_or_gt_1"],
                    "converged": f.converged,
                    "study_cut": study_cut is not None and c == study_cut,
                    "direction": direction(r),
                }
            )
    table = pd.DataFrame(rows)
    ordinal_dir = table[table["model"] == "ordinal"].set_index("term")["direction"]
    table["differs_from_ordinal"] = (table["model"] == "binary") & (
        table["direction"] != table["term"].map(ordinal_dir)
    )
    table.attrs.update({"score": score, "prob": prob, "interval": f"{prob:.0%} equal-tailed interval"})
    return table


def threshold_figure(table: pd.DataFrame, path: str | Path | None = None, *, title: str | None = None):
    """Binary ORs with intervals by cut-off, the ordinal OR as a band, one panel per term.

    Returns the matplotlib figure (saved to ``path`` when given). The study's cut-off is
    marked; a binary estimate whose direction differs from the ordinal one is drawn in red.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prob = table.attrs.get("prob", DEFAULT_PROB)
    lo, hi = interval_columns("eti", prob, "or_")
    terms = list(dict.fromkeys(table["term"]))
    ncol = min(3, len(terms))
    nrow = int(np.ceil(len(terms) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    for ax, term in zip(axes.ravel(), terms, strict=False):
        t = table[table["term"] == term]
        o = t[t["model"] == "ordinal"].iloc[0]
        b = t[t["model"] == "binary"].sort_values("cutoff")
        ax.axhspan(o[lo], o[hi], color="tab:blue", alpha=0.2, label=f"ordinal OR ({prob:.0%} ETI)")
        ax.axhline(o["or_median"], color="tab:blue", lw=1)
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        colours = np.where(b["differs_from_ordinal"], "tab:red", "black")
        for x, m, l_, h_, col in zip(b["cutoff"], b["or_median"], b[lo], b[hi], colours, strict=True):
            ax.errorbar(x, m, yerr=[[m - l_], [h_ - m]], fmt="o", color=col, ms=4, capsize=2)
        study = b[b["study_cut"]]
        if len(study):
            ax.axvline(study["cutoff"].iloc[0], color="tab:orange", lw=1, ls="--", label="study's cut-off")
        ax.set_yscale("log")
        ax.set_title(term, fontsize=10)
        ax.set_xlabel(f"binary outcome: {table.attrs.get('score', 'score')} >= cut-off")
        ax.set_ylabel("odds ratio")
    for ax in axes.ravel()[len(terms) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(title or "Binary odds ratio at each cut-off against the ordinal (cumulative) odds ratio")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig
