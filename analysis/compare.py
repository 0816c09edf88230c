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
    blocks_for,
    describe_interval,
    fixed_draws,
    fixed_effects,
    interval_columns,
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


#: glmer's (Wald) 95% confidence interval columns
REF_LOW, REF_HIGH = interval_columns("ci", 0.95, "ref_")


def _columns(prob: float) -> list[str]:
    return [
        "parameter",
        "kind",
        "ref_estimate",
        "ref_se",
        REF_LOW,
        REF_HIGH,
        "post_mean",
        "post_sd",
        *interval_columns("eti", prob, "post_"),
        "diff_in_se",
        "sd_over_se",
        "note",
    ]


def _empty(prob: float) -> pd.DataFrame:
    return pd.DataFrame(columns=_columns(prob))


def _post_row_of_fixed(row: pd.Series, prob: float) -> dict[str, float]:
    """The posterior columns of a fixed term, read from `summaries.fixed_effects`."""
    lo, hi = interval_columns("eti", prob, "post_")
    src_lo, src_hi = interval_columns("eti", prob, "log_odds_")
    return {
        "post_mean": float(row["log_odds_mean"]),
        "post_sd": float(row["log_odds_sd"]),
        lo: float(row[src_lo]),
        hi: float(row[src_hi]),
    }


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
    fe = fixed_effects(fit, prob, quiet=True).set_index("term")
    draws = fe.index
    rows: list[dict] = []
    for term in draws:
        row = {"parameter": term, "kind": "fixed", **_post_row_of_fixed(fe.loc[term], prob), "note": ""}
        if term in fixed_ref.index:
            r = fixed_ref.loc[term]
            se = float(r["se"])
            row.update(ref_estimate=float(r["estimate"]), ref_se=se)
            row[REF_LOW] = float(r.get("ci_low", r["estimate"] - _Z975 * se))
            row[REF_HIGH] = float(r.get("ci_high", r["estimate"] + _Z975 * se))
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


@dataclass
class NoPooling:
    """Each level's own estimate from a fit with the level as a fixed factor (glm, no pooling).

    Attributes
    ----------
    value : numpy.ndarray
        Per level: the mean over its rows of the fitted log-odds (NaN where not estimable).
    estimable : numpy.ndarray of bool
        False for levels whose outcomes are all 0 or all 1 (their effect is infinite).
    converged : bool
        Whether the Newton iterations converged.
    within_terms : list of str
        Fixed-effect columns estimated beside the level effects (those that vary within
        levels; the intercept and level-constant columns are absorbed by the level effects).
    """

    value: np.ndarray
    estimable: np.ndarray
    converged: bool
    within_terms: list[str]


def no_pooling_estimates(
    fit: Fit, group: str | None = None, *, max_iter: int = 100, tol: float = 1e-9
) -> NoPooling:
    """Maximum-likelihood logistic regression with the same covariates and the level as a fixed factor.

    The like-for-like "no pooling" point of the shrinkage plot: it adjusts for the same
    predictors as the multilevel model, so what differs from the posterior is pooling alone.
    Columns constant within every level (area-level predictors, the intercept) are absorbed
    by the level effects. Newton-Raphson with the level effects eliminated through the Schur
    complement, so the cost is small for hundreds of levels. Levels whose outcomes are all 0
    or all 1 have no finite estimate and are marked (``estimable``), not plotted at infinity.

    Parameters
    ----------
    fit : models.Fit
    group : str
        Grouping factor.
    max_iter, tol : int, float
        Newton iterations and the step size that counts as converged.

    Returns
    -------
    NoPooling
    """
    md = fit.md
    block = blocks_for(fit, group, "Intercept")[0]
    idx, J = block.idx, block.n_levels
    trials = md.trials.astype(float) if md.family == "binomial" else np.ones(md.n_obs)
    y = md.y.astype(float)
    events = np.bincount(idx, weights=y, minlength=J)
    total = np.bincount(idx, weights=trials, minlength=J)
    estimable = (events > 0) & (events < total)
    rows = estimable[idx]
    means = _level_means(md.X, idx, J)
    within = [
        j
        for j, t in enumerate(md.fixed_terms)
        if t != "Intercept"
        and np.any(np.abs(md.X[:, j] - means[idx, j]) > 1e-12 * max(1.0, np.abs(md.X[:, j]).max()))
    ]
    X = md.X[rows][:, within]
    yi, ni, gi = y[rows], trials[rows], idx[rows]
    beta = np.zeros(X.shape[1])
    alpha = np.log((events + 0.5) / (total - events + 0.5))
    converged = False
    for _ in range(max_iter):
        eta = X @ beta + alpha[gi]
        mu = 1 / (1 + np.exp(-eta))
        w = ni * mu * (1 - mu)
        resid = yi - ni * mu
        d = np.where(estimable, np.bincount(gi, weights=w, minlength=J), 1.0)
        g_a = np.bincount(gi, weights=resid, minlength=J)
        if X.shape[1]:
            A = X.T @ (X * w[:, None])
            B = np.stack([np.bincount(gi, weights=X[:, k] * w, minlength=J) for k in range(X.shape[1])])
            S = A - (B / d) @ B.T
            db = np.linalg.lstsq(S, X.T @ resid - B @ (g_a / d), rcond=None)[0]
            da = (g_a - B.T @ db) / d
        else:
            db, da = np.zeros(0), g_a / d
        da = np.where(estimable, da, 0.0)
        beta, alpha = beta + db, alpha + da
        if max(np.abs(da).max(initial=0.0), np.abs(db).max(initial=0.0)) < tol:
            converged = True
            break
    xb = means[:, within] @ beta  # the mean over the level's rows of x . beta
    value = np.where(estimable, alpha + xb, np.nan)
    return NoPooling(value, estimable, converged, [md.fixed_terms[j] for j in within])


def _level_means(values: np.ndarray, idx: np.ndarray, n_levels: int) -> np.ndarray:
    """Mean over each level's rows: (n, k) -> (n_levels, k)."""
    counts = np.maximum(np.bincount(idx, minlength=n_levels), 1).astype(float)
    sums = [np.bincount(idx, weights=values[:, k], minlength=n_levels) for k in range(values.shape[1])]
    return np.stack(sums, axis=1) / counts[:, None]


def shrinkage_table(
    fit: Fit,
    glmer_result: lme4.GlmerResult | None = None,
    group: str | None = None,
    *,
    names: Mapping[str, str] | None = None,
    prob: float = 0.95,
) -> pd.DataFrame:
    """No pooling, glmer and posterior estimates of each level's log-odds, with its size.

    Like for like: all three are the mean over the level's own rows of the fitted log-odds,
    from models with the same covariates, so they differ by pooling alone:

    - ``no_pooling``: a glm with the level as a fixed factor (`no_pooling_estimates`); NaN,
      with ``estimable`` False, where the level's outcomes are all 0 or all 1;
    - ``glmer``: glmer's fixed effects and the conditional modes;
    - ``posterior_mean``: the posterior mean (and interval) of the same quantity;
    - ``population``: the posterior mean of the fixed part alone (the level with no effect of
      its own), against which ``shrinkage`` is measured.

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
        ``level``, [``name``], ``n``, ``events``, ``raw_rate``, ``no_pooling``,
        ``estimable``, ``glmer``, ``posterior_mean``, ``eti95_low``, ``eti95_high``,
        ``population``, ``shrinkage`` (share of the no-pooling deviation from the
        population value removed by the posterior).
    """
    warn_if_not_converged(fit)
    block = blocks_for(fit, group, "Intercept")[0]
    md = fit.md
    post = fit.posterior()
    J = block.n_levels
    Xbar = _level_means(md.X, block.idx, J)  # (J, p)
    draws = fixed_draws(fit, post)
    fixed_part = np.stack([draws[t] for t in md.fixed_terms], axis=1) @ Xbar.T  # (S, J)
    group_part = np.zeros_like(fixed_part)
    for blk in md.blocks:
        r = posterior_draws(fit, f"r_{blk.name}", post)  # (S, L, k)
        for k in range(len(blk.terms)):
            # the mean over level j's rows of r[level of row, k] * Z[row, k]: a (levels of blk) x J map
            weights = np.zeros((blk.n_levels, J))
            np.add.at(weights, (blk.idx, block.idx), blk.Z[:, k])
            weights /= np.maximum(np.bincount(block.idx, minlength=J), 1)[None, :]
            group_part += r[:, :, k] @ weights
    level_lo = fixed_part + group_part
    trials = md.trials if md.family == "binomial" else np.ones(md.n_obs)
    events = np.bincount(block.idx, weights=md.y, minlength=J)
    nopool = no_pooling_estimates(fit, group)
    lo, hi = interval_columns("eti", prob)
    population = fixed_part.mean(axis=0)
    table = pd.DataFrame(
        {
            "level": block.levels,
            "n": np.bincount(block.idx, minlength=J),
            "events": events.astype(int),
            "raw_rate": events / np.bincount(block.idx, weights=trials, minlength=J),
            "no_pooling": nopool.value,
            "estimable": nopool.estimable,
            "glmer": np.nan,
            "posterior_mean": level_lo.mean(axis=0),
            lo: np.quantile(level_lo, (1 - prob) / 2, axis=0),
            hi: np.quantile(level_lo, (1 + prob) / 2, axis=0),
            "population": population,
        }
    )
    if names is not None:
        table.insert(1, "name", [str(names.get(lv, lv)) for lv in block.levels])
    if glmer_result is not None:
        glmer_values = _glmer_level_values(md, glmer_result, Xbar, block)
        if glmer_values is not None:
            table["glmer"] = glmer_values
    dev = table["no_pooling"] - population
    with np.errstate(divide="ignore", invalid="ignore"):
        table["shrinkage"] = np.where(
            np.abs(dev) > 1e-9, 1 - (table["posterior_mean"] - population) / dev, np.nan
        )
    return stamp(
        table,
        fit,
        describe_interval("eti", prob),
        population=float(population.mean()),
        no_pooling_converged=nopool.converged,
        not_estimable=int((~nopool.estimable).sum()),
        scale="mean log-odds over the level's own respondents; the same covariates in all three",
    )


def _glmer_level_values(md, glmer_result, Xbar: np.ndarray, block) -> np.ndarray | None:
    """glmer's counterpart of the posterior level values (None when a term or mode is missing)."""
    fx = glmer_result.fixed["estimate"]
    if not all(t in fx.index for t in md.fixed_terms):
        return None
    values = Xbar @ fx.reindex(md.fixed_terms).to_numpy(dtype=float)
    rf = glmer_result.ranef
    mode_part = np.zeros(md.n_obs)
    for blk in md.blocks:
        sub = rf[rf.group.map(_r_group) == blk.factor]
        for k, term in enumerate(blk.terms):
            rows = sub[sub.term == term]
            modes = dict(zip(rows.level.astype(str), rows["mode"], strict=True))
            vals = np.array([modes.get(lv, np.nan) for lv in blk.levels])
            if not np.isfinite(vals).all():
                return None
            mode_part += vals[blk.idx] * blk.Z[:, k]
    return values + _level_means(mode_part[:, None], block.idx, block.n_levels)[:, 0]
