"""Reading formula text: tokens, a syntax tree, and its R spelling.

This is the only code in the project that reads a formula string. It understands lme4's
language (R's formula operators, ``(expr | group)`` bars, ``I()``, ``^``) and the Python
spellings that `formulae` and bambi users write (``**``, ``{x**2}``, ``C(x)``, ``p(s, n)``).
The tree it returns is interpreted by `models.formula.terms` (what the terms are) and
evaluated by `models.formula.atoms` (their values on data).

Precedence follows R, lowest first: ``~``; ``|`` ``||``; ``&`` ``&&``; ``!``; comparisons;
binary ``+`` ``-``; ``*`` ``/``; ``%in%`` ``%%`` ``%/%``; ``:``; unary ``+`` ``-``;
``^`` ``**`` (right associative).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class FormulaError(ValueError):
    """A formula that cannot be applied to the data (bad term, column, or response)."""


# --------------------------------------------------------------------------- tree


@dataclass(frozen=True)
class Name:
    """A variable (a column of the data), e.g. ``age`` or ```my var```."""

    id: str


@dataclass(frozen=True)
class Num:
    """A number as written (``2``, ``0.5``, ``1e3``)."""

    text: str

    @property
    def value(self) -> float:
        return float(self.text)


@dataclass(frozen=True)
class Str:
    """A quoted string (a level name in ``relevel(x, ref = "b")``)."""

    value: str


@dataclass(frozen=True)
class List:
    """``[a, b]`` (Python) or ``c(a, b)`` (R): a list of constants."""

    items: tuple


@dataclass(frozen=True)
class Call:
    """``func(args, key = value)``."""

    func: str
    args: tuple
    kwargs: tuple = field(default=())  # ((name, node), ...)

    def kwarg(self, name: str):
        for k, v in self.kwargs:
            if k == name:
                return v
        return None


@dataclass(frozen=True)
class Unary:
    op: str
    operand: object


@dataclass(frozen=True)
class BinOp:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Paren:
    """A parenthesised expression (kept: ``(1 | g)`` is a bar only in parentheses)."""

    inner: object


@dataclass(frozen=True)
class Brace:
    """formulae's ``{expr}``: the same as ``I(expr)``."""

    inner: object


Node = Name | Num | Str | List | Call | Unary | BinOp | Paren | Brace

# --------------------------------------------------------------------------- tokens

_OPS = sorted(
    [
        "~",
        "||",
        "|",
        "&&",
        "&",
        "!=",
        "!",
        "==",
        "<=",
        ">=",
        "<",
        ">",
        "+",
        "-",
        "**",
        "*",
        "/",
        ":",
        "^",
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        ",",
        "=",
    ],
    key=len,
    reverse=True,
)


@dataclass(frozen=True)
class Token:
    kind: str  # "name", "num", "str", "op", "end"
    text: str
    pos: int


def _is_name_start(ch: str) -> bool:
    return ch.isalpha() or ch in "._"


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch in "._"


def tokenize(text: str) -> list[Token]:
    """Split formula text into tokens; raise `FormulaError` naming the position of a bad one."""
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            j = i
            while j < n and (text[j].isdigit() or text[j] == "."):
                j += 1
            if (
                j < n
                and text[j] in "eE"
                and (
                    (j + 1 < n and text[j + 1].isdigit())
                    or (j + 2 < n and text[j + 1] in "+-" and text[j + 2].isdigit())
                )
            ):
                j += 2
                while j < n and text[j].isdigit():
                    j += 1
            if j < n and text[j] == "L":  # R integer literal 2L
                num, j = text[i:j], j + 1
            else:
                num = text[i:j]
            try:
                float(num)
            except ValueError:
                raise FormulaError(f"cannot read the number {num!r} at position {i} of {text!r}") from None
            out.append(Token("num", num, i))
            i = j
            continue
        if _is_name_start(ch):
            j = i + 1
            while j < n and _is_name_char(text[j]):
                j += 1
            out.append(Token("name", text[i:j], i))
            i = j
            continue
        if ch == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise FormulaError(f"unclosed backtick at position {i} of {text!r}")
            out.append(Token("name", text[i + 1 : j], i))
            i = j + 1
            continue
        if ch in "'\"":
            j = i + 1
            buf = []
            while j < n and text[j] != ch:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise FormulaError(f"unclosed string at position {i} of {text!r}")
            out.append(Token("str", "".join(buf), i))
            i = j + 1
            continue
        if ch == "%":
            j = text.find("%", i + 1)
            op = text[i : j + 1] if j > 0 else ""
            if op not in ("%in%", "%%", "%/%"):
                raise FormulaError(
                    f"unknown operator {text[i : j + 1] or '%'!r} at position {i} of {text!r} "
                    "(supported: %in%, %%, %/%)"
                )
            out.append(Token("op", op, i))
            i = j + 1
            continue
        for op in _OPS:
            if text.startswith(op, i):
                out.append(Token("op", op, i))
                i += len(op)
                break
        else:
            raise FormulaError(f"unexpected character {ch!r} at position {i} of {text!r}")
    out.append(Token("end", "", n))
    return out


# --------------------------------------------------------------------------- parser

# (left binding power, right binding power) of the binary operators
_BINARY = {
    "~": (1, 2),
    "|": (3, 4),
    "||": (3, 4),
    "&": (5, 6),
    "&&": (5, 6),
    "==": (9, 10),
    "!=": (9, 10),
    "<": (9, 10),
    ">": (9, 10),
    "<=": (9, 10),
    ">=": (9, 10),
    "+": (11, 12),
    "-": (11, 12),
    "*": (13, 14),
    "/": (13, 14),
    "%in%": (15, 16),
    "%%": (15, 16),
    "%/%": (15, 16),
    ":": (17, 18),
    "^": (22, 21),
    "**": (22, 21),
}
_UNARY_BP = {"!": 7, "-": 19, "+": 19}


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, tok: Token, what: str) -> FormulaError:
        shown = tok.text or "the end"
        return FormulaError(f"cannot parse {self.text!r}: {what} at position {tok.pos} ({shown!r})")

    def expect(self, text: str) -> Token:
        tok = self.next()
        if tok.kind != "op" or tok.text != text:
            opening = {")": "(", "}": "{", "]": "["}.get(text)
            what = f"unbalanced {opening!r}: expected {text!r}" if opening else f"expected {text!r}"
            raise self.error(tok, what)
        return tok

    def expression(self, min_bp: int = 0):
        left = self.prefix()
        while True:
            tok = self.peek()
            if tok.kind != "op" or tok.text not in _BINARY:
                return left
            lbp, rbp = _BINARY[tok.text]
            if lbp < min_bp:
                return left
            self.next()
            if (
                tok.text in ("|", "||")
                and self.peek().kind in ("op", "end")
                and self.peek().text in (")", "")
            ):
                raise FormulaError(
                    f"random-effect term '({deparse(left)} {tok.text} )' needs an expression and a group"
                )
            right = self.expression(rbp)
            left = BinOp(tok.text, left, right)

    def prefix(self):
        tok = self.next()
        if tok.kind == "num":
            return Num(tok.text)
        if tok.kind == "str":
            return Str(tok.text)
        if tok.kind == "name":
            if self.peek().kind == "op" and self.peek().text == "(":
                return self.call(tok.text)
            return Name(tok.text)
        if tok.kind == "op":
            if tok.text == "(":
                inner = self.expression()
                self.expect(")")
                return Paren(inner)
            if tok.text == "{":
                inner = self.expression()
                self.expect("}")
                return Brace(inner)
            if tok.text == "[":
                items = self.items("]")
                return List(tuple(items))
            if tok.text in _UNARY_BP:
                return Unary(tok.text, self.expression(_UNARY_BP[tok.text]))
            if tok.text in ("|", "||"):
                raise FormulaError(
                    f"random-effect term '( {tok.text} ...)' in {self.text!r} needs an expression and a group"
                )
        raise self.error(tok, "expected a variable, number or '('")

    def items(self, close: str) -> list:
        items = []
        if self.peek().kind == "op" and self.peek().text == close:
            self.next()
            return items
        while True:
            items.append(self.expression(3))
            tok = self.next()
            if tok.kind == "op" and tok.text == close:
                return items
            if not (tok.kind == "op" and tok.text == ","):
                raise self.error(tok, f"expected ',' or {close!r}")

    def call(self, func: str) -> Call:
        self.expect("(")
        args, kwargs = [], []
        if self.peek().kind == "op" and self.peek().text == ")":
            self.next()
            return Call(func, (), ())
        while True:
            tok = self.peek()
            if tok.kind == "end":
                raise self.error(tok, f"unbalanced '(' of {func}(")
            nxt = self.tokens[self.i + 1]
            if tok.kind == "name" and nxt.kind == "op" and nxt.text == "=":
                self.next()
                self.next()
                kwargs.append((tok.text, self.expression(3)))
            else:
                if kwargs:
                    raise self.error(tok, "positional argument after a named one")
                args.append(self.expression(3))
            tok = self.next()
            if tok.kind == "op" and tok.text == ")":
                break
            if not (tok.kind == "op" and tok.text == ","):
                raise self.error(tok, "expected ',' or ')'")
        if func == "c":  # R's c("a", "b") is a list of constants
            return List(tuple(args))
        return Call(func, tuple(args), tuple(kwargs))


def parse_expression(text: str):
    """Parse one expression (no ``~``) into a tree; `FormulaError` on bad syntax."""
    if not isinstance(text, str):
        raise FormulaError(f"expected text, got {type(text).__name__}")
    p = _Parser(text)
    if p.peek().kind == "end":
        raise FormulaError("empty expression")
    node = p.expression()
    tok = p.peek()
    if tok.kind != "end":
        raise p.error(tok, "unexpected text")
    return node


def split_formula(text: str):
    """Parse ``lhs ~ rhs`` into two trees."""
    if not isinstance(text, str):
        raise FormulaError(f"formula must be a string such as 'y ~ x + (1 | g)', got {type(text).__name__}")
    if "~" not in text:
        raise FormulaError(
            f"formula {text!r} has no '~': write 'outcome ~ predictors', e.g. 'y ~ x + (1 | g)' "
            "(formula must contain exactly one '~')"
        )
    p = _Parser(text)
    if p.peek().kind == "op" and p.peek().text == "~":
        raise FormulaError(f"formula has no response (left of '~'): {text!r}")
    node = p.expression()
    tok = p.peek()
    if tok.kind != "end":
        raise p.error(tok, "unexpected text")
    if not (isinstance(node, BinOp) and node.op == "~"):
        raise FormulaError(f"formula must contain exactly one '~' at the top level: {text!r}")
    for side in (node.left, node.right):
        if _contains_tilde(side):
            raise FormulaError(f"formula must contain exactly one '~': {text!r}")
    return node.left, node.right


def _contains_tilde(node) -> bool:
    return any(isinstance(n, BinOp) and n.op == "~" for n in walk(node))


def walk(node):
    """Every node of a tree, parents first."""
    yield node
    if isinstance(node, BinOp):
        yield from walk(node.left)
        yield from walk(node.right)
    elif isinstance(node, Unary | Paren | Brace):
        yield from walk(node.operand if isinstance(node, Unary) else node.inner)
    elif isinstance(node, Call):
        for a in node.args:
            yield from walk(a)
        for _, v in node.kwargs:
            yield from walk(v)
    elif isinstance(node, List):
        for a in node.items:
            yield from walk(a)


def names_in(node) -> list[str]:
    """Variable names in a tree, in order of appearance (function names excluded)."""
    return list(dict.fromkeys(n.id for n in walk(node) if isinstance(n, Name)))


# --------------------------------------------------------------------------- spelling

_R_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._")
_R_RESERVED = {
    "if",
    "else",
    "repeat",
    "while",
    "function",
    "for",
    "in",
    "next",
    "break",
    "TRUE",
    "FALSE",
    "NULL",
    "Inf",
    "NaN",
    "NA",
}


def r_name(name: str) -> str:
    """A variable name as R writes it (backticks when not syntactic)."""
    ok = (
        name
        and set(name) <= _R_NAME_OK
        and (name[0].isalpha() or (name[0] == "." and not name[1:2].isdigit()))
        and name not in _R_RESERVED
    )
    return name if ok else "`" + name.replace("`", "\\`") + "`"


def r_number(text: str) -> str:
    """A number as R's deparse prints it (15 significant digits, no trailing zeros)."""
    v = float(text.rstrip("L"))
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.15g}"


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# functions whose spelling differs: ours (as written by a formulae/bambi user) -> R's
_R_FUNCS = {"C": "factor", "as.factor": "factor", "center": "scale", "standardize": "scale"}
# R's deparse puts spaces around these binary operators, not around ^ : / %% %/%
_SPACED = {"~", "|", "||", "&", "&&", "==", "!=", "<", ">", "<=", ">=", "+", "-", "*", "%in%"}


def deparse(node, r: bool = True) -> str:
    """Write a tree back as text: R's spelling (``r=True``), used for labels and for R itself.

    ``**`` becomes ``^``, ``{x}`` becomes ``I(x)``, spacing follows R's deparse (spaces around
    binary operators except ``^`` and ``:``).
    """
    if isinstance(node, Name):
        if node.id in ("TRUE", "FALSE", "NULL", "Inf", "NaN", "NA"):
            return node.id
        if node.id in ("True", "False"):
            return node.id.upper()
        return r_name(node.id)
    if isinstance(node, Num):
        return r_number(node.text)
    if isinstance(node, Str):
        return _quote(node.value)
    if isinstance(node, List):
        return "c(" + ", ".join(deparse(a, r) for a in node.items) + ")"
    if isinstance(node, Brace):
        return "I(" + deparse(node.inner, r) + ")"
    if isinstance(node, Paren):
        return "(" + deparse(node.inner, r) + ")"
    if isinstance(node, Unary):
        return node.op + deparse(node.operand, r)
    if isinstance(node, BinOp):
        op = "^" if node.op == "**" else node.op
        sep = f" {op} " if op in _SPACED else op
        return deparse(node.left, r) + sep + deparse(node.right, r)
    if isinstance(node, Call):
        func = node.func
        kwargs = list(node.kwargs)
        if r and func in _R_FUNCS:
            if func == "center":
                kwargs = [("scale", Name("FALSE"))]
            func = _R_FUNCS[func]
        parts = [deparse(a, r) for a in node.args] + [f"{k} = {deparse(v, r)}" for k, v in kwargs]
        return f"{func}(" + ", ".join(parts) + ")"
    raise TypeError(f"not a formula node: {node!r}")
