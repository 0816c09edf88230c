"""What happened to every input row: the reader's audit report.

Invariant (checked by :meth:`Audit.check`): ``rows_in == rows_out + sum(drops)``.
Missing outcome or predictor values are not drops; they are counted (by missing-value
code, variable and wave in :attr:`Audit.missing`, and per analysis column in
:attr:`Audit.missing_in_table`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Audit", "FileRecord", "MISSING_LABELS"]

#: UKHLS missing-value codes and their meaning.
MISSING_LABELS: dict[str, str] = {
    "-1": "don't know",
    "-2": "refused",
    "-7": "proxy respondent",
    "-8": "inapplicable",
    "-9": "missing",
    "-10": "not available for IEMB",
    "-11": "only available for IEMB",
    "other negative": "other negative code",
    "blank": "empty cell",
}


@dataclass(frozen=True)
class FileRecord:
    """One input file that was read."""

    role: str
    path: str
    format: str
    rows: int
    columns: int


@dataclass
class Audit:
    """Report of one :func:`data.ukhls.read_release` run.

    Attributes
    ----------
    files : list of FileRecord
        Files read, with their role (e.g. ``indresp_f``), format and size.
    rows_in : int
        Wave-6 (base wave) rows in ``indresp``: one per adult interviewed.
    rows_out : int
        Rows of the analysis table.
    drops : pandas.DataFrame
        One row per dropped person: ``pidp``, ``hidp``, ``reason``, ``detail``.
    missing : pandas.DataFrame
        Counts of missing values by ``file``, ``wave``, ``variable`` and ``code``
        (with a ``label``), over all rows of the files read.
    found_wave7, found_wave9 : int
        Base-wave adults (of ``rows_in``) found in the wave-7 / wave-9 indresp file.
    nonpositive_income_households : int
        Base-wave households whose net income is zero or negative (set to missing).
    nonpositive_income_rows : int
        Analysis-table rows in such households.
    missing_in_table : pandas.Series
        Number of missing values per analysis-table column.
    la_codes : pandas.DataFrame
        Harmonisation report of the LA codes (see :func:`data.areas.harmonise_la_codes`).
    weights : pandas.DataFrame
        Survey weights and design variables of the table rows by status
        (`data.ukhls.weight_report`): ``column``, ``file_variable``, ``status`` (positive,
        zero weight: outside the weight's population, missing, column not in the release),
        ``rows``. Zero and missing weights are not drops: a weighted analysis selects
        its population (e.g. ``weight_sc > 0``) itself.
    notes : list of str
        Anything else worth knowing (e.g. use of a simulated area file).
    """

    files: list[FileRecord] = field(default_factory=list)
    rows_in: int = 0
    rows_out: int = 0
    drops: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["pidp", "hidp", "reason", "detail"])
    )
    missing: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["file", "wave", "variable", "code", "label", "count"])
    )
    found_wave7: int = 0
    found_wave9: int = 0
    nonpositive_income_households: int = 0
    nonpositive_income_rows: int = 0
    missing_in_table: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))
    la_codes: pd.DataFrame = field(default_factory=pd.DataFrame)
    weights: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["column", "file_variable", "status", "rows"])
    )
    notes: list[str] = field(default_factory=list)

    def zero_weights(self) -> pd.Series:
        """Table rows with a zero weight (outside the weight's population), per weight column."""
        w = self.weights
        zero = w[w["status"].str.startswith("zero weight")]
        return zero.set_index("column")["rows"].astype("int64")

    # ------------------------------------------------------------------ summaries
    def drop_counts(self) -> pd.Series:
        """Number of dropped rows per reason (sorted by reason)."""
        if self.drops.empty:
            return pd.Series(dtype="int64", name="rows")
        return self.drops.groupby("reason").size().rename("rows").sort_index()

    def missing_by_code(self) -> pd.DataFrame:
        """Missing-value counts pivoted: one row per (wave, variable), one column per code."""
        if self.missing.empty:
            return pd.DataFrame()
        return self.missing.pivot_table(
            index=["wave", "variable"], columns="code", values="count", aggfunc="sum", fill_value=0
        )

    def check(self) -> None:
        """Raise AssertionError unless rows in = rows out + drops."""
        n_drop = len(self.drops)
        if self.rows_in != self.rows_out + n_drop:
            raise AssertionError(
                f"audit does not add up: {self.rows_in} rows in != {self.rows_out} out + {n_drop} dropped"
            )

    def to_frame(self) -> pd.DataFrame:
        """Long table (``section``, ``item``, ``value``) of every count in the report."""
        rows: list[tuple[str, str, Any]] = []
        for f in self.files:
            rows.append(("file", f.role, f"{f.path} ({f.format}, {f.rows} rows, {f.columns} cols)"))
        rows += [
            ("rows", "in (base-wave indresp)", self.rows_in),
            ("rows", "out (analysis table)", self.rows_out),
            ("rows", "dropped", len(self.drops)),
        ]
        rows += [("drop", str(r), int(n)) for r, n in self.drop_counts().items()]
        rows += [
            ("linkage", "found in wave 7", self.found_wave7),
            ("linkage", "found in wave 9", self.found_wave9),
            ("income", "non-positive income households", self.nonpositive_income_households),
            ("income", "table rows with non-positive income", self.nonpositive_income_rows),
        ]
        for r in self.missing.itertuples(index=False):
            rows.append(("missing code", f"{r.file} {r.variable} {r.code} ({r.label})", int(r.count)))
        for col, n in self.missing_in_table.items():
            rows.append(("missing in table", str(col), int(n)))
        for r in self.weights.itertuples(index=False):
            rows.append(("design", f"{r.column} ({r.file_variable}): {r.status}", int(r.rows)))
        rows += [("note", str(i + 1), n) for i, n in enumerate(self.notes)]
        return pd.DataFrame(rows, columns=["section", "item", "value"])

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python summary (JSON-serialisable)."""
        return {
            "files": [f.__dict__ for f in self.files],
            "rows_in": int(self.rows_in),
            "rows_out": int(self.rows_out),
            "drops": {str(k): int(v) for k, v in self.drop_counts().items()},
            "found_wave7": int(self.found_wave7),
            "found_wave9": int(self.found_wave9),
            "nonpositive_income_households": int(self.nonpositive_income_households),
            "nonpositive_income_rows": int(self.nonpositive_income_rows),
            "missing": [
                {
                    "file": r.file,
                    "wave": r.wave,
                    "variable": r.variable,
                    "code": r.code,
                    "label": r.label,
                    "count": int(r.count),
                }
                for r in self.missing.itertuples(index=False)
            ],
            "missing_in_table": {str(k): int(v) for k, v in self.missing_in_table.items()},
            "la_codes": self.la_codes.to_dict(orient="records"),
            "weights": [
                {"column": r.column, "file_variable": r.file_variable, "status": r.status, "rows": int(n)}
                for r, n in zip(self.weights.itertuples(index=False), self.weights["rows"], strict=True)
            ],
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        out = ["UKHLS release audit", "==================="]
        out.append("Files read:")
        out += [f"  {f.role:<11} {f.path}  [{f.format}, {f.rows:,} rows]" for f in self.files]
        out.append(f"Rows in (base-wave adults in indresp): {self.rows_in:,}")
        for reason, n in self.drop_counts().items():
            out.append(f"  - dropped {int(n):,}: {reason}")
        out.append(f"Rows out (analysis table): {self.rows_out:,}")
        pct = (lambda k: f"{100 * k / self.rows_in:.1f}%") if self.rows_in else (lambda k: "-")
        out.append(f"Found in wave 7: {self.found_wave7:,} ({pct(self.found_wave7)})")
        out.append(f"Found in wave 9: {self.found_wave9:,} ({pct(self.found_wave9)})")
        out.append(
            f"Non-positive household income (set missing): {self.nonpositive_income_households:,}"
            f" households, {self.nonpositive_income_rows:,} table rows"
        )
        if not self.la_codes.empty:
            st = self.la_codes.groupby("status")["n"].sum()
            out.append(
                "LA codes (rows of the SN 6666 file): " + "; ".join(f"{k}: {int(v):,}" for k, v in st.items())
            )
        pivot = self.missing_by_code()
        if not pivot.empty:
            out.append("Missing-value codes (counts over all rows of the files read):")
            text = pivot.to_string()
            out += ["  " + line for line in text.splitlines()]
        if len(self.missing_in_table):
            nz = self.missing_in_table[self.missing_in_table > 0]
            out.append("Missing values in the analysis table (not dropped):")
            out += [f"  {k:<28} {int(v):,}" for k, v in nz.items()]
        if not self.weights.empty:
            out.append("Survey weights and design (table rows; zero = outside the weight's population):")
            for col, g in self.weights.groupby("column", sort=False):
                parts = "; ".join(f"{r.status}: {int(r.rows):,}" for r in g.itertuples(index=False))
                out.append(f"  {col:<13} {g['file_variable'].iloc[0]:<15} {parts}")
        for n in self.notes:
            out.append(f"Note: {n}")
        return "\n".join(out)
