"""Atoms of a formula: the variables and transforms that make design columns.

An *atom* is one variable or one call in the term algebra (``age``, ``I(age^2)``,
``log(income + 1)``, ``poly(age, 2)``, ``scale(x)``, ``factor(livch)``,
``relevel(education, ref = "none")``). Interactions and the other operators combine atoms;
`formulae` does that algebra. Here each atom is evaluated on the data, with R's meaning:

- ``I()`` / ``{}`` evaluates arithmetic (``^`` and ``**`` are powers) and comparisons; a
  logical result is a two-level factor (``FALSE`` reference), as in R's ``model.matrix``;
- ``log`` (natural, or ``log(x, base)``), ``log2``, ``log10``, ``log1p``, ``exp``,
  ``expm1``, ``sqrt``, ``abs`` anywhere in an expression;
- ``scale(x)``: centred and divided by the SD with n - 1 (R's ``scale``; ``center = FALSE`` /
  ``scale = FALSE`` accepted); ``center(x)`` centres only; computed over the rows used;
- ``poly(x, k)``: R's orthogonal polynomials (the same columns as R's ``poly``), or
  ``raw = TRUE`` powers;
- ``factor(x)``, ``C(x)``, ``as.factor(x)``: a factor (numeric codes sorted numerically,
  text sorted as R sorts in the C locale, a pandas categorical in its own order), with
  ``levels = c(...)`` to choose the order; ``relevel(x, ref = "b")`` or
  ``C(x, Treatment("b"))`` to choose the reference level.

State learned from the data (a mean, an SD, polynomial coefficients, the levels) is kept
so new data are coded the same way.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from formulae.transforms import Polynomial

from models.formula.errors import row_error
from models.formula.syntax import (
    BinOp,
    Brace,
    Call,
    FormulaError,
    List,
    Name,
    Num,
    Paren,
    Str,
    Unary,
    deparse,
    names_in,
)

#: A text column is read as "numbers with a few stray text values" (and refused) only when
#: at least this share of its non-missing values read as numbers; otherwise it is a factor.
STRAY_TEXT_SHARE = 0.95

#: Functions usable inside expressions (``I()``, and arguments of the transforms).
MATH_FUNCTIONS = ("log", "log2", "log10", "log1p", "exp", "expm1", "sqrt", "abs")
#: Calls that make an atom of their own.
TRANSFORMS = ("I", "scale", "center", "standardize", "poly", "factor", "as.factor", "C", "relevel")
#: Names read as constants when no column has them.
CONSTANTS = {"TRUE": True, "FALSE": False, "True": True, "False": False, "pi": np.pi}


def supported_functions() -> str:
    """The functions the formula language knows, for error messages."""
    return ", ".join([*TRANSFORMS, *MATH_FUNCTIONS]) + ", {expr}"


def level_strings(values: pd.Series) -> pd.Series:
    """Level names as R writes them: ``1`` not ``1.0``; text as it is; booleans TRUE/FALSE."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.map(lambda v: v if pd.isna(v) else ("TRUE" if v else "FALSE"))
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.map(lambda v: v if pd.isna(v) else _number_label(float(v)))
    return values.map(lambda v: v if pd.isna(v) else str(v))


def _number_label(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.15g}"


def is_text(s: pd.Series) -> bool:
    """Text (string or object dtype) as opposed to numbers, booleans or a categorical."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return False
    return bool(pd.api.types.is_string_dtype(s.dtype) or s.dtype == object)


def is_categorical_column(s: pd.Series) -> bool:
    """A column is categorical by type: category, boolean, or text."""
    return isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(s.dtype) or is_text(s)


def check_stray_text(s: pd.Series, name: str) -> None:
    """Refuse a mostly numeric text column: a few stray values such as ``n/a`` are typos.

    The rule: at least `STRAY_TEXT_SHARE` (95%) of the non-missing values read as numbers,
    but not all. A column with more text than that is a factor (``"3+"``, ``"7p"``).
    """
    if not is_text(s):
        return
    text = s.dropna().astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return
    num = pd.to_numeric(text, errors="coerce")
    share = float(num.notna().mean())
    if share >= STRAY_TEXT_SHARE and num.isna().any():
        raise row_error(
            f"column {name!r} looks numeric but holds text",
            text.to_numpy(dtype=object),
            num.isna().to_numpy(),
            text.index,
            f": {share:.1%} of its values read as numbers (a column counts as numeric with stray text "
            f"from {STRAY_TEXT_SHARE:.0%}). Fix the value or make it missing (NaN); to use the column as a "
            f"factor on purpose, write factor({name}) in the formula or convert it with .astype('category')",
        )


# --------------------------------------------------------------------------- values


@dataclass
class Factor:
    """A categorical atom's values: level names per row (NaN where missing) and level order."""

    values: pd.Series
    levels: list[str]


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        if name in CONSTANTS:
            return pd.Series(CONSTANTS[name], index=frame.index)
        close = difflib.get_close_matches(name, [str(c) for c in frame.columns], n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise FormulaError(f"term {name!r} is not a column of the data{hint}")
    return frame[name]


def evaluate(node: Any, frame: pd.DataFrame, where: str) -> Any:
    """Numeric (or logical) value of an expression on ``frame``: an array or a scalar.

    A text or categorical column may only be compared with a string (``f == "a"``).
    """
    with np.errstate(all="ignore"):
        return _eval(node, frame, where)


def _numeric(s: pd.Series, name: str, where: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype=float, na_value=np.nan)
    example = str(s.dropna().iloc[0]) if s.notna().any() else ""
    raise FormulaError(
        f"{where}: column {name!r} is categorical (e.g. {example!r}) and cannot enter arithmetic; "
        f'compare it with a level instead, e.g. I({name} == "{example}")'
    )


def _eval(node: Any, frame: pd.DataFrame, where: str) -> Any:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Name):
        s = _column(frame, node.id)
        return _numeric(s, node.id, where)
    if isinstance(node, Paren | Brace):
        return _eval(node.inner, frame, where)
    if isinstance(node, Str):
        raise FormulaError(
            f"{where}: the string {node.value!r} can only be compared with a categorical column"
        )
    if isinstance(node, Unary):
        v = _eval(node.operand, frame, where)
        if node.op == "-":
            return -np.asarray(v, dtype=float)
        if node.op == "+":
            return np.asarray(v, dtype=float)
        return np.logical_not(np.asarray(v, dtype=bool))
    if isinstance(node, BinOp):
        if node.op in ("==", "!=") and (isinstance(node.left, Str) or isinstance(node.right, Str)):
            return _compare_text(node, frame, where)
        a = np.asarray(_eval(node.left, frame, where), dtype=float)
        b = np.asarray(_eval(node.right, frame, where), dtype=float)
        op = node.op
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op in ("^", "**"):
            return np.power(a, b)
        if op == "%%":
            return np.mod(a, b)
        if op == "%/%":
            return np.floor_divide(a, b)
        if op in ("==", "!=", "<", ">", "<=", ">="):
            res = {"==": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
            return np.where(np.isnan(a) | np.isnan(b), np.nan, res)
        if op in ("&", "&&", "|", "||"):
            res = (a != 0) & (b != 0) if op in ("&", "&&") else (a != 0) | (b != 0)
            return np.where(np.isnan(a) | np.isnan(b), np.nan, res)
        raise FormulaError(
            f"{where}: the operator {op!r} is a formula operator; inside I() use arithmetic "
            "(+ - * / ^) or comparisons"
        )
    if isinstance(node, Call):
        return _math_call(node, frame, where)
    raise FormulaError(f"{where}: {deparse(node)!r} is not a numeric expression")


def _compare_text(node: BinOp, frame: pd.DataFrame, where: str) -> np.ndarray:
    text, other = (node.left, node.right) if isinstance(node.left, Str) else (node.right, node.left)
    if not isinstance(other, Name):
        raise FormulaError(f'{where}: a string can only be compared with a column, as in I(f == "a")')
    s = _column(frame, other.id)
    vals = level_strings(s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s)
    res = (vals == text.value).to_numpy(dtype=float)
    if node.op == "!=":
        res = 1.0 - res
    return np.where(s.isna().to_numpy(), np.nan, res)


def _math_call(node: Call, frame: pd.DataFrame, where: str) -> np.ndarray:
    f = node.func
    if f == "I":
        if len(node.args) != 1 or node.kwargs:
            raise FormulaError(f"{where}: I() takes one expression")
        return _eval(node.args[0], frame, where)
    if f not in MATH_FUNCTIONS:
        if f in TRANSFORMS:
            raise FormulaError(
                f"{where}: {f}() is a term of its own; it cannot be used inside an expression "
                f"(write it as a separate term)"
            )
        raise FormulaError(
            f"{where}: unknown function {f!r} in {deparse(node)!r}; supported: {supported_functions()}"
        )
    if not node.args:
        raise FormulaError(f"{where}: {f}() needs an argument")
    x = np.asarray(_eval(node.args[0], frame, where), dtype=float)
    if f == "log":
        base = node.args[1] if len(node.args) > 1 else node.kwarg("base")
        out = np.log(x)
        if base is not None:
            out = out / np.log(float(np.asarray(_eval(base, frame, where), dtype=float)))
        return out
    if len(node.args) != 1 or node.kwargs:
        raise FormulaError(f"{where}: {f}() takes one argument, got {deparse(node)!r}")
    return getattr(np, f)(x)


# --------------------------------------------------------------------------- atoms


def _canonical(node: Any) -> Any:
    """One spelling per meaning: ``{x}`` -> ``I(x)``, ``C``/``as.factor`` -> ``factor``,
    ``standardize`` -> ``scale``, redundant outer parentheses dropped."""
    if isinstance(node, Paren):
        return _canonical(node.inner)
    if isinstance(node, Brace):
        return Call("I", (_strip(node.inner),))
    if isinstance(node, Call):
        func = {"C": "factor", "as.factor": "factor", "standardize": "scale"}.get(node.func, node.func)
        args = tuple(_strip(a) for a in node.args)
        kwargs = tuple((k, _strip(v)) for k, v in node.kwargs)
        if (
            node.func == "C"
            and args[1:2]
            and isinstance(args[1], Call)
            and args[1].func in ("Treatment", "T")
        ):
            ref = args[1].args[0] if args[1].args else args[1].kwarg("reference")
            inner = Call("factor", (args[0],))
            return Call("relevel", (inner,), (("ref", ref),)) if ref is not None else inner
        if node.func == "T" and args:
            ref = args[1] if len(args) > 1 else dict(kwargs).get("ref")
            inner = Call("factor", (args[0],))
            return Call("relevel", (inner,), (("ref", ref),)) if ref is not None else inner
        if func == "relevel" and len(args) == 2 and not kwargs:
            return Call("relevel", (args[0],), (("ref", args[1]),))
        return Call(func, args, kwargs)
    return node


def _strip(node: Any) -> Any:
    """Canonical form inside a call (parentheses that only group stay)."""
    if isinstance(node, Brace):
        return Call("I", (_strip(node.inner),))
    if isinstance(node, Call):
        return Call(
            node.func, tuple(_strip(a) for a in node.args), tuple((k, _strip(v)) for k, v in node.kwargs)
        )
    if isinstance(node, BinOp):
        return BinOp("^" if node.op == "**" else node.op, _strip(node.left), _strip(node.right))
    if isinstance(node, Unary):
        return Unary(node.op, _strip(node.operand))
    if isinstance(node, Paren):
        return Paren(_strip(node.inner))
    return node


@dataclass
class Atom:
    """One variable or transform of the formula, and what it learned from the data.

    Attributes
    ----------
    node
        Canonical syntax tree.
    label : str
        Its name in design-column labels (R's spelling: ``I(age^2)``, ``factor(livch)``).
    r_label : str
        R's spelling, as R's ``model.matrix`` names it.
    variables : list of str
        Data columns it reads.
    state : dict
        What it learned from the rows used (mean, SD, polynomial coefficients, levels).
    """

    node: Any
    label: str
    r_label: str
    variables: list[str]
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def func(self) -> str:
        return self.node.func if isinstance(self.node, Call) else ""

    def check(self, where: str) -> None:
        """Refuse an unsupported call before any data are read."""
        f = self.func
        if isinstance(self.node, Name | Call):
            pass
        else:
            raise FormulaError(f"{where}: {self.label!r} is not a variable or a function call")
        if not f:
            return
        if f == "offset":
            raise FormulaError(
                f"{where}: offset() terms are not supported: this model has no offset in its linear "
                "predictor, so an offset would be estimated as an ordinary slope. Enter the variable as a "
                "predictor, or subtract its known effect from the outcome's log-odds beforehand"
            )
        if f in ("bs", "ns", "cr", "cc", "s", "te", "hsgp", "tp"):
            raise FormulaError(
                f"{where}: the smooth {f}() in {self.label!r} is not supported; use poly(x, k) for a "
                "polynomial"
            )
        if f not in TRANSFORMS and f not in MATH_FUNCTIONS:
            raise FormulaError(
                f"{where}: unknown function {f!r} in term {self.label!r}; supported: {supported_functions()}"
            )
        if f in ("factor", "relevel", "scale", "center", "poly") and not self.node.args:
            raise FormulaError(f"{where}: {f}() needs a variable, e.g. {f}(x)")
        if f == "poly":
            self.poly_degree(where)

    def poly_degree(self, where: str) -> int:
        node = self.node
        deg = node.args[1] if len(node.args) > 1 else node.kwarg("degree")
        deg = Num("1") if deg is None else deg
        if not isinstance(deg, Num) or deg.value != int(deg.value) or deg.value < 1:
            raise FormulaError(f"{where}: the degree of {self.label!r} must be a whole number >= 1")
        return int(deg.value)

    def is_factor(self, frame: pd.DataFrame) -> bool:
        """Whether the atom makes a factor (dummy columns) on these data."""
        f = self.func
        if f in ("factor", "relevel"):
            return True
        if isinstance(self.node, Name):
            return is_categorical_column(_column(frame, self.node.id))
        return False

    def value(self, frame: pd.DataFrame, where: str, learn: bool) -> np.ndarray | Factor:
        """Evaluate on ``frame``: a float array (n,), a matrix (n, k) for ``poly``, or a Factor.

        ``learn=True`` fits the atom's state to these rows (the model frame); ``False`` uses
        the state learned before (new data).
        """
        node, f = self.node, self.func
        if isinstance(node, Name):
            s = _column(frame, node.id)
            if is_categorical_column(s):
                return self._factor(s, learn, where)
            return _numeric(s, node.id, where)
        if f in ("factor", "relevel"):
            return self._factor_call(frame, learn, where)
        if f in ("scale", "center"):
            x = np.asarray(evaluate(node.args[0], frame, where), dtype=float) * np.ones(len(frame))
            do_center = f == "center" or _flag(node.kwarg("center"), True)
            do_scale = f == "scale" and _flag(node.kwarg("scale"), True)
            if learn:
                ok = np.isfinite(x)
                m = float(np.abs(x[ok]).max()) if ok.any() else 0.0
                m = m if m > 0 else 1.0
                with np.errstate(all="ignore"):  # computed on x / max|x|, which cannot overflow
                    mean = float(np.mean(x[ok] / m)) * m if do_center and ok.any() else 0.0
                    dev = (x[ok] - mean) / m
                    sd = float(np.sqrt(np.sum(dev**2) / max(ok.sum() - 1, 1))) * m if do_scale else 1.0
                if not (np.isfinite(sd) and sd > 0):
                    raise FormulaError(f"{where}: {self.label} divides by the SD of a constant")
                self.state.update(mean=mean, sd=sd)
            with np.errstate(all="ignore"):
                return (x - self.state["mean"]) / self.state["sd"]
        if f == "poly":
            x = np.asarray(evaluate(node.args[0], frame, where), dtype=float) * np.ones(len(frame))
            deg = self.poly_degree(where)
            raw = _flag(node.kwarg("raw"), False)
            if raw:
                return np.column_stack([x**k for k in range(1, deg + 1)])
            if learn:
                n_unique = len(np.unique(x[np.isfinite(x)]))
                if deg >= n_unique:
                    raise FormulaError(
                        f"{where}: {self.label} needs a degree below the number of distinct values "
                        f"({n_unique}) of its variable"
                    )
                poly = Polynomial()
                poly.degree, poly.raw, poly.params_set = deg, False, True
                with np.errstate(all="ignore"):
                    first = poly.eval(x[np.isfinite(x)])  # learns alpha and the norms on the rows used
                if not np.isfinite(first).all():
                    raise FormulaError(
                        f"{where}: {self.label} cannot be computed: the values of its variable are too "
                        "large (the polynomial overflows); rescale the variable"
                    )
                self.state["poly"] = poly
            out = np.full((len(x), deg), np.nan)
            ok = np.isfinite(x)
            if ok.any():
                with np.errstate(all="ignore"):
                    out[ok] = self.state["poly"].eval(x[ok])
            return out
        v = evaluate(node, frame, where)
        v = np.asarray(v, dtype=float) * np.ones(len(frame))
        if _is_logical(node):
            s = pd.Series(v, index=frame.index).map(
                lambda t: t if np.isnan(t) else ("TRUE" if t else "FALSE")
            )
            return self._levels_fixed(s, ["FALSE", "TRUE"], learn)
        return v

    def _levels_fixed(self, values: pd.Series, levels: list[str], learn: bool) -> Factor:
        if learn:
            used = set(values.dropna())
            self.state["levels"] = [lv for lv in levels if lv in used]
        return Factor(values, list(self.state["levels"]))

    def _factor(self, s: pd.Series, learn: bool, where: str) -> Factor:
        if is_text(s):
            check_stray_text(s, str(self.variables[0]) if self.variables else where)
        fac = column_levels(s)
        return self._levels_fixed(fac.values, fac.levels, learn)

    def _factor_call(self, frame: pd.DataFrame, learn: bool, where: str) -> Factor:
        node = self.node
        inner = node.args[0]
        if isinstance(inner, Call) and inner.func in ("factor", "relevel"):
            base = Atom(inner, deparse(inner), deparse(inner), self.variables)
            base.state = self.state.setdefault("inner", {})
            fac = base._factor_call(frame, learn, where)
        elif isinstance(inner, Name):
            s = _column(frame, inner.id)
            fac = column_levels(s)
        else:
            v = np.asarray(evaluate(inner, frame, where), dtype=float) * np.ones(len(frame))
            s = pd.Series(v, index=frame.index)
            if _is_logical(inner):
                s = s.map(lambda t: t if np.isnan(t) else bool(t)).astype(object)
                fac = Factor(level_strings(s), ["FALSE", "TRUE"])
            else:
                fac = Factor(level_strings(s), [_number_label(x) for x in np.unique(v[np.isfinite(v)])])
        values, order = fac.values, list(fac.levels)
        if node.func == "factor":
            lv = node.kwarg("levels")
            if lv is not None:
                order = [_constant_label(item, where) for item in _items(lv, where)]
                values = values.where(values.isin(order))
        else:  # relevel
            ref = node.kwarg("ref")
            if ref is None:
                raise FormulaError(
                    f'{where}: relevel() needs the reference level, e.g. relevel(x, ref = "b")'
                )
            ref_label = _constant_label(ref, where)
            present = [lv for lv in order if lv in set(values.dropna())]
            if ref_label not in present:
                raise FormulaError(
                    f"{where}: reference level {ref_label!r} of {self.label!r} is not a level of the "
                    f"rows used (levels: {', '.join(map(repr, present[:10]))})"
                )
            order = [ref_label] + [lv for lv in order if lv != ref_label]
        if learn:
            used = set(values.dropna())
            self.state["levels"] = [lv for lv in order if lv in used]
        return Factor(values, list(self.state["levels"]))


def column_levels(s: pd.Series) -> Factor:
    """A column as a factor, in R's level order: a categorical's own order, FALSE/TRUE,
    numeric codes sorted numerically, text sorted (C locale)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return Factor(level_strings(s.astype(object)), list(level_strings(pd.Series(s.cat.categories))))
    values = level_strings(s)
    if pd.api.types.is_bool_dtype(s.dtype):
        return Factor(values, ["FALSE", "TRUE"])
    if pd.api.types.is_numeric_dtype(s.dtype):
        return Factor(values, [_number_label(v) for v in np.unique(s.dropna().to_numpy(dtype=float))])
    return Factor(values, sorted(set(values.dropna())))


def _is_logical(node: Any) -> bool:
    while isinstance(node, Paren | Brace) or (isinstance(node, Call) and node.func == "I"):
        node = node.inner if isinstance(node, Paren | Brace) else node.args[0]
    if isinstance(node, Unary):
        return node.op == "!"
    return isinstance(node, BinOp) and node.op in ("==", "!=", "<", ">", "<=", ">=", "&", "&&", "|", "||")


def _flag(node: Any, default: bool) -> bool:
    if node is None:
        return default
    if isinstance(node, Name) and node.id in CONSTANTS:
        return bool(CONSTANTS[node.id])
    if isinstance(node, Num):
        return bool(node.value)
    raise FormulaError(f"expected TRUE or FALSE, got {deparse(node)!r}")


def _items(node: Any, where: str) -> list[Any]:
    if isinstance(node, List):
        return list(node.items)
    if isinstance(node, Str | Num):
        return [node]
    raise FormulaError(f'{where}: levels must be a list such as c("a", "b"), got {deparse(node)!r}')


def _constant_label(node: Any, where: str) -> str:
    if isinstance(node, Str):
        return node.value
    if isinstance(node, Num):
        return _number_label(node.value)
    if isinstance(node, Unary) and node.op == "-" and isinstance(node.operand, Num):
        return _number_label(-node.operand.value)
    if isinstance(node, Name) and node.id in ("TRUE", "FALSE", "True", "False"):
        return "TRUE" if CONSTANTS[node.id] else "FALSE"
    raise FormulaError(f"{where}: expected a level (a string or number), got {deparse(node)!r}")


def make_atom(node: Any) -> Atom:
    """The atom of a syntax-tree node of the term algebra (a variable or a call)."""
    canon = _canonical(node)
    label = deparse(canon, r=False)
    r_label = deparse(canon, r=True)
    return Atom(canon, label, r_label, names_in(canon))
