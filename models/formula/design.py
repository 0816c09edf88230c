"""A parsed formula evaluated on data: the fixed design, the response and the group blocks.

`models.formula.terms.parse_formula` reads the formula; here its atoms (variables and
transforms, `models.formula.atoms`) are evaluated on the complete-case rows, `formulae`
builds the term algebra (interactions, treatment contrasts) over them, and the bars become
group blocks: an integer index per row and a small slope design (rows x terms), never a
dense dummy matrix.

Left-hand sides: a 0/1, logical or two-level column (Bernoulli; the second level is the
success, as in R), a condition such as ``I(score > 3)``, ``cbind(successes, failures)`` as
in lme4, or ``p(successes, trials)`` as in bambi (aggregated binomial).

Rows with a missing value in any variable the formula uses are dropped before the design is
built, and every drop is counted with the variable that caused it (see `ModelData.drops`).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.formula.atoms import CONSTANTS, Atom, Factor, column_levels, evaluate, is_text
from models.formula.errors import DataWarning, missing_column_error, row_error
from models.formula.syntax import FormulaError, deparse, names_in
from models.formula.terms import FormulaTerms, parse_formula

#: Fewer levels than this make a group SD (and any varying slope) mostly prior-driven.
MIN_GROUP_LEVELS = 5
#: Predictor SDs outside this range trigger a scale warning.
SCALE_RANGE = (1e-3, 1e3)


@dataclass(frozen=True)
class DesignColumn:
    """One column of a design matrix and where it comes from.

    Attributes
    ----------
    label : str
        The column's name (``age``, ``I(age^2)``, ``livch[3+]``, ``urban[Y]:age``,
        ``poly(age, 2)[1]``); parameters are named ``b[label]``.
    term : str
        The term it belongs to, without levels (``livch``, ``urban:age``, ``poly(age, 2)``).
    variables : tuple of str
        Data columns it reads.
    r_name : str
        R's ``model.matrix`` name of the same column (``livch3+``, ``urbanY:age``,
        ``poly(age, 2)1``, ``(Intercept)``).
    """

    label: str
    term: str
    variables: tuple[str, ...]
    r_name: str


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
        The varying-effect expression as written (R's spelling).
    columns : list of DesignColumn
        Where each varying term comes from (R's names included).
    bar : int
        Position of its bar in the formula (``(1 | a/b)`` makes two blocks of one bar).
    spatial : dict
        Empty for exchangeable effects; the options of a ``car(lad, type = "bym2")`` term
        (`models.formula.terms.CAR_OPTIONS`) for a spatially structured intercept
        (`models.spatial`).
    """

    name: str
    factor: str
    terms: list[str]
    levels: list[str]
    idx: np.ndarray
    Z: np.ndarray
    correlated: bool
    expr: str
    columns: list[DesignColumn] = field(default_factory=list)
    bar: int = 0
    spatial: dict[str, str] = field(default_factory=dict)

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

    @property
    def factor_columns(self) -> list[str]:
        """Data columns that define the factor (``["a", "b"]`` for ``a:b``)."""
        return self.factor.split(":")


@dataclass
class ModelData:
    """Everything a model family needs, as plain arrays with labels.

    This is also where the rest of the project asks formula facts: the terms and their
    columns (`columns`, `term_columns`), the variables used (`variables`), the response
    (`response_columns`, `family`), the grouping factors (`blocks`), the complete-case rows
    (`rows`, `complete_rows`) and lme4's spelling of the model (`glmer_formula`).

    Attributes
    ----------
    formula : str
        The formula as given.
    response : str
        Name used for the observed variable.
    family : str
        ``"bernoulli"``, ``"binomial"`` or ``"cumulative"`` (ordinal; no intercept column).
    y : numpy.ndarray
        0/1 outcomes, successes for the binomial family, or category codes ``0 .. K-1``
        (in ``response_levels`` order) for the cumulative family.
    trials : numpy.ndarray or None
        Number of trials (binomial family only).
    X : numpy.ndarray
        Fixed-effects design, including the intercept column when present.
    fixed_terms : list of str
        Column labels of ``X`` (``Intercept``, ``x``, ``a:b``, ``f[level]``).
    blocks : list of GroupBlock
        One per grouping factor of each bar.
    frame : pandas.DataFrame
        The complete-case rows of the variables used (the model frame), index reset.
    n_input : int
        Rows in the data given.
    drops : dict
        Rows dropped, by reason (``"missing <variable>"``). ``n_input == len(frame) + sum``.
    fixed_rhs : str
        The fixed part of the right-hand side (R's spelling).
    categorical_levels : dict
        Level order of each categorical column of ``frame``.
    terms : FormulaTerms
        The parsed formula.
    columns : list of DesignColumn
        Where each column of ``X`` comes from.
    rows : numpy.ndarray
        Positions (0-based) in the data given of the rows used.
    response_levels : tuple of str
        For a two-level response: (failure, success) levels; for an ordinal response
        every category, lowest first; else empty.
    weights : numpy.ndarray or None
        Likelihood weight of each row (survey pseudo-likelihood, `models.weights`); None:
        unweighted.
    group_weights : dict
        Block name -> weight of each level in the group effects' prior (areas sampled
        with unequal probability, `models.weights`); empty: unweighted.
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
    terms: FormulaTerms | None = None
    columns: list[DesignColumn] = field(default_factory=list)
    rows: np.ndarray | None = None
    response_levels: tuple[str, ...] = ()
    atoms: dict[str, Atom] = field(default_factory=dict, repr=False)
    weights: np.ndarray | None = field(default=None, repr=False)
    group_weights: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n_obs(self) -> int:
        return len(self.y)

    @property
    def has_intercept(self) -> bool:
        return "Intercept" in self.fixed_terms

    @property
    def variables(self) -> list[str]:
        """Every data column the model reads (response, predictors, grouping factors)."""
        return [c for c in self.frame.columns]

    @property
    def response_columns(self) -> list[str]:
        """Data columns of the response."""
        return [c for c in self.terms.response.variables if c in self.frame.columns]

    @property
    def group_columns(self) -> list[str]:
        """Data columns that define the grouping factors."""
        return list(dict.fromkeys(c for b in self.blocks for c in b.factor_columns))

    @property
    def predictor_columns(self) -> list[str]:
        """Data columns read by the fixed part or a varying-effect expression."""
        return [c for c in self.terms.predictor_columns() if c in self.frame.columns]

    @property
    def fixed_columns(self) -> list[str]:
        """Data columns read by the fixed part."""
        return list(dict.fromkeys(v for c in self.columns for v in c.variables))

    @property
    def glmer_formula(self) -> str:
        """The model in lme4's spelling (``p(s, n)`` as ``cbind(s, n - s)``, ``**`` as ``^``)."""
        return self.terms.r_formula

    @property
    def reference_levels(self) -> dict[str, str]:
        """The reference (first) level of every factor in the model, by term label."""
        return {label: a.state["levels"][0] for label, a in self.atoms.items() if a.state.get("levels")}

    def term_columns(self, term: str) -> list[str]:
        """Design-column labels of a fixed term or of one of its columns.

        ``"education"`` gives every non-reference level's column
        (``education[degree]``, ...); ``"education[degree]"`` or ``"age"`` give themselves.
        An empty list means the model has no such term.
        """
        if term in self.fixed_terms:
            return [term]
        return [c.label for c in self.columns if c.term == term]

    def complete_rows(self, data: pd.DataFrame) -> pd.Series:
        """Which rows of ``data`` have every variable the model reads (the same rule as the fit).

        Missing and non-finite values count as missing; columns the data lack are ignored
        (e.g. the response, for new data).
        """
        cols = [c for c in self.variables if c in data.columns]
        ok = pd.Series(True, index=data.index)
        for c in cols:
            ok &= ~_bad_values(data[c])
        return ok

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


def r_label(label: str) -> str:
    """R's ``model.matrix`` name of one of our design-column labels.

    ``Intercept`` -> ``(Intercept)``; ``f[level]`` -> ``flevel``; ``poly(x, 2)[1]`` ->
    ``poly(x, 2)1``; ``center(x)`` -> ``scale(x, scale = FALSE)``; parts of an interaction
    are mapped one by one. (`DesignColumn.r_name` gives the same for a built model.)
    """
    if label == "Intercept":
        return "(Intercept)"
    out = []
    for part in split_top_level(label):
        atom, level = _split_level(part)
        try:
            from models.formula.atoms import make_atom
            from models.formula.syntax import parse_expression

            r = make_atom(parse_expression(atom)).r_label
        except FormulaError:
            r = atom
        out.append(r + level)
    return ":".join(out)


def split_top_level(text: str, sep: str = ":") -> list[str]:
    """Split ``text`` at ``sep`` outside parentheses and brackets (an interaction label
    ``poly(x, 2)[1]:f[a:b]`` into its parts; R's names too)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def split_level(label: str) -> str:
    """The term of a design-column label: ``education[degree]`` -> ``education``,
    ``urban[Y]:age`` -> ``urban:age``, ``poly(age, 2)[1]`` -> ``poly(age, 2)``."""
    return ":".join(_split_level(p)[0] for p in split_top_level(label))


def _split_level(part: str) -> tuple[str, str]:
    if part.endswith("]") and "[" in part:
        i = part.rfind("[")
        return part[:i], part[i + 1 : -1]
    return part, ""


# --------------------------------------------------------------------------- building


def build_model_data(formula: str, data: pd.DataFrame, *, family: str | None = None) -> ModelData:
    """Parse an lme4-style formula and evaluate it on ``data``.

    Parameters
    ----------
    formula : str
        e.g. ``"y ~ age50 * area_sociability + log_income + (1 + age50 | lad)"``,
        ``"use ~ age + I(age^2) + urban + livch + (1 | district)"`` or
        ``"cbind(incidence, size - incidence) ~ period + (1 | herd)"``.
    data : pandas.DataFrame
        Any data frame. A column is categorical by type (category, bool, or text; or when
        the formula says ``factor()``/``C()``): a pandas categorical keeps its category
        order, text levels are sorted, and the first level is the reference (treatment
        contrasts, as in lme4).

    family : {None, "cumulative"}
        ``"cumulative"``: an ordinal response (`ordinal_response`; the intercept column is
        dropped, the cutpoints take its place). None: ordinal when the response is an
        ordered pandas categorical, else binary or binomial by the response's form.

    Returns
    -------
    ModelData

    Raises
    ------
    FormulaError
        When a term is not a column, the response is not 0/1 (or successes exceed trials),
        the response is constant, a term is constant or collinear, or no rows remain.
    """
    if not isinstance(data, pd.DataFrame):
        raise FormulaError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise FormulaError("data has no rows")
    if not data.columns.is_unique:
        dup = data.columns[data.columns.duplicated()][0]
        raise FormulaError(f"data has more than one column named {dup!r}")
    terms = parse_formula(formula)
    cols = data.columns
    atoms = {k: Atom(a.node, a.label, a.r_label, list(a.variables)) for k, a in terms.atoms.items()}

    # ---- variables used, each checked against the data
    resp_vars = _known(terms.response.variables, cols, "response")
    fixed_vars = _known(names_in(terms.fixed) if terms.fixed is not None else [], cols, "fixed effects")
    slope_vars: list[str] = []
    for b in terms.bars:
        slope_vars += _known(names_in(b.expr), cols, f"random effect {b.text}")
    group_vars: list[str] = []
    for b in terms.bars:
        for g in b.factor_columns:
            if g not in cols:
                raise missing_column_error(g, cols, f"grouping factor of {b.text}")
            group_vars.append(g)
    used = list(dict.fromkeys(resp_vars + fixed_vars + slope_vars + group_vars))
    frame, drops = _complete_cases(data, used)
    rows = np.flatnonzero(data.index.isin(frame.index)) if data.index.is_unique else None

    # ---- atoms on the rows used; rows where a transform is undefined are dropped too
    for _ in range(2):
        values, bad = _atom_values(atoms, frame, learn=True)
        if not bad:
            break
        keep = np.ones(len(frame), dtype=bool)
        for reason, mask in bad.items():
            new = mask & keep
            if new.any():
                drops[reason] = drops.get(reason, 0) + int(new.sum())
                first = frame.index[int(np.flatnonzero(new)[0])]
                _warn(
                    f"{reason}: {int(new.sum())} row(s) (first: row {first}) are dropped like missing "
                    "values; check the transformation (e.g. log of 0)"
                )
            keep &= ~mask
        frame = frame.loc[keep]
    if len(frame) == 0:
        raise FormulaError(f"no complete rows left for {formula!r}: {drops}")
    if rows is not None:
        rows = np.flatnonzero(data.index.isin(frame.index))

    for label, v in values.items():
        if isinstance(v, Factor) and len(atoms[label].state["levels"]) == 1:
            raise FormulaError(
                f"predictor {label!r} in {formula!r} has the single level "
                f"{atoms[label].state['levels'][0]!r} in every row used: it cannot be estimated "
                "(drop it from the formula)"
            )

    # ---- response
    if family not in (None, "cumulative"):
        raise FormulaError(
            f"family must be 'cumulative' or None (binary/binomial by the response), got {family!r}"
        )
    ordinal = family == "cumulative" or (
        terms.response.kind == "plain"
        and isinstance(frame[terms.response.name].dtype, pd.CategoricalDtype)
        and frame[terms.response.name].cat.ordered
    )
    if ordinal:
        y, response_levels = ordinal_response(terms, frame)
        trials = None
    else:
        y, trials, response_levels = _response(terms, frame)

    # ---- fixed design
    X, columns = _design(terms, atoms, values, terms.fixed, len(frame))
    _check_finite(X, [c.label for c in columns], "fixed effects")
    fixed_terms = [c.label for c in columns]
    if X.shape[1] == 0:
        raise FormulaError(f"formula {formula!r} has no fixed effects (not even an intercept)")
    _check_constant_columns(X, fixed_terms, formula)
    if ordinal and "Intercept" not in fixed_terms:
        raise FormulaError(
            f"formula {formula!r}: an ordinal (cumulative) model's cutpoints take the place of the "
            "intercept, so write the formula with one (drop '0 +' / '- 1')"
        )
    if ordinal:  # the cutpoints take the intercept's place (as in clmm)
        keep_cols = [j for j, t in enumerate(fixed_terms) if t != "Intercept"]
        X, columns = X[:, keep_cols], [columns[j] for j in keep_cols]
        fixed_terms = [c.label for c in columns]

    # ---- group blocks
    blocks: list[GroupBlock] = []
    seen: dict[str, int] = {}
    for k, bar in enumerate(terms.bars):
        Z, zcols = _design(terms, atoms, values, bar.expr, len(frame))
        _check_finite(Z, [c.label for c in zcols], f"random effect {bar.text}")
        zterms = [c.label for c in zcols]
        if not zterms:
            raise FormulaError(f"random effect {bar.text} has no terms (write 1 for an intercept)")
        _check_constant_slopes(Z, zterms, bar.text)
        for factor in bar.factors:
            key = factor.replace(":", "__")
            seen[key] = seen.get(key, 0) + 1
            name = key if seen[key] == 1 else f"{key}_{seen[key]}"
            codes, levels = _factor_codes(frame, factor)
            blocks.append(
                GroupBlock(
                    name=name,
                    factor=factor,
                    terms=zterms,
                    levels=levels,
                    idx=codes,
                    Z=Z,
                    correlated=bar.correlated and len(zterms) > 1,
                    expr=bar.expr_text,
                    columns=zcols,
                    bar=k,
                    spatial=dict(bar.spatial),
                )
            )

    model_frame = _as_categoricals(frame, used)
    categorical_levels = {
        c: [str(v) for v in model_frame[c].cat.categories]
        for c in used
        if isinstance(model_frame[c].dtype, pd.CategoricalDtype)
    }
    md = ModelData(
        formula=formula,
        response=terms.response.name,
        family="cumulative" if ordinal else terms.family,
        y=y,
        trials=trials,
        X=X,
        fixed_terms=fixed_terms,
        blocks=blocks,
        frame=model_frame.reset_index(drop=True),
        n_input=len(data),
        drops=drops,
        fixed_rhs=deparse(terms.fixed) if terms.fixed is not None else "1",
        categorical_levels=categorical_levels,
        terms=terms,
        columns=columns,
        rows=rows,
        response_levels=response_levels,
        atoms=atoms,
    )
    _warn_separation(md)
    _warn_groups(md)
    _warn_scales(md, frame)
    return md


def _known(names: list[str] | tuple[str, ...], cols: pd.Index, where: str) -> list[str]:
    out = []
    for n in names:
        if n in cols:
            out.append(n)
        elif n not in CONSTANTS:
            raise missing_column_error(n, cols, where)
    return out


def _atom_values(
    atoms: dict[str, Atom], frame: pd.DataFrame, learn: bool
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every atom's value on ``frame``, and the rows where a value is undefined, by reason."""
    values: dict[str, Any] = {}
    bad: dict[str, np.ndarray] = {}
    for label, atom in atoms.items():
        where = f"term {label!r}"
        try:
            v = atom.value(frame, where, learn)
        except FormulaError:
            raise
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise FormulaError(f"{where}: cannot be evaluated on the data: {exc}") from None
        values[label] = v
        if isinstance(v, Factor):
            miss = v.values.isna().to_numpy()
            if miss.any():
                bad[f"{label} not one of its levels"] = miss
        else:
            arr = np.asarray(v, dtype=float)
            nonfinite = ~np.isfinite(arr) if arr.ndim == 1 else ~np.isfinite(arr).all(axis=1)
            if nonfinite.any():
                bad[f"non-finite {label}"] = nonfinite
    return values, bad


def _design(
    terms: FormulaTerms,
    atoms: dict[str, Atom],
    values: dict[str, Any],
    node: Any,
    n: int,
) -> tuple[np.ndarray, list[DesignColumn]]:
    """The design of a term-algebra tree, coded as R's ``model.matrix`` codes it.

    Terms come from `formulae`'s expansion of the algebra, ordered by degree as R orders
    them. A factor in a term is coded by treatment contrasts (reference level dropped) when
    the term without it is contained in an earlier term (the intercept is the empty term),
    and by indicators of every level otherwise; without an intercept, the first factor of
    the first term that has one gets every level (Chambers & Hastie 1992, p. 38; R's
    ``TermCode``).
    """
    intercept, term_list = terms.term_atoms(node)
    labels = list(atoms)
    is_factor = {k: isinstance(values[labels[k]], Factor) for t in term_list for k in t}
    full: set[tuple[int, int]] = set()  # (term position, atom) coded by every level
    if not intercept:
        for ti, t in enumerate(term_list):
            factors = [k for k in t if is_factor[k]]
            if factors:
                full.add((ti, min(factors)))  # the factor that comes first in the formula
                break
    for ti, t in enumerate(term_list):
        for k in t:
            if not is_factor[k] or (ti, k) in full:
                continue
            rest = set(t) - {k}
            if rest and not any(rest <= set(u) for u in term_list[:ti]):
                full.add((ti, k))
    with np.errstate(all="ignore"):  # overflow becomes inf, refused by _check_finite
        return _design_columns(intercept, term_list, full, atoms, values, n)


def _design_columns(
    intercept: bool,
    term_list: list[tuple[int, ...]],
    full: set[tuple[int, int]],
    atoms: dict[str, Atom],
    values: dict[str, Any],
    n: int,
) -> tuple[np.ndarray, list[DesignColumn]]:
    labels = list(atoms)
    mats_out: list[np.ndarray] = [np.ones(n)] if intercept else []
    columns = [DesignColumn("Intercept", "Intercept", (), "(Intercept)")] if intercept else []
    for ti, t in enumerate(term_list):
        mats: list[np.ndarray] = [np.ones(n)]
        names: list[tuple[list[str], list[tuple[int, str]]]] = [([], [])]
        for k in t:
            mat, ours, rs = _component(atoms[labels[k]], values[labels[k]], (ti, k) in full, n)
            mats = [m * mat[:, j] for j in range(mat.shape[1]) for m in mats]
            names = [(o + [ours[j]], r + [(k, rs[j])]) for j in range(mat.shape[1]) for o, r in names]
        term = ":".join(atoms[labels[k]].label for k in t)
        variables = tuple(dict.fromkeys(v for k in t for v in atoms[labels[k]].variables))
        for m, (o, r) in zip(mats, names, strict=True):
            mats_out.append(m)
            r_name = ":".join(part for _, part in sorted(r))  # R writes variables in formula order
            columns.append(DesignColumn(":".join(o), term, variables, r_name))
    X = np.column_stack(mats_out) if mats_out else np.ones((n, 0))
    return X, columns


def _component(atom: Atom, value: Any, full: bool, n: int) -> tuple[np.ndarray, list[str], list[str]]:
    """Columns of one atom within a term, with our labels and R's names."""
    if isinstance(value, Factor):
        levels = list(atom.state["levels"])
        codes = pd.Categorical(value.values.to_numpy(dtype=object), categories=levels).codes
        keep = levels if full else levels[1:]
        mat = np.zeros((n, len(keep)))
        for j, lv in enumerate(keep):
            mat[:, j] = codes == levels.index(lv)
        return mat, [f"{atom.label}[{lv}]" for lv in keep], [f"{atom.r_label}{lv}" for lv in keep]
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 2:
        k = arr.shape[1]
        ours = [f"{atom.label}[{j}]" for j in range(1, k + 1)]
        return arr, ours, [f"{atom.r_label}{j}" for j in range(1, k + 1)]
    return (arr * np.ones(n))[:, None], [atom.label], [atom.r_label]


def _response(
    terms: FormulaTerms, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    resp = terms.response
    lhs = deparse(resp.nodes[0]) if resp.kind in ("plain", "expression") else resp.r_spelling()
    if resp.kind == "plain":
        y, levels = _bernoulli_response(frame[resp.name], resp.name)
        return y, None, levels
    if resp.kind == "expression":
        v = np.asarray(evaluate(resp.nodes[0], frame, f"response {lhs!r}"), dtype=float) * np.ones(len(frame))
        y, levels = _bernoulli_response(pd.Series(v, index=frame.index), lhs)
        return y, None, levels
    a = _count(frame, resp.nodes[0], lhs)
    b = _count(frame, resp.nodes[1], lhs)
    args = [deparse(x) for x in resp.nodes]
    _check_binomial(a, b, resp.kind, args, lhs, frame.index)
    trials = a + b if resp.kind == "cbind" else b
    return a.astype(np.int64), trials.astype(np.int64), ()


def ordinal_response(terms: FormulaTerms, frame: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    """Category codes ``0 .. K-1`` and the categories (lowest first) of an ordinal response.

    An ordered (or unordered: ``family="cumulative"`` says it is ordinal) pandas categorical
    keeps its category order; numbers sort numerically (a 1-7 scale); text is refused, as
    its order is unknown. A category that no row used has is dropped with a `DataWarning`
    naming it (its cutpoints would not be identified; the model has one category fewer).
    Fewer than 3 categories is an error pointing to the binary family.
    """
    resp = terms.response
    if resp.kind != "plain":
        raise FormulaError(f"an ordinal (cumulative) response must be one column, not {resp.r_spelling()!r}")
    name = resp.name
    s = frame[name]
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = [str(c) for c in s.cat.categories]
        used = set(s.cat.codes[s.cat.codes >= 0].unique())
        empty = [c for k, c in enumerate(cats) if k not in used]
        if empty:
            _warn(
                f"ordinal response {name!r}: no row used has the categor{'y' if len(empty) == 1 else 'ies'} "
                f"{', '.join(map(repr, empty))}; dropped from the categories (the model has "
                f"{len(cats) - len(empty)} categories, not {len(cats)}): merge or drop the level to "
                "silence this"
            )
            s = s.cat.remove_unused_categories()
        levels = tuple(str(c) for c in s.cat.categories)
        codes = s.cat.codes.to_numpy().astype(np.int64)
    elif pd.api.types.is_bool_dtype(s):
        levels, codes = ("False", "True"), s.to_numpy(dtype=np.int64)
    else:
        num = pd.to_numeric(s, errors="coerce") if is_text(s) else s.astype(float)
        if num.isna().any():
            raise row_error(
                f"ordinal response {name!r} holds text, whose order is unknown",
                s.to_numpy(dtype=object),
                num.isna().to_numpy(),
                s.index,
                f". Make it an ordered categorical: df[{name!r}] = pd.Categorical(df[{name!r}], "
                "categories=[lowest, ..., highest], ordered=True)",
            )
        values = np.sort(num.unique())
        codes = np.searchsorted(values, num.to_numpy()).astype(np.int64)
        levels = tuple(f"{v:g}" for v in values)
    if len(levels) < 3:
        raise FormulaError(
            f"ordinal response {name!r} has {len(levels)} categor{'y' if len(levels) == 1 else 'ies'} "
            f"{list(levels)} in the rows used: a cumulative model needs 3 or more; fit the binary "
            "(logistic) family instead (leave family unset and code the response 0/1)"
        )
    return codes, levels


def _count(frame: pd.DataFrame, node: Any, lhs: str) -> np.ndarray:
    where = f"response {lhs!r}"
    arr = np.asarray(evaluate(node, frame, where), dtype=float) * np.ones(len(frame))
    bad = ~np.isfinite(arr)
    if bad.any():
        raise row_error(f"{deparse(node)!r} in {where} is not a finite number", arr, bad, frame.index)
    frac = arr != np.round(arr)
    if frac.any():
        raise row_error(f"{deparse(node)!r} in {where} must be whole counts", arr, frac, frame.index)
    return arr


def _bad_values(s: pd.Series) -> np.ndarray:
    """Missing or non-finite values of a column: what makes a row incomplete."""
    bad = s.isna().to_numpy().copy()
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        vals = s.to_numpy(dtype=float, na_value=np.nan)
        bad = bad | ~np.isfinite(vals)
    return bad


def _complete_cases(data: pd.DataFrame, used: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop rows with a missing (or infinite) value, attributing each to its first variable.

    A column with no usable value at all is an error; infinite values are dropped with a
    `DataWarning` (they are usually a failed transformation such as ``log(0)``).
    """
    frame = data[used].copy()
    keep = np.ones(len(frame), dtype=bool)
    drops: dict[str, int] = {}
    for col in used:
        s = frame[col]
        bad = _bad_values(s)  # the one definition of missing, shared with ModelData.complete_rows
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
    """Text columns become categoricals with sorted levels (how the model frame is stored)."""
    frame = frame.copy()
    for c in used:
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            frame[c] = s.cat.remove_unused_categories()
        elif is_text(s):
            frame[c] = pd.Categorical(s.astype(str))
    return frame


def _factor_codes(frame: pd.DataFrame, factor: str) -> tuple[np.ndarray, list[str]]:
    parts = factor.split(":")
    key = column_levels(frame[parts[0]]).values.astype(str)
    for p in parts[1:]:
        key = key + ":" + column_levels(frame[p]).values.astype(str)
    cat = pd.Categorical(key)
    return cat.codes.astype(np.int64), [str(c) for c in cat.categories]


def _bernoulli_response(s: pd.Series, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """0/1 outcomes from a 0/1, logical or two-level column (second level = success, as in R)."""
    levels: tuple[str, ...] = ()
    if pd.api.types.is_bool_dtype(s):
        y = s.to_numpy(dtype=np.int64)
    elif isinstance(s.dtype, pd.CategoricalDtype) or is_text(s):
        if isinstance(s.dtype, pd.CategoricalDtype):
            order = [str(c) for c in s.cat.remove_unused_categories().cat.categories]
            vals = s.astype(object).map(str)
        else:
            vals = s.astype(str)
            num = pd.to_numeric(vals, errors="coerce")
            if num.notna().all() and set(num) <= {0.0, 1.0}:
                vals = num.map(lambda v: str(int(v)))
            elif num.notna().all():
                bad = ~num.isin([0.0, 1.0]).to_numpy()
                raise row_error(
                    f"response {name!r} must be 0/1",
                    s.to_numpy(dtype=object),
                    bad,
                    s.index,
                    ". Use cbind(successes, failures) for counts, or family='cumulative' for an ordinal "
                    "scale (e.g. 1-7).",
                )
            elif num.notna().any():  # numbers mixed with text: a coding error, not a factor
                bad = num.isna().to_numpy()
                raise row_error(
                    f"response {name!r} must be 0/1 (or true/false), but holds a non-numeric value",
                    s.to_numpy(dtype=object),
                    bad,
                    s.index,
                    f". Recode it, e.g. df[{name!r}] = (df[{name!r}] == 'yes').astype(int)",
                )
            order = sorted(set(vals))
        if len(order) != 2:
            bad = np.ones(len(s), dtype=bool)
            ordinal_hint = (
                f"; or, if its levels are ordered, fit an ordinal model: make it an ordered categorical "
                f"(pd.Categorical(df[{name!r}], categories=[lowest, ..., highest], ordered=True)) or "
                "pass family='cumulative'"
                if len(order) > 2
                else ""
            )
            raise row_error(
                f"response {name!r} must be 0/1 (or true/false, or a factor with two levels), but has "
                f"{len(order)} level(s) {order[:6]}",
                s.to_numpy(dtype=object),
                bad,
                s.index,
                f". Recode it, e.g. df[{name!r}] = (df[{name!r}] == 'yes').astype(int){ordinal_hint}",
            )
        y = (vals.to_numpy() == order[1]).astype(np.int64)
        levels = (order[0], order[1])
    else:
        vals = s.to_numpy(dtype=float)
        bad = ~np.isin(vals, [0.0, 1.0])
        if bad.any():
            raise row_error(
                f"response {name!r} must be 0/1",
                vals,
                bad,
                s.index,
                ". Use cbind(successes, failures) for counts, or family='cumulative' for an ordinal scale "
                "(e.g. 1-7).",
            )
        y = vals.astype(np.int64)
    if y.min() == y.max():
        raise FormulaError(
            f"response {name!r} is {y[0]} for every one of the {len(y)} rows used: "
            "a logistic model cannot be estimated from a constant outcome"
        )
    return y, levels


def _check_binomial(
    a: np.ndarray, b: np.ndarray, kind: str, args: list[str], lhs: str, index: pd.Index
) -> None:
    """Counts of ``cbind(successes, failures)`` or ``p(successes, trials)`` must make sense."""
    if (a < 0).any():
        raise row_error(f"response {lhs!r}: successes {args[0]!r} must be >= 0", a, a < 0, index)
    if kind == "cbind" and (b < 0).any():
        raise row_error(
            f"response {lhs!r}: failures {args[1]!r} must be >= 0 (successes exceed trials)", b, b < 0, index
        )
    if kind == "p":
        if (b < 0).any():
            raise row_error(f"response {lhs!r}: trials {args[1]!r} must be >= 0", b, b < 0, index)
        if (a > b).any():
            i = int(np.flatnonzero(a > b)[0])
            raise row_error(f"response {lhs!r}: successes exceed trials (trials {b[i]:g})", a, a > b, index)
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
    if X.shape[1] > X.shape[0]:
        raise FormulaError(
            f"the fixed-effects design of {formula!r} has {X.shape[1]} columns but only {X.shape[0]} rows "
            "are used: there are more coefficients than observations; simplify the formula"
        )
    if X.shape[1] > 1:
        with np.errstate(all="ignore"):
            scale = np.abs(X).max(axis=0)
            Xs = X / np.where(scale > 0, scale, 1.0)
            norms = np.linalg.norm(Xs, axis=0)
            Xs = Xs / np.where(norms > 0, norms, 1.0)
        try:
            _, sv, vt = np.linalg.svd(Xs, full_matrices=False)
        except np.linalg.LinAlgError:
            raise FormulaError(
                f"the fixed-effects design of {formula!r} has values too extreme to check (an overflow?): "
                "rescale the predictors"
            ) from None
        rank = int(np.sum(sv > sv.max() * max(X.shape) * np.finfo(float).eps))
        if rank < X.shape[1]:
            null = vt[rank:]
            involved = [n for j, n in enumerate(names) if np.abs(null[:, j]).max() > 1e-6]
            raise FormulaError(
                f"the fixed-effects design of {formula!r} is rank deficient ({rank} of {X.shape[1]} "
                f"columns independent): {', '.join(repr(n) for n in involved)} are collinear (one is an "
                "exact linear combination of the others in the rows used); drop one of them"
            )


def _check_finite(X: np.ndarray, names: list[str], where: str) -> None:
    """A product of large values can overflow to infinity: refuse it with the column named."""
    bad = ~np.isfinite(X)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        raise FormulaError(
            f"{where}: column {names[j]!r} overflows (values beyond 1e308) in {int(bad[:, j].sum())} row(s): "
            "rescale the variables it is made of"
        )


def _check_constant_slopes(Z: np.ndarray, terms: list[str], bar: str) -> None:
    for j, name in enumerate(terms):
        if name != "Intercept" and np.all(Z[:, j] == Z[0, j]):
            raise FormulaError(
                f"varying term {name!r} of {bar} takes the single value {Z[0, j]:g} in every row used: "
                "its slope cannot be told apart from the intercept (drop it from the bar)"
            )


def _warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=4)


def _warn_separation(md: ModelData) -> None:
    """Warn when one predictor alone separates the outcome (complete or quasi-complete)."""
    if md.family == "cumulative":  # the cutpoints' ordering keeps an ordinal model's estimates apart
        return
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
        with np.errstate(all="ignore"):
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

    Transforms reuse what they learned from the fitted rows (means, SDs, polynomial
    coefficients, levels).

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
    new = new.reset_index(drop=True)
    values: dict[str, Any] = {}
    for label, atom in md.atoms.items():
        missing = [v for v in atom.variables if v not in new.columns and v not in CONSTANTS]
        if missing:
            raise FormulaError(f"new data lack the column {missing[0]!r} of term {label!r}")
        v = atom.value(new, f"term {label!r}", learn=False)
        if isinstance(v, Factor):
            unknown = sorted(set(v.values.dropna()) - set(atom.state["levels"]))
            if unknown:
                raise FormulaError(
                    f"column {', '.join(atom.variables)!r} of the new data has levels {unknown} "
                    f"not seen in the fit (known: {atom.state['levels']})"
                )
        values[label] = v
    X, cols = _design(md.terms, md.atoms, values, md.terms.fixed, len(new))
    if md.family == "cumulative":  # no intercept column: the cutpoints take its place
        X = X[:, [j for j, c in enumerate(cols) if c.label != "Intercept"]]
    Zs = [_design(md.terms, md.atoms, values, md.terms.bars[b.bar].expr, len(new))[0] for b in md.blocks]
    return X, Zs
