"""What a formula says, before any data: response, fixed terms, group bars, variables.

`parse_formula` is the project's one reader of formula strings (like brms's ``brmsterms``):
everything else, from the synthetic generator's truth to the catalogue, findings,
scenarios and the lme4 bridge, asks the `FormulaTerms` it returns, or the `ModelData`
built from it, instead of reading the string again.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import formulae

from models.formula.atoms import Atom, make_atom
from models.formula.syntax import (
    BinOp,
    Brace,
    Call,
    FormulaError,
    Name,
    Num,
    Paren,
    Str,
    Unary,
    deparse,
    names_in,
    r_name,
    split_formula,
)

# term-algebra operators: ours -> formulae's
_ALGEBRA = {"+": "+", "-": "-", "*": "*", "/": "/", ":": ":", "%in%": ":", "^": "**", "**": "**"}
_PLACEHOLDER = re.compile(r"zzq(\d+)")


def describe(rhs: str) -> Any:
    """formulae's expansion of a term algebra (its notes on what it simplified are silenced:
    they name placeholders the user never wrote)."""
    log = logging.getLogger("formulae")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return formulae.model_description(f"zzresponse ~ {rhs}")
    finally:
        log.setLevel(level)


def placeholder(k: int) -> str:
    """The name formulae sees for atom ``k``."""
    return f"zzq{k}"


@dataclass(frozen=True)
class Response:
    """The left-hand side.

    Attributes
    ----------
    kind : str
        ``"plain"`` (a 0/1, logical or two-level column), ``"expression"`` (e.g.
        ``I(score > 3)``), ``"cbind"`` (successes, failures) or ``"p"`` (successes, trials).
    nodes : tuple
        Syntax trees of the column or of the two arguments.
    name : str
        Name of the observed variable (``y``; the successes' name for counts).
    variables : tuple of str
        Data columns read.
    """

    kind: str
    nodes: tuple
    name: str
    variables: tuple[str, ...]

    @property
    def family(self) -> str:
        return "binomial" if self.kind in ("cbind", "p") else "bernoulli"

    @property
    def proportion(self) -> tuple[str, str] | None:
        """``(successes, trials)`` for R's ``successes/trials`` response (glmer with weights)."""
        node = self.nodes[0]
        if self.kind == "expression" and isinstance(node, BinOp) and node.op == "/":
            if isinstance(node.left, Name) and isinstance(node.right, Name):
                return node.left.id, node.right.id
        return None

    def r_spelling(self) -> str:
        """lme4's spelling: ``p(s, n)`` becomes ``cbind(s, n - s)``."""
        if self.kind == "p":
            s, n = (deparse(x) for x in self.nodes)
            return f"cbind({s}, {n} - {_r_group(self.nodes[0])})"
        if self.kind == "cbind":
            return "cbind(" + ", ".join(deparse(x) for x in self.nodes) + ")"
        return deparse(self.nodes[0])


def _r_group(node: Any) -> str:
    text = deparse(node)
    return text if isinstance(node, Name | Num | Call | Paren) else f"({text})"


@dataclass(frozen=True)
class Bar:
    """One ``(expr | factor)`` or ``(expr || factor)`` term, with lme4's nesting expanded.

    Attributes
    ----------
    expr : syntax tree
        The varying-effect expression (``1 + x``).
    group : str
        The grouping expression as written (``a/b``).
    factors : tuple of str
        The grouping factors it makes: ``a/b`` -> ``("a", "a:b")``.
    correlated : bool
        False for ``||``.
    spatial : tuple of (str, str)
        Empty for an exchangeable bar. For a spatial term ``car(lad, type = "bym2")`` its
        options (``type``, ``graph``, ``islands``; `CAR_OPTIONS`): a random intercept whose
        levels are nodes of an adjacency graph (`models.spatial`).
    """

    expr: Any
    group: str
    factors: tuple[str, ...]
    correlated: bool
    spatial: tuple[tuple[str, str], ...] = ()

    @property
    def expr_text(self) -> str:
        return deparse(self.expr)

    @property
    def text(self) -> str:
        if self.spatial:
            opts = dict(self.spatial)
            shown = [f'type = "{opts["type"]}"'] + [
                f'{k} = "{v}"' for k, v in self.spatial if k != "type" and v != CAR_OPTIONS[k][0]
            ]
            return f"car({self.group}, {', '.join(shown)})"
        return f"({self.expr_text} {'|' if self.correlated else '||'} {self.group})"

    @property
    def factor_columns(self) -> list[str]:
        return list(dict.fromkeys(p for f in self.factors for p in f.split(":")))


@dataclass
class FormulaTerms:
    """A parsed formula. Built by `parse_formula`; holds no data.

    Attributes
    ----------
    text : str
        The formula as given.
    response : Response
    fixed : syntax tree or None
        The fixed part of the right-hand side (None when only bars).
    bars : list of Bar
    atoms : dict
        Atom label -> `Atom`, for the fixed part and every bar, in order of appearance.
    """

    text: str
    response: Response
    fixed: Any
    bars: list[Bar]
    atoms: dict[str, Atom] = field(default_factory=dict)
    _fixed_cache: list[str] | None = field(default=None, repr=False, compare=False)

    # ---------------------------------------------------------------- facts
    @property
    def family(self) -> str:
        return self.response.family

    @property
    def group_factors(self) -> list[str]:
        """Grouping factors of all bars (``a`` and ``a:b`` for ``(1 | a/b)``)."""
        return list(dict.fromkeys(f for b in self.bars for f in b.factors))

    @property
    def group_columns(self) -> list[str]:
        """Data columns that define groups."""
        return list(dict.fromkeys(c for b in self.bars for c in b.factor_columns))

    def predictor_columns(self) -> list[str]:
        """Data columns read by the fixed part and the varying-effect expressions."""
        cols = names_in(self.fixed) if self.fixed is not None else []
        for b in self.bars:
            cols += names_in(b.expr)
        return list(dict.fromkeys(cols))

    @property
    def variables(self) -> list[str]:
        """Every data column the formula reads: response, predictors, grouping factors."""
        return list(dict.fromkeys([*self.response.variables, *self.predictor_columns(), *self.group_columns]))

    def fixed_terms(self) -> list[str]:
        """Fixed-effect terms, interactions written ``a:b``, without the intercept.

        Without data a factor's levels are unknown, so these are terms, not design columns
        (``education``, not ``education[degree]``); ``ModelData.columns`` has the columns.

        Examples
        --------
        >>> parse_formula("y ~ a * b + c + (1 + a | lad)").fixed_terms()
        ['a', 'b', 'a:b', 'c']
        """
        return [t for t in self._fixed_term_list() if t != "Intercept"]

    @property
    def has_intercept(self) -> bool:
        return "Intercept" in self._fixed_term_list()

    def _fixed_term_list(self) -> list[str]:
        if self._fixed_cache is None:
            self._fixed_cache = self.term_labels(self.formulae_rhs(self.fixed))
        return self._fixed_cache

    def term_atoms(self, node: Any) -> tuple[bool, list[tuple[int, ...]]]:
        """Whether a term-algebra tree has an intercept, and its terms as tuples of atom
        positions (in `atoms`), each in the order written, the terms ordered by degree as R
        orders them."""
        desc = describe(self.formulae_rhs(node))
        intercept, out = False, []
        for term in desc.terms:
            name = getattr(term, "name", str(term))
            if name == "Intercept":
                intercept = True
                continue
            ks = tuple(dict.fromkeys(int(m.group(1)) for m in _PLACEHOLDER.finditer(name)))
            if ks and not any(set(ks) == set(u) for u in out):
                out.append(ks)
        out.sort(key=len)
        return intercept, out

    def varying_terms(self, bar: Bar) -> list[str]:
        """Terms of a bar's expression (``Intercept`` first when present)."""
        return self.term_labels(self.formulae_rhs(bar.expr))

    def term_labels(self, rhs: str) -> list[str]:
        desc = describe(rhs)
        out: list[str] = []
        for term in desc.terms:
            name = getattr(term, "name", str(term))
            if name == "Intercept":
                out.append("Intercept")
                continue
            out.append(self.label_of(name))
        return list(dict.fromkeys(out))

    def label_of(self, formulae_label: str) -> str:
        """Map a formulae label of placeholders back to atom labels (levels kept)."""
        return _PLACEHOLDER.sub(lambda m: list(self.atoms.values())[int(m.group(1))].label, formulae_label)

    # ---------------------------------------------------------------- spellings
    def formulae_rhs(self, node: Any) -> str:
        """The term algebra in formulae's syntax over atom placeholders."""
        if node is None:
            return "1"
        return _to_formulae(node, self)

    def placeholder_of(self, atom: Atom) -> str:
        return placeholder(list(self.atoms).index(atom.label))

    @property
    def r_formula(self) -> str:
        """The same model in lme4's spelling, for ``glmer`` and ``model.matrix``.

        lme4 has no spatial term: ``car(lad, type = "bym2")`` is written ``(1 | lad)``, its
        exchangeable twin (same total LA variation, no neighbourhood structure)."""
        parts = [deparse(self.fixed)] if self.fixed is not None else []
        parts += [f"({deparse(b.expr)} {'|' if b.correlated else '||'} {b.group})" for b in self.bars]
        rhs = " + ".join(parts) if parts else "1"
        if self.fixed is None and parts:
            rhs = "1 + " + rhs
        return f"{self.response.r_spelling()} ~ {rhs}"

    glmer_formula = r_formula


def _is_sum(node: Any) -> bool:
    while isinstance(node, Paren):
        node = node.inner
    return isinstance(node, BinOp) and node.op in ("+", "-", "*", "/")


def _to_formulae(node: Any, terms: FormulaTerms) -> str:
    if isinstance(node, BinOp):
        if node.op not in _ALGEBRA:
            raise FormulaError(
                f"the operator {node.op!r} in {deparse(node)!r} is not a formula operator; "
                f"inside a term write it in I(), e.g. I({deparse(node)})"
            )
        if node.op in ("^", "**") and not isinstance(node.right, Num):
            raise FormulaError(f"the power in {deparse(node)!r} must be a whole number, e.g. (a + b + c)^2")
        if node.op in ("^", "**") and not _is_sum(node.left):
            return _to_formulae(node.left, terms)  # R: x^2 in a formula is x (a power needs I())
        op = _ALGEBRA[node.op]
        return f"{_to_formulae(node.left, terms)} {op} {_to_formulae(node.right, terms)}"
    if isinstance(node, Paren):
        return f"({_to_formulae(node.inner, terms)})"
    if isinstance(node, Unary):
        if node.op == "-":
            return f"-{_to_formulae(node.operand, terms)}"
        if node.op == "+":
            return _to_formulae(node.operand, terms)
        raise FormulaError(f"'!' in {deparse(node)!r} is not a formula operator; write I(!x)")
    if isinstance(node, Num):
        if node.value in (0.0, 1.0):
            return str(int(node.value))
        return node.text  # a power's exponent
    return terms.placeholder_of(terms.atoms[make_atom(node).label])


# --------------------------------------------------------------------------- parsing


def parse_formula(formula: str) -> FormulaTerms:
    """Parse an lme4-style formula; no data needed.

    Parameters
    ----------
    formula : str
        e.g. ``"use ~ age + I(age^2) + urban + livch + (1 | district)"``.

    Returns
    -------
    FormulaTerms

    Raises
    ------
    FormulaError
        Bad syntax, an unsupported function or operator, a malformed bar or response.
    """
    if not isinstance(formula, str):
        raise FormulaError(
            f"formula must be a string such as 'y ~ x + (1 | g)', got {type(formula).__name__}"
        )
    return _parse_formula(formula)


@functools.lru_cache(maxsize=512)
def _parse_formula(formula: str) -> FormulaTerms:
    lhs, rhs = split_formula(formula)
    response = _response(lhs, formula)
    fixed, bars = _split_bars(rhs, formula)
    terms = FormulaTerms(formula, response, fixed, bars)
    for node in _atoms_in(fixed):
        _add_atom(terms, node, "fixed effects")
    for b in bars:
        for node in _atoms_in(b.expr):
            _add_atom(terms, node, f"random effect {b.text}")
    # check the term algebra now, so that a bad formula fails before any data are read
    try:
        terms._fixed_term_list()
        for b in bars:
            terms.varying_terms(b)
    except FormulaError:
        raise
    except Exception as exc:  # formulae's parser errors
        raise FormulaError(f"cannot parse {formula!r}: {exc}") from None
    return terms


def _add_atom(terms: FormulaTerms, node: Any, where: str) -> None:
    atom = make_atom(node)
    atom.check(where)
    terms.atoms.setdefault(atom.label, atom)


def _atoms_in(node: Any) -> list[Any]:
    """Atom nodes of a term-algebra tree (variables and calls, not operators)."""
    if node is None:
        return []
    if isinstance(node, BinOp):
        if node.op in ("^", "**"):
            return _atoms_in(node.left)
        return _atoms_in(node.left) + _atoms_in(node.right)
    if isinstance(node, Paren):
        return _atoms_in(node.inner)
    if isinstance(node, Unary):
        return _atoms_in(node.operand)
    if isinstance(node, Num):
        if node.value not in (0.0, 1.0):
            raise FormulaError(
                f"the number {node.text} is not a term: only 1 (intercept) and 0 (no intercept) may stand "
                "alone; write arithmetic in I(), e.g. I(x + 2)"
            )
        return []
    if isinstance(node, Name | Call | Brace):
        return [node]
    raise FormulaError(f"{deparse(node)!r} is not a term")


def _response(lhs: Any, formula: str) -> Response:
    if isinstance(lhs, Call) and lhs.func in ("cbind", "p"):
        if len(lhs.args) != 2 or lhs.kwargs:
            raise FormulaError(f"{lhs.func}() in the response needs two arguments: {deparse(lhs)!r}")
        first = lhs.args[0]
        name = (
            first.id if isinstance(first, Name) else (re.sub(r"\W+", "_", deparse(first)).strip("_") or "y")
        )
        return Response(lhs.func, tuple(lhs.args), name, tuple(names_in(lhs)))
    if isinstance(lhs, Name):
        return Response("plain", (lhs,), lhs.id, (lhs.id,))
    if isinstance(lhs, Call | Brace | Paren | BinOp | Unary):
        if isinstance(lhs, Call) and lhs.func not in ("I",):
            raise FormulaError(
                f"response {deparse(lhs)!r}: use a 0/1 column, cbind(successes, failures), "
                "p(successes, trials) or a condition in I(), e.g. I(score > 3)"
            )
        vars_ = tuple(names_in(lhs))
        if not vars_:
            raise FormulaError(f"response {deparse(lhs)!r} reads no column")
        name = re.sub(r"\W+", "_", deparse(lhs)).strip("_") or "y"
        return Response("expression", (lhs,), name, vars_)
    raise FormulaError(f"formula has no usable response (left of '~'): {formula!r}")


def _sum_terms(node: Any, sign: str = "+") -> list[tuple[str, Any]]:
    """Top-level ``+``/``-`` operands with their signs."""
    if isinstance(node, BinOp) and node.op in ("+", "-"):
        left = _sum_terms(node.left, sign)
        right_sign = node.op if sign == "+" else ("-" if node.op == "+" else "+")
        return left + _sum_terms(node.right, right_sign)
    return [(sign, node)]


def _is_bar(node: Any) -> bool:
    return isinstance(node, Paren) and isinstance(node.inner, BinOp) and node.inner.op in ("|", "||")


def _split_bars(rhs: Any, formula: str) -> tuple[Any, list[Bar]]:
    fixed_parts: list[tuple[str, Any]] = []
    bars: list[Bar] = []
    for sign, node in _sum_terms(rhs):
        if isinstance(node, Call) and node.func == "car":
            if sign == "-":
                raise FormulaError(f"a spatial term cannot be subtracted: -{deparse(node)} in {formula!r}")
            bars.append(_car_bar(node))
            continue
        if any(isinstance(n, Call) and n.func == "car" for n in _all_nodes(node)):
            raise FormulaError(
                f"the spatial term in {deparse(node)!r} must stand alone, added with '+', "
                'e.g. y ~ x + car(lad, type = "bym2")'
            )
        if _is_bar(node):
            if sign == "-":
                raise FormulaError(
                    f"a random-effect term cannot be subtracted: -{deparse(node)} in {formula!r}"
                )
            bars.append(_bar(node.inner, formula))
            continue
        if any(_is_bar(n) for n in _all_nodes(node)) or (isinstance(node, BinOp) and node.op in ("|", "||")):
            raise FormulaError(
                f"the random-effect term in {deparse(node)!r} must stand alone in parentheses, "
                "added with '+', e.g. y ~ x + (1 + x | g)"
            )
        fixed_parts.append((sign, node))
    if not fixed_parts:
        return None, bars
    node = fixed_parts[0][1] if fixed_parts[0][0] == "+" else Unary("-", fixed_parts[0][1])
    for sign, part in fixed_parts[1:]:
        node = BinOp(sign, node, part)
    return node, bars


#: Options of the spatial term ``car(group, type = ...)``, each with its allowed values (the
#: first is the default; ``type`` must be given, as in brms). ``graph``: ``"gb"`` the 2019
#: GB LA adjacency graph (every LA on it gets an effect), ``"observed"`` the graph among the
#: levels in the data only. ``islands``: LAs without a land neighbour ``"join"`` their
#: nearest mainland LA by centroid, or stay ``"singleton"`` (unstructured effect only).
CAR_OPTIONS: dict[str, tuple[str, ...]] = {
    "type": ("bym2",),
    "graph": ("gb", "observed"),
    "islands": ("join", "singleton"),
}


def _car_bar(node: Call) -> Bar:
    """``car(lad, type = "bym2")``: a spatially structured random intercept of ``lad``."""
    text = deparse(node)
    if len(node.args) != 1 or not isinstance(node.args[0], Name):
        raise FormulaError(
            f"{text}: car() takes the grouping column as its one positional argument, "
            'e.g. car(lad, type = "bym2")'
        )
    opts = {k: v[0] for k, v in CAR_OPTIONS.items()}
    given = set()
    for key, value in node.kwargs:
        if key not in CAR_OPTIONS:
            raise FormulaError(f"{text}: unknown option {key!r}; car() takes {', '.join(CAR_OPTIONS)}")
        if not isinstance(value, Str) or value.value not in CAR_OPTIONS[key]:
            allowed = ", ".join(f'"{v}"' for v in CAR_OPTIONS[key])
            raise FormulaError(f"{text}: {key} must be one of {allowed}, got {deparse(value)}")
        opts[key] = value.value
        given.add(key)
    if "type" not in given:
        raise FormulaError(f'{text}: give the type, e.g. car(lad, type = "bym2") (the one type supported)')
    group = node.args[0].id
    return Bar(Num("1"), r_name(group), (group,), True, spatial=tuple(opts.items()))


def _all_nodes(node: Any):
    from models.formula.syntax import walk

    return walk(node)


def _bar(inner: BinOp, formula: str) -> Bar:
    expr, group = inner.left, inner.right
    text = f"({deparse(expr)} {inner.op} {deparse(group)})"
    if any(isinstance(n, BinOp) and n.op in ("|", "||") for n in _all_nodes(expr)):
        raise FormulaError(f"random-effect term {text} has more than one bar")
    _group_chain(group, text)  # refuses anything but columns joined by ':' and '/'
    return Bar(expr, _group_text(group), _expand(group, text), inner.op == "|")


def _group_text(node: Any) -> str:
    if isinstance(node, Name):
        return r_name(node.id)
    if isinstance(node, BinOp):
        return f"{_group_text(node.left)}{node.op}{_group_text(node.right)}"
    if isinstance(node, Paren):
        return f"({_group_text(node.inner)})"
    return deparse(node)


def _group_chain(node: Any, text: str) -> list[str]:
    if isinstance(node, Name):
        return [node.id]
    if isinstance(node, Paren):
        return _group_chain(node.inner, text)
    if isinstance(node, BinOp) and node.op in (":", "/"):
        return _group_chain(node.left, text) + _group_chain(node.right, text)
    raise FormulaError(
        f"grouping factor of {text} must be a column, or columns joined by ':' (crossed) or '/' (nested), "
        f"got {deparse(node)!r}"
    )


def _expand(node: Any, text: str) -> tuple[str, ...]:
    """lme4's nesting: ``a/b`` is ``a`` and ``a:b``; ``a:b`` is one factor."""
    if isinstance(node, Paren):
        return _expand(node.inner, text)
    if isinstance(node, BinOp) and node.op == "/":
        outer = _expand(node.left, text)
        inner = _group_chain(node.right, text)
        last = outer[-1]
        return (*outer, ":".join([last, *inner]))
    return (":".join(_group_chain(node, text)),)
