"""Posterior draws by name, and what the model data say about structure (blocks,
area-level terms, cross-level interactions, reference values)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from models.fitting import Fit
from models.formula import GroupBlock

# --------------------------------------------------------------------------- draws


def posterior_draws(fit: Fit, name: str, post: xr.Dataset | None = None) -> np.ndarray:
    """Draws of one posterior variable with chains and draws stacked first: shape (S, ...)."""
    post = fit.posterior() if post is None else post
    if name not in post:
        raise KeyError(f"{name!r} is not in the posterior (variables: {sorted(map(str, post.data_vars))})")
    da = post[name].stack(sample=("chain", "draw"))
    return np.moveaxis(np.asarray(da.values, dtype=float), -1, 0)


def fixed_draws(fit: Fit, post: xr.Dataset | None = None) -> dict[str, np.ndarray]:
    """Draws of every fixed coefficient, by term name, in the order of the design."""
    post = fit.posterior() if post is None else post
    out: dict[str, np.ndarray] = {}
    b = posterior_draws(fit, "b", post) if "b" in post else None
    coefs = [str(c) for c in post["coef"].values] if b is not None else []
    for term in fit.md.fixed_terms:
        if term == "Intercept":
            out[term] = posterior_draws(fit, "Intercept", post)
        else:
            out[term] = b[:, coefs.index(term)]
    return out


# --------------------------------------------------------------------------- structure helpers


def blocks_for(fit: Fit, group: str | None, term: str | None = None) -> list[GroupBlock]:
    """The group blocks of a grouping factor (by factor or block name), optionally those with
    ``term``. ``group=None`` means the model's only grouping factor (an error names them when
    there are several)."""
    if group is None:
        factors = list(dict.fromkeys(b.factor for b in fit.md.blocks))
        if len(factors) != 1:
            raise ValueError(
                f"name the grouping factor: the model has {len(factors)} ({', '.join(factors) or 'none'})"
            )
        group = factors[0]
    blocks = [b for b in fit.md.blocks if group in (b.name, b.factor)]
    if term is not None:
        blocks = [b for b in blocks if term in b.terms]
    if not blocks:
        known = [f"{b.name} ({b.factor}: {', '.join(b.terms)})" for b in fit.md.blocks] or ["none"]
        what = f"group {group!r}" + (f" with term {term!r}" if term else "")
        raise ValueError(f"the model has no {what}; group blocks: {'; '.join(known)}")
    return blocks


def level_counts(fit: Fit, group: str | None = None) -> pd.Series:
    """Respondents per level of a grouping factor in the rows used by the fit.

    For a binomial response (``cbind``), the number of trials is counted.
    """
    block = blocks_for(fit, group)[0]
    weights = fit.md.trials if fit.md.family == "binomial" else None
    n = np.bincount(block.idx, weights=weights, minlength=block.n_levels)
    return pd.Series(n.astype(int), index=pd.Index(block.levels, name=block.dim), name="n")


def variable_of(term_part: str) -> str:
    """``edu[gcse]`` -> ``edu``; ``x`` -> ``x``."""
    return term_part.split("[", 1)[0]


#: A term is area-level when its variance within levels is at most this share of its total
#: variance: exactly constant columns, and leave-one-out area means (which differ within an
#: LA only by a respondent's own 1/(n-1) share).
AREA_LEVEL_TOLERANCE = 0.01


def nearly_constant_within(values: np.ndarray, idx: np.ndarray, tol: float = AREA_LEVEL_TOLERANCE) -> bool:
    s = pd.Series(np.asarray(values, dtype=float))
    total = float(s.var(ddof=0))
    if total == 0.0:
        return True
    within = float((s - s.groupby(np.asarray(idx)).transform("mean")).pow(2).mean())
    return within <= tol * total


def area_level_terms(fit: Fit, group: str | None = None) -> list[str]:
    """Fixed terms (columns of the design) constant, or nearly, within every level of ``group``.

    Nearly: within-level variance at most `AREA_LEVEL_TOLERANCE` of the total, as for the
    leave-one-out area means of the synthetic cohort and the UKHLS reader.
    """
    block = blocks_for(fit, group)[0]
    out = []
    for j, term in enumerate(fit.md.fixed_terms):
        if term != "Intercept" and nearly_constant_within(fit.md.X[:, j], block.idx):
            out.append(term)
    return out


def cross_level_interactions(fit: Fit, group: str | None = None) -> list[tuple[str, str, str]]:
    """Two-way interactions of an area-level and an individual-level variable.

    Returns
    -------
    list of (term, area_variable, individual_variable)
        e.g. ``[("age50:area_sociability", "area_sociability", "age50")]``.
    """
    block = blocks_for(fit, group)[0]
    frame = fit.md.frame
    out = []
    for term in fit.md.fixed_terms:
        parts = term.split(":")
        if len(parts) != 2:
            continue
        names = [variable_of(p) for p in parts]
        if not all(n in frame for n in names):
            continue
        area = [nearly_constant_within(frame[n].to_numpy(), block.idx) for n in names]
        if area[0] != area[1]:
            a, i = (names[0], names[1]) if area[0] else (names[1], names[0])
            out.append((term, a, i))
    return out


def response_columns(fit: Fit) -> list[str]:
    return fit.md.response_columns


def group_columns(fit: Fit) -> list[str]:
    return fit.md.group_columns


def predictor_columns(fit: Fit) -> list[str]:
    skip = set(response_columns(fit)) | set(group_columns(fit))
    return [c for c in fit.md.frame.columns if c not in skip]


def reference_values(fit: Fit) -> dict[str, Any]:
    """Typical value of every predictor: the mean of a numeric one, the reference level
    (first category) of a categorical one, over the rows used by the fit."""
    frame = fit.md.frame
    out: dict[str, Any] = {}
    for c in predictor_columns(fit):
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[c] = s.cat.categories[0]
        elif pd.api.types.is_bool_dtype(s):
            out[c] = float(s.mean())
        else:
            out[c] = float(s.mean())
    return out
