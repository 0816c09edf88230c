"""Tidy posterior summaries of a fitted hierarchical logistic model (`models.Fit`).

Every table is a `pandas.DataFrame` whose column names say the interval kind and
probability (``eti95_low``: lower end of the 95% equal-tailed interval; ``hdi95_low``: of
the 95% highest-density interval) and whose ``.attrs["interval"]`` says it in words. All
quantities are computed draw by draw from the posterior and then summarised, so every
interval is a posterior interval of the quantity itself (never a transformed point value).

Tables: `fixed_effects`, `group_effects`, `variance_partition`, `varying_slopes`,
`predicted_probabilities`, `average_marginal_effect`, `conditional_effects`,
`probability_statements` / `prob_greater`, `compare_models` (PSIS-LOO), `calibration`.
Helpers used by the report: `area_level_terms`, `cross_level_interactions`,
`level_counts`, `reference_values`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.base import array_stats
from scipy.optimize import isotonic_regression
from scipy.stats import norm

from models.fitting import ConvergenceWarning, Fit
from models.formula import GroupBlock

__all__ = [
    "Calibration",
    "ModelComparison",
    "VaryingSlopes",
    "area_level_terms",
    "average_marginal_effect",
    "calibration",
    "compare_models",
    "conditional_effects",
    "cross_level_interactions",
    "describe_interval",
    "fixed_effects",
    "group_effects",
    "interval_columns",
    "level_counts",
    "posterior_draws",
    "predicted_probabilities",
    "prob_greater",
    "probability_statements",
    "recovery",
    "reference_values",
    "summarise_draws",
    "variance_partition",
    "varying_slopes",
]

LATENT_VARIANCE = math.pi**2 / 3  # variance of the standard logistic distribution
_KIND_WORDS = {"eti": "equal-tailed interval (ETI)", "hdi": "highest-density interval (HDI)"}


# --------------------------------------------------------------------------- interval labels


def _pct(prob: float) -> str:
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
        raise ValueError(f"interval kind must be 'eti' or 'hdi', got {kind!r}")
    tag = f"{prefix}{kind}{_pct(prob)}"
    return f"{tag}_low", f"{tag}_high"


def describe_interval(kind: str, prob: float) -> str:
    """Words for an interval, e.g. ``"95% equal-tailed interval (ETI)"``."""
    return f"{_pct(prob)}% {_KIND_WORDS[kind]}"


# --------------------------------------------------------------------------- draws


def posterior_draws(fit: Fit, name: str, post: xr.Dataset | None = None) -> np.ndarray:
    """Draws of one posterior variable with chains and draws stacked first: shape (S, ...)."""
    post = fit.posterior() if post is None else post
    if name not in post:
        raise KeyError(f"{name!r} is not in the posterior (variables: {sorted(map(str, post.data_vars))})")
    da = post[name].stack(sample=("chain", "draw"))
    return np.moveaxis(np.asarray(da.values, dtype=float), -1, 0)


def _fixed_draws(fit: Fit, post: xr.Dataset | None = None) -> dict[str, np.ndarray]:
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


def _interval(x: np.ndarray, prob: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
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
        lo, hi = _interval(x, prob, kind)
        c_lo, c_hi = interval_columns(kind, prob, prefix)
        out[c_lo], out[c_hi] = lo, hi
    table = pd.DataFrame(out, index=None if index is None else list(index))
    table.attrs["interval"] = " and ".join(describe_interval(k, prob) for k in kinds)
    return table


def _gate(fit: Fit) -> None:
    if not fit.converged and not fit.accept_failed:
        warnings.warn(fit.convergence.headline, ConvergenceWarning, stacklevel=3)


def _stamp(table: pd.DataFrame, fit: Fit, interval: str, **extra: Any) -> pd.DataFrame:
    table.attrs.update({"interval": interval, "headline": fit.headline, "converged": fit.converged})
    table.attrs.update(extra)
    return table


# --------------------------------------------------------------------------- structure helpers


def _blocks_for(fit: Fit, group: str, term: str | None = None) -> list[GroupBlock]:
    blocks = [b for b in fit.md.blocks if group in (b.name, b.factor)]
    if term is not None:
        blocks = [b for b in blocks if term in b.terms]
    if not blocks:
        known = [f"{b.name} ({b.factor}: {', '.join(b.terms)})" for b in fit.md.blocks] or ["none"]
        what = f"group {group!r}" + (f" with term {term!r}" if term else "")
        raise ValueError(f"the model has no {what}; group blocks: {'; '.join(known)}")
    return blocks


def level_counts(fit: Fit, group: str = "lad") -> pd.Series:
    """Respondents per level of a grouping factor in the rows used by the fit.

    For a binomial response (``cbind``), the number of trials is counted.
    """
    block = _blocks_for(fit, group)[0]
    weights = fit.md.trials if fit.md.family == "binomial" else None
    n = np.bincount(block.idx, weights=weights, minlength=block.n_levels)
    return pd.Series(n.astype(int), index=pd.Index(block.levels, name=block.dim), name="n")


def _variable_of(term_part: str) -> str:
    """``edu[gcse]`` -> ``edu``; ``x`` -> ``x``."""
    return term_part.split("[", 1)[0]


#: A term is area-level when its variance within levels is at most this share of its total
#: variance: exactly constant columns, and leave-one-out area means (which differ within an
#: LA only by a respondent's own 1/(n-1) share).
AREA_LEVEL_TOLERANCE = 0.01


def _constant_within(values: np.ndarray, idx: np.ndarray, tol: float = AREA_LEVEL_TOLERANCE) -> bool:
    s = pd.Series(np.asarray(values, dtype=float))
    total = float(s.var(ddof=0))
    if total == 0.0:
        return True
    within = float((s - s.groupby(np.asarray(idx)).transform("mean")).pow(2).mean())
    return within <= tol * total


def area_level_terms(fit: Fit, group: str = "lad") -> list[str]:
    """Fixed terms (columns of the design) constant, or nearly, within every level of ``group``.

    Nearly: within-level variance at most `AREA_LEVEL_TOLERANCE` of the total, as for the
    leave-one-out area means of the synthetic cohort and the UKHLS reader.
    """
    block = _blocks_for(fit, group)[0]
    out = []
    for j, term in enumerate(fit.md.fixed_terms):
        if term != "Intercept" and _constant_within(fit.md.X[:, j], block.idx):
            out.append(term)
    return out


def cross_level_interactions(fit: Fit, group: str = "lad") -> list[tuple[str, str, str]]:
    """Two-way interactions of an area-level and an individual-level variable.

    Returns
    -------
    list of (term, area_variable, individual_variable)
        e.g. ``[("age50:area_sociability", "area_sociability", "age50")]``.
    """
    block = _blocks_for(fit, group)[0]
    frame = fit.md.frame
    out = []
    for term in fit.md.fixed_terms:
        parts = term.split(":")
        if len(parts) != 2:
            continue
        names = [_variable_of(p) for p in parts]
        if not all(n in frame for n in names):
            continue
        area = [_constant_within(frame[n].to_numpy(), block.idx) for n in names]
        if area[0] != area[1]:
            a, i = (names[0], names[1]) if area[0] else (names[1], names[0])
            out.append((term, a, i))
    return out


def _response_columns(fit: Fit) -> list[str]:
    return fit.md.response_columns


def _group_columns(fit: Fit) -> list[str]:
    return fit.md.group_columns


def _predictor_columns(fit: Fit) -> list[str]:
    skip = set(_response_columns(fit)) | set(_group_columns(fit))
    return [c for c in fit.md.frame.columns if c not in skip]


def reference_values(fit: Fit) -> dict[str, Any]:
    """Typical value of every predictor: the mean of a numeric one, the reference level
    (first category) of a categorical one, over the rows used by the fit."""
    frame = fit.md.frame
    out: dict[str, Any] = {}
    for c in _predictor_columns(fit):
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[c] = s.cat.categories[0]
        elif pd.api.types.is_bool_dtype(s):
            out[c] = float(s.mean())
        else:
            out[c] = float(s.mean())
    return out


# --------------------------------------------------------------------------- fixed effects


def fixed_effects(fit: Fit, prob: float = 0.95, *, include_intercept: bool = True) -> pd.DataFrame:
    """Fixed effects as log-odds and odds ratios.

    Parameters
    ----------
    fit : models.Fit
    prob : float
        Interval probability (default 0.95).
    include_intercept : bool
        Keep the ``Intercept`` row (its "odds ratio" is the odds at all predictors zero).

    Returns
    -------
    pandas.DataFrame
        One row per term: ``term``, ``log_odds_mean``, ``log_odds_median``, ``log_odds_sd``,
        ``log_odds_eti95_low/high``, ``log_odds_hdi95_low/high``, ``or_mean`` (posterior
        mean of exp(b)), ``or_median``, ``or_eti95_low/high``, ``or_hdi95_low/high`` and
        ``p_or_gt_1`` = P(OR > 1) = P(b > 0). The OR median and intervals are the log-odds
        ones exponentiated (the HDI is computed on the log-odds scale).
    """
    _gate(fit)
    draws = _fixed_draws(fit)
    terms = [t for t in draws if include_intercept or t != "Intercept"]
    x = np.column_stack([draws[t] for t in terms]) if terms else np.empty((0, 0))
    lo_tab = summarise_draws(x, terms, prob=prob, hdi=True, prefix="log_odds_")
    table = lo_tab.copy()
    table["or_mean"] = np.exp(x).mean(axis=0)
    table["or_median"] = np.exp(lo_tab["log_odds_median"])
    for kind in ("eti", "hdi"):
        for src, dst in zip(
            interval_columns(kind, prob, "log_odds_"), interval_columns(kind, prob, "or_"), strict=True
        ):
            table[dst] = np.exp(lo_tab[src])
    table["p_or_gt_1"] = (x > 0).mean(axis=0)
    table = table.rename_axis("term").reset_index()
    interval = (
        f"{describe_interval('eti', prob)} and {describe_interval('hdi', prob)}; "
        "odds-ratio intervals are the log-odds intervals exponentiated"
    )
    return _stamp(table, fit, interval, prob=prob)


# --------------------------------------------------------------------------- group effects


def group_effects(
    fit: Fit,
    group: str = "lad",
    term: str = "Intercept",
    names: Mapping[str, str] | None = None,
    prob: float = 0.95,
    *,
    add_fixed: bool = False,
) -> pd.DataFrame:
    """Every level's varying effect, as log-odds and odds ratio.

    Parameters
    ----------
    fit : models.Fit
    group : str
        Grouping factor or block name (``"lad"``).
    term : str
        Varying term (``"Intercept"`` or a varying slope such as ``"age50"``).
    names : mapping, optional
        Level code -> display name (e.g. LA code -> LA name); adds a ``name`` column.
    prob : float
        Interval probability.
    add_fixed : bool
        Add the fixed coefficient of ``term`` (the level's own log-odds or slope) instead
        of the deviation from the average level.

    Returns
    -------
    pandas.DataFrame
        ``level``, [``name``], ``n`` (respondents), ``log_odds_mean/median/sd``,
        ``log_odds_eti95_low/high``, ``or_mean``, ``or_median``, ``or_eti95_low/high``,
        ``p_or_gt_1`` and ``rank`` (1 = largest posterior mean); in the order of the levels.
    """
    _gate(fit)
    block = _blocks_for(fit, group, term)[0]
    post = fit.posterior()
    r = posterior_draws(fit, f"r_{block.name}", post)[:, :, block.terms.index(term)]
    if add_fixed:
        fixed = _fixed_draws(fit, post)
        if term in fixed:
            r = r + fixed[term][:, None]
    table = summarise_draws(r, prob=prob, prefix="log_odds_")
    table.insert(0, "level", block.levels)
    table.insert(1, "n", level_counts(fit, block.name).to_numpy())
    if names is not None:
        table.insert(1, "name", [str(names.get(lv, lv)) for lv in block.levels])
    table["or_mean"] = np.exp(r).mean(axis=0)
    table["or_median"] = np.exp(table["log_odds_median"])
    lo, hi = interval_columns("eti", prob, "log_odds_")
    or_lo, or_hi = interval_columns("eti", prob, "or_")
    table[or_lo], table[or_hi] = np.exp(table[lo]), np.exp(table[hi])
    table["p_or_gt_1"] = (r > 0).mean(axis=0)
    table["rank"] = table["log_odds_mean"].rank(ascending=False, method="first").astype(int)
    what = "level's own" if add_fixed else "deviation from the average level of"
    return _stamp(
        table,
        fit,
        describe_interval("eti", prob),
        group=block.factor,
        term=term,
        effect=f"{what} {term} (log-odds; odds ratio = exp)",
        prob=prob,
    )


# --------------------------------------------------------------------------- variance partition


def variance_partition(
    fit: Fit,
    group: str = "lad",
    area_predictors: Sequence[str] | None = None,
    prob: float = 0.95,
    *,
    ior_prob: float = 0.80,
) -> pd.DataFrame:
    """Latent-scale VPC (ICC), median odds ratio and interval odds ratios, per draw.

    - VPC = sd^2 / (sum of all groups' intercept variances + pi^2/3): the share of latent
      (logistic) variance between levels; with one grouping factor sd^2/(sd^2 + pi^2/3).
    - MOR = exp(sqrt(2) * sd * Phi^-1(0.75)): median odds ratio between two people with the
      same predictors in two randomly chosen levels.
    - IOR-80 of an area-level predictor with coefficient b:
      [exp(b + sqrt(2 sd^2) Phi^-1(0.10)), exp(b + sqrt(2 sd^2) Phi^-1(0.90))]
      (Larsen & Merlo 2005): the middle 80% of odds ratios comparing people in two levels
      that differ by one unit of the predictor.

    With varying slopes the intercept SD is the SD at all varying-slope predictors = 0, so
    VPC, MOR and IOR are stated "at x = 0".

    Parameters
    ----------
    fit : models.Fit
    group : str
        Grouping factor with a varying intercept.
    area_predictors : sequence of str, optional
        Fixed terms measured at the level of ``group``; by default every term constant
        within every level (`area_level_terms`).
    prob : float
        Interval probability of the summaries.
    ior_prob : float
        Central probability of the interval odds ratio (default 0.80).

    Returns
    -------
    pandas.DataFrame
        ``quantity``, ``term``, ``mean``, ``median``, ``sd``, ``eti95_low``, ``eti95_high``,
        ``note``.
    """
    _gate(fit)
    block = _blocks_for(fit, group, "Intercept")[0]
    post = fit.posterior()
    sd = posterior_draws(fit, f"sd_{block.name}", post)[:, block.terms.index("Intercept")]
    total = np.zeros_like(sd)
    for b in fit.md.blocks:
        if "Intercept" in b.terms:
            total += posterior_draws(fit, f"sd_{b.name}", post)[:, b.terms.index("Intercept")] ** 2
    at = ""
    slopes = [t for t in block.terms if t != "Intercept"]
    if slopes:
        at = f" At {', '.join(f'{t} = 0' for t in slopes)} (the model has varying slopes)."
    others = [b.factor for b in fit.md.blocks if b is not block and "Intercept" in b.terms]
    denom = "sd^2 + pi^2/3" if not others else f"sd^2 + variances of {', '.join(others)} + pi^2/3"
    rows: list[tuple[str, str, np.ndarray, str]] = [
        ("SD of intercepts (log-odds)", "Intercept", sd, f"Between-{block.factor} SD.{at}"),
        ("VPC / ICC (latent scale)", "Intercept", sd**2 / (total + LATENT_VARIANCE), f"sd^2/({denom}).{at}"),
        (
            "MOR",
            "Intercept",
            np.exp(math.sqrt(2) * sd * norm.ppf(0.75)),
            f"Median odds ratio between two randomly chosen levels of {block.factor}.{at}",
        ),
    ]
    if area_predictors is None:
        area_predictors = area_level_terms(fit, block.name)
    fixed = _fixed_draws(fit, post)
    q_lo, q_hi = norm.ppf((1 - ior_prob) / 2), norm.ppf((1 + ior_prob) / 2)
    tag = f"IOR-{_pct(ior_prob)}"
    for term in area_predictors:
        if term not in fixed or term == "Intercept":
            raise ValueError(f"area predictor {term!r} is not a fixed term of {fit.md.formula!r}")
        b = fixed[term]
        spread = np.sqrt(2 * sd**2)
        partners = [i for t, a, i in cross_level_interactions(fit, block.name) if a == term]
        main = (
            f" Main effect: at {', '.join(f'{p} = 0' for p in partners)} (interaction)." if partners else ""
        )
        note = f"Per 1 unit of {term} (area_* are z-scores: per SD).{main}{at}"
        rows.append((f"{tag} lower", term, np.exp(b + spread * q_lo), note))
        rows.append((f"{tag} upper", term, np.exp(b + spread * q_hi), note))
    x = np.column_stack([r[2] for r in rows])
    table = summarise_draws(x, prob=prob)
    table.insert(0, "quantity", [r[0] for r in rows])
    table.insert(1, "term", [r[1] for r in rows])
    table["note"] = [r[3] for r in rows]
    return _stamp(table, fit, describe_interval("eti", prob), group=block.factor, prob=prob)


# --------------------------------------------------------------------------- varying slopes


@dataclass
class VaryingSlopes:
    """Summaries of a block with varying slopes.

    Attributes
    ----------
    sd : pandas.DataFrame
        SD of each varying term (log-odds scale).
    cor : pandas.DataFrame
        Correlations, upper triangle only (``term1``, ``term2``, ``p_gt_0``).
    slopes : pandas.DataFrame
        Each level's total slope of each varying slope term.
    group : str
    """

    sd: pd.DataFrame
    cor: pd.DataFrame
    slopes: pd.DataFrame
    group: str


def varying_slopes(
    fit: Fit,
    group: str = "lad",
    prob: float = 0.95,
    names: Mapping[str, str] | None = None,
) -> VaryingSlopes:
    """SDs, correlations and each level's total slope for a block with varying slopes.

    The total slope of term ``x`` in level j is ``b_x + r_j,x`` plus, for every
    cross-level interaction ``x:w`` with ``w`` constant within levels, ``b_x:w * w_j``.

    Parameters
    ----------
    fit : models.Fit
    group : str
        Grouping factor or block name.
    prob : float
        Interval probability.
    names : mapping, optional
        Level code -> display name.

    Returns
    -------
    VaryingSlopes
    """
    _gate(fit)
    blocks = [b for b in _blocks_for(fit, group) if any(t != "Intercept" for t in b.terms)]
    if not blocks:
        raise ValueError(f"group {group!r} has no varying slopes in {fit.md.formula!r}")
    block = blocks[0]
    post = fit.posterior()
    interval = describe_interval("eti", prob)
    sd = summarise_draws(posterior_draws(fit, f"sd_{block.name}", post), block.terms, prob=prob)
    sd = _stamp(sd.rename_axis("term").reset_index(), fit, interval)
    cor_rows, cor_x = [], []
    if f"cor_{block.name}" in post:
        c = posterior_draws(fit, f"cor_{block.name}", post)
        for i in range(len(block.terms)):
            for j in range(i + 1, len(block.terms)):
                cor_rows.append((block.terms[i], block.terms[j]))
                cor_x.append(c[:, i, j])
    if cor_rows:
        x = np.column_stack(cor_x)
        cor = summarise_draws(x, prob=prob)
        cor.insert(0, "term1", [r[0] for r in cor_rows])
        cor.insert(1, "term2", [r[1] for r in cor_rows])
        cor["p_gt_0"] = (x > 0).mean(axis=0)
    else:
        cor = pd.DataFrame(columns=["term1", "term2"])
    cor = _stamp(cor, fit, interval, note="upper triangle of the correlation matrix")

    r = posterior_draws(fit, f"r_{block.name}", post)
    fixed = _fixed_draws(fit, post)
    frame = fit.md.frame
    first = pd.Series(np.arange(len(block.idx))).groupby(block.idx).first().to_numpy()
    n = level_counts(fit, block.name).to_numpy()
    parts = []
    for k, term in enumerate(block.terms):
        if term == "Intercept":
            continue
        total = r[:, :, k].copy()
        includes = [f"r[{term}]"]
        if term in fixed:
            total += fixed[term][:, None]
            includes.insert(0, f"b[{term}]")
        for inter, area, indiv in cross_level_interactions(fit, block.name):
            if indiv == term and inter in fixed and area in frame:
                w = frame[area].to_numpy(dtype=float)[first]
                total += fixed[inter][:, None] * w[None, :]
                includes.append(f"b[{inter}] * {area}")
        tab = summarise_draws(total, prob=prob)
        tab.insert(0, "level", block.levels)
        tab.insert(1, "term", term)
        tab.insert(2, "n", n)
        if names is not None:
            tab.insert(1, "name", [str(names.get(lv, lv)) for lv in block.levels])
        tab["p_gt_0"] = (total > 0).mean(axis=0)
        tab["includes"] = " + ".join(includes)
        parts.append(tab)
    slopes = _stamp(pd.concat(parts, ignore_index=True), fit, interval, scale="log-odds per unit")
    return VaryingSlopes(sd=sd, cor=cor, slopes=slopes, group=block.factor)


# --------------------------------------------------------------------------- predictions


def _summarise_probs(p: np.ndarray, prob: float) -> pd.DataFrame:
    """Summaries of probability draws (S, rows) with ``p_`` column names."""
    return summarise_draws(p, prob=prob, prefix="p_")


def predicted_probabilities(
    fit: Fit,
    grid: pd.DataFrame,
    *,
    include_groups: bool = False,
    unseen: str = "zero",
    prob: float = 0.95,
    max_draws: int | None = 1000,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Posterior predicted probability for each row of a grid of predictor values.

    Parameters
    ----------
    fit : models.Fit
    grid : pandas.DataFrame
        Rows of predictor values (every predictor of the formula; grouping columns only
        when ``include_groups``).
    include_groups : bool
        Add the rows' group effects (default False: population level, groups at zero).
    unseen : {"zero", "population", "error"}
        Group levels not in the fit (only with ``include_groups``).
    prob : float
        Interval probability.
    max_draws : int, optional
        Thin the posterior to at most this many draws.
    seed : int, optional
        Seed for unseen levels drawn from the population.

    Returns
    -------
    pandas.DataFrame
        The grid with ``p_mean``, ``p_median``, ``p_sd``, ``p_eti95_low``, ``p_eti95_high``.
    """
    _gate(fit)
    p = fit.predict(grid, include_groups=include_groups, unseen=unseen, seed=seed, max_draws=max_draws)
    summary = _summarise_probs(np.asarray(p.values), prob)
    out = pd.concat([grid.reset_index(drop=True), summary], axis=1)
    groups = (
        "with the rows' group effects" if include_groups else "all group effects at zero (a typical level)"
    )
    return _stamp(out, fit, describe_interval("eti", prob), groups=groups)


def _is_binary(s: pd.Series) -> bool:
    vals = set(pd.unique(s.dropna().astype(float)))
    return vals <= {0.0, 1.0} and len(vals) == 2


def average_marginal_effect(
    fit: Fit,
    term: str,
    data: pd.DataFrame | None = None,
    *,
    prob: float = 0.95,
    max_draws: int | None = 500,
    chunk_rows: int = 4000,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Average marginal effect of a predictor on the probability scale.

    Counterfactual predictions for every row of ``data`` (default: the fit's model
    frame), with each row's group effects at their posterior values; per posterior draw
    the row differences are averaged, then summarised.

    - binary 0/1 predictor: mean of P(y=1 | x=1) - P(y=1 | x=0);
    - categorical predictor: each level against the reference level;
    - continuous predictor: mean derivative dP/dx per unit of x (central difference).

    Interactions involving the predictor are recomputed from the changed values.

    Parameters
    ----------
    fit : models.Fit
    term : str
        Predictor variable (a column of the data, not an interaction).
    data : pandas.DataFrame, optional
        Rows to average over; default the rows the model used.
    prob : float
        Interval probability.
    max_draws : int, optional
        Thin the posterior to at most this many draws (memory: draws x rows).
    chunk_rows : int
        Rows predicted at a time.
    seed : int, optional
        Seed for levels unseen in the fit (drawn from the population).

    Returns
    -------
    pandas.DataFrame
        One row per contrast: ``term``, ``contrast``, ``ame_mean``, ``ame_median``,
        ``ame_sd``, ``ame_eti95_low``, ``ame_eti95_high``, ``p_gt_0``, ``n_rows``. The scale
        is a difference in probability (x 100 = percentage points).
    """
    _gate(fit)
    data = fit.md.frame if data is None else data
    if term not in _predictor_columns(fit) or term not in data:
        raise ValueError(
            f"{term!r} is not a predictor variable of {fit.md.formula!r}; "
            f"choose one of {_predictor_columns(fit)}"
        )
    s = fit.md.frame[term]
    if isinstance(s.dtype, pd.CategoricalDtype):
        ref = s.cat.categories[0]
        contrasts = [(f"{lv} vs {ref}", lv, ref, 1.0) for lv in s.cat.categories[1:]]
    elif _is_binary(s):
        contrasts = [("1 vs 0", 1, 0, 1.0)]
    else:
        h = 1e-3 * float(s.std()) or 1e-3
        contrasts = [(f"dP/d{term} per unit (derivative)", h, -h, 2 * h)]
    continuous = not isinstance(s.dtype, pd.CategoricalDtype) and not _is_binary(s)
    rows, draws = [], []
    for label, v1, v0, width in contrasts:
        total = None
        for start in range(0, len(data), chunk_rows):
            chunk = data.iloc[start : start + chunk_rows]
            d1, d0 = chunk.copy(), chunk.copy()
            if continuous:
                d1[term] = chunk[term].astype(float) + v1
                d0[term] = chunk[term].astype(float) + v0
            else:
                d1[term], d0[term] = v1, v0
            kw = dict(include_groups=True, unseen="population", seed=seed, max_draws=max_draws)
            diff = (fit.predict(d1, **kw).values - fit.predict(d0, **kw).values).sum(axis=1)
            total = diff if total is None else total + diff
        draws.append(total / (len(data) * width))
        rows.append(label)
    x = np.column_stack(draws)
    table = summarise_draws(x, prob=prob, prefix="ame_")
    table.insert(0, "term", term)
    table.insert(1, "contrast", rows)
    table["p_gt_0"] = (x > 0).mean(axis=0)
    table["n_rows"] = len(data)
    return _stamp(
        table,
        fit,
        describe_interval("eti", prob),
        scale="difference in probability (x 100 = percentage points)",
        groups="each row's group effects at their posterior draws",
    )


def _moderator_range(fit: Fit, moderator: str, percentiles: tuple[float, float]) -> tuple[np.ndarray, str]:
    """Percentile range over levels when the moderator is area-level, else over rows."""
    frame = fit.md.frame
    vals = frame[moderator].to_numpy(dtype=float)
    for block in fit.md.blocks:
        if _constant_within(vals, block.idx):
            per_level = pd.Series(vals).groupby(block.idx).first().to_numpy()
            where = f"over levels of {block.factor}"
            return per_level, f"{percentiles[0]:g}th to {percentiles[1]:g}th percentile {where}"
    return vals, f"{percentiles[0]:g}th to {percentiles[1]:g}th percentile over respondents"


def conditional_effects(
    fit: Fit,
    moderator: str,
    by: str | None = None,
    values: Sequence[float] | None = None,
    *,
    by_values: Sequence[Any] | None = None,
    percentiles: tuple[float, float] = (5, 95),
    n_points: int = 25,
    at: Mapping[str, Any] | None = None,
    prob: float = 0.95,
    max_draws: int | None = 1000,
) -> pd.DataFrame:
    """Predicted probability across a moderator's range, for each value of ``by``.

    Other predictors are held at their means (numeric) or reference level (categorical),
    unless given in ``at``; every group effect is zero (a typical level).

    Parameters
    ----------
    fit : models.Fit
    moderator : str
        Numeric predictor on the x-axis, e.g. ``"area_sociability"``.
    by : str, optional
        Predictor giving one line per value, e.g. ``"age50"``.
    values : sequence of float, optional
        Moderator values; default ``n_points`` from the ``percentiles`` (over levels of
        the grouping factor when the moderator is area-level, else over respondents).
    by_values : sequence, optional
        Values of ``by``; default its categories, its values when it has at most 5, else
        its 10th, 50th and 90th percentiles.
    percentiles : (float, float)
        Range of the moderator.
    n_points : int
        Points along the moderator.
    at : mapping, optional
        Values for other predictors.
    prob : float
        Interval probability.
    max_draws : int, optional
        Thin the posterior.

    Returns
    -------
    pandas.DataFrame
        ``moderator``, [``by``], ``p_mean``, ``p_median``, ``p_sd``, ``p_eti95_low``,
        ``p_eti95_high``; ``.attrs["held"]`` holds the values of the other predictors.
    """
    _gate(fit)
    preds = _predictor_columns(fit)
    for name in [moderator] + ([by] if by else []):
        if name not in preds:
            raise ValueError(f"{name!r} is not a predictor of {fit.md.formula!r}; choose from {preds}")
    base = reference_values(fit)
    unknown = set(at or {}) - set(preds)
    if unknown:
        raise ValueError(f"'at' names {sorted(unknown)} that are not predictors of {fit.md.formula!r}")
    base.update(at or {})
    range_note = "values given"
    if values is None:
        pool, range_note = _moderator_range(fit, moderator, percentiles)
        lo, hi = np.percentile(pool, percentiles)
        values = np.linspace(lo, hi, n_points)
    grid = pd.DataFrame({moderator: np.asarray(values, dtype=float)})
    if by:
        s = fit.md.frame[by]
        if by_values is None:
            if isinstance(s.dtype, pd.CategoricalDtype):
                by_values = list(s.cat.categories)
            elif s.nunique() <= 5:
                by_values = sorted(pd.unique(s))
            else:
                by_values = list(np.percentile(s.astype(float), [10, 50, 90]))
        grid = grid.merge(pd.DataFrame({by: list(by_values)}), how="cross")
    held = {k: v for k, v in base.items() if k not in (moderator, by)}
    full = grid.copy()
    for k, v in held.items():
        full[k] = v
    for c, levels in fit.md.categorical_levels.items():
        if c in full and c in preds:
            full[c] = pd.Categorical(full[c].astype(str), categories=levels)
    p = fit.predict(full, include_groups=False, max_draws=max_draws)
    out = pd.concat([grid.reset_index(drop=True), _summarise_probs(np.asarray(p.values), prob)], axis=1)
    return _stamp(
        out,
        fit,
        describe_interval("eti", prob),
        moderator=moderator,
        by=by,
        held=held,
        range=range_note,
        groups="all group effects at zero (a typical level)",
    )


# --------------------------------------------------------------------------- probability statements

_ABS = re.compile(r"^\s*abs\s*\(\s*(.+?)\s*\)\s*$")


def _operand(fit: Fit, expr: str | float, draws: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
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
    _gate(fit)
    draws = _fixed_draws(fit)
    xa, la = _operand(fit, a, draws)
    xb, lb = _operand(fit, b, draws)
    d = xa - xb
    table = summarise_draws(d, prob=prob, prefix="diff_")
    table.insert(0, "statement", f"{la} > {lb}")
    table.insert(1, "probability", float((d > 0).mean()))
    return _stamp(table, fit, describe_interval("eti", prob), scale="log-odds")


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
    return _stamp(table, fit, describe_interval("eti", prob), scale="log-odds")


# --------------------------------------------------------------------------- model comparison


@dataclass
class ModelComparison:
    """PSIS-LOO comparison of fits to the same data.

    Attributes
    ----------
    table : pandas.DataFrame
        `arviz.compare` output (best first): ``elpd``, ``se``, ``elpd_diff``, ``dse``, ``p``,
        ``weight``...
    pareto : pandas.DataFrame
        Pareto-k diagnostics per model: threshold, counts above it and above 1, max k.
    notes : list of str
        Problems to read before the table (high Pareto k, warnings).
    loo : dict
        The `ELPDData` of each model.
    """

    table: pd.DataFrame
    pareto: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    loo: dict[str, Any] = field(default_factory=dict)


def with_log_likelihood(fit: Fit) -> xr.DataTree:
    """Copy of the fit's DataTree with a ``log_likelihood`` group added."""
    tree = fit.idata.copy()
    ll = fit.log_likelihood()
    if isinstance(ll, xr.DataTree):
        ll = ll["log_likelihood"].to_dataset() if "log_likelihood" in ll.children else ll.to_dataset()
    tree["log_likelihood"] = xr.DataTree(ll)
    return tree


def compare_models(fits: Mapping[str, Fit]) -> ModelComparison:
    """Compare fits of the same outcome and rows by PSIS-LOO (`arviz.loo`, `arviz.compare`).

    Parameters
    ----------
    fits : mapping of str to models.Fit
        At least one fit; all must use the same response values (same rows).

    Returns
    -------
    ModelComparison

    Raises
    ------
    ValueError
        When the fits were made on different rows or outcomes (their ELPDs would not be
        comparable).
    """
    import arviz as az

    if not fits:
        raise ValueError("compare_models needs at least one fit")
    names = list(fits)
    ref = fits[names[0]].md
    for name in names[1:]:
        md = fits[name].md
        same = md.n_obs == ref.n_obs and np.array_equal(md.y, ref.y)
        if not same:
            raise ValueError(
                f"fits {names[0]!r} ({ref.n_obs} rows of {ref.response}) and {name!r} ({md.n_obs} rows "
                f"of {md.response}) are not fitted to the same data: LOO cannot compare them"
            )
    loos, rows, notes = {}, [], []
    for name, f in fits.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loos[name] = az.loo(with_log_likelihood(f), pointwise=True)
        k = np.asarray(loos[name].pareto_k).ravel()
        thr = float(loos[name].good_k)
        n_bad, n_very = int((k > thr).sum()), int((k > 1).sum())
        rows.append(
            {
                "model": name,
                "n_obs": len(k),
                "k_threshold": thr,
                "n_k_above_threshold": n_bad,
                "n_k_above_1": n_very,
                "max_k": float(k.max()),
            }
        )
        if not f.converged:
            notes.append(f"{name}: {f.headline}")
        if n_bad:
            notes.append(
                f"{name}: {n_bad} of {len(k)} observations have Pareto k > {thr:.2f} "
                f"({n_very} above 1): its PSIS-LOO estimate may be unreliable"
            )
        for w in caught:
            if "Pareto" not in str(w.message):
                notes.append(f"{name}: {w.message}")
    if len(loos) > 1:
        table = az.compare(loos, round_to="none")
    else:
        only = next(iter(loos.values()))
        table = pd.DataFrame({"rank": [0], "elpd": [only.elpd], "se": [only.se], "p": [only.p]}, index=names)
    table.index.name = "model"
    table.attrs["note"] = "PSIS-LOO expected log predictive density; higher is better"
    return ModelComparison(table=table, pareto=pd.DataFrame(rows), notes=notes, loo=loos)


# --------------------------------------------------------------------------- calibration


@dataclass
class Calibration:
    """PAV-adjusted calibration of a fit on the rows it used.

    Attributes
    ----------
    table : pandas.DataFrame
        Per bin of predicted probability: ``n``, ``mean_predicted``, ``observed_rate``,
        ``cep_mean`` (PAV-calibrated event probability), ``band_low``/``band_high``.
    curve : pandas.DataFrame
        The full PAV curve: ``predicted`` (sorted posterior mean probability), ``cep`` and
        the consistency band ``band_low``/``band_high`` under the model.
    figure : matplotlib.figure.Figure or None
        The calibration plot (`analysis.figures.calibration_figure`).
    prob : float
        Probability of the consistency band.
    """

    table: pd.DataFrame
    curve: pd.DataFrame
    figure: Any = None
    prob: float = 0.95


def in_sample_probabilities(fit: Fit, max_draws: int | None = 400) -> np.ndarray:
    """Posterior draws of P(y = 1) for the fit's own rows, group effects included: (S, rows)."""
    p = fit.predict(fit.md.frame, include_groups=True, unseen="error", max_draws=max_draws)
    return np.asarray(p.values)


def calibration(
    fit: Fit,
    *,
    n_bins: int = 10,
    prob: float = 0.95,
    n_draws: int = 200,
    seed: int = 0,
    figure: bool = True,
    synthetic: bool = False,
) -> Calibration:
    """PAV-adjusted calibration: isotonic regression of y on the posterior mean probability.

    The band shows where the PAV curve falls when the outcomes are drawn from the model
    itself (posterior predictive replicates): a curve outside it is miscalibration. This is
    the calculation of `arviz.plot_ppc_pava`, done on the fit's rows directly.

    Parameters
    ----------
    fit : models.Fit
    n_bins : int
        Bins (quantiles of predicted probability) of the table.
    prob : float
        Probability of the consistency band.
    n_draws : int
        Posterior predictive replicates for the band.
    seed : int
        Seed of the replicates.
    figure : bool
        Make the figure (`Calibration.figure`).
    synthetic : bool
        Mark the figure as made from synthetic data.

    Returns
    -------
    Calibration
    """
    _gate(fit)
    p = in_sample_probabilities(fit, max_draws=max(n_draws, 400))
    trials = fit.md.trials if fit.md.family == "binomial" else np.ones(fit.md.n_obs)
    trials = np.asarray(trials, dtype=float)
    obs = fit.md.y / trials
    pbar = p.mean(axis=0)
    order = np.argsort(pbar, kind="stable")
    w = trials[order]
    cep = isotonic_regression(obs[order], weights=w, increasing=True).x
    rng = np.random.default_rng(seed)
    pick = rng.choice(p.shape[0], size=min(n_draws, p.shape[0]), replace=False)
    reps = np.empty((len(pick), len(order)))
    for i, s in enumerate(pick):
        yrep = rng.binomial(trials[order].astype(int), p[s, order]) / trials[order]
        reps[i] = isotonic_regression(yrep, weights=w, increasing=True).x
    band_low, band_high = np.quantile(reps, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    curve = pd.DataFrame({"predicted": pbar[order], "cep": cep, "band_low": band_low, "band_high": band_high})
    bins = pd.qcut(curve["predicted"].rank(method="first"), q=min(n_bins, len(curve)), labels=False)
    frame = curve.assign(observed=obs[order], w=w, bin=bins.to_numpy() + 1)
    table = frame.groupby("bin").apply(
        lambda g: pd.Series(
            {
                "n": g["w"].sum(),
                "mean_predicted": np.average(g["predicted"], weights=g["w"]),
                "observed_rate": np.average(g["observed"], weights=g["w"]),
                "cep_mean": np.average(g["cep"], weights=g["w"]),
                "band_low": np.average(g["band_low"], weights=g["w"]),
                "band_high": np.average(g["band_high"], weights=g["w"]),
            }
        ),
        include_groups=False,
    )
    table = table.reset_index()
    table["n"] = table["n"].astype(int)
    outside = float(((curve.cep < curve.band_low) | (curve.cep > curve.band_high)).mean())
    interval = f"{_pct(prob)}% consistency band (PAV curves of outcomes replicated from the model)"
    _stamp(
        table,
        fit,
        interval,
        share_outside_band=outside,
        mean_predicted=float(np.average(pbar, weights=trials)),
        observed_rate=float(np.average(obs, weights=trials)),
    )
    fig = None
    if figure:
        from analysis.figures import calibration_figure

        fig = calibration_figure(curve, prob=prob, synthetic=synthetic, title=None)
    return Calibration(table=table, curve=curve, figure=fig, prob=prob)


# --------------------------------------------------------------------------- recovery


def _flatten_truth(truth: Mapping[str, Any] | Any) -> dict[str, float]:
    """Truth as ``{name: value}``: fixed terms, ``sd_<g>[term]``, ``cor_<g>[t1,t2]``."""
    if hasattr(truth, "to_json"):
        truth = truth.to_json()
    if "fixed" in truth and isinstance(truth["fixed"], Mapping):
        flat = {str(k): float(v) for k, v in truth["fixed"].items()}
        for g, spec in (truth.get("groups") or {}).items():
            terms = list(spec["terms"])
            for t, s in zip(terms, spec["sd"], strict=True):
                flat[f"sd_{g}[{t}]"] = float(s)
            corr = spec.get("corr")
            if corr is not None:
                for i in range(len(terms)):
                    for j in range(i + 1, len(terms)):
                        flat[f"cor_{g}[{terms[i]},{terms[j]}]"] = float(corr[i][j])
        return flat
    return {str(k): float(v) for k, v in truth.items()}


def _truth_draws(fit: Fit, name: str, post: xr.Dataset, fixed: dict[str, np.ndarray]) -> np.ndarray | None:
    key = name.replace(" ", "")
    if key in fixed:
        return fixed[key]
    if ":" in key:
        parts = sorted(key.split(":"))
        for t, x in fixed.items():
            if sorted(t.split(":")) == parts:
                return x
    m = re.fullmatch(r"(sd|cor)_(\w+?)(?:\[(.+)\])?", key)
    if not m:
        return None
    kind, g, inner = m.groups()
    blocks = [b for b in fit.md.blocks if g in (b.name, b.factor)]
    if not blocks:
        return None
    block = blocks[0]
    if kind == "sd":
        term = inner or "Intercept"
        if term not in block.terms:
            return None
        return posterior_draws(fit, f"sd_{block.name}", post)[:, block.terms.index(term)]
    if not inner or f"cor_{block.name}" not in post:
        return None
    t1, t2 = (s.strip() for s in inner.split(","))
    if t1 not in block.terms or t2 not in block.terms:
        return None
    c = posterior_draws(fit, f"cor_{block.name}", post)
    return c[:, block.terms.index(t1), block.terms.index(t2)]


def recovery(fit: Fit, truth: Mapping[str, Any] | Any, prob: float = 0.95) -> pd.DataFrame:
    """Known true values against the posterior (for fits to simulated data).

    Parameters
    ----------
    fit : models.Fit
    truth : mapping or object with ``to_json()``
        ``{name: value}`` with fixed terms (``"x"``, ``"x:w"``), ``"sd_lad"`` or
        ``"sd_lad[x]"`` and ``"cor_lad[Intercept,x]"``; or the ``truth.json`` layout
        ``{"fixed": {...}, "groups": {"lad": {"terms", "sd", "corr"}}}``.
    prob : float
        Interval probability.

    Returns
    -------
    pandas.DataFrame
        ``parameter``, ``true``, ``mean``, ``median``, ``sd``, ``eti95_low``, ``eti95_high``,
        ``covered`` ("yes"/"no"; "not in model" when the model lacks the parameter).
    """
    _gate(fit)
    post = fit.posterior()
    fixed = _fixed_draws(fit, post)
    lo, hi = interval_columns("eti", prob)
    rows = []
    for name, value in _flatten_truth(truth).items():
        x = _truth_draws(fit, name, post, fixed)
        row: dict[str, Any] = {"parameter": name, "true": value}
        if x is None:
            row["covered"] = "not in model"
        else:
            s = summarise_draws(x, prob=prob).iloc[0].to_dict()
            row.update(s)
            row["covered"] = "yes" if s[lo] <= value <= s[hi] else "no"
        rows.append(row)
    cols = ["parameter", "true", "mean", "median", "sd", lo, hi, "covered"]
    table = pd.DataFrame(rows).reindex(columns=cols)
    return _stamp(table, fit, describe_interval("eti", prob))
