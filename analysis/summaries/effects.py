"""Fixed effects, group effects, variance partition (VPC, MOR, IOR) and varying slopes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from analysis.summaries.draws import (
    area_level_terms,
    blocks_for,
    cross_level_interactions,
    fixed_draws,
    level_counts,
    posterior_draws,
)
from analysis.summaries.intervals import (
    describe_interval,
    interval_columns,
    percent_label,
    stamp,
    summarise_draws,
    warn_if_not_converged,
)
from models.fitting import Fit

LATENT_VARIANCE = math.pi**2 / 3  # variance of the standard logistic distribution


# --------------------------------------------------------------------------- fixed effects


def fixed_effects(
    fit: Fit, prob: float = 0.95, *, include_intercept: bool = True, quiet: bool = False
) -> pd.DataFrame:
    """Fixed effects as log-odds and odds ratios: the one producer of these numbers (the
    findings table, the levels-model arrows and the lme4 side by side read them from here).

    Parameters
    ----------
    fit : models.Fit
    prob : float
        Interval probability (default 0.95).
    include_intercept : bool
        Keep the ``Intercept`` row (its "odds ratio" is the odds at all predictors zero).
    quiet : bool
        No `ConvergenceWarning` (for callers that report the gate's verdict themselves).

    Returns
    -------
    pandas.DataFrame
        One row per term: ``term``, ``log_odds_mean``, ``log_odds_median``, ``log_odds_sd``,
        ``log_odds_eti95_low/high``, ``log_odds_hdi95_low/high``, ``or_mean`` (posterior
        mean of exp(b)), ``or_median``, ``or_eti95_low/high``, ``or_hdi95_low/high`` and
        ``p_or_gt_1`` = P(OR > 1) = P(b > 0). The OR median and intervals are the log-odds
        ones exponentiated (the HDI is computed on the log-odds scale).
    """
    if not quiet:
        warn_if_not_converged(fit)
    draws = fixed_draws(fit)
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
    return stamp(table, fit, interval, prob=prob)


# --------------------------------------------------------------------------- group effects


def group_effects(
    fit: Fit,
    group: str | None = None,
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
    warn_if_not_converged(fit)
    block = blocks_for(fit, group, term)[0]
    post = fit.posterior()
    r = posterior_draws(fit, f"r_{block.name}", post)[:, :, block.terms.index(term)]
    if add_fixed:
        fixed = fixed_draws(fit, post)
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
    return stamp(
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
    group: str | None = None,
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
    warn_if_not_converged(fit)
    block = blocks_for(fit, group, "Intercept")[0]
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
    fixed = fixed_draws(fit, post)
    q_lo, q_hi = norm.ppf((1 - ior_prob) / 2), norm.ppf((1 + ior_prob) / 2)
    tag = f"IOR-{percent_label(ior_prob)}"
    for term in area_predictors:
        if term not in fixed or term == "Intercept":
            raise ValueError(f"area predictor {term!r} is not a fixed term of {fit.md.formula!r}")
        b = fixed[term]
        spread = np.sqrt(2 * sd**2)
        partners = [i for t, a, i in cross_level_interactions(fit, block.name) if a == term]
        main = (
            f" Main effect: at {', '.join(f'{p} = 0' for p in partners)} (interaction)." if partners else ""
        )
        note = f"Per 1 unit of {term}.{main}{at}"
        rows.append((f"{tag} lower", term, np.exp(b + spread * q_lo), note))
        rows.append((f"{tag} upper", term, np.exp(b + spread * q_hi), note))
    x = np.column_stack([r[2] for r in rows])
    table = summarise_draws(x, prob=prob)
    table.insert(0, "quantity", [r[0] for r in rows])
    table.insert(1, "term", [r[1] for r in rows])
    table["note"] = [r[3] for r in rows]
    return stamp(table, fit, describe_interval("eti", prob), group=block.factor, prob=prob)


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
    group: str | None = None,
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
    warn_if_not_converged(fit)
    blocks = [b for b in blocks_for(fit, group) if any(t != "Intercept" for t in b.terms)]
    if not blocks:
        raise ValueError(f"group {group!r} has no varying slopes in {fit.md.formula!r}")
    block = blocks[0]
    post = fit.posterior()
    interval = describe_interval("eti", prob)
    sd = summarise_draws(posterior_draws(fit, f"sd_{block.name}", post), block.terms, prob=prob)
    sd = stamp(sd.rename_axis("term").reset_index(), fit, interval)
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
    cor = stamp(cor, fit, interval, note="upper triangle of the correlation matrix")

    r = posterior_draws(fit, f"r_{block.name}", post)
    fixed = fixed_draws(fit, post)
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
    slopes = stamp(pd.concat(parts, ignore_index=True), fit, interval, scale="log-odds per unit")
    return VaryingSlopes(sd=sd, cor=cor, slopes=slopes, group=block.factor)
