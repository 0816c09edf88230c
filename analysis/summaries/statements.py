"""Probability statements about fixed effects (``abs(a) > abs(b)``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from analysis.summaries.draws import fixed_draws
from analysis.summaries.intervals import describe_interval, stamp, summarise_draws, warn_if_not_converged
from models.fitting import Fit

# --------------------------------------------------------------------------- probability statements

_ABS = re.compile(r"^\s*abs\s*\(\s*(.+?)\s*\)\s*$")


def statement_operand(fit: Fit, expr: str | float, draws: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
    """Draws of ``term``, ``abs(term)`` or a number (no other expressions are evaluated)."""
    n = len(next(iter(draws.values())))
    if isinstance(expr, int | float):
        return np.full(n, float(expr)), f"{expr:g}"
    text = str(expr).strip()
    try:
        return np.full(n, float(text)), text
    except ValueError:
        pass
    m = _ABS.match(text)
    term = m.group(1) if m else text
    if term not in draws:
        raise ValueError(
            f"{term!r} is not a fixed term of {fit.md.formula!r}; write 'term' or 'abs(term)' "
            f"with one of {list(draws)}"
        )
    x = draws[term]
    return (np.abs(x), f"|b[{term}]|") if m else (x, f"b[{term}]")


def parse_statement(statement: str) -> tuple[str, str]:
    """``"a > b"`` (or ``"b < a"``) as the pair ``(a, b)`` meaning a > b, operands stripped."""
    if statement.count(">") + statement.count("<") != 1:
        raise ValueError(f"statement {statement!r} must contain exactly one '>' or '<'")
    if ">" in statement:
        a, b = statement.split(">")
    else:
        b, a = statement.split("<")
    return a.strip(), b.strip()


def statement_term(operand: str) -> str | None:
    """The term of a statement operand ``"term"`` or ``"abs(term)"``; None for a number."""
    try:
        float(operand)
        return None
    except ValueError:
        pass
    m = _ABS.match(operand)
    return (m.group(1) if m else operand).strip()


def statement_probability(fit: Fit, statement: str, draws: dict[str, np.ndarray]) -> float:
    """P(statement), e.g. ``"abs(belonging) > abs(local_friends)"``, from fixed-effect draws by
    term (`fixed_draws`, or any other model's draws on the same terms)."""
    a, b = parse_statement(statement)
    return float((statement_operand(fit, a, draws)[0] - statement_operand(fit, b, draws)[0] > 0).mean())


def statement_verdict(p: float, prob: float = 0.95) -> str:
    """A statement's verdict from its probability: ``"supported"`` (``p >= prob``),
    ``"opposite"`` (``p <= 1 - prob``) or ``"inconclusive"``."""
    return "supported" if p >= prob else ("opposite" if p <= 1 - prob else "inconclusive")


def prob_greater(fit: Fit, a: str | float, b: str | float = 0.0, prob: float = 0.95) -> pd.DataFrame:
    """P(a > b) for fixed coefficients, e.g. ``prob_greater(fit, "abs(belonging)", "abs(local_friends)")``.

    Parameters
    ----------
    fit : models.Fit
    a, b : str or float
        ``"term"``, ``"abs(term)"`` or a number (log-odds scale).
    prob : float
        Interval probability of the difference a - b.

    Returns
    -------
    pandas.DataFrame
        One row: ``statement``, ``probability``, ``diff_mean``, ``diff_median``,
        ``diff_sd``, ``diff_eti95_low``, ``diff_eti95_high``.
    """
    warn_if_not_converged(fit)
    draws = fixed_draws(fit)
    xa, la = statement_operand(fit, a, draws)
    xb, lb = statement_operand(fit, b, draws)
    d = xa - xb
    table = summarise_draws(d, prob=prob, prefix="diff_")
    table.insert(0, "statement", f"{la} > {lb}")
    table.insert(1, "probability", float((d > 0).mean()))
    return stamp(table, fit, describe_interval("eti", prob), scale="log-odds")


def probability_statements(
    fit: Fit, statements: Iterable[str | tuple[str, str]], prob: float = 0.95
) -> pd.DataFrame:
    """Several `prob_greater` statements at once.

    Parameters
    ----------
    fit : models.Fit
    statements : iterable
        Pairs ``(a, b)`` meaning a > b, or strings ``"abs(belonging) > abs(local_friends)"``
        (``<`` is allowed too). Operands are ``term``, ``abs(term)`` or numbers.
    prob : float
        Interval probability of each difference.

    Returns
    -------
    pandas.DataFrame
        One row per statement (see `prob_greater`).
    """
    rows = []
    for st in statements:
        a, b = parse_statement(st) if isinstance(st, str) else st
        rows.append(prob_greater(fit, a, b, prob=prob))
    table = pd.concat(rows, ignore_index=True)
    return stamp(table, fit, describe_interval("eti", prob), scale="log-odds")
