"""The sampling form of the hierarchical logistic model: layout, pooling, storage, the
likelihood Op's inputs, and the structure key that lets fits share a compiled model.

Computed once per model data (`sampling_form` remembers its last result: the structure key,
the data values and the model all ask for it). See `models.logistic` for the model it
rearranges and `tests/test_models_fast.py` for the proof that both have the same log
density and gradient.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from scipy.special import gammaln

from models.formula import GroupBlock, ModelData
from models.ops import glmm_loglik
from models.priors import Prior
from models.spatial import bym2_layout


def centred_design(md: ModelData) -> tuple[np.ndarray, np.ndarray]:
    """Fixed slopes' design centred at its means (not centred without an intercept or, for
    the cumulative family, cutpoints to absorb the centring), and the means."""
    slope_cols = [j for j, t in enumerate(md.fixed_terms) if t != "Intercept"]
    X = md.X[:, slope_cols]
    x_mean = X.mean(axis=0) if md.has_intercept or md.family == "cumulative" else np.zeros(X.shape[1])
    return X - x_mean, x_mean


Centring = bool | Mapping[str, bool]
"""``True``/``False`` for every block, or a choice per block name (missing blocks: non-centred)."""


# --------------------------------------------------------------------------- sampling form


@dataclass(frozen=True)
class SamplingLayout:
    """How the sampling form arranges the likelihood (fixed by the model's structure).

    Attributes
    ----------
    row_cols : tuple of int
        Columns of the fixed design read per row.
    level_cols : tuple of int
        Columns constant within the levels of ``level_block`` (area-level predictors),
        read once per level.
    level_block : int or None
        Index of the block whose factor carries ``level_cols`` (None: no such columns).
    unit_w : bool
        Every effect enters with weight 1 (random intercepts only).
    cells : int or None
        Number of binomial cells when rows that share every value the likelihood reads
        (row design, group levels, slope values) are pooled, as
        ``sum y eta - n softplus(eta)`` over identical rows equals their summed Bernoulli
        terms; None when pooling would not halve the rows (continuous predictors).
    f32_cols : tuple of int
        The ``row_cols`` whose (uncentred) values are exact in float32 (dummies, ages,
        counts): stored as float32 (``XS_rows``), the others as float64 (``XT_rows``).
    f32_weights, f32_outcome : bool
        Slope weights (``W_effects``) and successes/trials (``y_lik``, ``n_lik``) exact
        in float32, and so stored. Positions (``P_effects``) are int32.
    """

    row_cols: tuple[int, ...]
    level_cols: tuple[int, ...]
    level_block: int | None
    unit_w: bool
    cells: int | None = None
    f32_cols: tuple[int, ...] = ()
    f32_weights: bool = False
    f32_outcome: bool = False


#: Pool rows into binomial cells when that leaves at most this share of the rows.
POOL_BELOW = 0.5


def constant_within(col: np.ndarray, idx: np.ndarray, n_levels: int) -> bool:
    """The column takes one value within every level of a grouping factor."""
    per_level = np.zeros(n_levels)
    per_level[idx] = col
    return bool(np.array_equal(per_level[idx], col))


def per_level(columns: np.ndarray, block: GroupBlock) -> np.ndarray:
    """The value of each column at each level of the block's factor (columns constant within
    its levels, `constant_within`), shape (levels, columns)."""
    out = np.zeros((block.n_levels, columns.shape[1]))
    out[block.idx] = columns
    return out


def _exact_f32(a: np.ndarray) -> bool:
    """Every value survives a round trip through float32 unchanged (finite ones only)."""
    with np.errstate(over="ignore"):
        return bool(np.array_equal(a.astype(np.float32).astype(np.float64), a))


_LAST_FORM: list = []  # [(weakref to the ModelData, its arrays, its form)]: a fit asks 3 times


def sampling_form(md: ModelData) -> tuple[SamplingLayout, dict[str, np.ndarray]]:
    """The sampling form's layout and the values of its `pm.Data`, computed once.

    The last model data's form is remembered (`structure_key`, `data_values` and the model
    all ask for it; on millions of rows finding the cells takes seconds). Arrays returned
    are shared: do not modify them.

    A column is area-level when it is exactly constant within the levels of a grouping
    factor; the block whose factor makes the most columns constant carries them (the
    first such block on ties), the rest are read per row. Rows pool into binomial cells
    when the distinct combinations of what the likelihood reads number at most
    `POOL_BELOW` of the rows (categorical individual predictors). Rows (or cells) are stored
    in `interleaving` order of the first group effect's levels.

    Row columns are stored uncentred (``XT_rows`` float64, ``XS_rows`` float32 for the
    columns exact in float32) with their means in ``x_mean_rows``: the kernel centres them
    (`models.kernels.glmm_logit`). Centred, a dummy's values would not be exact in float32.
    Positions are int32; weights, successes and trials float32 when exact. A large cohort's
    gradient streams these arrays from memory, so halving their bytes is what keeps its cost
    linear in the rows.
    """
    arrays = (md.X, md.y, md.trials, md.weights, *(b.idx for b in md.blocks), *(b.Z for b in md.blocks))
    if _LAST_FORM and _LAST_FORM[0][0]() is md:
        seen = _LAST_FORM[0][1]
        if len(seen) == len(arrays) and all(a is b for a, b in zip(seen, arrays, strict=True)):
            return _LAST_FORM[0][2]
    form = _sampling_form(md)
    try:
        _LAST_FORM[:] = [(weakref.ref(md), arrays, form)]
    except TypeError:  # not weakly referenceable
        _LAST_FORM.clear()
    return form


def _sampling_form(md: ModelData) -> tuple[SamplingLayout, dict[str, np.ndarray]]:
    Xc, x_mean = centred_design(md)
    X = md.X[:, [j for j, t in enumerate(md.fixed_terms) if t != "Intercept"]]
    best: tuple[int | None, tuple[int, ...]] = (None, ())
    for bi, block in enumerate(md.blocks):
        cols = tuple(j for j in range(Xc.shape[1]) if constant_within(Xc[:, j], block.idx, block.n_levels))
        if len(cols) > len(best[1]):
            best = (bi, cols)
    level_block, level_cols = best
    row_cols = tuple(j for j in range(Xc.shape[1]) if j not in level_cols)
    f32_cols = tuple(j for j in row_cols if _exact_f32(X[:, j]))
    unit_w = all(np.all(block.Z == 1.0) for block in md.blocks)
    layout = SamplingLayout(row_cols, level_cols, level_block, unit_w, f32_cols=f32_cols)
    out = _row_arrays(md, X, layout)
    ordinal = md.family == "cumulative"  # a cell is also one category: (cell, category, count)
    values, inverse, n_cells = _cells(
        {**out, "W_effects": np.vstack([out["W_effects"], out["y_lik"]])} if ordinal else out
    )
    if n_cells <= POOL_BELOW * md.n_obs:
        layout = replace(layout, cells=n_cells)
        k, k32, J = out["XT_rows"].shape[0], out["XS_rows"].shape[0], out["P_effects"].shape[0]
        out = {
            "XT_rows": np.ascontiguousarray(values[:, :k].T),
            "XS_rows": np.ascontiguousarray(values[:, k : k + k32].T.astype(np.float32)),
            "P_effects": values[:, k + k32 : k + k32 + J].T.astype(np.int64),
            "W_effects": values[:, k + k32 + J : values.shape[1] - ordinal].T,
            "y_lik": values[:, -1]
            if ordinal
            else np.bincount(inverse, weights=out["y_lik"], minlength=n_cells),
            "n_lik": np.bincount(inverse, weights=out["n_lik"], minlength=n_cells),
        }
    out = _interleaved(out)
    if out["P_effects"].size and out["P_effects"].max() >= 2**31:
        raise ValueError("more than 2**31 group effects")
    out["P_effects"] = np.ascontiguousarray(out["P_effects"], dtype=np.int32)
    if unit_w:
        del out["W_effects"]
    else:
        layout = replace(layout, f32_weights=_exact_f32(out["W_effects"]))
        dtype = np.float32 if layout.f32_weights else np.float64
        out["W_effects"] = np.ascontiguousarray(out["W_effects"], dtype=dtype)
    layout = replace(layout, f32_outcome=_exact_f32(out["y_lik"]) and _exact_f32(out["n_lik"]))
    for name in ("y_lik", "n_lik"):
        out[name] = out[name].astype(np.float32 if layout.f32_outcome else np.float64)
    f64_cols = [j for j in row_cols if j not in f32_cols]
    out["x_mean_rows"] = x_mean[f64_cols + list(f32_cols)]
    if level_cols:
        out["X_level"] = per_level(Xc[:, list(level_cols)], md.blocks[level_block])
    const = 0.0
    if md.family == "binomial":  # log C(n, y) of the original rows (pooling does not change it)
        n, y = md.trials, md.y
        log_c = gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)
        const = float(np.sum(log_c if md.weights is None else md.weights * log_c))
    if md.family != "cumulative":  # the cumulative likelihood has no constant
        out["loglik_const"] = np.asarray(const)
    return layout, out


def interleaving(levels: np.ndarray) -> np.ndarray:
    """A row order in which consecutive rows come from different levels where possible: the
    first row of every level (levels ascending), then the second of every level, and so on.

    The gradient kernel adds each row's share to its level's element (``gR[P[i]] += g_i``):
    rows sorted by level (as data files often are: people within areas, observations within
    subjects) add to one element one after another, and each add waits for the one before
    (25,000 rows in 380 levels, with a random slope: 0.23 against 0.15-0.17 ms per gradient,
    `models.kernels.glmm_logit` alone). The likelihood is a sum over rows, so their order is
    free; the order is fixed by the data, so a structure's compiled model and a seeded fit
    are unchanged by it.
    """
    m = levels.shape[0]
    by_level = np.argsort(levels, kind="stable")
    sorted_levels = levels[by_level]
    occurrence = np.empty(m, dtype=np.int64)
    occurrence[by_level] = np.arange(m) - np.searchsorted(sorted_levels, sorted_levels, side="left")
    return np.lexsort((levels, occurrence))


def _interleaved(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The row arrays in `interleaving` order of the first effect's positions."""
    if out["P_effects"].shape[0] == 0 or out["P_effects"].shape[1] < 2:
        return out
    order = interleaving(out["P_effects"][0])
    cols = ("XT_rows", "XS_rows", "P_effects", "W_effects")
    return {
        k: np.ascontiguousarray(v[:, order] if k in cols else v[order] if k in ("y_lik", "n_lik") else v)
        for k, v in out.items()
    }


def sampling_layout(md: ModelData) -> SamplingLayout:
    """Which fixed columns are area-level, and whether rows pool into binomial cells
    (see `sampling_form`)."""
    return sampling_form(md)[0]


def _row_arrays(md: ModelData, X: np.ndarray, layout: SamplingLayout) -> dict[str, np.ndarray]:
    """Per-row data of the sampling form: transposed uncentred row design (float64 and float32
    parts), positions, weights, y, n."""
    positions, weights, offset = [], [], 0
    for block in md.blocks:
        k = len(block.terms)
        for t in range(k):
            positions.append(offset + block.idx.astype(np.int64) * k + t)
            weights.append(block.Z[:, t])
        offset += block.n_levels * k
    if layout.level_cols:
        block = md.blocks[layout.level_block]
        positions.append(offset + block.idx.astype(np.int64))
        weights.append(np.ones(md.n_obs))
    f64_cols = [j for j in layout.row_cols if j not in layout.f32_cols]
    return {
        "XT_rows": np.ascontiguousarray(X[:, f64_cols].T, dtype=np.float64),
        "XS_rows": np.ascontiguousarray(X[:, list(layout.f32_cols)].T, dtype=np.float32),
        "P_effects": np.array(positions, dtype=np.int64).reshape(-1, md.n_obs),
        "W_effects": np.array(weights, dtype=np.float64).reshape(-1, md.n_obs),
        # survey weights: w y eta - w n softplus(eta) is the weighted term (models.weights)
        "y_lik": np.asarray(md.y, dtype=np.float64) * (1.0 if md.weights is None else md.weights),
        "n_lik": np.asarray(md.trials if md.family == "binomial" else np.ones(md.n_obs), dtype=np.float64)
        * (1.0 if md.weights is None else md.weights),
    }


def _cells(rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Distinct rows of (design, positions, weights): their values, each row's cell, count."""
    parts = [rows["XT_rows"], rows["XS_rows"].astype(np.float64), rows["P_effects"].astype(np.float64)]
    key = np.concatenate([*parts, rows["W_effects"]]).T
    if key.shape[1] == 0:  # nothing varies: one cell
        return key[:1], np.zeros(key.shape[0], dtype=np.int64), min(1, key.shape[0])
    values, inverse = np.unique(key, axis=0, return_inverse=True)
    return values, inverse.ravel(), values.shape[0]


def _selection(cols: tuple[int, ...] | list[int], k: int) -> np.ndarray:
    """The 0/1 matrix S with ``S @ b == b[cols]``."""
    S = np.zeros((len(cols), k))
    S[np.arange(len(cols)), list(cols)] = 1.0
    return S


def _data(name: str, value: np.ndarray):
    """`pm.Data`, keeping float32 storage (``pm.Data`` would make it float64)."""
    if value.dtype != np.float32:
        return pm.Data(name, value)
    x = pytensor.shared(value, name)
    pm.modelcontext(None).register_data_var(x)
    return x


def likelihood_inputs(
    md: ModelData, Xc: np.ndarray, b, effects
) -> tuple[SamplingLayout, dict, object, object]:
    """The sampling form's data (as `pm.Data`), the slopes in the kernel's column order and
    the flat vector ``R`` of group effects and per-level area predictors, for a likelihood Op.

    Returns
    -------
    layout, data, b_rows, R
    """
    layout, arrays = sampling_form(md)
    data = {name: _data(name, value) for name, value in arrays.items()}
    order = [j for j in layout.row_cols if j not in layout.f32_cols] + list(layout.f32_cols)
    if b is None:
        b_rows = pt.zeros(0)
    elif order == list(range(Xc.shape[1])):
        b_rows = b
    else:  # a 0/1 selection (exact; compiles far faster than advanced indexing and its gradient)
        b_rows = pt.dot(_selection(order, Xc.shape[1]), b)
    flat = [r.flatten() for r in effects]
    if layout.level_cols:
        b_level = pt.dot(_selection(layout.level_cols, Xc.shape[1]), b)
        flat.append(pt.dot(data["X_level"], b_level))
    R = pt.concatenate(flat) if flat else pt.zeros(0)
    return layout, data, b_rows, R


def sampling_likelihood(md: ModelData, Xc: np.ndarray, b, intercept_c, effects) -> None:
    """``pm.Potential("y_loglik")``: the likelihood by `models.ops.glmm_loglik`."""
    layout, data, b_rows, R = likelihood_inputs(md, Xc, b, effects)
    pooled = layout.cells is not None
    loglik = glmm_loglik(
        data["XT_rows"],
        b_rows,
        intercept_c if intercept_c is not None else 0.0,
        R,
        data["P_effects"],
        data["W_effects"] if not layout.unit_w else np.zeros((0, 0)),
        data["y_lik"],
        data["n_lik"],
        data["loglik_const"],
        family="binomial" if pooled or md.family == "binomial" or md.weights is not None else "bernoulli",
        unit_w=layout.unit_w,
        XS=data["XS_rows"],
        xm=data["x_mean_rows"],
    )
    pm.Potential("y_loglik", loglik)


def data_values(
    md: ModelData, priors: dict[str, Prior], *, fast_likelihood: bool = False, centered: Centring = False
) -> dict[str, np.ndarray]:
    """Values of every `pm.Data` of `hierarchical_logistic` (with this centring), for reusing
    a compiled model."""
    from models.logistic import centring_by_block, centring_values, hierarchical_centring

    Xc, x_mean = centred_design(md)
    out: dict[str, np.ndarray] = centring_values(
        md, hierarchical_centring(md, centring_by_block(md, centered))
    )
    if Xc.shape[1]:
        if md.has_intercept or md.family == "cumulative":
            out["x_mean"] = x_mean
        names = [t for t in md.fixed_terms if t != "Intercept"]
        ps = [priors[f"b[{t}]"] for t in names]
        if all(p.family == "normal" for p in ps):
            out["b_prior_mu"] = np.array([p.params[0] for p in ps])
            out["b_prior_sigma"] = np.array([p.params[1] for p in ps])
    if fast_likelihood:
        out.update(sampling_form(md)[1])
        return out
    out["y_obs"] = md.y
    if md.weights is not None:
        out["lik_weights"] = md.weights
    if md.family == "binomial":
        out["trials"] = md.trials
    if Xc.shape[1]:
        out["X_centred"] = Xc
    for block in md.blocks:
        out[f"idx_{block.name}"] = block.idx
        for t in range(len(block.terms)):
            if not np.all(block.Z[:, t] == 1.0):
                out[f"Z_{block.name}_{t}"] = block.Z[:, t]
    return out


def structure_key(
    md: ModelData,
    priors: dict[str, Prior],
    *,
    centered: Centring,
    fast_likelihood: bool = False,
) -> str:
    """A key equal for two models that differ only in their data values.

    Two fits with the same key can share one compiled model: same family, terms, number
    of rows and group levels, slope-design pattern, parameterisation of every block
    (`centring_by_block`: centred or not, per block) and priors (the fixed-slope normal
    priors are data and may differ), the same likelihood form and, for the sampling
    form, the same `sampling_layout` (which columns are area-level).
    """
    from models.logistic import centring_by_block, hierarchical_centring  # the family owns centring

    by_block = centring_by_block(md, centered)
    fixed_normal = all(p.family == "normal" for k, p in priors.items() if k.startswith("b["))
    spec = {
        "family": md.family,
        "fixed": md.fixed_terms,
        "n": md.n_obs,
        "centered": by_block,
        "hierarchical_centring": repr(hierarchical_centring(md, by_block)),
        "fast_likelihood": bool(fast_likelihood),
        "layout": repr(sampling_layout(md)) if fast_likelihood else None,
        "blocks": [
            (
                b.name,
                b.terms,
                b.n_levels,
                b.correlated,
                [bool(np.all(b.Z[:, t] == 1.0)) for t in range(len(b.terms))],
            )
            for b in md.blocks
        ],
        "priors": {k: str(v) for k, v in priors.items() if not (fixed_normal and k.startswith("b["))},
    }
    if md.family == "cumulative":  # the number of cutpoints
        spec["categories"] = len(md.response_levels)
    if md.weights is not None or md.group_weights:  # survey weights (models.weights)
        spec["weighted"] = [md.weights is not None, sorted(md.group_weights)]
    spatial = [(b.name, b.spatial, bym2_layout(b).key()) for b in md.blocks if b.spatial]
    if spatial:  # car() terms: the graph and the levels' places on it are in the compiled model
        spec["spatial"] = spatial
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]
