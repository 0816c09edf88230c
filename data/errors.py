"""Project exception for bad input data.

Every problem with an input file (missing file, misspelt column, text in a numeric
column, unknown local-authority code, ...) is raised as :class:`DataError`, with a
message that names the file, the column and the offending value, so that a user can fix
the input without reading a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["DataError", "closest_name"]


class DataError(ValueError):
    """Input data are missing, malformed or inconsistent.

    Parameters
    ----------
    message : str
        Human-readable description. By convention it names the file, the column and
        the offending value (and the row where useful).
    file, column, value, row : optional
        The same facts as attributes, for programs that want to react to them.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        value: object = None,
        row: int | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.column = column
        self.value = value
        self.row = row


def closest_name(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name`` (case-insensitive), or None.

    Used to suggest the intended column when a required one is missing or misspelt.
    """
    cands = list(candidates)
    lowered = {c.lower(): c for c in cands}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None
