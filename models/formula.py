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


class DataWarning(UserWarning):
    """The data can be fitted, but something in them deserves attention.

    Raised (as a warning) for perfect separation, tiny or few groups, infinite values that
    were dropped, and predictors on extreme scales; the message says what to do.
    """


#: Fewer levels than this make a group SD (and any varying slope) mostly prior-driven.
MIN_GROUP_LEVELS = 5
#: Predictor SDs outside this range trigger a scale warning.
SCALE_RANGE = (1e-3, 1e3)


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
    if not isinstance(formula, str):
        raise FormulaError(
            f"formula must be a string such as 'y ~ x + (1 | g)', got {type(formula).__name__}"
        )
    if "~" not in formula:
        raise FormulaError(
            f"formula {formula!r} has no '~': write 'outcome ~ predictors', e.g. 'y ~ x + (1 | g)' "
            "(formula must contain exactly one '~')"
        )
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
    if re.search(r"\boffset\s*\(", fixed_rhs):
        raise FormulaError(
            f"formula {formula!r}: offset() terms are not supported by this model (they would be "
            "estimated as ordinary slopes); remove the offset or subtract its effect beforehand"
        )
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
    fixed_vars = _variables(fixed_rhs or "1", cols, "fixed effects")
    slope_vars: list[str] = []
    group_vars: list[str] = []
    for expr, group, _ in bars:
        slope_vars += _variables(expr, cols, f"random effect ({expr} | {group})")
        for g in re.split(r"[/:]", group):
            g = g.strip()
            if g not in cols:
                raise _missing_column_error(g, cols, f"grouping factor of ({expr} | {group})")
            group_vars.append(g)
    used = list(dict.fromkeys(resp_vars + fixed_vars + slope_vars + group_vars))
    predictors = [c for c in dict.fromkeys(fixed_vars + slope_vars) if c not in resp_vars]
    for c in predictors:
        _check_text_in_numeric(data[c], c)

    frame, drops = _complete_cases(data, used)
    if len(frame) == 0:
        raise FormulaError(f"no complete rows left for {formula!r}: {drops}")

    # ---- response
    if kind == "plain":
        y, trials, family, response = _bernoulli_response(frame[lhs], lhs), None, "bernoulli", lhs
    else:
        a = _eval_numeric(frame, args[0], lhs)
        b = _eval_numeric(frame, args[1], lhs)
        _check_binomial(a, b, kind, args, lhs, frame.index)
        successes = a
        trials = a + b if kind == "cbind" else b
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
    for c in predictors:
        if c in categorical_levels and len(categorical_levels[c]) == 1:
            raise FormulaError(
                f"predictor {c!r} in {formula!r} has the single level {categorical_levels[c][0]!r} in "
                "every row used: it cannot be estimated (drop it from the formula)"
            )
    X, fixed_terms = _common_design(fixed_rhs if fixed_rhs else "1", frame)
    if X.shape[1] == 0:
        raise FormulaError(f"formula {formula!r} has no fixed effects (not even an intercept)")
    _check_constant_columns(X, fixed_terms, formula)

    # ---- group blocks
    blocks: list[GroupBlock] = []
    seen: dict[str, int] = {}
    for expr, group, correlated in bars:
        Z, terms = _common_design(expr, frame)
        _check_constant_slopes(Z, terms, f"({expr} | {group})")
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
    md = ModelData(
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
    _warn_separation(md)
    _warn_groups(md)
    _warn_scales(md, frame)
    return md


def _row_error(
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
    """
    i = int(np.flatnonzero(bad)[0])
    k = int(np.sum(bad))
    v = values[i]
    v = v.item() if isinstance(v, np.generic) else v
    more = f" ({k} such rows)" if k > 1 else ""
    return FormulaError(f"{prefix}; row {index[i]} has {v!r}{more}{hint}")


def _check_text_in_numeric(s: pd.Series, name: str) -> None:
    """A text column whose values are mostly numbers is a numeric column with a typo."""
    if isinstance(s.dtype, pd.CategoricalDtype) or not (pd.api.types.is_string_dtype(s) or s.dtype == object):
        return
    text = s.dropna().astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return
    num = pd.to_numeric(text, errors="coerce")
    if num.notna().mean() >= 0.5 and num.isna().any():
        raise _row_error(
            f"column {name!r} looks numeric but holds text",
            text.to_numpy(dtype=object),
            num.isna().to_numpy(),
            text.index,
            ": fix the value or make it missing (NaN); to use the column as categorical on purpose, "
            f"convert it first, e.g. df[{name!r}] = df[{name!r}].astype('category')",
        )


def _complete_cases(data: pd.DataFrame, used: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop rows with a missing (or infinite) value, attributing each to its first variable.

    A column with no usable value at all is an error; infinite values are dropped with a
    `DataWarning` (they are usually a failed transformation such as ``log(0)``).
    """
    import warnings

    frame = data[used].copy()
    keep = np.ones(len(frame), dtype=bool)
    drops: dict[str, int] = {}
    for col in used:
        s = frame[col]
        bad = s.isna().to_numpy().copy()
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            vals = s.to_numpy(dtype=float, na_value=np.nan)
            inf = np.isinf(vals)
            if inf.any():
                i = int(np.flatnonzero(inf)[0])
                warnings.warn(
                    f"column {col!r} has {int(inf.sum())} infinite value(s) (first: row {s.index[i]} = "
                    f"{vals[i]}); those rows are dropped like missing values. Check the transformation "
                    "that made them (e.g. log of 0).",
                    DataWarning,
                    stacklevel=3,
                )
            bad = bad | ~np.isfinite(vals)
        if bad.all():
            raise FormulaError(
                f"column {col!r} has no usable value: all {len(s)} rows are missing or non-finite "
                "(check the column, or drop it from the formula)"
            )
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
            vals = s.to_numpy(dtype=object)
            bad = pd.to_numeric(s.astype(str), errors="coerce").isna().to_numpy()
            bad = bad if bad.any() else np.ones(len(s), dtype=bool)
            raise _row_error(
                f"response {name!r} must be 0/1 (or true/false), but holds a non-numeric value",
                vals,
                bad,
                s.index,
                f". Recode it, e.g. df[{name!r}] = (df[{name!r}] == 'yes').astype(int)",
            )
        vals = s.to_numpy(dtype=float)
        bad = ~np.isin(vals, [0.0, 1.0])
        if bad.any():
            raise _row_error(
                f"response {name!r} must be 0/1",
                vals,
                bad,
                s.index,
                ". Use cbind(successes, failures) for counts.",
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
        bad = pd.to_numeric(s.astype(str), errors="coerce").isna().to_numpy()
        bad = bad if bad.any() else np.ones(len(s), dtype=bool)
        raise _row_error(
            f"{expr!r} in response {lhs!r} is not numeric", s.to_numpy(dtype=object), bad, s.index
        )
    arr = s.to_numpy(dtype=float)
    frac = arr != np.round(arr)
    if frac.any():
        raise _row_error(f"{expr!r} in response {lhs!r} must be whole counts", arr, frac, s.index)
    return arr


def _check_binomial(
    a: np.ndarray, b: np.ndarray, kind: str, args: list[str], lhs: str, index: pd.Index
) -> None:
    """Counts of ``cbind(successes, failures)`` or ``p(successes, trials)`` must make sense."""
    if (a < 0).any():
        raise _row_error(f"response {lhs!r}: successes {args[0]!r} must be >= 0", a, a < 0, index)
    if kind == "cbind" and (b < 0).any():
        raise _row_error(
            f"response {lhs!r}: failures {args[1]!r} must be >= 0 (successes exceed trials)", b, b < 0, index
        )
    if kind == "p":
        if (b < 0).any():
            raise _row_error(f"response {lhs!r}: trials {args[1]!r} must be >= 0", b, b < 0, index)
        if (a > b).any():
            i = int(np.flatnonzero(a > b)[0])
            raise _row_error(f"response {lhs!r}: successes exceed trials (trials {b[i]:g})", a, a > b, index)
    trials = a + b if kind == "cbind" else b
    if a.sum() == 0 or a.sum() == trials.sum():
        which = "a failure" if a.sum() == 0 else "a success"
        raise FormulaError(
            f"response {lhs!r}: every one of the {int(trials.sum())} trials is {which}: a logistic model "
            "cannot be estimated from a constant outcome (all trials are failures or all are successes)"
        )


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
        norms = np.linalg.norm(X, axis=0)
        Xs = X / np.where(norms > 0, norms, 1.0)
        _, sv, vt = np.linalg.svd(Xs, full_matrices=False)
        rank = int(np.sum(sv > sv.max() * max(X.shape) * np.finfo(float).eps))
        if rank < X.shape[1]:
            null = vt[rank:]
            involved = [n for j, n in enumerate(names) if np.abs(null[:, j]).max() > 1e-6]
            raise FormulaError(
                f"the fixed-effects design of {formula!r} is rank deficient ({rank} of {X.shape[1]} "
                f"columns independent): {', '.join(repr(n) for n in involved)} are collinear (one is an "
                "exact linear combination of the others in the rows used); drop one of them"
            )


def _check_constant_slopes(Z: np.ndarray, terms: list[str], bar: str) -> None:
    for j, name in enumerate(terms):
        if name != "Intercept" and np.all(Z[:, j] == Z[0, j]):
            raise FormulaError(
                f"varying term {name!r} of {bar} takes the single value {Z[0, j]:g} in every row used: "
                "its slope cannot be told apart from the intercept (drop it from the bar)"
            )


def _warn(message: str) -> None:
    import warnings

    warnings.warn(message, DataWarning, stacklevel=4)


def _warn_separation(md: ModelData) -> None:
    """Warn when one predictor alone separates the outcome (complete or quasi-complete)."""
    if md.family == "bernoulli":
        has_fail, has_succ = md.y == 0, md.y == 1
        zero, one = f"{md.response} = 0", f"{md.response} = 1"
    else:
        has_fail, has_succ = md.y < md.trials, md.y > 0
        zero, one = "only failures", "only successes"
    if not has_fail.any() or not has_succ.any():
        return
    for j, term in enumerate(md.fixed_terms):
        if term == "Intercept":
            continue
        x = md.X[:, j]
        lo_max, lo_min = x[has_fail].max(), x[has_fail].min()
        hi_max, hi_min = x[has_succ].max(), x[has_succ].min()
        if lo_max <= hi_min:
            above, below, cut_hi, cut_lo = one, zero, lo_max, hi_min
        elif hi_max <= lo_min:
            above, below, cut_hi, cut_lo = zero, one, hi_max, lo_min
        else:
            continue
        kind = "completely" if cut_hi < cut_lo else "quasi-completely"
        _warn(
            f"perfect separation: predictor {term!r} {kind} separates the outcome {md.response!r} "
            f"(every row with {term} > {cut_hi:g} has {above}; every row with {term} < {cut_lo:g} has "
            f"{below}). The data alone would push b[{term}] to infinity: its estimate is held by its "
            "prior, so read it as 'very large, direction known' and check it against a stronger prior; "
            "or merge categories / drop the predictor"
        )


def _warn_groups(md: ModelData) -> None:
    """Warn about grouping factors with few levels or with single-row levels."""
    for block in md.blocks:
        counts = np.bincount(block.idx, minlength=block.n_levels)
        slopes = [t for t in block.terms if t != "Intercept"]
        bar = f"({block.expr} | {block.factor})"
        if block.n_levels < MIN_GROUP_LEVELS:
            what = (
                f"the varying slope(s) {', '.join(slopes)} need enough levels to estimate their SDs"
                + (" and correlations" if block.correlated else "")
                if slopes
                else "its SD needs enough levels to be estimated"
            )
            _warn(
                f"grouping factor {block.factor!r} of {bar} has only {block.n_levels} level(s) in the rows "
                f"used, fewer than {MIN_GROUP_LEVELS}: {what}, so sd_{block.name} is informed mostly by "
                f"its prior. Consider {block.factor} as a fixed effect"
                + (" or dropping the varying slope" if slopes else "")
            )
        single = np.flatnonzero(counts == 1)
        if len(single):
            names = ", ".join(repr(block.levels[i]) for i in single[:3])
            more = f" and {len(single) - 3} more" if len(single) > 3 else ""
            _warn(
                f"grouping factor {block.factor!r}: {len(single)} of {block.n_levels} levels have a single "
                f"row ({names}{more}); the fit goes ahead, their effects are pulled to the average by "
                "partial pooling and should not be interpreted one by one"
            )


def _warn_scales(md: ModelData, frame: pd.DataFrame) -> None:
    """Warn about numeric predictors on extreme scales (e.g. income in pence)."""
    lo, hi = SCALE_RANGE
    for j, term in enumerate(md.fixed_terms):
        if term not in frame.columns or not pd.api.types.is_numeric_dtype(frame[term]):
            continue
        x = md.X[:, j]
        sd = float(np.std(x))
        if sd == 0 or np.isin(x, [0.0, 1.0]).all() or lo <= sd <= hi:
            continue
        fix = "divide it by a power of 10" if sd > hi else "multiply it by a power of 10"
        _warn(
            f"predictor {term!r} is on an extreme scale (SD {sd:.3g}, values {x.min():.3g} to "
            f"{x.max():.3g}): "
            f"b[{term}] is per unit of {term}, so per-unit odds ratios will print as ~1. The default prior "
            f"scales by the SD (normal(0, 2.5 / sd)), so the fit itself is fine, but {fix} (e.g. pounds "
            "instead of pence) or standardise it for readable results, and scale any prior you give for "
            f"b[{term}] to match"
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
