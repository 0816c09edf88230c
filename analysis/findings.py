"""The study's findings, checked claim by claim against fitted catalogue entries.

For every claim of every fitted entry: the posterior effect (odds ratio, 95% equal-tailed
interval, probability of the expected direction), the lme4 estimate beside it, whether
the synthetic cohort's built-in truth was recovered (where the entry's formula targets
it), a verdict and one plain-language sentence. A fit that did not pass the convergence
gate gets the verdict ``NOT CONVERGED`` and no sentence that reads as a result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.catalogue import FINDINGS, Catalogue, Claim, Entry
from analysis.summaries import (
    DEFAULT_PROB,
    fixed_draws,
    fixed_effects,
    interval_columns,
    parse_statement,
    statement_operand,
    statement_term,
    statement_verdict,
)
from models.formula import parse_formula

PROB = DEFAULT_PROB
#: the findings table's interval columns (posterior odds ratio; glmer's Wald interval)
OR_COLUMNS = interval_columns("eti", PROB, "or_")
LME4_COLUMNS = interval_columns("ci", 0.95, "lme4_")
LOG_ODDS_COLUMNS = interval_columns("eti", PROB, "log_odds_")


@dataclass(frozen=True)
class TruthStatus:
    """How an entry relates to the synthetic cohort's built-in model of its outcome.

    ``kind`` is ``"exact"`` (the formula contains every true term, possibly more, whose true
    values are zero, and the same LA terms), ``"approximate"`` (true values stated but not
    exactly targeted, with the reason) or ``"none"``.
    """

    kind: str
    values: dict[str, float]
    reason: str = ""


def truth_status(entry: Entry, truth: Mapping[str, Any] | None) -> TruthStatus:
    """Decide from the formulas whether an entry targets the built-in truth of its outcome.

    Parameters
    ----------
    entry : Entry
    truth : mapping, optional
        The release's ``truth.json`` (outcome -> ``{"formula", "fixed", "groups", "exact"}``);
        ``None`` for real data.
    """
    if truth is None:
        return TruthStatus("none", {}, "real data: no built-in truth")
    spec = truth.get(entry.truth or "") if entry.truth else None
    if spec is None:
        return TruthStatus("none", {}, "no built-in model of this formula")
    true_terms = [t for t in spec["fixed"] if t != "Intercept"]
    parsed = parse_formula(entry.formula)
    terms = parsed.fixed_terms()
    omitted = [t for t in true_terms if t not in terms]
    if omitted:
        return TruthStatus("none", {}, f"formula omits true term(s) {', '.join(omitted)}")
    values = {t: float(spec["fixed"].get(t, 0.0)) for t in ["Intercept", *terms]}
    true_groups = list(spec.get("groups", {}).get("lad", {}).get("terms", ["Intercept"]))
    lad_bars = [b for b in parsed.bars if "lad" in b.factors]
    varying = parsed.varying_terms(lad_bars[0]) if lad_bars else ["Intercept"]
    if not spec.get("exact", True):
        return TruthStatus("approximate", values, str(spec.get("note", "approximate truth"))[:160])
    if sorted(varying) != sorted(true_groups):
        return TruthStatus(
            "approximate",
            values,
            f"LA-varying terms {varying} differ from the true {true_groups}, so fixed effects are "
            "only approximately targeted",
        )
    return TruthStatus("exact", values)


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _unit_phrase(term: str, table: pd.DataFrame | None, cat: Catalogue) -> str:
    col = table[term] if table is not None and term in table else None
    binary = col is not None and set(pd.unique(col.dropna())) <= {0, 1}
    label = cat.label(term)
    return f"{label} (compared with not)" if binary else f"1 SD higher {label}"


def _direction_verdict(row: pd.Series, expect: str) -> tuple[str, float]:
    """Verdict of a sign claim from the term's row of `summaries.fixed_effects`."""
    lo, hi = (float(row[c]) for c in LOG_ODDS_COLUMNS)
    p_pos = float(row["p_or_gt_1"])
    if expect == "0":
        p = min(p_pos, 1 - p_pos)
        return (
            "supported: no clear association" if lo <= 0 <= hi else "not supported: an association remains"
        ), p
    sign = 1 if expect == "+" else -1
    p = p_pos if sign > 0 else 1 - p_pos
    if (sign > 0 and lo > 0) or (sign < 0 and hi < 0):
        return "supported", p
    if (sign > 0 and hi < 0) or (sign < 0 and lo > 0):
        return "opposite", p
    return "inconclusive", p


def _glmer_row(g: Any, term: str) -> tuple[float, float, float] | None:
    fixed = getattr(g, "fixed", None)
    if fixed is None or term not in fixed.index:
        return None
    r = fixed.loc[term]
    return float(r["estimate"]), float(r["ci_low"]), float(r["ci_high"])


def claim_rows(
    entry: Entry,
    fit: Any,
    glmer: Any,
    truth: TruthStatus,
    cat: Catalogue,
    table: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """One findings row per claim of a fitted entry (see `findings_table`)."""
    draws = fixed_draws(fit)  # for probability statements
    fe = fixed_effects(fit, PROB, quiet=True).set_index("term")  # every reported odds ratio
    outcome = cat.label(entry.outcome)
    rows = []
    for claim in _claims_by_column(entry, fit):
        row: dict[str, Any] = {
            "finding": claim.finding,
            "model": entry.name,
            "claim": claim.says or claim.statement or _default_says(claim, outcome, cat),
            "term": claim.term or "",
            "expected": claim.expect if claim.term else claim.statement,
        }
        if claim.term:
            est = fe.loc[claim.term]
            verdict, p = _direction_verdict(est, claim.expect)
            row.update(
                {
                    "posterior_or": float(est["or_median"]),
                    OR_COLUMNS[0]: float(est[OR_COLUMNS[0]]),
                    OR_COLUMNS[1]: float(est[OR_COLUMNS[1]]),
                    "p_expected": p if claim.expect != "0" else np.nan,
                }
            )
            g = _glmer_row(glmer, claim.term)
            if g is not None:
                row.update(
                    {"lme4_or": np.exp(g[0]), LME4_COLUMNS[0]: np.exp(g[1]), LME4_COLUMNS[1]: np.exp(g[2])}
                )
            if truth.kind != "none" and claim.term in truth.values:
                tv = truth.values[claim.term]
                row["true_or"] = float(np.exp(tv))
                inside = bool(est[LOG_ODDS_COLUMNS[0]] <= tv <= est[LOG_ODDS_COLUMNS[1]])
                row["truth_recovered"] = ("yes" if inside else "no") + (
                    "" if truth.kind == "exact" else " (approximate truth)"
                )
            else:
                row["truth_recovered"] = f"n/a: {truth.reason}" if truth.reason else "n/a"
        else:
            sa, sb = parse_statement(claim.statement)
            d = statement_operand(fit, sa, draws)[0] - statement_operand(fit, sb, draws)[0]
            ta, tb = statement_term(sa), statement_term(sb)
            p = float((d > 0).mean())
            verdict = statement_verdict(p, PROB)
            row.update({"p_expected": p})
            if truth.kind != "none" and ta in truth.values and tb in truth.values:
                true_holds = abs(truth.values[ta]) > abs(truth.values[tb])
                row["truth_recovered"] = "yes" if (p > 0.5) == true_holds else "no"
                row["truth_recovered"] += f" (true: {'holds' if true_holds else 'does not hold'})"
            else:
                row["truth_recovered"] = f"n/a: {truth.reason}" if truth.reason else "n/a"
            ga, gb = _glmer_row(glmer, ta), _glmer_row(glmer, tb)
            if ga and gb:
                row["lme4_note"] = f"|b| {abs(ga[0]):.2f} vs {abs(gb[0]):.2f} (no probability from lme4)"
        if not fit.converged:
            row["verdict"] = "NOT CONVERGED: not interpreted"
            row["sentence"] = (
                f"The {entry.name} fit did not pass the convergence gate ({fit.headline}); "
                "rerun with more draws before reading this claim."
            )
        else:
            row["verdict"] = verdict
            row["sentence"] = _sentence(claim, row, outcome, cat, table)
        row["converged"] = bool(fit.converged)
        rows.append(row)
    return rows


def _claims_by_column(entry: Entry, fit: Any) -> list[Claim]:
    """The entry's claims, one per design column: a claim on a factor (``education``) is
    read level by level against the reference (``education[degree]``, ...), asked of the
    fit's model data; a claim naming a column or a numeric term stays as it is."""
    out: list[Claim] = []
    for claim in entry.claims:
        if not claim.term:
            out.append(claim)
            continue
        columns = fit.md.term_columns(claim.term)
        if not columns:
            raise ValueError(
                f"catalogue entry {entry.name!r}: claim term {claim.term!r} is not a column of the fitted "
                f"model; columns: {fit.md.fixed_terms}"
            )
        out += [claim if c == claim.term else dataclasses.replace(claim, term=c) for c in columns]
    return out


def _default_says(claim: Claim, outcome: str, cat: Catalogue) -> str:
    word = {"+": "higher", "-": "lower", "0": "no difference in"}[claim.expect]
    return f"{cat.label(claim.term)}: {word} odds of {outcome}"


def _sentence(claim: Claim, row: Mapping[str, Any], outcome: str, cat: Catalogue, table) -> str:
    verdict = str(row["verdict"])
    if claim.statement:
        a, b = (cat.label(str(statement_term(x))) for x in parse_statement(claim.statement))
        p = row["p_expected"]
        return (
            f"The probability that {a} is more strongly associated with {outcome} than {b} is "
            f"{p:.2f} ({verdict}); this ranks associations in cross-sectional data, not causes."
        )
    orr, lo, hi = row["posterior_or"], row[OR_COLUMNS[0]], row[OR_COLUMNS[1]]
    ival = f"95% interval {_fmt(lo)} to {_fmt(hi)}"
    if ":" in claim.term:
        a, b = claim.term.split(":", 1)
        text = (
            f"The odds ratio of {outcome} for {_unit_phrase(a, table, cat)} is multiplied by {_fmt(orr)} "
            f"({ival}) for each {_unit_phrase(b, table, cat)}"
        )
    else:
        who = _unit_phrase(claim.term, table, cat)
        text = f"{who[0].upper()}{who[1:]} goes with {_fmt(orr)} times the odds of {outcome} ({ival})"
    if claim.expect == "0":
        tail = (
            "; the interval includes 1 (no association), as the study found"
            if verdict.startswith("supported")
            else "; the interval excludes 1, so an association remains, unlike the study's finding"
        )
    else:
        word = "positive" if claim.expect == "+" else "negative"
        tail = f"; probability the association is {word}: {row['p_expected']:.3f} ({verdict})"
    return text + tail + "."


def findings_table(
    results: Mapping[str, Any],
    cat: Catalogue,
    truth: Mapping[str, Any] | None,
    table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every claim of every fitted entry, ordered by finding.

    Parameters
    ----------
    results : mapping
        Entry name -> `analysis.catalogue.EntryResult`.
    cat : Catalogue
    truth : mapping, optional
        ``truth.json`` of the synthetic release (None for real data).
    table : pandas.DataFrame, optional
        The analysis table (to word 0/1 and standardised predictors correctly).

    Returns
    -------
    pandas.DataFrame
        ``finding``, ``finding_text``, ``model``, ``claim``, ``expected``, ``posterior_or``,
        ``or_eti95_low/high`` (95% equal-tailed posterior interval), ``p_expected``,
        ``lme4_or`` and ``lme4_ci95_low/high`` (Wald 95% CI, Laplace fit), ``true_or``,
        ``truth_recovered``, ``verdict``, ``sentence``, ``converged``.
    """
    rows = []
    for res in results.values():
        status = truth_status(res.entry, truth)
        rows += claim_rows(res.entry, res.fit, res.glmer, status, cat, table)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out.insert(1, "finding_text", out["finding"].map(FINDINGS))
    out = out.sort_values("finding", kind="stable", key=lambda s: s.replace(0, 99))
    out.attrs["interval"] = (
        "posterior: 95% equal-tailed interval (ETI); lme4: Wald 95% confidence interval (CI)"
    )
    return out.reset_index(drop=True)


def missing_findings(results: Mapping[str, Any]) -> list[int]:
    """Findings 1-7 that no fitted entry tests (the report lists them)."""
    tested = {c.finding for r in results.values() for c in r.entry.claims}
    return [k for k in range(1, 8) if k not in tested]
