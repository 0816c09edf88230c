"""Disclosure control for outputs made from real (Special Licence) data.

Local-authority codes of UKHLS respondents are Special Licence data: an LA-level table or
figure made from real data must not show an LA with fewer than ``k`` respondents (default
10). Such LAs are removed from the output, not blanked, and the report says how many were
removed and why. Synthetic data need no control (every LA is shown).

>>> policy = DisclosurePolicy(synthetic=False, k=10)
>>> safe = policy.apply(group_table)          # doctest: +SKIP
>>> policy.note("LA")                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = [
    "DEFAULT_K",
    "DisclosurePolicy",
    "interval_only_below_k",
    "suppress_small_groups",
    "suppression_note",
]

DEFAULT_K = 10


def suppress_small_groups(table: pd.DataFrame, n_col: str = "n", k: int = DEFAULT_K) -> pd.DataFrame:
    """Remove rows of groups with fewer than ``k`` respondents.

    Parameters
    ----------
    table : pandas.DataFrame
        A group-level table with a respondent count column.
    n_col : str
        Name of the count column.
    k : int
        Minimum respondents for a group to be shown.

    Returns
    -------
    pandas.DataFrame
        The rows with ``n >= k`` (index reset); ``.attrs["suppressed"]`` is the number of
        distinct groups removed (counted by ``level`` when the table has that column, else
        rows) and ``.attrs["suppression_note"]`` says why. Other attrs are kept.

    Raises
    ------
    KeyError
        When the count column is missing: a level table without counts cannot be checked.
    """
    if n_col not in table:
        raise KeyError(
            f"table has no {n_col!r} column: cannot apply disclosure control to a group-level "
            f"table without respondent counts (columns: {list(table.columns)})"
        )
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    small = table[n_col].astype(float) < k
    removed = table.loc[small]
    n_removed = int(removed["level"].nunique()) if "level" in table else int(small.sum())
    out = table.loc[~small].reset_index(drop=True)
    out.attrs = dict(table.attrs)
    out.attrs["suppressed"] = n_removed
    out.attrs["suppression_k"] = int(k)
    out.attrs["suppression_note"] = suppression_note(n_removed, int(k))
    return out


def interval_only_below_k(
    table: pd.DataFrame,
    point_columns: list[str] | tuple[str, ...],
    *,
    k: int = DEFAULT_K,
    n_col: str = "n",
    exempt: pd.Series | None = None,
) -> pd.DataFrame:
    """The rule for model-based estimates (MrP) of small groups: a row with fewer than ``k``
    respondents keeps only its interval.

    Its point columns (estimate, direct estimate, probabilities) and its respondent count
    are blanked, so a model-based estimate of a small LA is never published next to its
    direct estimate or its exact count; ``published`` says what each row shows.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows with a respondent count.
    point_columns : sequence of str
        Columns blanked below ``k`` (those absent are ignored).
    k : int
        Minimum respondents for the full row.
    n_col : str
        The count column (blanked below ``k`` too).
    exempt : pandas.Series of bool, optional
        Rows never blanked (e.g. the whole of GB).

    Returns
    -------
    pandas.DataFrame
        A copy with the rule applied and a ``published`` column.
    """
    if n_col not in table:
        raise KeyError(
            f"table has no {n_col!r} column: cannot apply the k rule (columns: {list(table.columns)})"
        )
    out = table.copy()
    small = out[n_col].astype(float) < k
    if exempt is not None:
        small &= ~exempt.to_numpy(dtype=bool)
    for c in point_columns:
        if c in out:
            out[c] = out[c].astype(float)
            out.loc[small, c] = float("nan")
    out[n_col] = out[n_col].astype(float)
    out.loc[small, n_col] = float("nan")
    out["published"] = [
        f"interval only (fewer than {k} respondents)" if s else "estimate, interval, direct estimate, n"
        for s in small
    ]
    return out


def suppression_note(n_suppressed: int, k: int, unit: str = "LA") -> str:
    """Sentence stating how many groups were suppressed and why."""
    if n_suppressed == 0:
        return f"No {unit} had fewer than {k} respondents; none suppressed."
    s = "" if n_suppressed == 1 else "s"
    return (
        f"{n_suppressed} {unit}{s} with fewer than {k} respondents suppressed (removed from every "
        f"{unit}-level table and figure) under disclosure control of Special Licence data."
    )


@dataclass
class DisclosurePolicy:
    """Whether and how to suppress small groups in one report.

    Attributes
    ----------
    synthetic : bool
        Synthetic data: nothing is suppressed.
    k : int
        Minimum respondents per shown group for real data.
    suppressed : dict
        Levels suppressed so far, by grouping factor (filled by `apply`).
    """

    synthetic: bool
    k: int = DEFAULT_K
    suppressed: dict[str, set[str]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """True when outputs must be controlled (real data)."""
        return not self.synthetic

    def apply(self, table: pd.DataFrame, n_col: str = "n", group: str = "lad") -> pd.DataFrame:
        """Suppress small groups of a level table when the data are real; record them."""
        if not self.active:
            out = table.copy()
            out.attrs = dict(table.attrs)
            out.attrs["suppressed"] = 0
            return out
        if n_col in table and "level" in table:
            small = table.loc[table[n_col].astype(float) < self.k, "level"].astype(str)
            self.suppressed.setdefault(group, set()).update(small)
        return suppress_small_groups(table, n_col=n_col, k=self.k)

    def note(self, unit: str = "LA", group: str = "lad") -> str:
        """The report's statement about disclosure control."""
        if not self.active:
            return "Synthetic data: no disclosure control applied (every LA is shown)."
        return suppression_note(len(self.suppressed.get(group, set())), self.k, unit)
