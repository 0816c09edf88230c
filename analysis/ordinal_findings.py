"""Does the ordinal model tell the same story as the binary one? Finding by finding.

The study cut life satisfaction (1-7) at ``>= 6`` and modelled the binary outcome. The main
job also fits the cumulative-logit (proportional-odds) twin of the whole scale, with the same
right-hand side (`analysis.thresholds.threshold_sensitivity`, which also fits the binary model
at every other cut-off). `ordinal_story` sets, for every claim of the catalogue entry, the
binary odds ratio (`summaries.fixed_effects` of the entry's fit) beside the cumulative odds
ratio (`summaries.cumulative_odds_ratios` of the twin) and says whether they tell the same
story: the same direction, with the interval excluding 1 in both or in neither
(`thresholds.or_direction`). A probability statement (``abs(a) > abs(b)``) tells the same
story when both posteriors give the same verdict (supported, inconclusive or opposite at the
interval probability). `ordinal_step` runs the whole step for the main job and returns an
`OrdinalSection` that `analysis.report.write_report` renders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.catalogue import Entry
from analysis.files import write_text_atomic
from analysis.summaries import (
    DEFAULT_PROB,
    cumulative_odds_ratios,
    fixed_draws,
    fixed_effects,
    interval_columns,
    statement_probability,
    statement_verdict,
)
from analysis.thresholds import SCALES, or_direction, threshold_figure, threshold_sensitivity
from models import Fit
from models.formula import build_model_data, parse_formula

#: The main job's ordinal step: catalogue entry -> its raw ordinal score (`thresholds.SCALES`).
ORDINAL_TWINS = {"life_satisfaction": "lifesat_score"}

#: Interval columns of the binary and the ordinal odds ratio in `ordinal_story`'s table.
BINARY_COLUMNS = interval_columns("eti", DEFAULT_PROB, "binary_or_")
ORDINAL_COLUMNS = interval_columns("eti", DEFAULT_PROB, "ordinal_or_")


@dataclass
class OrdinalSection:
    """The main job's ordinal results, as the report renders them.

    Attributes
    ----------
    model : str
        The catalogue entry whose outcome was also fitted on its whole scale.
    score : str
        The ordinal score column (e.g. ``"lifesat_score"``).
    scale : str
        The scale in words (e.g. ``"life satisfaction (1-7)"``).
    study_cut : float
        The study's cut-off of the binary outcome (``score >= study_cut``).
    story : pandas.DataFrame
        `ordinal_story`'s table.
    story_csv, table_csv, figure : pathlib.Path
        The story table, `thresholds.threshold_table` and `thresholds.threshold_figure` files.
    ordinal_verdict : str
        The convergence verdict of the ordinal twin.
    ordinal_settings : dict
        The ordinal twin's sampler settings (`models.Fit.settings`).
    cutoffs : list of float
        The cut-offs of the binary fits.
    """

    model: str
    score: str
    scale: str
    study_cut: float
    story: pd.DataFrame
    story_csv: Path
    table_csv: Path
    figure: Path
    ordinal_verdict: str
    ordinal_settings: dict[str, Any]
    cutoffs: list[float]


def ordinal_story(entry: Entry, binary: Fit, ordinal: Fit, *, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    """Finding by finding: the binary odds ratio beside the ordinal (cumulative) one.

    Parameters
    ----------
    entry : analysis.catalogue.Entry
        The catalogue entry (its claims are the rows).
    binary : models.Fit
        The entry's fit of the dichotomised outcome.
    ordinal : models.Fit
        The cumulative-logit fit of the whole scale with the same right-hand side.
    prob : float
        Interval probability.

    Returns
    -------
    pandas.DataFrame
        One row per claim (a claim on a factor: one per level): ``finding``, ``claim``,
        ``term``, ``expected``, ``binary_or`` and its ETI columns, ``ordinal_or`` and its ETI
        columns, ``binary_direction`` and ``ordinal_direction`` (`thresholds.or_direction`),
        ``p_binary`` and ``p_ordinal`` (probability of the expected direction, or of the
        statement), ``same_story`` (``"yes"``, ``"no"``, or ``"n/a: not converged"`` when
        either fit failed the convergence gate) and ``converged``.
    """
    b_lo, b_hi = interval_columns("eti", prob, "binary_or_")
    o_lo, o_hi = interval_columns("eti", prob, "ordinal_or_")
    lo, hi = interval_columns("eti", prob, "or_")
    fe_b = fixed_effects(binary, prob, quiet=True).set_index("term")
    fe_o = cumulative_odds_ratios(ordinal, prob, quiet=True).set_index("term")
    converged = bool(binary.converged and ordinal.converged)
    rows: list[dict[str, Any]] = []
    draws_b = draws_o = None
    for claim in entry.claims:
        base = {"finding": claim.finding, "claim": claim.says or claim.term or claim.statement}
        if claim.term:
            for term in binary.md.term_columns(claim.term):
                if term not in fe_o.index:
                    raise KeyError(f"term {term!r} is not in the ordinal model {ordinal.md.formula!r}")
                rb, ro = fe_b.loc[term], fe_o.loc[term]
                db, do = or_direction(rb[lo], rb[hi]), or_direction(ro[lo], ro[hi])
                sign = -1 if claim.expect == "-" else 1
                pb = float(rb["p_or_gt_1"]) if sign > 0 else 1 - float(rb["p_or_gt_1"])
                po = float(ro["p_or_gt_1"]) if sign > 0 else 1 - float(ro["p_or_gt_1"])
                rows.append(
                    {
                        **base,
                        "term": term,
                        "expected": claim.expect,
                        "binary_or": float(rb["or_median"]),
                        b_lo: float(rb[lo]),
                        b_hi: float(rb[hi]),
                        "ordinal_or": float(ro["or_median"]),
                        o_lo: float(ro[lo]),
                        o_hi: float(ro[hi]),
                        "binary_direction": db,
                        "ordinal_direction": do,
                        "p_binary": pb if claim.expect != "0" else np.nan,
                        "p_ordinal": po if claim.expect != "0" else np.nan,
                        "same": db == do,
                    }
                )
        else:
            if draws_b is None:
                draws_b, draws_o = fixed_draws(binary), fixed_draws(ordinal)
            pb = statement_probability(binary, claim.statement, draws_b)
            po = statement_probability(ordinal, claim.statement, draws_o)
            vb, vo = statement_verdict(pb, prob), statement_verdict(po, prob)
            rows.append(
                {
                    **base,
                    "term": "",
                    "expected": claim.statement,
                    "binary_direction": vb,
                    "ordinal_direction": vo,
                    "p_binary": pb,
                    "p_ordinal": po,
                    "same": vb == vo,
                }
            )
    out = pd.DataFrame(rows)
    same = out.pop("same")
    out["same_story"] = np.where(same, "yes", "no") if converged else "n/a: not converged"
    out["converged"] = converged
    out.attrs.update({"prob": prob, "interval": f"{prob:.0%} equal-tailed interval"})
    return out


def ordinal_twin_fits(
    entry: Entry, table: pd.DataFrame, score: str, study_cut: float, binary: Fit
) -> dict[float, Fit]:
    """The entry's binary fit as the threshold analysis' fit at the study's cut-off, when it was
    fitted to this table (same data fingerprint) and its outcome is exactly ``score >= study_cut``
    on the same rows (else empty: it is refitted)."""
    response = parse_formula(entry.formula).response.name
    if response not in table or score not in table:
        return {}
    if build_model_data(entry.formula, table).fingerprint() != binary.md.fingerprint():
        return {}
    y, s = table[response], table[score]
    same_rows = bool((y.isna() == s.isna()).all())
    same_values = bool((y[s.notna()] == (s[s.notna()] >= study_cut).astype(float)).all())
    return {float(study_cut): binary} if same_rows and same_values else {}


def ordinal_step(
    entry: Entry,
    binary: Fit,
    table: pd.DataFrame,
    out: str | Path,
    *,
    score: str | None = None,
    log: Callable[[str], None] = print,
    **fit_kwargs: Any,
) -> OrdinalSection:
    """Threshold sensitivity and the finding-by-finding comparison of one catalogue entry.

    Fits the ordinal twin of ``entry`` and the binary model at every cut-off of its score
    (`thresholds.threshold_sensitivity`; the entry's own fit stands for the study's cut), and
    writes ``<out>/ordinal/threshold_<score>.csv``, ``<out>/ordinal/story_<model>.csv`` and
    ``<out>/figures/threshold_<score>.png``.

    Parameters
    ----------
    entry : analysis.catalogue.Entry
    binary : models.Fit
        The entry's fit in this run.
    table : pandas.DataFrame
        The analysis table.
    out : path
        Run folder.
    score : str, optional
        The ordinal score (default: `ORDINAL_TWINS`' for the entry).
    log : callable
        Progress messages.
    **fit_kwargs
        Passed to every fit (seed, chains, draws, tune, ...: the run's settings).

    Returns
    -------
    OrdinalSection
    """
    out = Path(out)
    score = score or ORDINAL_TWINS[entry.name]
    scale, study_cut = SCALES[score]
    parse_formula(entry.formula)  # a valid formula has exactly one '~'
    rhs = entry.formula.split("~", 1)[1].strip()
    fitted = ordinal_twin_fits(entry, table, score, study_cut, binary)
    log(f"      ordinal twin of {entry.name} on {score} and the binary model at every cut-off")
    ts = threshold_sensitivity(
        table, score, rhs, study_cut=study_cut, fitted=fitted, priors=entry.priors or None, **fit_kwargs
    )
    log(f"      ordinal twin: {ts.ordinal.headline}; cut-offs {', '.join(f'{c:g}' for c in ts.binary)}")
    story = ordinal_story(entry, binary, ts.ordinal)
    table_csv = out / "ordinal" / f"threshold_{score}.csv"
    story_csv = out / "ordinal" / f"story_{entry.name}.csv"
    figure = out / "figures" / f"threshold_{score}.png"
    table_csv.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(table_csv, ts.table.to_csv(index=False))
    write_text_atomic(story_csv, story.to_csv(index=False))
    import matplotlib.pyplot as plt

    title = f"{scale}: binary OR at each cut-off against the ordinal OR"
    fig = threshold_figure(ts.table, figure, title=title)
    plt.close(fig)
    return OrdinalSection(
        entry.name,
        score,
        scale,
        float(study_cut),
        story,
        story_csv,
        table_csv,
        figure,
        ts.ordinal.headline,
        dict(ts.ordinal.settings),
        sorted(ts.binary),
    )
