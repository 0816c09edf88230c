"""Property-based tests of the formula front end: whatever formula and data frame a user
gives, `build_model_data` either returns a consistent `ModelData` or raises the project's
`FormulaError`; the only warnings a user sees are the project's own (`DataWarning`).

Formulas come from a grammar of lme4's language (responses, transforms, operators, random
bars, existing and non-existing columns and levels), from near misses of it (unbalanced
parentheses, ``~~``, empty bars, unknown functions) and from random text. Frames have 5-60
rows and columns of many kinds (floats with NaN/inf, ints, nullable ints, booleans, text
categories with digit-like levels and strays, pandas categoricals with unused categories,
all-missing and constant columns, odd names, odd indexes).

The default suite runs 2,000 examples of each property (derandomized, so a run is
repeatable); the ``slow`` variants run 20,000.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, currently_in_test_context, given, note, settings
from hypothesis import strategies as st

from models import formula as F
from models.fitting import ConvergenceWarning

#: Warnings the project itself raises (everything a user may legitimately see).
PROJECT_WARNINGS = (F.DataWarning, ConvergenceWarning)
#: Hidden by Python's default filters outside __main__, so never seen by a user.
HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning)

FAST = settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(FAST, max_examples=20_000)

# --------------------------------------------------------------------------- data frames

NAN, INF = float("nan"), float("inf")
SPECIAL_FLOATS = [NAN, INF, -INF, 0.0, -0.0, -20.0, -21.0, 1e300, -1e300, 5e-324, 1e-12, 1e12, 2.0**63]
TEXT_LEVELS = [
    "0", "1", "2", "3+", "01", "23", "46", "7p", "n/a", "", " ", "NA", "a", "b", "c",
    "Low", "high", "1.5", "-1", "1e3", "é", "x y", "True",
]  # fmt: skip
STRAYS = [None, NAN, "n/a", "", " ", "NA", "?", "-", "3+"]
#: Predictor column names: ordinary and odd-but-valid ones.
PREDICTOR_NAMES = ["x", "x.1", "a_b", "X2", "z", "w", "f", "f2", "h", "age", "lvl", "Intercept"]
#: Names that are never columns.
MISSING_NAMES = ["nope", "Y", "x1", "x_1", "g3", "xx"]

FLOAT_SCALES = [(0.0, 1.0), (50.0, 10.0), (0.0, 1e-5), (0.0, 1e6), (-30.0, 5.0), (1.0, 0.0)]
INT_RANGES = [(0, 2), (0, 5), (-3, 3), (18, 90), (0, 10**9), (5, 6)]

NUMERIC_KINDS = ["float", "float", "wild_float", "int", "int", "nullable_int", "constant_num", "all_nan"]
FACTOR_KINDS = ["text", "text", "numeric_text", "categorical", "numeric_categorical", "bool", "bool_obj"]
OTHER_KINDS = ["constant_text", "all_none"]
COLUMN_KINDS = NUMERIC_KINDS + FACTOR_KINDS + OTHER_KINDS

Y_KINDS = ["01"] * 8 + ["01_nan"] * 2 + ["bool", "012", "yes_no", "text_01", "cat_01", "constant", "all_nan"]
COUNT_KINDS = ["ok"] * 8 + ["s_gt_n", "negative", "fractional", "nan", "text", "zero_trials"]


def _inject(values: list, rng: np.random.Generator, specials: list) -> list:
    """Put each special value at a random row."""
    for v in specials:
        values[int(rng.integers(len(values)))] = v
    return values


@st.composite
def columns(draw, kind: str, n: int, rng: np.random.Generator):
    """(values, info) for one column of ``kind``; info['levels'] lists text levels."""
    specials = draw(st.lists(st.sampled_from(SPECIAL_FLOATS), max_size=3))
    if kind == "float":
        loc, scale = draw(st.sampled_from(FLOAT_SCALES))
        vals = list(np.round(rng.normal(loc, scale, n), 3))
        return pd.Series(_inject(vals, rng, specials), dtype=float), {}
    if kind == "wild_float":
        vals = draw(st.lists(st.floats(), min_size=n, max_size=n))
        return pd.Series(vals, dtype=float), {}
    if kind == "int":
        lo, hi = draw(st.sampled_from(INT_RANGES))
        return pd.Series(rng.integers(lo, hi, n), dtype=np.int64), {}
    if kind == "nullable_int":
        vals = [int(v) for v in rng.integers(0, 4, n)]
        vals = _inject(vals, rng, [pd.NA] * draw(st.integers(0, 3)))
        return pd.Series(vals, dtype="Int64"), {}
    if kind == "constant_num":
        return pd.Series(np.full(n, draw(st.sampled_from([3.0, 0.0, 1.0]))), dtype=float), {}
    if kind == "all_nan":
        return pd.Series(np.full(n, np.nan)), {}
    if kind == "all_none":
        return pd.Series([None] * n, dtype=object), {}
    if kind == "constant_text":
        lvl = draw(st.sampled_from(TEXT_LEVELS))
        return pd.Series([lvl] * n, dtype=draw(st.sampled_from([object, "str"]))), {"levels": [lvl]}
    if kind in ("text", "categorical"):
        levels = draw(st.lists(st.sampled_from(TEXT_LEVELS), min_size=1, max_size=5, unique=True))
        vals = [levels[int(i)] for i in rng.integers(0, len(levels), n)]
        strays = draw(st.lists(st.sampled_from(STRAYS), max_size=2))
        if kind == "text":
            vals = _inject(vals, rng, strays)
            return pd.Series(vals, dtype=draw(st.sampled_from([object, "str"]))), {"levels": levels}
        vals = _inject(vals, rng, [None] * len(strays))
        unused = draw(st.lists(st.sampled_from(["zz", "unused", "9", "0"]), max_size=2, unique=True))
        cats = list(dict.fromkeys(levels + unused))
        cats = [cats[i] for i in draw(st.permutations(range(len(cats))))]
        cat = pd.Categorical(vals, categories=cats, ordered=draw(st.booleans()))
        return pd.Series(cat), {"levels": cats}
    if kind == "numeric_text":
        vals = [str(v) for v in rng.integers(0, 5, n)]
        strays = draw(st.lists(st.sampled_from(STRAYS), max_size=2))
        vals = _inject(vals, rng, strays)
        return pd.Series(vals, dtype=draw(st.sampled_from([object, "str"]))), {"levels": ["0", "1"]}
    if kind == "numeric_categorical":
        cats = draw(st.permutations([0, 1, 2, 3]))
        vals = [cats[int(i)] for i in rng.integers(0, 3, n)]
        return pd.Series(pd.Categorical(vals, categories=cats)), {"levels": ["0", "1", "2", "3"]}
    if kind == "bool":
        return pd.Series(rng.random(n) < 0.5), {"levels": ["False", "True"]}
    if kind == "bool_obj":
        vals = _inject([bool(v) for v in rng.random(n) < 0.5], rng, [None] * draw(st.integers(0, 2)))
        return pd.Series(vals, dtype=object), {"levels": ["False", "True"]}
    raise AssertionError(kind)


def _response(kind: str, n: int, rng: np.random.Generator) -> pd.Series:
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1  # both outcomes present unless the kind says otherwise
    if kind == "01":
        return pd.Series(y, dtype=np.int64)
    if kind == "01_nan":
        return pd.Series(_inject(list(y.astype(float)), rng, [NAN, NAN]), dtype=float)
    if kind == "bool":
        return pd.Series(y.astype(bool))
    if kind == "012":
        return pd.Series(rng.integers(0, 3, n), dtype=np.int64)
    if kind == "yes_no":
        return pd.Series(np.where(y == 1, "yes", "no"), dtype=object)
    if kind == "text_01":
        return pd.Series(y.astype(str), dtype="str")
    if kind == "cat_01":
        return pd.Series(pd.Categorical(y, categories=[1, 0]))
    if kind == "constant":
        return pd.Series(np.ones(n, dtype=np.int64))
    if kind == "all_nan":
        return pd.Series(np.full(n, np.nan))
    raise AssertionError(kind)


def _counts(kind: str, n: int, rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    trials = rng.integers(1, 11, n)
    succ = rng.binomial(trials, 0.4)
    s, t = pd.Series(succ, dtype=np.int64), pd.Series(trials, dtype=np.int64)
    if kind == "s_gt_n":
        s.iloc[0] = t.iloc[0] + 3
    elif kind == "negative":
        s.iloc[0] = -1
    elif kind == "fractional":
        s = s.astype(float)
        s.iloc[0] = 0.5
    elif kind == "nan":
        s = s.astype(float)
        s.iloc[0] = np.nan
        t = t.astype(float)
        t.iloc[-1] = np.inf
    elif kind == "text":
        s = s.astype(object)
        s.iloc[0] = "three"
    elif kind == "zero_trials":
        t[:] = 0
        s[:] = 0
    return s, t


def _groups(n: int, n_levels: int, rng: np.random.Generator, as_int: bool, with_nan: bool) -> pd.Series:
    codes = rng.integers(0, n_levels, n)
    if as_int:
        g = pd.Series(codes + 1, dtype=float if with_nan else np.int64)
    else:
        g = pd.Series([f"L{c}" for c in codes], dtype=object)
    if with_nan:
        g.iloc[int(rng.integers(n))] = np.nan
    return g


@st.composite
def frames(draw):
    """A data frame and what the formula grammar needs to know about its columns."""
    n = draw(st.integers(5, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cols: dict[str, pd.Series] = {}
    info = {"numeric": [], "factor": [], "levels": {}, "groups": [], "text": []}
    present = st.sampled_from([True] * 9 + [False])
    if draw(present):
        cols["y"] = _response(draw(st.sampled_from(Y_KINDS)), n, rng)
    if draw(present):
        cols["s"], cols["n"] = _counts(draw(st.sampled_from(COUNT_KINDS)), n, rng)
    for g in ("g1", "g2"):
        if draw(present):
            cols[g] = _groups(n, draw(st.integers(1, 8)), rng, draw(st.booleans()), draw(st.booleans()))
            info["groups"].append(g)
    names = draw(st.lists(st.sampled_from(PREDICTOR_NAMES), min_size=1, max_size=5, unique=True))
    for name in names:
        kind = draw(st.sampled_from(COLUMN_KINDS))
        values, extra = draw(columns(kind, n, rng))
        cols[name] = values
        if kind in NUMERIC_KINDS:
            info["numeric"].append(name)
        else:
            info["factor"].append(name)
            info["levels"][name] = extra.get("levels", [])
        if kind in ("text", "numeric_text", "constant_text"):
            info["text"].append(name)
    frame = pd.DataFrame({k: v.reset_index(drop=True) for k, v in cols.items()})
    extra = draw(st.sampled_from(["none"] * 18 + ["duplicate_column", "int_column_name"]))
    if extra == "duplicate_column" and len(frame.columns):
        dup = draw(st.sampled_from(list(frame.columns)))
        frame = pd.concat([frame, frame[[dup]]], axis=1)
    elif extra == "int_column_name":
        frame[0] = rng.normal(size=n)
    index = draw(st.sampled_from(["range"] * 5 + ["shuffled", "text", "duplicated", "offset"]))
    if index == "shuffled":
        frame.index = rng.permutation(n)
    elif index == "text":
        frame.index = [f"r{i}" for i in range(n)]
    elif index == "duplicated":
        frame.index = [i // 2 for i in range(n)]
    elif index == "offset":
        frame.index = np.arange(n) + 1000
    info["all"] = [c for c in frame.columns if isinstance(c, str)]
    return frame, info


# --------------------------------------------------------------------------- formulas
# Every piece is an `st.composite` that fills a template: their reprs stay short (a deep
# tree of one_of/map strategies has a repr of hundreds of kB, which Hypothesis builds).


def _name(draw, names: list[str], fallback: list[str], missing: int = 1) -> str:
    """One of ``names`` (``fallback`` when there are none); in ``missing`` of 30 draws a
    name that is not a column."""
    if draw(st.integers(0, 29)) < missing:
        return draw(st.sampled_from(MISSING_NAMES))
    return draw(st.sampled_from(names or fallback))


ATOM_TEMPLATES = [
    "{any}", "{any}", "{any}", "{any}", "1", "0", "-1", "I({num}^2)", "I({num}**2)", "{{{num}**2}}",
    "I({num} > 0)", "log({num} + 20)", "log({num})", "exp({num})", "sqrt(abs({num}))", "scale({num})",
    "center({num})", "poly({num}, {k})", "C({fac})", "factor({fac})", 'relevel({fac}, ref = "{lvl}")',
    "offset({num})",
]  # fmt: skip


@st.composite
def term_atoms(draw, info):
    """A fixed-effect term: a column (or not), 1/0/-1, or a transform of one."""
    template = draw(st.sampled_from(ATOM_TEMPLATES))
    fill = {}
    if "{any}" in template:
        fill["any"] = _name(draw, info["all"], ["x"])
    if "{num}" in template:
        fill["num"] = _name(draw, info["numeric"] or info["all"], ["x"])
    if "{fac}" in template:
        fill["fac"] = _name(draw, info["factor"], ["f"])
        if "{lvl}" in template:
            fill["lvl"] = draw(st.sampled_from(info["levels"].get(fill["fac"], []) + ["zzz"]))
    if "{k}" in template:
        fill["k"] = draw(st.integers(1, 4))
    return template.format(**fill)


def _sp(draw) -> str:
    return draw(st.sampled_from([" ", " ", ""]))


@st.composite
def combined(draw, sub):
    """``a + b``, ``a * b``, ``a:b``, ``a / b``, ``a - b``, ``(a)``, ``(a + b)^k``."""
    how = draw(st.sampled_from(["binop", "binop", "paren", "power"]))
    if how == "paren":
        return f"({draw(sub)})"
    a, b = draw(sub), draw(sub)
    if how == "power":
        return f"({a} + {b}){draw(st.sampled_from(['^', '**']))}{draw(st.integers(1, 3))}"
    return f"{a}{_sp(draw)}{draw(st.sampled_from(['+', '+', '-', '*', ':', '/']))}{_sp(draw)}{b}"


def fixed_expressions(info):
    return st.recursive(term_atoms(info), combined, max_leaves=5)


BAR_EXPRS = ["1", "1", "1 + {num}", "{num}", "0 + {num}", "-1 + {num}", "{num} + {any}",
             "1 + {num} + I({num}^2)", "scale({num})"]  # fmt: skip
BAR_GROUPS = ["{g}", "{g}", "{g}:{h}", "{g}/{h}", "{g}/{h}/{i}", "{g}{sp}/{sp}{h}", "{any}"]


@st.composite
def bars(draw, info):
    """A random-effect bar ``(expr | group)`` or ``(expr || group)``."""
    fill = {
        "num": _name(draw, info["numeric"] or info["all"], ["x"]),
        "any": _name(draw, info["all"], ["x"]),
        "g": _name(draw, info["groups"] or info["all"], ["g1"]),
        "h": _name(draw, info["groups"] or info["all"], ["g1"]),
        "i": _name(draw, info["groups"] or info["all"], ["g1"]),
        "sp": _sp(draw),
    }
    expr = draw(st.sampled_from(BAR_EXPRS)).format(**fill)
    group = draw(st.sampled_from(BAR_GROUPS)).format(**fill)
    return f"({expr} {draw(st.sampled_from(['|', '|', '||']))} {group})"


ODD_RESPONSES = [
    "cbind(s, n)", "p(s,n)", "cbind(s, n - s - 1)", "cbind(s)", "p(s, n, y)", "cbind(s, nope)",
    "p(s + 1, n)", "cbind(n - s, s)", "log(y)", "y + s", "nope", "cbind()", "p(, )", "cbind(s, (n)",
]  # fmt: skip


@st.composite
def responses(draw, info):
    """Mostly a response the frame supports; sometimes an odd one, a text or numeric column."""
    good = [r for r, need in [("y", "y"), ("cbind(s, n - s)", "s"), ("p(s, n)", "s")] if need in info["all"]]
    which = draw(st.integers(0, 7))
    if which <= 4:
        return draw(st.sampled_from(good or ["y"]))
    if which == 5:
        return draw(st.sampled_from(ODD_RESPONSES))
    if which == 6:
        return draw(st.sampled_from(info["text"] or ["nope"]))
    return draw(st.sampled_from(info["numeric"] or ["nope"]))


@st.composite
def grammar_formulas(draw, info):
    lhs = draw(responses(info))
    parts = []
    if draw(st.sampled_from([True] * 5 + [False])):
        parts.append(draw(fixed_expressions(info)))
    parts += draw(st.lists(bars(info), max_size=3))
    parts = [parts[i] for i in draw(st.permutations(range(len(parts))))]
    rhs = draw(st.sampled_from([" + ", "+", " + "])).join(parts)
    return f"{lhs} {draw(st.sampled_from(['~', '~', ' ~']))} {rhs}"


GARBAGE = [
    "y ~~ x", "y ~ x ~ z", "~ x", "y ~", "y ~ ", "y ~ (x", "y ~ x)", "y ~ ((x)", "y ~ ( | g1)",
    "y ~ (1 | )", "y ~ (|)", "y ~ (||)", "y ~ (1 || )", "y ~ ( || g1)", "y ~ foo(x)", "y ~ x + foo(x)",
    "y ~ x +", "y ~ + x", "y ~ x + + z", "y ~ * x", "y ~ x **", "y ~ ^2", "y ~ (x + z)^", "y ~ I()",
    "y ~ poly(x)", "y ~ poly(x, 0)", "y ~ poly(x, -1)", "y ~ poly(x, 99)", "y ~ C()", "y ~ relevel(f)",
    'y ~ relevel(f, ref = )', "y ~ x | g1", "y ~ 1 | g1", "y ~ (1 | g1 | g2)", "y ~ (1 | (g1))",
    "y ~ ((1 | g1))", "y ~ (1 | g1) (1 | g2)", "y ~ x z", "y ~ x,z", "y ~ {x", "y ~ x}", "y ~ {}",
    "y ~ `x`", "y ~ 'x'", 'y ~ "x"', "y ~ x[1]", "y ~ x.", "y ~ .", "y ~ x$z", "y ~ 1e3", "y ~ 2",
    "y ~ -0", "y ~ 0 + 0", "y ~ 0 - 1", "cbind(s, n - s) ~ (1 | g1) + 0", "y ~ offset(x) + x",
    "y ~ (x || g1:)", "y ~ (x | :g1)", "y ~ (x | g1/)", "y ~ (x | /g1)", "y ~ (x | g1//g2)",
    "y ~ (1 | g1 + g2)", "y ~ (1 | g1 * g2)", "y ~ (1 | 1)", "y ~ (1 | x > 0)", "\ny ~ x\n", "y\t~\tx",
    "y ~ x # comment", "y ~ x; z", "y ~ lambda: 1", "y ~ __import__('os')", "y ~ x.__class__",
    "y ~ (1 | g1) + (1 | g1)", "y ~ (x | g1) + (x || g1)", "y ~ \u00e9", "y ~ x\x00", "y ~ 1 + 1",
]  # fmt: skip
MUTATION_CHARS = list("()|~+-*/:^,{}\"'`\\ \t\n0.1[]$#;=")


@st.composite
def near_misses(draw, info):
    base = draw(st.one_of(grammar_formulas(info), st.sampled_from(GARBAGE)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(
            st.sampled_from(["delete", "insert", "duplicate", "tilde", "unclose", "bar", "foo", "none"])
        )
        i = draw(st.integers(0, len(base)))
        if op == "delete" and base:
            base = base[: max(i - 1, 0)] + base[i:]
        elif op == "insert":
            base = base[:i] + draw(st.sampled_from(MUTATION_CHARS)) + base[i:]
        elif op == "duplicate":
            j = draw(st.integers(i, len(base)))
            base = base[:j] + base[i:j] + base[j:]
        elif op == "tilde":
            base = base.replace("~", draw(st.sampled_from(["~~", "~ ~", "", "~ y ~"])), 1)
        elif op == "unclose":
            base = base[::-1].replace(")", "", 1)[::-1]
        elif op == "bar":
            base = base + draw(
                st.sampled_from([" + ( | g1)", " + (1 | )", " + (|)", " + (1 |", " + 1 | g1)"])
            )
        elif op == "foo":
            base = base + draw(st.sampled_from([" + foo(x)", " + log()", " + x(y)", " + (x)(z)", " + y"]))
    return base


FORMULA_ALPHABET = "yxsngf12 _.()|~+-*/:^,{}\"'IC"


@st.composite
def cases(draw):
    frame, info = draw(frames())
    which = draw(st.integers(0, 9))
    if which <= 6:
        formula = draw(grammar_formulas(info))
    elif which <= 7:
        formula = draw(near_misses(info))
    elif which == 8:
        formula = draw(st.text(alphabet=FORMULA_ALPHABET, max_size=40))
    else:
        formula = draw(st.text(max_size=40))
    return formula, frame


# --------------------------------------------------------------------------- the property


def _value_code(v) -> str:
    if v is pd.NA:
        return "pd.NA"
    if isinstance(v, float) and not math.isfinite(v):
        return f"float('{v}')"
    return repr(v.item() if isinstance(v, np.generic) else v)


def _list_code(values) -> str:
    return "[" + ", ".join(_value_code(v) for v in values) + "]"


def frame_code(frame: pd.DataFrame) -> str:
    """Python that rebuilds ``frame`` (values, dtypes, index, repeated names), for a report."""
    cols = []
    for j in range(frame.shape[1]):
        s = frame.iloc[:, j]
        vals = _list_code(s.tolist())
        if isinstance(s.dtype, pd.CategoricalDtype):
            code = (
                f"pd.Series(pd.Categorical({vals}, categories={_list_code(s.cat.categories)}, "
                f"ordered={s.cat.ordered}))"
            )
        else:
            code = f"pd.Series({vals}, dtype={str(s.dtype)!r})"
        cols.append(f"    {code},  # {frame.columns[j]!r}")
    names = _list_code(frame.columns)
    index = "" if isinstance(frame.index, pd.RangeIndex) else f"\nframe.index = {_list_code(frame.index)}"
    return (
        "pd.concat([\n"
        + "\n".join(cols)
        + f"\n], axis=1, keys=range({frame.shape[1]}))"
        + (f"\nframe.columns = {names}{index}")
    )


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def user_visible_messages():
    """Record every warning (Python warnings) and every log record of level WARNING or
    above (a library's logger prints those on stderr when nothing else handles them)."""
    handler = _Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught, handler.records
    finally:
        root.removeHandler(handler)


def foreign_messages(caught, records) -> list[str]:
    """The warnings and log lines that are not the project's own."""
    out = [
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if not issubclass(w.category, PROJECT_WARNINGS + HIDDEN_WARNINGS)
    ]
    out += [
        f"log {r.name} {r.levelname}: {r.getMessage()}"
        for r in records
        if r.name.split(".")[0] not in ("models", "analysis", "data")
    ]
    return out


def check_front_end(formula, frame: pd.DataFrame) -> F.ModelData | None:
    """`build_model_data` returns a consistent ModelData or raises FormulaError; only the
    project's warnings escape."""
    if currently_in_test_context():
        note(f"formula = {formula!r}")
        note(f"frame = {frame_code(frame)}")
    with user_visible_messages() as (caught, records):
        try:
            md = F.build_model_data(formula, frame)
        except Exception as exc:
            if isinstance(exc, F.FormulaError):
                md = None
            else:
                raise AssertionError(
                    f"build_model_data({formula!r}, frame) raised {type(exc).__name__}: {exc}"
                ) from exc
    leaked = foreign_messages(caught, records)
    assert not leaked, f"{formula!r}: non-project warning(s) reached the user: " + "; ".join(leaked)
    if md is not None:
        check_invariants(md, frame)
    return md


def check_invariants(md: F.ModelData, frame: pd.DataFrame) -> None:
    assert md.n_input == len(frame)
    assert md.n_input == md.n_obs + sum(md.drops.values()), (md.n_input, md.n_obs, md.drops)
    assert all(v > 0 for v in md.drops.values()), md.drops
    assert len(md.frame) == md.n_obs
    assert md.X.shape == (md.n_obs, len(md.fixed_terms)), (md.X.shape, md.fixed_terms)
    assert len(md.fixed_terms) >= 1
    assert np.isfinite(md.X).all(), "non-finite value in the fixed design"
    assert md.family in ("bernoulli", "binomial")
    if md.family == "bernoulli":
        assert md.trials is None and set(np.unique(md.y)) <= {0, 1}
    else:
        assert md.trials is not None and md.trials.shape == md.y.shape
        assert (md.y >= 0).all() and (md.y <= md.trials).all()
    for b in md.blocks:
        assert b.idx.shape == (md.n_obs,), (b.name, b.idx.shape)
        assert b.idx.min() >= 0 and b.idx.max() < len(b.levels), (b.name, b.idx, b.levels)
        assert b.Z.shape == (md.n_obs, len(b.terms)), (b.name, b.Z.shape, b.terms)
        assert np.isfinite(b.Z).all(), f"non-finite value in the slope design of {b.name}"


@FAST
@given(case=cases())
def test_formula_front_end_raises_only_project_errors(case):
    check_front_end(*case)


@pytest.mark.slow
@SLOW
@given(case=cases())
def test_formula_front_end_raises_only_project_errors_many(case):
    check_front_end(*case)


@pytest.mark.parametrize("formula", [None, 3, b"y ~ x", ["y ~ x"], math.nan])
def test_non_string_formula_is_a_formula_error(formula):
    frame = pd.DataFrame({"y": [0, 1, 0, 1, 1], "x": [0.1, 0.5, -1.0, 2.0, 0.3]})
    check_front_end(formula, frame)


@pytest.mark.parametrize("data", [None, [[0, 1]], {"y": [0, 1]}, pd.Series([0, 1]), pd.DataFrame()])
def test_non_frame_data_is_a_formula_error(data):
    with pytest.raises(F.FormulaError):
        F.build_model_data("y ~ 1", data)


# --------------------------------------------------------------------------- parse_formula (no data)


TEXT_INFO = {
    "numeric": ["x", "x.1", "z"],
    "factor": ["f", "a_b"],
    "levels": {"f": ["a", "b"], "a_b": ["0", "1"]},
    "groups": ["g1", "g2"],
    "text": ["f"],
    "all": ["y", "s", "n", "x", "x.1", "z", "f", "a_b", "g1", "g2"],
}
parse_inputs = st.one_of(
    grammar_formulas(TEXT_INFO),
    near_misses(TEXT_INFO),
    st.text(alphabet=FORMULA_ALPHABET, max_size=60),
    st.text(max_size=60),
)


def check_parse(formula: str) -> None:
    parse = F.parse_formula
    if currently_in_test_context():
        note(f"formula = {formula!r}")
    with user_visible_messages() as (caught, records):
        try:
            parse(formula)
        except Exception as exc:
            if not isinstance(exc, F.FormulaError):
                raise AssertionError(
                    f"parse_formula({formula!r}) raised {type(exc).__name__}: {exc}"
                ) from exc
    leaked = foreign_messages(caught, records)
    assert not leaked, f"{formula!r}: non-project warning(s) reached the user: " + "; ".join(leaked)


@FAST
@given(formula=parse_inputs)
def test_parse_formula_raises_only_formula_errors(formula):
    check_parse(formula)


@pytest.mark.slow
@SLOW
@given(formula=parse_inputs)
def test_parse_formula_raises_only_formula_errors_many(formula):
    check_parse(formula)
