"""The formula front end builds the same design as R's lme4.

For every (frame, formula) in ``FORMULAS`` our ``build_model_data`` and lme4's
``glFormula`` (through :func:`analysis.lme4.r_designs`, R formula from
``parse_formula(formula).r_formula``) must keep the same rows, give the same fixed
columns (our labels mapped to R's names by ``r_label``) with the same values, and the
same random-effects blocks: grouping factor, terms, each row's level and its ``Z`` values.

Frames: textbook GLMM data read from R (mlmRev's Contraception; lme4's cbpp, VerbAgg
(first 40 respondents) and grouseticks), and synthetic frames with odd column names,
non-alphabetical categories, text levels, booleans, integer codes, missing values, and
nested and crossed grouping factors. R runs once to export the real frames and once per
frame for all its formulas.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from installed import require_installed

from analysis import lme4
from analysis.lme4 import GlmerError, RBlock, RDesign, r_available, r_design, r_designs
from models import formula as mf

pytestmark = pytest.mark.needs_r  # skipped with R's install message when R is missing (conftest.py)

RTOL, ATOL = 1e-8, 1e-10
MLMREV_HINT = (
    "R package mlmRev is not installed: install with `apt-get install r-cran-mlmrev` "
    '(Debian/Ubuntu) or install.packages("mlmRev") in R'
)

CBPP = "cbind(incidence, size - incidence)"

# (frame, formula); each row is one test, named by the formula.
FORMULAS: list[tuple[str, str]] = [
    # ---- mlmRev Contraception: use 0/1, livch "0","1","2","3+", urban N/Y, age centred
    ("contra", "use ~ age + I(age^2) + urban + livch + (1 | district)"),
    ("contra", "use ~ age + I(age**2) + urban + (1 | district)"),
    ("contra", "use ~ I(age > 0) + livch + (1 | district)"),
    ("contra", "use ~ urban * livch + (1 + urban | district)"),
    ("contra", "use ~ 0 + livch + age + (1 | district)"),
    ("contra", "use ~ age + livch - 1 + (1 | district)"),
    ("contra", 'use ~ relevel(livch, ref = "2") + age + (1 | district)'),
    ("contra", "use ~ poly(age, 2) + urban + (1 | district)"),
    ("contra", "use ~ scale(age) + urban + (1 + scale(age) | district)"),
    ("contra", "use ~ age * urban + (1 + age || district)"),
    ("contra", "use ~ age + livch + (1 | urban:district)"),
    ("contra", "use ~ age + (1 | district/urban)"),
    ("contra", "use ~ age + urban + (1 | district) + (0 + age | district)"),
    ("contra", "use ~ (age + urban + livch)^2 + (1 | district)"),
    ("contra", "use ~ urban/age + (1 | district)"),
    ("contra", "use ~ urban + age %in% urban + (1 | district)"),
    ("contra", "use ~ exp(age / 10) + log(age + 20) + (1 | district)"),
    ("contra", "use ~ abs(age) + sqrt(age + 14) + (1 + log(age + 20) | district)"),
    ("contra", "use ~ age + urban + livch"),
    # ---- lme4 cbpp: aggregated binomial
    ("cbpp", f"{CBPP} ~ period + (1 | herd)"),
    ("cbpp", "p(incidence, size) ~ period + (1 | herd)"),
    ("cbpp", f"{CBPP} ~ 0 + period + (1 | herd)"),
    ("cbpp", f"{CBPP} ~ log(size) + (1 | herd) + (1 | period)"),
    ("cbpp", f"{CBPP} ~ poly(size, 3) + (1 | herd)"),
    ("cbpp", f"{CBPP} ~ period + (1 | herd:period)"),
    # ---- lme4 VerbAgg, first 40 respondents: r2 0/1
    ("verbagg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"),
    ("verbagg", "r2 ~ mode * situ * btype + (1 | id)"),
    ("verbagg", "r2 ~ (Gender + btype + mode)^2 + (1 | item)"),
    ("verbagg", "r2 ~ Anger * Gender + (1 + Anger | item)"),
    ("verbagg", "r2 ~ situ + situ:btype + (1 | id)"),
    ("verbagg", "r2 ~ 0 + btype:situ + (1 | id)"),
    ("verbagg", "r2 ~ mode + (1 | id) + (1 | item) + (1 | btype:situ)"),
    ("verbagg", "r2 ~ scale(Anger) + (1 + mode | id) + (1 | item)"),
    # ---- lme4 grouseticks: y = TICKS > 0
    ("grouse", "y ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"),
    ("grouse", "y ~ YEAR + poly(HEIGHT, 2) + (1 | LOCATION/BROOD)"),
    ("grouse", "y ~ YEAR * cHEIGHT + (1 + cHEIGHT || LOCATION)"),
    # ---- synthetic
    ("syn", "y ~ x.1 + a_b + (1 | g)"),
    ("syn", "y ~ arm + x + (1 | g)"),
    ("syn", "y ~ kids + border + (1 | g)"),
    ("syn", "y ~ flag + x + (1 | g)"),
    ("syn", "y ~ factor(code) + (1 | g)"),
    ("syn", "y ~ C(code) + x + (1 | g)"),
    ("syn", 'y ~ relevel(arm, ref = "drug") + (1 | g)'),
    ("syn", "y ~ x * arm * flag + (1 | g)"),
    ("syn", "y ~ arm/x + (1 | g)"),
    ("syn", "y ~ x + (1 + x | school) + (1 | school:class)"),
    ("syn", "y ~ x + (1 | school/class)"),
    ("syn", "y ~ x + (1 | g) + (1 | c2)"),
    ("syn", "y ~ x + (1 | g) + (0 + x | g)"),
    ("syn", "y ~ x + (1 + x || g)"),
    ("syn", "y ~ x + (1 + arm | g)"),
    ("syn", "y ~ poly(x, 3) + I(z^2) + (1 | g)"),
    ("syn", "y ~ I(x > 0) + I(z**2) + (1 + I(z**2) | g)"),
    ("syn", "y ~ log(w + 1) + sqrt(w) + exp(z) + abs(x) + (1 | g)"),
    ("syn", "p(s, n) ~ x + arm + (1 | g)"),
    ("syn", "cbind(s, n - s) ~ kids + (1 + x | g)"),
    # ---- synthetic with missing values (rows dropped: R's na.omit must drop the same)
    ("synmiss", "y ~ x + arm + kids + (1 | g)"),
    ("synmiss", "cbind(s, n - s) ~ factor(code) + z + (1 | g)"),
    ("synmiss", "y ~ scale(z) + (1 | school)"),
    ("synmiss", "y ~ x + (1 | school/class) + (1 | c2)"),
]

_IDS = [f"{frame}: {formula}" for frame, formula in FORMULAS]


# --------------------------------------------------------------------------- frames from R

R_EXPORT = r"""
suppressPackageStartupMessages({ library(lme4); library(jsonlite) })
args <- commandArgs(trailingOnly = TRUE)
out <- args[[1L]]
if (!requireNamespace("mlmRev", quietly = TRUE)) { cat("MISSING mlmRev\n"); quit(status = 3) }
env <- new.env()
data("Contraception", package = "mlmRev", envir = env)
data("cbpp", "VerbAgg", "grouseticks", package = "lme4", envir = env)
verb <- env$VerbAgg
verb <- verb[verb$id %in% levels(verb$id)[1:40], setdiff(names(verb), "resp")]
verb$id <- droplevels(verb$id)
frames <- list(
  contra = env$Contraception[, c("district", "use", "livch", "age", "urban")],
  cbpp = env$cbpp,
  verbagg = verb,
  grouse = env$grouseticks[, setdiff(names(env$grouseticks), "INDEX")]
)
for (name in names(frames)) {
  d <- frames[[name]]
  types <- lapply(names(d), function(col) {
    x <- d[[col]]
    if (is.factor(x)) list(name = col, type = "factor", levels = I(levels(x)))
    else if (is.integer(x)) list(name = col, type = "integer")
    else list(name = col, type = "numeric")
  })
  write.csv(d, file.path(out, paste0(name, ".csv")), row.names = FALSE, na = "")
  writeLines(toJSON(types, auto_unbox = TRUE), file.path(out, paste0(name, ".json")))
}
"""


def _read_exported(directory: Path, name: str) -> pd.DataFrame:
    """Read a frame written by ``R_EXPORT``, factors as Categoricals in R's level order."""
    types = json.loads((directory / f"{name}.json").read_text())
    raw = pd.read_csv(directory / f"{name}.csv", dtype=str, keep_default_na=False, na_values=[""])
    out = {}
    for t in types:
        col = raw[t["name"]]
        if t["type"] == "factor":
            out[t["name"]] = pd.Categorical(col.astype(object), categories=[str(v) for v in t["levels"]])
        elif t["type"] == "integer":
            out[t["name"]] = pd.to_numeric(col).astype("int64")
        else:
            out[t["name"]] = pd.to_numeric(col).astype(float)
    return pd.DataFrame(out)


@pytest.fixture(scope="session")
def r_frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    require_installed(*r_available())
    directory = tmp_path_factory.mktemp("r_frames")
    script = directory / "export.R"
    script.write_text(R_EXPORT)
    exe = lme4._require_r()
    proc = subprocess.run(
        [exe, "--vanilla", str(script), str(directory)], capture_output=True, text=True, timeout=300
    )
    require_installed(not (proc.returncode == 3 and "MISSING mlmRev" in proc.stdout), MLMREV_HINT)
    assert proc.returncode == 0, f"exporting the R data sets failed:\n{lme4._r_error_text(proc.stderr)}"

    contra = _read_exported(directory, "contra")
    contra["use"] = (contra["use"] == "Y").astype("int64")
    verbagg = _read_exported(directory, "verbagg")
    verbagg["r2"] = (verbagg["r2"] == "Y").astype("int64")
    grouse = _read_exported(directory, "grouse")
    grouse["y"] = (grouse["TICKS"] > 0).astype("int64")
    return {"contra": contra, "cbpp": _read_exported(directory, "cbpp"), "verbagg": verbagg, "grouse": grouse}


# --------------------------------------------------------------------------- synthetic frames


def _synthetic(n: int = 240, seed: int = 20240517) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.choice([f"g{i:02d}" for i in range(1, 13)], n)
    school = rng.choice([f"s{i}" for i in range(1, 7)], n)
    klass = rng.choice(["1", "2", "3"], n)  # class labels repeat across schools: nested
    c2 = rng.choice([f"k{i}" for i in range(1, 9)], n)  # crossed with g
    arm = pd.Categorical(rng.choice(["placebo", "drug", "drug+"], n), categories=["placebo", "drug", "drug+"])
    x = rng.normal(size=n)
    z = rng.normal(size=n)
    effect = {lab: e for lab, e in zip(sorted(set(g)), rng.normal(scale=0.7, size=12), strict=False)}
    eta = -0.2 + 0.8 * x - 0.5 * z + np.array([effect[v] for v in g]) + 0.4 * (np.asarray(arm) == "drug+")
    trials = rng.integers(1, 9, n)
    return pd.DataFrame(
        {
            "y": rng.binomial(1, 1 / (1 + np.exp(-eta))),
            "x": x,
            "z": z,
            "x2": rng.normal(loc=3.0, scale=2.0, size=n),
            "w": rng.lognormal(size=n),
            "x.1": rng.normal(size=n),
            "a_b": rng.uniform(0, 5, size=n),
            "arm": arm,
            "kids": rng.choice(["0", "1", "2", "3+"], n),
            "border": rng.choice(["01", "23", "46", "7p"], n),
            "flag": rng.random(n) < 0.4,
            "code": rng.choice([1, 2, 3, 10], n),  # integer codes: factor levels 1, 2, 3, 10
            "g": g,
            "school": school,
            "class": klass,
            "c2": c2,
            "s": rng.binomial(trials, 1 / (1 + np.exp(-eta))),
            "n": trials,
        }
    )


def _synthetic_missing() -> pd.DataFrame:
    d = _synthetic(seed=7).drop(columns=["flag"])
    rng = np.random.default_rng(11)
    n = len(d)

    def some(frac: float) -> np.ndarray:
        return rng.random(n) < frac

    d.loc[some(0.08), "x"] = np.nan
    d["arm"] = d["arm"].mask(some(0.05))
    d.loc[some(0.05), "kids"] = None
    d.loc[some(0.04), "g"] = None
    d.loc[some(0.05), "c2"] = None
    d.loc[some(0.06), "z"] = np.nan
    code = d["code"].astype("Int64")
    code[some(0.05)] = pd.NA
    d["code"] = code
    return d


@pytest.fixture(scope="session")
def frames(r_frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {**r_frames, "syn": _synthetic(), "synmiss": _synthetic_missing()}


# --------------------------------------------------------------------------- R designs


def _parse(formula: str):
    """``models.formula.parse_formula`` (being written); a clear failure while it is missing."""
    if not hasattr(mf, "parse_formula"):
        pytest.fail("models.formula has no parse_formula yet (the formula parser is being rewritten)")
    return mf.parse_formula(formula)


def _r_label(label: str) -> str:
    if not hasattr(mf, "r_label"):
        pytest.fail("models.formula has no r_label yet (the formula parser is being rewritten)")
    return mf.r_label(label)


@dataclass
class _DesignCache:
    """R designs of all table formulas of a frame, built in one R process on first use."""

    frames: dict[str, pd.DataFrame]
    done: dict[tuple[str, str], RDesign | Exception]

    def get(self, frame: str, formula: str) -> RDesign:
        if (frame, formula) not in self.done:
            formulas = [f for fr, f in FORMULAS if fr == frame]
            r_formulas: dict[str, str] = {}
            for f in formulas:
                try:
                    r_formulas[f] = _parse(f).r_formula
                except Exception as exc:  # reported by the test of that formula
                    self.done[(frame, f)] = exc
            designs = r_designs(list(r_formulas.values()), self.frames[frame], timeout=600)
            for f, design in zip(r_formulas, designs, strict=True):
                self.done[(frame, f)] = design
        result = self.done[(frame, formula)]
        if isinstance(result, GlmerError):
            pytest.fail(f"[{frame}] {formula}: R could not build the design: {result}")
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture(scope="session")
def r_cache(frames: dict[str, pd.DataFrame]) -> _DesignCache:
    return _DesignCache(frames, {})


# --------------------------------------------------------------------------- comparison


def _split_top(name: str, sep: str = ":") -> list[str]:
    return [p.strip() for p in mf.split_top_level(name, sep)]


def _key(name: str) -> frozenset[str]:
    return frozenset(_split_top(name))


def _values_problem(what: str, ours: np.ndarray, theirs: np.ndarray, rows: np.ndarray) -> str | None:
    """None when equal within RTOL/ATOL; else a message naming the first differing row."""
    try:
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
    except AssertionError:
        ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
        close = np.isclose(ours, theirs, rtol=RTOL, atol=ATOL, equal_nan=True)
        bad = np.flatnonzero(~close)
        i = int(bad[0])
        return (
            f"{what}: {len(bad)} of {len(ours)} rows differ; first at data row {int(rows[i])} "
            f"(position {i} of the kept rows): ours {float(ours[i])!r}, R {float(theirs[i])!r}; "
            f"max |diff| {np.nanmax(np.abs(ours - theirs)):.3g}"
        )
    return None


def _show_rows(frame: pd.DataFrame, positions: np.ndarray, columns: list[str]) -> str:
    if len(positions) == 0:
        return "none"
    sub = frame.iloc[positions[:5]][[c for c in columns if c in frame.columns]]
    more = f" (and {len(positions) - 5} more)" if len(positions) > 5 else ""
    return f"{[int(i) for i in positions[:5]]}{more}\n{sub.to_string()}"


def _formula_columns(formula: str, frame: pd.DataFrame) -> list[str]:
    words = set(pd.Series([formula]).str.findall(r"[A-Za-z_.][A-Za-z0-9_.]*")[0])
    return [c for c in frame.columns if c in words]


def _compare_fixed(md, r: RDesign, rows: np.ndarray) -> list[str]:
    problems = []
    ours = [str(t) for t in md.fixed_terms]
    r_names = list(r.X.columns)
    mapped = [_r_label(t) for t in ours]
    if len(ours) != len(r_names):
        problems.append(
            f"fixed design: {len(ours)} columns ours, {len(r_names)} in R\n"
            f"  ours (R names): {mapped}\n  R:              {r_names}"
        )
    by_key: dict[frozenset[str], str] = {_key(n): n for n in r_names}
    used: set[str] = set()
    X = np.asarray(md.X, dtype=float)
    if X.shape[1] != len(ours):
        return [*problems, f"our X has {X.shape[1]} columns but {len(ours)} fixed_terms {ours}"]
    for j, (label, name) in enumerate(zip(ours, mapped, strict=True)):
        r_name = by_key.get(_key(name))
        if r_name is None:
            problems.append(f"fixed column {label!r} (R name {name!r}) is not among R's columns {r_names}")
            continue
        used.add(r_name)
        p = _values_problem(f"fixed column {label!r} vs R {r_name!r}", X[:, j], r.X[r_name].to_numpy(), rows)
        if p:
            problems.append(p)
    missing = [n for n in r_names if n not in used]
    if missing and len(ours) == len(r_names):
        problems.append(f"R's fixed columns {missing} matched none of ours {mapped}")
    return problems


def _level_names(block: RBlock, order: list[str]) -> np.ndarray:
    """R's level name of every row, with interaction parts put in ``order`` (our order)."""
    r_parts = _split_top(block.factor)
    perm = [r_parts.index(p) for p in order]
    names = []
    for lev in block.levels:
        parts = lev.split(":")
        names.append(":".join(parts[k] for k in perm) if len(parts) == len(perm) else lev)
    return np.asarray(names, dtype=object)[block.idx]


def _compare_blocks(md, r: RDesign, rows: np.ndarray) -> list[str]:
    problems = []
    r_desc = [f"({' + '.join(b.terms)} | {b.factor})" for b in r.blocks]
    # lme4 splits an uncorrelated (||) bar into one block per term
    wanted = []
    for b in md.blocks:
        terms = [_r_label(str(t)) for t in b.terms]
        if getattr(b, "correlated", True):
            wanted.append((b, list(range(len(terms))), terms))
        else:
            wanted.extend((b, [j], [terms[j]]) for j in range(len(terms)))
    ours_desc = [f"({' + '.join(t)} | {b.factor})" for b, _, t in wanted]
    if len(wanted) != len(r.blocks):
        problems.append(
            f"random-effects blocks: {len(wanted)} ours, {len(r.blocks)} in R\n"
            f"  ours (R names): {ours_desc}\n  R:              {r_desc}"
        )
    free = list(range(len(r.blocks)))
    for b, cols, terms in wanted:
        desc = f"({' + '.join(terms)} | {b.factor})"
        match = next(
            (
                k
                for k in free
                if _key(r.blocks[k].factor) == _key(b.factor) and set(r.blocks[k].terms) == set(terms)
            ),
            None,
        )
        if match is None:
            problems.append(f"our block {desc} has no R block with that factor and terms; R: {r_desc}")
            continue
        free.remove(match)
        rb = r.blocks[match]
        if len(b.levels) != len(rb.levels):
            problems.append(f"block {desc}: {len(b.levels)} levels ours, {len(rb.levels)} in R")
        ours_names = np.asarray([str(v) for v in b.levels], dtype=object)[np.asarray(b.idx)]
        r_names = _level_names(rb, _split_top(b.factor))
        bad = np.flatnonzero(ours_names != r_names)
        if len(bad):
            i = int(bad[0])
            problems.append(
                f"block {desc}: level of {len(bad)} of {len(rows)} rows differs; first at data row "
                f"{rows[i]}: ours {ours_names[i]!r}, R {r_names[i]!r}"
            )
        Z = np.asarray(b.Z, dtype=float)
        for j, term in zip(cols, terms, strict=True):
            t = rb.terms.index(term)
            p = _values_problem(f"block {desc}, Z column {term!r}", Z[:, j], rb.Z[:, t], rows)
            if p:
                problems.append(p)
    return problems


def _kept_positions(md, frame: pd.DataFrame) -> np.ndarray:
    """0-based positions in ``frame`` of our kept rows: ``md.rows`` (``md.frame`` has a
    fresh index), else the positions of ``md.frame.index``."""
    if getattr(md, "rows", None) is not None:
        return np.asarray(md.rows, dtype=np.int64)
    return frame.index.get_indexer(md.frame.index)


@pytest.mark.parametrize(("frame_name", "formula"), FORMULAS, ids=_IDS)
def test_design_matches_lme4(
    frame_name: str, formula: str, frames: dict[str, pd.DataFrame], r_cache: _DesignCache
) -> None:
    frame = frames[frame_name]
    r = r_cache.get(frame_name, formula)
    head = f"[{frame_name}] {formula}\n  R formula: {r.formula}\n"
    try:
        md = mf.build_model_data(formula, frame)
    except Exception as exc:
        pytest.fail(f"{head}our build_model_data raised {type(exc).__name__}: {exc}")

    rows = _kept_positions(md, frame)
    if not np.array_equal(rows, r.rows):
        only_ours = np.setdiff1d(rows, r.rows)
        only_r = np.setdiff1d(r.rows, rows)
        cols = _formula_columns(formula, frame)
        hint = (
            "" if getattr(md, "rows", None) is not None else " (from md.frame.index: ModelData has no rows)"
        )
        pytest.fail(
            f"{head}kept rows differ: {len(rows)} ours, {len(r.rows)} in R{hint}\n"
            f"  rows kept only by us: {_show_rows(frame, only_ours, cols)}\n"
            f"  rows kept only by R: {_show_rows(frame, only_r, cols)}"
        )
    problems = _compare_fixed(md, r, rows) + _compare_blocks(md, r, rows)
    if problems:
        pytest.fail(head + "\n".join(f"- {p}" for p in problems))


def test_table_is_large_enough() -> None:
    assert len(FORMULAS) >= 40
    assert len(set(FORMULAS)) == len(FORMULAS)


# --------------------------------------------------------------------------- r_design itself


def test_r_design_keeps_category_order_booleans_and_missing_rows() -> None:
    d = _synthetic_missing().assign(flag=lambda f: f["x2"] > 3)
    r = r_design("y ~ arm + flag + kids + (1 + x | school/class)", d)
    assert list(r.X.columns) == ["(Intercept)", "armdrug", "armdrug+", "flagTRUE", "kids1", "kids2", "kids3+"]
    expect = np.flatnonzero(d[["y", "arm", "flag", "kids", "x", "school", "class"]].notna().all(axis=1))
    np.testing.assert_array_equal(r.rows, expect)
    assert [(b.factor, b.terms) for b in r.blocks] == [
        ("class:school", ["(Intercept)", "x"]),
        ("school", ["(Intercept)", "x"]),
    ]
    inner = r.blocks[0]
    kept = d.iloc[r.rows]
    names = np.asarray(inner.levels, dtype=object)[inner.idx]
    np.testing.assert_array_equal(names, (kept["class"] + ":" + kept["school"]).to_numpy())
    np.testing.assert_allclose(inner.Z, np.column_stack([np.ones(len(kept)), kept["x"]]))
    with pytest.raises(GlmerError, match="object 'nope' not found"):
        r_design("y ~ nope + (1 | g)", d)


def test_offset_is_refused(frames: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(mf.FormulaError, match="offset"):
        mf.build_model_data("y ~ x + offset(z) + (1 | g)", frames["syn"])


def test_data_learned_transforms_use_the_rows_of_the_model() -> None:
    """A documented difference: R's ``model.frame`` evaluates ``scale(x2)`` on every row where
    ``x2`` is present, before dropping rows missing another variable; we learn the mean and
    SD (and polynomial coefficients) from the rows the model uses, so a fit reloaded from its
    model frame, and glmer run on that frame, get the same columns. On those rows R agrees."""
    d = _synthetic_missing()
    formula = "y ~ scale(x2) + poly(x, 2) + (1 | g)"
    md = mf.build_model_data(formula, d)
    assert len(md.rows) < d["x2"].notna().sum()  # some rows with x2 are dropped for other reasons
    r = r_design(mf.parse_formula(formula).r_formula, d.iloc[md.rows].reset_index(drop=True))
    for col in md.columns:
        np.testing.assert_allclose(
            md.X[:, md.fixed_terms.index(col.label)], r.X[col.r_name], rtol=1e-8, atol=1e-10
        )
