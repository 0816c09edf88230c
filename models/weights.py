"""Survey weights in the model: pseudo-likelihood with level-1 weights scaled within groups,
and optional level-2 (group) weights on the group effects' prior.

With weights ``w_i`` the likelihood is the pseudo-likelihood

    sum_i w_i [y_i eta_i - n_i softplus(eta_i)]          (+ w_i log C(n_i, y_i) for binomial rows)

and, with group weights ``v_j`` for the levels of a factor, the prior of its effects is
``sum_j v_j log N(r_j | 0, Sigma)`` (the pseudo-posterior of Savitsky and Toth, 2016, and of
Williams and Savitsky's weighted mixed models). A weighted fit's posterior is a
*pseudo-posterior*: its spread is not a valid measure of uncertainty under the design
until adjusted (`analysis.survey.design_adjusted`).

Scaling of the level-1 weights within each level ``j`` of the model's first grouping factor
(all rows together when the model has none):

* ``"size"``: ``w*_ij = w_ij n_j / sum_i w_ij``, so the scaled weights of a group sum to its
  sample size ``n_j`` (Pfeffermann et al. 1998, method A);
* ``"effective"``: ``w*_ij = w_ij sum_i w_ij / sum_i w_ij^2``, so they sum to the group's
  effective sample size ``(sum_i w_ij)^2 / sum_i w_ij^2`` (method B);
* ``"none"``: the weights as given.

Unscaled weights inflate or deflate the information of each group and bias the variance
of the group effects; the two scalings are the standard remedies (Carle 2009; Rabe-Hesketh
and Skrondal 2006). Group weights are scaled to mean 1 over the levels; with them, each
row's likelihood weight is its scaled level-1 weight times its group's weight.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytensor.tensor as pt

from models.formula import FormulaError, ModelData

__all__ = ["WEIGHT_SCALINGS", "scale_weights", "weight_values", "attach_weights", "group_weight_logp"]

WEIGHT_SCALINGS = ("size", "effective", "none")


def scale_weights(w: np.ndarray, groups: np.ndarray | None, scaling: str) -> np.ndarray:
    """Scale level-1 weights within groups.

    Parameters
    ----------
    w : numpy.ndarray
        Positive weights, one per row.
    groups : numpy.ndarray or None
        Integer group code of each row (None: one group).
    scaling : {"size", "effective", "none"}
        See the module docstring.

    Returns
    -------
    numpy.ndarray
        The scaled weights (``"size"``: each group's sum is its row count; ``"effective"``:
        its effective sample size).
    """
    if scaling not in WEIGHT_SCALINGS:
        raise ValueError(f"weight_scaling must be one of {', '.join(WEIGHT_SCALINGS)}, got {scaling!r}")
    w = np.asarray(w, dtype=np.float64)
    if scaling == "none":
        return w.copy()
    g = np.zeros(len(w), dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    k = int(g.max()) + 1 if len(g) else 0
    s1 = np.bincount(g, weights=w, minlength=k)
    if scaling == "size":
        n = np.bincount(g, minlength=k)
        return w * (n / s1)[g]
    s2 = np.bincount(g, weights=w * w, minlength=k)
    return w * (s1 / s2)[g]


def weight_values(data: pd.DataFrame, column: str, what: str = "weights") -> np.ndarray:
    """A weight column as float64, with a clear error for a missing column or bad values.

    Missing and zero weights are returned as they are (the caller drops those rows and counts
    them); negative, infinite or non-numeric values are refused.
    """
    if not isinstance(column, str):
        raise FormulaError(f"{what} must name a column of the data, got {column!r}")
    if column not in data.columns:
        raise FormulaError(f"{what}: no column {column!r} in the data")
    s = data[column]
    if not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
        raise FormulaError(f"{what}: column {column!r} must be numeric, not {s.dtype}")
    w = s.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isinf(w) | (w < 0)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise FormulaError(
            f"{what}: column {column!r} holds {w[pos]!r} in row {data.index[pos]!r} "
            f"({int(bad.sum())} negative or infinite values); weights must be finite and >= 0"
        )
    return w


def attach_weights(
    md: ModelData,
    w: np.ndarray | None,
    scaling: str = "size",
    group_weights: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Set ``md.weights`` (scaled level-1 weights times group weights) and ``md.group_weights``.

    Parameters
    ----------
    md : ModelData
        Model data; ``w`` has one positive weight per row of it (None: no level-1 weights).
    w : numpy.ndarray or None
        Level-1 weights of the rows used.
    scaling : {"size", "effective", "none"}
        Scaling within the levels of the first grouping factor (module docstring).
    group_weights : mapping, optional
        Block name -> one positive weight per row (constant within the block's levels).

    Raises
    ------
    FormulaError
        Weights not positive, group weights that vary within a level, a block that is not in
        the model, or a block with correlated terms (not supported).
    """
    if md.family not in ("bernoulli", "binomial"):
        raise FormulaError(f"weights are supported for binary and binomial responses, not {md.family!r}")
    if scaling not in WEIGHT_SCALINGS:
        raise FormulaError(f"weight_scaling must be one of {', '.join(WEIGHT_SCALINGS)}, got {scaling!r}")
    final = np.ones(md.n_obs)
    if w is not None:
        w = np.asarray(w, dtype=np.float64)
        if len(w) != md.n_obs or not np.all(w > 0):
            raise FormulaError("weights must be one positive value per row used")
        groups = md.blocks[0].idx if md.blocks else None
        final = scale_weights(w, groups, scaling)
    levels: dict[str, np.ndarray] = {}
    for name, gw in (group_weights or {}).items():
        block = next((b for b in md.blocks if b.name == name), None)
        if block is None:
            raise FormulaError(
                f"group_weights: the model has no grouping factor {name!r} "
                f"(its factors: {', '.join(b.name for b in md.blocks) or 'none'})"
            )
        if block.spatial or (len(block.terms) > 1 and block.correlated):
            raise FormulaError(
                f"group_weights: {name!r} has correlated or spatial effects; group weights are "
                "supported for independent effects, e.g. (1 | lad) or (1 + x || lad)"
            )
        gw = np.asarray(gw, dtype=np.float64)
        if len(gw) != md.n_obs or not np.all(gw > 0):
            raise FormulaError(f"group_weights[{name!r}] must be one positive value per row used")
        v = np.full(block.n_levels, np.nan)
        v[block.idx] = gw
        if not np.allclose(v[block.idx], gw, rtol=1e-12, atol=0):
            raise FormulaError(
                f"group_weights[{name!r}] differ within a level of {name!r}; give one per level"
            )
        v = np.where(np.isnan(v), 1.0, v)
        v = v / v[np.unique(block.idx)].mean()
        levels[name] = v
        final = final * v[block.idx]
    md.weights = final if (w is not None or levels) else None
    md.group_weights = levels


def group_weight_logp(r, sd, v: np.ndarray):
    """``sum_j (v_j - 1) sum_t log N(r_jt | 0, sd_t)``: what turns a block's prior
    ``sum_j log N(r_j)`` into the weighted ``sum_j v_j log N(r_j)`` (as a `pm.Potential`, it is
    a function of the parameters, so it holds in the centred and non-centred forms alike)."""
    lp = -0.5 * pt.sqr(r / sd) - pt.log(sd) - 0.5 * np.log(2 * np.pi)
    return pt.sum((np.asarray(v) - 1.0)[:, None] * lp)


def group_weight_potentials(md: ModelData, effects) -> None:
    """Add ``pm.Potential("group_weights_<g>")`` for each block with group weights (inside a model)."""
    import pymc as pm

    model = pm.modelcontext(None)
    for block, r in zip(md.blocks, effects, strict=True):
        if block.name in md.group_weights:
            sd = model[f"sd_{block.name}"]
            pm.Potential(
                f"group_weights_{block.name}", group_weight_logp(r, sd, md.group_weights[block.name])
            )


def _weighted_logp(value, eta, w, n):
    """Weighted Bernoulli/binomial log-likelihood of each row (the sampling form's terms)."""
    log_c = pt.gammaln(n + 1) - pt.gammaln(value + 1) - pt.gammaln(n - value + 1)
    return w * (value * eta - n * pt.log1pexp(eta) + log_c)


def _weighted_random(eta, w, n, rng=None, size=None):
    return rng.binomial(np.asarray(n, dtype=np.int64), 1.0 / (1.0 + np.exp(-np.asarray(eta))), size=size)


def weighted_observation(md: ModelData, eta) -> None:
    """The observed ``y`` of a weighted model: a `pm.CustomDist` whose log density is the
    weighted term ``w (y eta - n softplus(eta) + log C(n, y))`` of each row (equal to the sampling
    form's), and whose draws are the unweighted Bernoulli/binomial outcomes."""
    import pymc as pm

    y_obs = pm.Data("y_obs", md.y, dims="obs_id")
    w = pm.Data("lik_weights", md.weights, dims="obs_id")
    n = pm.Data("trials", md.trials, dims="obs_id") if md.family == "binomial" else np.ones(md.n_obs)
    pm.CustomDist(
        "y",
        eta,
        w,
        n,
        logp=_weighted_logp,
        random=_weighted_random,
        observed=y_obs,
        dims="obs_id",
    )


#: Columns of a saved fit's model frame that hold the likelihood and group weights.
WEIGHT_COLUMN = "_likelihood_weight"
GROUP_WEIGHT_PREFIX = "_group_weight_"


def weighted_model_data(
    formula: str,
    data: pd.DataFrame,
    *,
    weights: str | None,
    weight_scaling: str = "size",
    group_weights: str | Mapping[str, str] | None = None,
    family: str | None = None,
) -> tuple[ModelData, dict[str, str]]:
    """Model data of a weighted fit: rows with a missing or zero weight are dropped and counted
    (``md.drops``: "missing weight <col>", "zero weight <col> (outside the weight's
    population)"), then the weights are scaled and attached (`attach_weights`).

    Parameters
    ----------
    formula : str
        lme4-style formula.
    data : pandas.DataFrame
        The data, holding the weight columns.
    weights : str or None
        Column of level-1 weights (e.g. ``"weight_sc"``); None: only group weights.
    weight_scaling : {"size", "effective", "none"}
        Scaling within the first grouping factor's levels (module docstring).
    group_weights : str or mapping, optional
        Column of area weights for the first grouping factor, or ``{factor: column}``.
    family : str, optional
        Passed to `build_model_data`.

    Returns
    -------
    md : ModelData
        With ``weights`` and ``group_weights`` set.
    attrs : dict
        ``weights``, ``weight_scaling`` and ``group_weights`` as text, for the fit's attributes.
    """
    from models.formula import build_model_data, parse_formula

    if weight_scaling not in WEIGHT_SCALINGS:
        raise FormulaError(
            f"weight_scaling must be one of {', '.join(WEIGHT_SCALINGS)}, got {weight_scaling!r}"
        )
    if isinstance(group_weights, str):
        if not parse_formula(formula).bars:
            raise FormulaError("group_weights needs a grouping factor, and the formula has no (... | g) term")
        group_weights = {"__first__": group_weights}
    group_cols = dict(group_weights or {})
    keep = np.ones(len(data), dtype=bool)
    drops: dict[str, int] = {}
    for col, what in [(weights, "weights")] + [(c, f"group_weights[{g!r}]") for g, c in group_cols.items()]:
        if col is None:
            continue
        w = weight_values(data, col, what)
        missing = np.isnan(w) & keep
        zero = (w == 0) & keep
        if missing.any():
            drops[f"missing weight {col}"] = int(missing.sum())
        if zero.any():
            drops[f"zero weight {col} (outside the weight's population)"] = int(zero.sum())
        keep &= ~np.isnan(w) & (w > 0)
    if not keep.any():
        raise FormulaError(f"no row has a positive weight in {weights!r}")
    sub = data.loc[keep]
    md = build_model_data(formula, sub) if family is None else build_model_data(formula, sub, family=family)
    positions = np.flatnonzero(keep)
    md.rows = positions[md.rows] if md.rows is not None else positions
    md.n_input = len(data)
    md.drops = {**drops, **md.drops}
    w1 = None if weights is None else data[weights].to_numpy(dtype=np.float64)[md.rows]
    by_block: dict[str, np.ndarray] = {}
    for g, col in group_cols.items():
        name = md.blocks[0].name if g == "__first__" and md.blocks else g
        by_block[name] = data[col].to_numpy(dtype=np.float64)[md.rows]
    attach_weights(md, w1, weight_scaling, by_block)
    attrs = {
        "weights": weights or "",
        "weight_scaling": weight_scaling if weights else "",
        "group_weights": ", ".join(f"{g}: {c}" for g, c in zip(by_block, group_cols.values(), strict=True)),
    }
    return md, attrs


def weight_columns(md: ModelData) -> dict[str, np.ndarray]:
    """Per-row columns that carry a weighted fit's weights in its saved model frame."""
    out: dict[str, np.ndarray] = {}
    if md.weights is not None:
        out[WEIGHT_COLUMN] = md.weights
    for name, v in md.group_weights.items():
        block = next(b for b in md.blocks if b.name == name)
        out[GROUP_WEIGHT_PREFIX + name] = v[block.idx]
    return out


def restore_weights(md: ModelData, frame: pd.DataFrame) -> None:
    """Put the weights of a saved fit's model frame (`weight_columns`) back on its model data."""
    if WEIGHT_COLUMN in frame.columns:
        md.weights = frame[WEIGHT_COLUMN].to_numpy(dtype=np.float64)
    for col in frame.columns:
        if col.startswith(GROUP_WEIGHT_PREFIX):
            name = col.removeprefix(GROUP_WEIGHT_PREFIX)
            block = next(b for b in md.blocks if b.name == name)
            v = np.ones(block.n_levels)
            v[block.idx] = frame[col].to_numpy(dtype=np.float64)
            md.group_weights[name] = v


def describe_weights(attrs: Mapping[str, str]) -> str:
    """One line saying how a fit was weighted ("" for an unweighted fit)."""
    if not attrs.get("weights") and not attrs.get("group_weights"):
        return ""
    scaling = {
        "size": "scaled within groups to their sample size",
        "effective": "scaled within groups to their effective sample size",
        "none": "not scaled",
    }
    parts = []
    if attrs.get("weights"):
        how = attrs.get("weight_scaling", "")
        parts.append(f"{attrs['weights']} ({scaling.get(how, how)})")
    if attrs.get("group_weights"):
        parts.append(f"group weights {attrs['group_weights']}")
    return (
        "weights: " + "; ".join(parts) + ". PSEUDO-POSTERIOR: its intervals ignore the sampling design; "
        "design-adjusted intervals: analysis.survey.design_adjusted\n"
    )
