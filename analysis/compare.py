"""The Bayesian fit side by side with a frequentist reference (lme4 ``glmer``, or estimates
from another package read by `analysis.lme4.estimates_from_csv`, e.g. Stata ``melogit``).

- `side_by_side`: per fixed term the reference estimate, SE and 95% confidence interval next
  to the posterior mean, SD and equal-tailed interval, with their difference in SE units and
  the ratio SD/SE; rows for group SDs and correlations; flags for a singular (boundary) or
  non-converged glmer fit, with what the posterior says about the parameter at the boundary.
- `compare_with_lme4`: runs glmer on the fit's own model frame; when R or lme4 is missing
  it returns a result that says so (``available=False``) instead of raising.
- `shrinkage_table`: each level's no-pooling estimate, glmer conditional mode and posterior
  mean, against the level's size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import lme4
from analysis.summaries import (
    describe_interval,
    fixed_draws,
    interval_columns,
    level_counts,
    posterior_draws,
    stamp,
    warn_if_not_converged,
)
from models.fitting import Fit
from models.formula import parse_formula

__all__ = ["SideBySide", "compare_with_lme4", "glmer_formula", "shrinkage_table", "side_by_side"]

_Z975 = 1.959963984540054
_BOUNDARY_SD = 1e-4
_BOUNDARY_COR = 0.99


@dataclass
class SideBySide:
    """A Bayesian fit next to a frequentist reference.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per parameter (see `side_by_side`); empty when ``available`` is False.
    flags : list of str
        Warnings to read with the table (singular or non-converged reference fit, large
        disagreements).
    available : bool
        False when the reference could not be computed (R/lme4 missing, glmer failed).
    note : str
        One line about the reference: what it is, or why it is missing.
    reference : str
        Name of the reference ("lme4 glmer (Laplace, nAGQ = 1)", "Stata melogit"...).
    glmer : analysis.lme4.GlmerResult or None
        The glmer result, when there is one.
    """

    table: pd.DataFrame
    flags: list[str] = field(default_factory=list)
    available: bool = True
    note: str = ""
    reference: str = ""
    glmer: lme4.GlmerResult | None = None


def _columns(prob: float) -> list[str]:
    return [
        "parameter",
        "kind",
        "ref_estimate",
        "ref_se",
        "ref_ci95_low",
        "ref_ci95_high",
        "post_mean",
        "post_sd",
        *interval_columns("eti", prob, "post_"),
        "diff_in_se",
        "sd_over_se",
        "note",
    ]


def _empty(prob: float) -> pd.DataFrame:
    return pd.DataFrame(columns=_columns(prob))


def _post_row(x: np.ndarray, prob: float) -> dict[str, float]:
    lo, hi = interval_columns("eti", prob, "post_")
    q = np.quantile(x, [(1 - prob) / 2, (1 + prob) / 2])
    return {"post_mean": float(x.mean()), "post_sd": float(x.std(ddof=1)), lo: float(q[0]), hi: float(q[1])}


def _r_group(name: str) -> str:
    """lme4 names the second ``||`` component ``lad.1``: strip the suffix."""
    return re.sub(r"\.\d+$", "", str(name))


def side_by_side(
    fit: Fit,
    reference: lme4.GlmerResult | lme4.Lme4Unavailable | pd.DataFrame,
    *,
    prob: float = 0.95,
    label: str | None = None,
    small_sd: float = 0.05,
) -> SideBySide:
    """Reference estimates next to the posterior, per parameter.

    Parameters
    ----------
    fit : models.Fit
    reference : GlmerResult, Lme4Unavailable or pandas.DataFrame
        A glmer result, the note saying why there is none (returned unavailable), or a
        fixed-effects table (e.g. Stata ``melogit`` via `analysis.lme4.estimates_from_csv`).
        A glmer result, or a fixed-effects table like `GlmerResult.fixed` (e.g. from
        `analysis.lme4.estimates_from_csv`): indexed by term with ``estimate``, ``se``,
        ``ci_low``, ``ci_high``.
    prob : float
        Probability of the posterior equal-tailed interval.
    label : str, optional
        Name of the reference (default "lme4 glmer (...)" or "reference estimates").
    small_sd : float
        For a boundary SD: report P(sd < small_sd) under the posterior.

    Returns
    -------
    SideBySide
        ``table`` columns: ``parameter``, ``kind`` (fixed / sd / cor), ``ref_estimate``,
        ``ref_se``, ``ref_ci95_low``, ``ref_ci95_high`` (95% Wald interval for glmer),
        ``post_mean``, ``post_sd``, ``post_eti95_low``, ``post_eti95_high``, ``diff_in_se`` =
        (posterior mean - estimate) / SE, ``sd_over_se`` = posterior SD / SE, ``note``.
    """
    if isinstance(reference, lme4.Lme4Unavailable | str):  # no glmer: a note, shown as such
        return SideBySide(table=_empty(prob), available=False, note=str(reference))
    warn_if_not_converged(fit)
    glmer = reference if isinstance(reference, lme4.GlmerResult) else None
    fixed_ref = reference.fixed if glmer is not None else reference
    if label is None:
        if glmer is not None:
            how = "Laplace" if glmer.nAGQ == 1 else "adaptive Gauss-Hermite quadrature"
            label = f"lme4 glmer ({how}, nAGQ = {glmer.nAGQ})"
        else:
            label = "reference estimates"
    post = fit.posterior()
    draws = fixed_draws(fit, post)
    rows: list[dict] = []
    for term, x in draws.items():
        row = {"parameter": term, "kind": "fixed", **_post_row(x, prob), "note": ""}
        if term in fixed_ref.index:
            r = fixed_ref.loc[term]
            se = float(r["se"])
            row.update(ref_estimate=float(r["estimate"]), ref_se=se)
            row["ref_ci95_low"] = float(r.get("ci_low", r["estimate"] - _Z975 * se))
            row["ref_ci95_high"] = float(r.get("ci_high", r["estimate"] + _Z975 * se))
            row["diff_in_se"] = (row["post_mean"] - row["ref_estimate"]) / se
            row["sd_over_se"] = row["post_sd"] / se
        else:
            row["note"] = f"not in {label}"
        rows.append(row)
    for term in fixed_ref.index:
        if term not in draws:
            rows.append(
                {
                    "parameter": term,
                    "kind": "fixed",
                    "ref_estimate": float(fixed_ref.loc[term, "estimate"]),
                    "ref_se": float(fixed_ref.loc[term, "se"]),
                    "note": "not in the Bayesian model",
                }
            )

    flags: list[str] = []
    ref_sd = glmer.group_sd.assign(group=glmer.group_sd.group.map(_r_group)) if glmer is not None else None
    ref_cor = (
        glmer.group_corr.assign(group=glmer.group_corr.group.map(_r_group)) if glmer is not None else None
    )
    for block in fit.md.blocks:
        sd = posterior_draws(fit, f"sd_{block.name}", post)
        for k, term in enumerate(block.terms):
            row = {
                "parameter": f"sd({block.factor}: {term})",
                "kind": "sd",
                **_post_row(sd[:, k], prob),
                "note": "",
            }
            if ref_sd is not None:
                hit = ref_sd[(ref_sd.group == block.factor) & (ref_sd.term == term)]
                if len(hit):
                    row["ref_estimate"] = float(hit["sd"].iloc[0])
                    if row["ref_estimate"] < _BOUNDARY_SD:
                        p_small = float((sd[:, k] < small_sd).mean())
                        lo, hi = interval_columns("eti", prob, "post_")
                        row["note"] = "glmer at boundary (0)"
                        flags.append(
                            f"glmer estimates sd({block.factor}: {term}) at {row['ref_estimate']:.4f} "
                            f"(boundary). The posterior says: mean {row['post_mean']:.3f}, "
                            f"{describe_interval('eti', prob)} [{row[lo]:.3f}, {row[hi]:.3f}], "
                            f"P(sd < {small_sd:g}) = {p_small:.2f}."
                        )
            rows.append(row)
        if f"cor_{block.name}" in post:
            cor = posterior_draws(fit, f"cor_{block.name}", post)
            for i in range(len(block.terms)):
                for j in range(i + 1, len(block.terms)):
                    t1, t2 = block.terms[i], block.terms[j]
                    row = {
                        "parameter": f"cor({block.factor}: {t1}, {t2})",
                        "kind": "cor",
                        **_post_row(cor[:, i, j], prob),
                        "note": "",
                    }
                    if ref_cor is not None:
                        hit = ref_cor[
                            (ref_cor.group == block.factor)
                            & (
                                ((ref_cor.term1 == t1) & (ref_cor.term2 == t2))
                                | ((ref_cor.term1 == t2) & (ref_cor.term2 == t1))
                            )
                        ]
                        if len(hit):
                            row["ref_estimate"] = float(hit["corr"].iloc[0])
                            if abs(row["ref_estimate"]) > _BOUNDARY_COR:
                                lo, hi = interval_columns("eti", prob, "post_")
                                row["note"] = "glmer at boundary (+-1)"
                                flags.append(
                                    f"glmer estimates cor({block.factor}: {t1}, {t2}) at "
                                    f"{row['ref_estimate']:+.3f} (boundary). The posterior says: mean "
                                    f"{row['post_mean']:+.3f}, {describe_interval('eti', prob)} "
                                    f"[{row[lo]:+.3f}, {row[hi]:+.3f}]."
                                )
                    rows.append(row)

    table = pd.DataFrame(rows).reindex(columns=_columns(prob))
    table["note"] = table["note"].fillna("")
    if glmer is not None:
        if glmer.singular:
            flags.insert(
                0,
                "glmer reports a singular (boundary) fit: a variance is estimated at zero or a "
                "correlation at +-1; its SEs and the variance components are unreliable.",
            )
        if not glmer.converged:
            msgs = "; ".join(glmer.messages) or "no message"
            flags.insert(0, f"glmer did not converge: {msgs}")
    big = table[(table.kind == "fixed") & (table.diff_in_se.abs() > 2)]
    if len(big):
        flags.append(
            "posterior mean and reference estimate differ by more than 2 SE for: "
            + ", ".join(f"{p} ({d:+.1f} SE)" for p, d in zip(big.parameter, big.diff_in_se, strict=True))
        )
    how = "Wald, estimate +- 1.96 SE" if glmer is not None else "as given"
    interval = f"reference: 95% confidence interval ({how}); posterior: {describe_interval('eti', prob)}"
    stamp(table, fit, interval, reference=label)
    return SideBySide(
        table=table, flags=flags, available=True, note=f"Reference: {label}.", reference=label, glmer=glmer
    )


def glmer_formula(formula: str) -> str:
    """The formula in lme4's spelling (bambi's ``p(s, n)`` becomes ``cbind(s, n - s)``, ``**``
    becomes ``^``), as the formula parser writes it."""
    return parse_formula(formula).r_formula


def compare_with_lme4(
    fit: Fit,
    *,
    nAGQ: int | None = None,
    prob: float = 0.95,
    timeout: float = 1800,
) -> SideBySide:
    """Fit glmer to the fit's model frame and put it side by side with the posterior.

    Never raises for a missing R: the result then has ``available=False`` and ``note``
    "R/lme4 not available: <why>", and the rest of an analysis can go on.

    Parameters
    ----------
    fit : models.Fit
    nAGQ : int, optional
        Quadrature points (default: lme4's adaptive quadrature with 25 points for a single
        scalar random intercept, else Laplace).
    prob : float
        Posterior interval probability.
    timeout : float
        Seconds before R is stopped.

    Returns
    -------
    SideBySide
    """
    res = lme4.glmer_for(fit, nAGQ=nAGQ, timeout=timeout)
    return side_by_side(fit, res, prob=prob)


def shrinkage_table(
    fit: Fit,
    glmer_result: lme4.GlmerResult | None = None,
    group: str = "lad",
    *,
    names: Mapping[str, str] | None = None,
    prob: float = 0.95,
) -> pd.DataFrame:
    """No pooling, glmer and posterior estimates of each level's log-odds, with its size.

    All three are log-odds for a person with the sample-average predictors:

    - ``no_pooling``: empirical logit of the level's raw rate, log((y + 0.5)/(n - y + 0.5))
      (not adjusted for the predictors);
    - ``glmer``: glmer intercept + mean(x) . beta + the level's conditional mode;
    - ``posterior_mean``: posterior mean of Intercept + mean(x) . b + r_j, with its interval.

    Parameters
    ----------
    fit : models.Fit
    glmer_result : GlmerResult, optional
        Adds the ``glmer`` column.
    group : str
        Grouping factor with a varying intercept.
    names : mapping, optional
        Level code -> display name.
    prob : float
        Interval probability.

    Returns
    -------
    pandas.DataFrame
        ``level``, [``name``], ``n``, ``events``, ``raw_rate``, ``no_pooling``, ``glmer``,
        ``posterior_mean``, ``eti95_low``, ``eti95_high``, ``shrinkage`` (share of the
        no-pooling deviation from the population value removed by the posterior).
        ``.attrs["population"]``: posterior mean log-odds of the average level.
    """
    warn_if_not_converged(fit)
    blocks = [b for b in fit.md.blocks if group in (b.name, b.factor) and "Intercept" in b.terms]
    if not blocks:
        raise ValueError(f"the model has no varying intercept for {group!r}")
    block = blocks[0]
    md = fit.md
    post = fit.posterior()
    draws = fixed_draws(fit, post)
    xbar = {t: float(md.X[:, j].mean()) for j, t in enumerate(md.fixed_terms) if t != "Intercept"}
    base = draws.get("Intercept", 0.0) + sum(draws[t] * v for t, v in xbar.items())
    r = posterior_draws(fit, f"r_{block.name}", post)[:, :, block.terms.index("Intercept")]
    level_lo = base[:, None] + r
    trials = md.trials if md.family == "binomial" else np.ones(md.n_obs)
    n = level_counts(fit, block.name).to_numpy()
    events = np.bincount(block.idx, weights=md.y, minlength=block.n_levels)
    lo, hi = interval_columns("eti", prob)
    table = pd.DataFrame(
        {
            "level": block.levels,
            "n": n,
            "events": events.astype(int),
            "raw_rate": events / np.bincount(block.idx, weights=trials, minlength=block.n_levels),
            "no_pooling": np.log((events + 0.5) / (n - events + 0.5)),
            "glmer": np.nan,
            "posterior_mean": level_lo.mean(axis=0),
            lo: np.quantile(level_lo, (1 - prob) / 2, axis=0),
            hi: np.quantile(level_lo, (1 + prob) / 2, axis=0),
        }
    )
    if names is not None:
        table.insert(1, "name", [str(names.get(lv, lv)) for lv in block.levels])
    population = float(np.mean(base))
    glmer_population = None
    if glmer_result is not None:
        fx = glmer_result.fixed["estimate"]
        if all(t in fx.index for t in ["Intercept", *xbar]):
            glmer_population = float(fx["Intercept"] + sum(fx[t] * v for t, v in xbar.items()))
            rf = glmer_result.ranef
            rf = rf[(rf.group.map(_r_group) == block.factor) & (rf.term == "Intercept")]
            modes = dict(zip(rf.level.astype(str), rf["mode"], strict=True))
            table["glmer"] = [glmer_population + modes.get(lv, np.nan) for lv in block.levels]
    dev = table["no_pooling"] - population
    with np.errstate(divide="ignore", invalid="ignore"):
        table["shrinkage"] = np.where(
            np.abs(dev) > 1e-9, 1 - (table["posterior_mean"] - population) / dev, np.nan
        )
    return stamp(
        table,
        fit,
        describe_interval("eti", prob),
        population=population,
        glmer_population=glmer_population,
        scale="log-odds for a person with the sample-average predictors",
    )
