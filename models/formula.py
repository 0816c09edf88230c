"""lme4-style formulas to arrays: fixed design, response, and group blocks.

The fixed part of the right-hand side and each varying-effect expression are evaluated by
`formulae` (treatment contrasts, interactions, ``C()``, transforms). The random-effect bars
``(expr | group)`` and ``(expr || group)`` are split off here, because a bar defines a block
of correlated effects, which `formulae` does not keep. Group effects are described by an
integer index per row and a small slope design (rows x terms), never by a dense dummy matrix.

Left-hand sides: a 0/1 column (Bernoulli), ``cbind(successes, failures)`` as in lme4, or
``p(successes, trials)`` as in bambi (aggregated binomial). Expressions inside ``cbind`` and
``p`` are evaluated with ``DataFrame.eval`` (``cbind(incidence, size - incidence)`` works).

Rows with a missing value in any variable the formula uses are dropped before the design is
built, and every drop is counted with the variable that caused it (see `ModelData.drops`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import formulae
import numpy as np
import pandas as pd


class FormulaError(ValueError):
    """A formula that cannot be applied to the data (bad term, column, or response)."""


@dataclass
class GroupBlock:
    """One ``(expr | factor)`` bar: correlated effects of ``terms`` varying over ``levels``.

    Attributes
    ----------
    name : str
        Block name used for parameters (``sd_<name>``, ``r_<name>``); the factor name, with
        a suffix when a factor has more than one block.
    factor : str
        Grouping factor as written (``lad``, ``a:b``).
    terms : list of str
        Names of the varying terms, e.g. ``["Intercept", "age50"]``.
    levels : list of str
        Observed levels of the factor, in the order of the integer index.
    idx : numpy.ndarray
        Integer level index for every row (``beta[idx]`` indexing).
    Z : numpy.ndarray
        Slope design, shape (rows, len(terms)); a column of ones for the intercept.
    correlated : bool
        False for ``||`` bars (independent effects).
    expr : str
        The varying-effect expression as written, used to rebuild designs for new data.
    """

    name: str
    factor: str
    terms: list[str]
    levels: list[str]
    idx: np.ndarray
    Z: np.ndarray
    correlated: bool
    expr: str

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def dim(self) -> str:
        """Dimension name of the levels (the factor, ':' replaced)."""
        return self.factor.replace(":", "__")

    @property
    def term_dim(self) -> str:
        return f"{self.name}_term"


@dataclass
class ModelData:
    """Everything a model family needs, as plain arrays with labels.

    Attributes
    ----------
    formula : str
        The formula as given.
    response : str
        Name used for the observed variable.
    family : str
        ``"bernoulli"`` or ``"binomial"``.
    y : numpy.ndarray
        0/1 outcomes, or successes for the binomial family.
    trials : numpy.ndarray or None
        Number of trials (binomial family only).
    X : numpy.ndarray
        Fixed-effects design, including the intercept column when present.
    fixed_terms : list of str
        Column names of ``X`` (``formulae`` naming: ``Intercept``, ``x``, ``a:b``, ``f[level]``).
    blocks : list of GroupBlock
        One per bar.
    frame : pandas.DataFrame
        The complete-case rows of the variables used (the model frame).
    n_input : int
        Rows in the data given.
    drops : dict
        Rows dropped, by reason (``"missing <variable>"``). ``n_input == len(frame) + sum``.
    """

    formula: str
    response: str
    family: str
    y: np.ndarray
    trials: np.ndarray | None
    X: np.ndarray
    fixed_terms: list[str]
    blocks: list[GroupBlock]
    frame: pd.DataFrame
    n_input: int
    drops: dict[str, int] = field(default_factory=dict)
    fixed_rhs: str = ""
    categorical_levels: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_obs(self) -> int:
        return len(self.y)

    @property
    def has_intercept(self) -> bool:
        return "Intercept" in self.fixed_terms

    def fingerprint(self) -> str:
        """SHA-256 of the model frame (values and column names), for provenance."""
        h = hashlib.sha256()
        h.update(",".join(map(str, self.frame.columns)).encode())
        h.update(pd.util.hash_pandas_object(self.frame, index=False).values.tobytes())
        return h.hexdigest()

    def drop_table(self) -> pd.DataFrame:
        """Rows in, every drop with its reason, rows out."""
        rows = [("rows in", self.n_input)]
        rows += [(f"dropped: {k}", v) for k, v in self.drops.items()]
        rows.append(("rows used", self.n_obs))
        return pd.DataFrame(rows, columns=["step", "rows"])


# --------------------------------------------------------------------------- parsing


def _split_bars(rhs: str) -> tuple[str, list[tuple[str, str, bool]]]:
    """Remove ``( expr | group )`` bars from a right-hand side.

    Returns the fixed part and a list of (expr, group, correlated) for each bar.
    """
    bars: list[tuple[str, str, bool]] = []
    spans: list[tuple[int, int]] = []
    depth, start = 0, -1
    for i, ch in enumerate(rhs):
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced ')' at position {i} in {rhs!r}")
            if depth == 0:
                inner = rhs[start + 1 : i]
                if _top_level_bar(inner):
                    bars.append(_parse_bar(inner))
                    spans.append((start, i + 1))
    if depth != 0:
        raise FormulaError(f"unbalanced '(' in {rhs!r}")
    fixed = rhs
    for a, b in reversed(spans):
        fixed = fixed[:a] + fixed[b:]
    fixed = re.sub(r"\+\s*(\+\s*)+", "+ ", fixed)
    fixed = re.sub(r"^\s*\+\s*", "", fixed)
    fixed = re.sub(r"\s*\+\s*$", "", fixed).strip()
    return fixed, bars


def _top_level_bar(inner: str) -> bool:
    depth = 0
    for ch in inner:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return True
    return False


def _parse_bar(inner: str) -> tuple[str, str, bool]:
    correlated = "||" not in inner
    expr, group = inner.split("||" if not correlated else "|", 1)
    expr, group = expr.strip(), group.strip()
    if not expr or not group:
        raise FormulaError(f"random-effect term '({inner})' needs an expression and a group")
    return expr, group, correlated


def _expand_group(group: str) -> list[str]:
    """lme4 nesting: ``a/b`` means ``a`` and ``a:b``."""
    if "/" in group:
        parts = [p.strip() for p in group.split("/")]
        return [":".join(parts[: k + 1]) for k in range(len(parts))]
    return [group.replace(" ", "")]


def _split_formula(formula: str) -> tuple[str, str]:
    if formula.count("~") != 1:
        raise FormulaError(f"formula must contain exactly one '~': {formula!r}")
    lhs, rhs = formula.split("~")
    if not lhs.strip():
        raise FormulaError(f"formula has no response (left of '~'): {formula!r}")
    return lhs.strip(), rhs.strip()


_FUNC_LHS = re.compile(r"^(cbind|p)\s*\((.*)\)$", re.S)


def _split_args(text: str) -> list[str]:
    args, depth, cur = [], 0, []
    for ch in text:
        if ch == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur.append(ch)
    args.append("".join(cur).strip())
    return args


def _identifiers(text: str, columns: pd.Index) -> list[str]:
    names = re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", text)
    return [n for n in dict.fromkeys(names) if n in columns]


def _missing_column_error(name: str, columns: pd.Index, where: str) -> FormulaError:
    import difflib

    close = difflib.get_close_matches(name, [str(c) for c in columns], n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return FormulaError(f"{where}: term {name!r} is not a column of the data{hint}")


def _variables(formula_part: str, columns: pd.Index, where: str) -> list[str]:
    """Variables a formulae expression uses (checked against the data's columns)."""
    if formula_part.strip() in ("", "1", "0", "-1", "+1"):
        return []
    try:
        desc = formulae.model_description(f"respplaceholder ~ {formula_part}")
    except Exception as exc:  # formulae raises several parser error types
        raise FormulaError(f"{where}: cannot parse {formula_part!r}: {exc}") from None
    names: list[str] = []
    for term in desc.terms:
        for name in getattr(term, "var_names", set()) or set():
            if name != "respplaceholder":
                names.append(name)
    missing = [n for n in names if n not in columns]
    if missing:
        raise _missing_column_error(missing[0], columns, where)
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- building


def build_model_data(formula: str, data: pd.DataFrame) -> ModelData:
    """Parse an lme4-style formula and evaluate it on ``data``.

    Parameters
    ----------
    formula : str
        e.g. ``"y ~ age50 * area_sociability + log_income + (1 + age50 | lad)"`` or
        ``"cbind(incidence, size - incidence) ~ period + (1 | herd)"``.
    data : pandas.DataFrame
        Any data frame; categorical (string or category) columns get treatment contrasts
        with the first level (sorted, or the category order) as reference, like lme4.

    Returns
    -------
    ModelData

    Raises
    ------
    FormulaError
        When a term is not a column, the response is not 0/1 (or successes exceed trials),
        the response is constant, or no rows remain.
    """
    if not isinstance(data, pd.DataFrame):
        raise FormulaError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise FormulaError("data has no rows")
    lhs, rhs = _split_formula(formula)
    fixed_rhs, bars = _split_bars(rhs)
    cols = data.columns

    # ---- variables used, for complete-case selection
    m = _FUNC_LHS.match(lhs)
    if m:
        kind, args = m.group(1), _split_args(m.group(2))
        if len(args) != 2:
            raise FormulaError(f"{kind}() in the response needs two arguments: {lhs!r}")
        resp_vars = _identifiers(m.group(2), cols)
        unknown = [a for a in re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", m.group(2)) if a not in cols]
        if unknown:
            raise _missing_column_error(unknown[0], cols, "response")
    else:
        kind, args = "plain", [lhs]
        if lhs not in cols:
            raise _missing_column_error(lhs, cols, "response")
        resp_vars = [lhs]
    used = list(resp_vars)
    used += _variables(fixed_rhs or "1", cols, "fixed effects")
    for expr, group, _ in bars:
        used += _variables(expr, cols, f"random effect ({expr} | {group})")
        for g in re.split(r"[/:]", group):
            g = g.strip()
            if g not in cols:
                raise _missing_column_error(g, cols, f"grouping factor of ({expr} | {group})")
            used.append(g)
    used = list(dict.fromkeys(used))

    frame, drops = _complete_cases(data, used)
    if len(frame) == 0:
        raise FormulaError(f"no complete rows left for {formula!r}: {drops}")

    # ---- response
    if kind == "plain":
        y, trials, family, response = _bernoulli_response(frame[lhs], lhs), None, "bernoulli", lhs
    else:
        a = _eval_numeric(frame, args[0], lhs)
        b = _eval_numeric(frame, args[1], lhs)
        successes = a
        trials = a + b if kind == "cbind" else b
        _check_binomial(successes, trials, lhs)
        y, family = successes.astype(np.int64), "binomial"
        trials = trials.astype(np.int64)
        response = re.sub(r"\W+", "_", args[0]).strip("_") or "y"

    # ---- fixed design (formulae, with the frame's categorical levels fixed)
    frame = _as_categoricals(frame, used)
    categorical_levels = {
        c: [str(v) for v in frame[c].cat.categories]
        for c in used
        if isinstance(frame[c].dtype, pd.CategoricalDtype)
    }
    X, fixed_terms = _common_design(fixed_rhs if fixed_rhs else "1", frame)
    if X.shape[1] == 0:
        raise FormulaError(f"formula {formula!r} has no fixed effects (not even an intercept)")
    _check_constant_columns(X, fixed_terms, formula)

    # ---- group blocks
    blocks: list[GroupBlock] = []
    seen: dict[str, int] = {}
    for expr, group, correlated in bars:
        Z, terms = _common_design(expr, frame)
        for factor in _expand_group(group):
            key = factor.replace(":", "__")
            seen[key] = seen.get(key, 0) + 1
            name = key if seen[key] == 1 else f"{key}_{seen[key]}"
            codes, levels = _factor_codes(frame, factor)
            blocks.append(
                GroupBlock(
                    name=name,
                    factor=factor,
                    terms=terms,
                    levels=levels,
                    idx=codes,
                    Z=Z,
                    correlated=correlated and len(terms) > 1,
                    expr=expr,
                )
            )
    return ModelData(
        formula=formula,
        response=response,
        family=family,
        y=y,
        trials=trials,
        X=X,
        fixed_terms=fixed_terms,
        blocks=blocks,
        frame=frame.reset_index(drop=True),
        n_input=len(data),
        drops=drops,
        fixed_rhs=fixed_rhs,
        categorical_levels=categorical_levels,
    )


def _complete_cases(data: pd.DataFrame, used: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop rows with a missing (or infinite) value, attributing each to its first variable."""
    frame = data[used].copy()
    keep = np.ones(len(frame), dtype=bool)
    drops: dict[str, int] = {}
    for col in used:
        s = frame[col]
        bad = s.isna().to_numpy().copy()
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            bad = bad | ~np.isfinite(s.to_numpy(dtype=float, na_value=np.nan))
        new = bad & keep
        if new.any():
            drops[f"missing or non-finite {col}"] = int(new.sum())
        keep &= ~bad
    return frame.loc[keep], drops


def _as_categoricals(frame: pd.DataFrame, used: list[str]) -> pd.DataFrame:
    """Strings, objects and booleans-as-text become categoricals with sorted levels."""
    frame = frame.copy()
    for c in used:
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            frame[c] = s.cat.remove_unused_categories()
        elif pd.api.types.is_string_dtype(s) or s.dtype == object:
            frame[c] = pd.Categorical(s.astype(str))
    return frame


def _common_design(rhs: str, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    try:
        dm = formulae.design_matrices(rhs, frame, na_action="error")
    except Exception as exc:
        raise FormulaError(f"cannot evaluate {rhs!r} on the data: {exc}") from None
    common = dm.common
    if common is None:
        return np.ones((len(frame), 0)), []
    X = np.asarray(common.design_matrix, dtype=float)
    names = _column_names(common)
    return X, names


def _column_names(common) -> list[str]:
    names: list[str] = []
    for name, term in common.terms.items():
        labels = term.labels if hasattr(term, "labels") else [name]
        labels = list(labels) if labels is not None else [name]
        names.extend(labels)
    return names


def _factor_codes(frame: pd.DataFrame, factor: str) -> tuple[np.ndarray, list[str]]:
    parts = [p.strip() for p in factor.split(":")]
    key = frame[parts[0]].astype(str)
    for p in parts[1:]:
        key = key + ":" + frame[p].astype(str)
    cat = pd.Categorical(key)
    return cat.codes.astype(np.int64), [str(c) for c in cat.categories]


def _bernoulli_response(s: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s):
        y = s.to_numpy(dtype=np.int64)
    else:
        if not pd.api.types.is_numeric_dtype(s):
            bad = s.iloc[0]
            raise FormulaError(
                f"response {name!r} must be 0/1 (or true/false); found non-numeric value {bad!r}"
            )
        vals = s.to_numpy(dtype=float)
        bad = ~np.isin(vals, [0.0, 1.0])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FormulaError(
                f"response {name!r} must be 0/1; row {s.index[i]} has {vals[i]!r} "
                f"({int(bad.sum())} such rows). Use cbind(successes, failures) for counts."
            )
        y = vals.astype(np.int64)
    if y.min() == y.max():
        raise FormulaError(
            f"response {name!r} is {y[0]} for every one of the {len(y)} rows used: "
            "a logistic model cannot be estimated from a constant outcome"
        )
    return y


def _eval_numeric(frame: pd.DataFrame, expr: str, lhs: str) -> np.ndarray:
    try:
        out = frame.eval(expr) if not expr.isidentifier() else frame[expr]
    except Exception as exc:
        raise FormulaError(f"cannot evaluate {expr!r} in response {lhs!r}: {exc}") from None
    s = pd.Series(out)
    if not pd.api.types.is_numeric_dtype(s):
        raise FormulaError(f"{expr!r} in response {lhs!r} is not numeric (e.g. {s.iloc[0]!r})")
    arr = s.to_numpy(dtype=float)
    frac = arr != np.round(arr)
    if frac.any():
        i = int(np.flatnonzero(frac)[0])
        raise FormulaError(
            f"{expr!r} in response {lhs!r} must be whole counts; row {s.index[i]} has {arr[i]!r}"
        )
    return arr


def _check_binomial(successes: np.ndarray, trials: np.ndarray, lhs: str) -> None:
    if (successes < 0).any():
        i = int(np.flatnonzero(successes < 0)[0])
        raise FormulaError(f"response {lhs!r}: negative count {successes[i]:g} in row {i}")
    over = successes > trials
    if over.any():
        i = int(np.flatnonzero(over)[0])
        raise FormulaError(
            f"response {lhs!r}: successes ({successes[i]:g}) exceed trials ({trials[i]:g}) in row {i}"
        )
    if successes.sum() == 0 or successes.sum() == trials.sum():
        raise FormulaError(f"response {lhs!r}: all trials are failures or all are successes")


def _check_constant_columns(X: np.ndarray, names: list[str], formula: str) -> None:
    for j, name in enumerate(names):
        if name == "Intercept":
            continue
        col = X[:, j]
        if np.all(col == col[0]):
            raise FormulaError(
                f"predictor {name!r} in {formula!r} takes the single value {col[0]:g} in every "
                "row used: it cannot be estimated (drop it from the formula)"
            )
    if X.shape[1] > 1:
        rank = np.linalg.matrix_rank(X)
        if rank < X.shape[1]:
            raise FormulaError(
                f"the fixed-effects design of {formula!r} is rank deficient ({rank} of "
                f"{X.shape[1]} columns independent): some predictors are collinear ({names})"
            )


def design_for_new_data(md: ModelData, new: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]]:
    """Fixed design and per-block slope designs for new rows, with the fitted data's coding.

    Parameters
    ----------
    md : ModelData
        The model data of the fit.
    new : pandas.DataFrame
        New rows holding every predictor (the response is not needed).

    Returns
    -------
    X_new : numpy.ndarray
    Z_new : list of numpy.ndarray, one per block
    """
    new = new.copy()
    for col, levels in md.categorical_levels.items():
        if col in new:
            vals = new[col].astype(str)
            unknown = sorted(set(vals) - set(levels))
            is_group = any(col in b.factor.split(":") for b in md.blocks)
            if unknown and not is_group:
                raise FormulaError(
                    f"column {col!r} of the new data has levels {unknown} not seen in the fit "
                    f"(known: {levels})"
                )
            if not is_group:
                new[col] = pd.Categorical(vals, categories=levels)
    X = _design_like(md.fixed_rhs or "1", md.frame, new)
    Zs = [_design_like(b.expr, md.frame, new) for b in md.blocks]
    return X, Zs


def _design_like(rhs: str, frame: pd.DataFrame, new: pd.DataFrame) -> np.ndarray:
    dm = formulae.design_matrices(rhs, frame, na_action="error")
    if dm.common is None:
        return np.ones((len(new), 0))
    return np.asarray(dm.common.evaluate_new_data(new)).astype(float)
