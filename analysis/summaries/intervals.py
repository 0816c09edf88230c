"""Interval labels and summaries of draws: the only place that builds interval labels."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from arviz_stats.base import array_stats

from models.fitting import ConvergenceWarning, Fit

_KIND_WORDS = {
    "eti": "equal-tailed interval (ETI)",
    "hdi": "highest-density interval (HDI)",
    "ci": "confidence interval (CI)",
}
#: The probability of every interval the project reports unless asked otherwise.
DEFAULT_PROB = 0.95


@dataclass(frozen=True)
class IntervalLabel:
    """What an interval column holds, carried as data next to its name.

    Attributes
    ----------
    kind : {"eti", "hdi", "ci"}
        Equal-tailed or highest-density posterior interval, or a (Wald) confidence interval.
    prob : float
        Probability (or confidence level), e.g. 0.95.
    end : {"low", "high"}
    prefix : str
        The quantity's prefix (``"or_"``: odds ratio; ``"post_"``, ``"ref_"``, ...).
    """

    kind: str
    prob: float
    end: str
    prefix: str = ""

    def header(self) -> str:
        """A readable column header, e.g. ``OR 95% ETI low``."""
        words = _PREFIX_WORDS.get(self.prefix, self.prefix.replace("_", " "))
        return f"{words}{percent_label(self.prob)}% {self.kind.upper()} {self.end}".strip()


_PREFIX_WORDS = {
    "": "",
    "log_odds_": "log-odds ",
    "or_": "OR ",
    "post_": "posterior ",
    "ref_": "reference ",
    "ame_": "AME ",
    "p_": "P ",
    "diff_": "difference ",
    "lme4_": "lme4 ",
    "change_pp_": "change (pp) ",
}
_LABELS: dict[str, IntervalLabel] = {}
# the one format of interval column names: <prefix><kind><percent>_<end>
_NAME = re.compile(r"(?P<prefix>.*?)(?P<kind>eti|hdi|ci)(?P<pct>\d+(?:\.\d+)?)_(?P<end>low|high)")


# --------------------------------------------------------------------------- interval labels


def percent_label(prob: float) -> str:
    if not 0 < prob < 1:
        raise ValueError(f"prob must be between 0 and 1, got {prob!r}")
    return f"{100 * prob:g}"


def interval_columns(kind: str, prob: float, prefix: str = "") -> tuple[str, str]:
    """Column names of an interval, e.g. ``("eti95_low", "eti95_high")``.

    Parameters
    ----------
    kind : {"eti", "hdi"}
        Equal-tailed or highest-density interval.
    prob : float
        Probability mass, e.g. 0.95.
    prefix : str
        Prepended to both names (``"or_"`` gives ``or_eti95_low``).
    """
    if kind not in _KIND_WORDS:
        raise ValueError(f"interval kind must be 'eti', 'hdi' or 'ci', got {kind!r}")
    tag = f"{prefix}{kind}{percent_label(prob)}"
    lo, hi = f"{tag}_low", f"{tag}_high"
    _LABELS.setdefault(lo, IntervalLabel(kind, float(prob), "low", prefix))
    _LABELS.setdefault(hi, IntervalLabel(kind, float(prob), "high", prefix))
    return lo, hi


def interval_label(column: str) -> IntervalLabel | None:
    """What an interval column holds (None for other columns): the label `interval_columns`
    recorded when it made the name, else the name read with the same format (a column made
    in another process, e.g. a CSV read back)."""
    column = str(column)
    if column in _LABELS:
        return _LABELS[column]
    m = _NAME.fullmatch(column)
    if m is None:
        return None
    return IntervalLabel(m.group("kind"), float(m.group("pct")) / 100, m.group("end"), m.group("prefix"))


def interval_metadata(table: pd.DataFrame) -> dict[str, IntervalLabel]:
    """The interval columns of a table with what each holds: its ``attrs`` first, then the
    labels `interval_columns` made."""
    meta = dict(table.attrs.get("interval_columns", {}))
    for c in table.columns:
        label = interval_label(str(c))
        if label is not None:
            meta.setdefault(str(c), label)
    return {c: m for c, m in meta.items() if c in table.columns}


def describe_interval(kind: str, prob: float) -> str:
    """Words for an interval, e.g. ``"95% equal-tailed interval (ETI)"``."""
    return f"{percent_label(prob)}% {_KIND_WORDS[kind]}"


def interval_bounds(x: np.ndarray, prob: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Interval over axis 0 of draws ``x`` (S, ...)."""
    if kind == "eti":
        lo, hi = np.quantile(x, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        return lo, hi
    h = array_stats.hdi(np.moveaxis(x, 0, -1), prob, axis=-1)
    return h[..., 0], h[..., 1]


def summarise_draws(
    samples: np.ndarray,
    index: Sequence[Any] | None = None,
    *,
    prob: float = 0.95,
    hdi: bool = False,
    prefix: str = "",
) -> pd.DataFrame:
    """Mean, median, SD and intervals of draws.

    Parameters
    ----------
    samples : numpy.ndarray
        Shape (S,) or (S, k): S posterior draws of k quantities.
    index : sequence, optional
        Row labels (k of them).
    prob : float
        Interval probability.
    hdi : bool
        Add the highest-density interval next to the equal-tailed one.
    prefix : str
        Prepended to every column name.

    Returns
    -------
    pandas.DataFrame
        Columns ``mean``, ``median``, ``sd``, ``eti<p>_low``, ``eti<p>_high`` and, with
        ``hdi``, ``hdi<p>_low``, ``hdi<p>_high`` (each with ``prefix``).
    """
    x = np.asarray(samples, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    out = {
        f"{prefix}mean": x.mean(axis=0),
        f"{prefix}median": np.median(x, axis=0),
        f"{prefix}sd": x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.full(x.shape[1], np.nan),
    }
    kinds = ["eti", "hdi"] if hdi else ["eti"]
    for kind in kinds:
        lo, hi = interval_bounds(x, prob, kind)
        c_lo, c_hi = interval_columns(kind, prob, prefix)
        out[c_lo], out[c_hi] = lo, hi
    table = pd.DataFrame(out, index=None if index is None else list(index))
    table.attrs["interval"] = " and ".join(describe_interval(k, prob) for k in kinds)
    table.attrs["interval_columns"] = interval_metadata(table)
    return table


def warn_if_not_converged(fit: Fit) -> None:
    if not fit.converged and not fit.accept_failed:
        warnings.warn(fit.convergence.headline, ConvergenceWarning, stacklevel=3)


def stamp(table: pd.DataFrame, fit: Fit, interval: str, **extra: Any) -> pd.DataFrame:
    table.attrs.update({"interval": interval, "headline": fit.headline, "converged": fit.converged})
    table.attrs["interval_columns"] = interval_metadata(table)
    table.attrs.update(extra)
    return table
