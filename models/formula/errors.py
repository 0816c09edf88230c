"""The formula front end's error and warning, and the messages that name rows and columns."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from models.formula.syntax import FormulaError


class DataWarning(UserWarning):
    """The data can be fitted, but something in them deserves attention.

    Raised (as a warning) for perfect separation, tiny or few groups, infinite values that
    were dropped, and predictors on extreme scales; the message says what to do.
    """


def row_error(
    prefix: str, values: np.ndarray, bad: np.ndarray, index: pd.Index, hint: str = ""
) -> FormulaError:
    """FormulaError naming the first offending row (by data-frame index label) and its value.

    Parameters
    ----------
    prefix : str
        What is wrong, e.g. ``"response 'y' must be 0/1"``.
    values : numpy.ndarray
        The values checked (aligned with ``index``).
    bad : numpy.ndarray of bool
        Which values are wrong.
    index : pandas.Index
        Row labels of ``values``, as the user's data frame has them.
    hint : str
        Appended to the message (what to do).

    Returns
    -------
    FormulaError
    """
    i = int(np.flatnonzero(bad)[0])
    k = int(np.sum(bad))
    v = values[i]
    v = v.item() if isinstance(v, np.generic) else v
    more = f" ({k} such rows)" if k > 1 else ""
    return FormulaError(f"{prefix}; row {index[i]} has {v!r}{more}{hint}")


def missing_column_error(name: str, columns: pd.Index, where: str) -> FormulaError:
    """FormulaError for a name that is not a column, with close matches."""
    close = difflib.get_close_matches(name, [str(c) for c in columns], n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return FormulaError(f"{where}: term {name!r} is not a column of the data{hint}")
