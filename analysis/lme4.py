"""Bridge to R's lme4 ``glmer`` for checking the PyMC multilevel logistic models.

The model is fitted in a separate ``Rscript`` process by ``analysis/r/fit_glmer.R``;
data go to R as CSV (with a JSON sidecar of column types, so that factors keep the
reference level pandas gives them) and results come back as JSON, all in a temporary
directory. Nothing in R is imported into Python, so R is needed only when a fit is
asked for; :func:`r_available` says whether it can be.

Term names are normalised to what Python ``formulae`` gives: ``(Intercept)`` becomes
``Intercept`` and a factor level such as lme4's ``period2`` becomes ``period[2]``;
interactions keep lme4's ``a:b`` form, made of normalised parts.

The Rscript used is, in order: :data:`RSCRIPT` when set, the ``SAMEPLACE_RSCRIPT``
environment variable, then ``Rscript`` on ``PATH``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.formula import FormulaError, parse_formula, split_top_level

__all__ = [
    "EstimatesFileError",
    "GlmerError",
    "GlmerResult",
    "RNotAvailableError",
    "run_r_job",
    "estimates_from_csv",
    "fit_glmer",
    "glmer_data",
    "normalise_term",
    "r_available",
    "r_design",
    "r_designs",
    "RBlock",
    "RDesign",
    "SvyglmResult",
    "fit_svyglm",
]

#: Path of the Rscript executable; ``None`` means ``$SAMEPLACE_RSCRIPT`` or ``Rscript``.
RSCRIPT: str | None = None

R_DIR = Path(__file__).resolve().parent / "r"
FIT_SCRIPT = R_DIR / "fit_glmer.R"
DATA_SCRIPT = R_DIR / "lme4_data.R"
DESIGN_SCRIPT = R_DIR / "design.R"
SVYGLM_SCRIPT = R_DIR / "svyglm.R"

INSTALL_HINT = (
    "install with `apt-get install r-base-core r-cran-lme4 r-cran-jsonlite` (Debian/Ubuntu), "
    'or install R from https://cran.r-project.org and run install.packages(c("lme4", '
    '"jsonlite")) in R; set SAMEPLACE_RSCRIPT to an Rscript that is not on PATH'
)

#: Quadrature points used when nAGQ is chosen automatically and lme4 allows quadrature.
AUTO_NAGQ = 25

_Z975 = 1.959963984540054
_FIXED_COLUMNS = ["estimate", "se", "z", "p", "ci_low", "ci_high", "r_term"]
_INTERCEPT_NAMES = {"(Intercept)", "Intercept", "_cons", "const", "(Constant)"}


class RNotAvailableError(RuntimeError):
    """R, or the lme4 or jsonlite package, cannot be used."""


class GlmerError(RuntimeError):
    """``glmer`` (or the R process running it) failed; the message is R's error text."""


class EstimatesFileError(ValueError):
    """An estimates CSV is missing, malformed or holds invalid values."""


# --------------------------------------------------------------------------- R discovery


def _rscript() -> str:
    """Return the configured Rscript command (not checked)."""
    if RSCRIPT is not None:
        return str(RSCRIPT)
    return os.environ.get("SAMEPLACE_RSCRIPT") or "Rscript"


@functools.lru_cache(maxsize=8)
def _probe_r(rscript: str) -> tuple[bool, str]:
    """Check once per Rscript path that R starts and loads lme4 and jsonlite."""
    exe = shutil.which(rscript)
    if exe is None:
        return False, f"R not found (no Rscript at '{rscript}'): {INSTALL_HINT}."
    code = (
        "ok <- vapply(c('lme4', 'jsonlite'), requireNamespace, logical(1), quietly = TRUE);"
        "if (!all(ok)) { cat('MISSING:', names(ok)[!ok], '\\n'); quit(status = 3) };"
        "cat(paste(R.version$major, R.version$minor, sep = '.'),"
        " as.character(packageVersion('lme4')), '\\n')"
    )
    try:
        proc = subprocess.run([exe, "--vanilla", "-e", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"R at '{exe}' could not be run ({exc}): {INSTALL_HINT}."
    out = proc.stdout.strip()
    if proc.returncode == 3 and "MISSING:" in out:
        missing = out.split("MISSING:", 1)[1].split()
        return False, (
            f"R found at '{exe}' but the R package(s) {', '.join(missing)} are not installed: {INSTALL_HINT}."
        )
    if proc.returncode != 0:
        err = _r_error_text(proc.stderr) or f"exit status {proc.returncode}"
        return False, f"R at '{exe}' failed to start: {err}. {INSTALL_HINT}."
    parts = out.split()
    r_version, lme4_version = (parts + ["?", "?"])[:2]
    return True, f"R {r_version} with lme4 {lme4_version} at '{exe}'"


def r_available() -> tuple[bool, str]:
    """Say whether R with lme4 and jsonlite can be used.

    Returns
    -------
    tuple of (bool, str)
        ``(True, "R 4.2.2 with lme4 1.1.31 at '/usr/bin/Rscript'")`` when usable, else
        ``(False, message)`` where the message says what is missing and how to install it.
        The check runs R once per Rscript path and is cached.
    """
    return _probe_r(_rscript())


def _require_r() -> str:
    """Return the resolved Rscript path or raise :class:`RNotAvailableError`."""
    ok, message = r_available()
    if not ok:
        raise RNotAvailableError(message)
    exe = shutil.which(_rscript())
    assert exe is not None  # r_available() succeeded
    return exe


def _r_error_text(stderr: str, max_lines: int = 15) -> str:
    """Extract R's error message from stderr, dropping package start-up chatter."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith(("Error", "Fatal error")):
            return "\n".join(lines[i : i + max_lines])
    return "\n".join(lines[-max_lines:])


def _run_r(args: list[str], timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    """Run Rscript with ``args``; kill the whole process group on timeout."""
    exe = _require_r()
    try:
        proc = subprocess.Popen(
            [exe, "--vanilla", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise RNotAvailableError(f"could not run '{exe}': {exc}. {INSTALL_HINT}.") from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise GlmerError(f"{what} timed out after {timeout:g} s") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


# --------------------------------------------------------------------------- term names


def normalise_term(term: str, factor_levels: dict[str, list[str]] | None = None) -> str:
    """Convert an lme4 (R) term name to the name Python ``formulae`` gives.

    Parameters
    ----------
    term : str
        Name as R prints it, e.g. ``"(Intercept)"``, ``"period2"``, ``"black:female"``.
    factor_levels : dict of str to list of str, optional
        Levels of each factor in the model, used to split ``period2`` into the factor
        ``period`` and its level ``2`` (the longest matching factor name wins).

    Returns
    -------
    str
        ``"Intercept"``, ``"period[2]"``, ``"black:female"``; names it cannot map are
        returned unchanged.
    """
    if term in _INTERCEPT_NAMES:
        return "Intercept"
    factor_levels = factor_levels or {}
    out = []
    for part in split_top_level(term):
        best = None
        for name, levels in factor_levels.items():
            if part.startswith(name) and part[len(name) :] in levels:
                if best is None or len(name) > len(best[0]):
                    best = (name, part[len(name) :])
        out.append(f"{best[0]}[{best[1]}]" if best else part)
    return ":".join(out)


# --------------------------------------------------------------------------- result


@dataclass
class GlmerResult:
    """Result of one lme4 ``glmer`` binomial fit.

    Attributes
    ----------
    fixed : pandas.DataFrame
        Indexed by ``term`` (``formulae`` names); columns ``estimate``, ``se``, ``z``,
        ``p``, ``ci_low``, ``ci_high`` (Wald 95% intervals) and ``r_term`` (lme4's name).
    group_sd : pandas.DataFrame
        Columns ``group``, ``term``, ``sd``: standard deviations of the random effects.
    group_corr : pandas.DataFrame
        Columns ``group``, ``term1``, ``term2``, ``corr`` (empty for scalar effects).
    ranef : pandas.DataFrame
        Columns ``group``, ``level`` (str), ``term``, ``mode`` (conditional mode) and
        ``condsd`` (conditional standard deviation, from ``ranef(fit, condVar = TRUE)``).
    n_obs : int
        Rows used in the fit (after R's removal of rows with missing values).
    n_groups : dict of str to int
        Levels of each grouping factor.
    loglik, aic : float
        Log-likelihood (Laplace or quadrature approximation, as fitted) and AIC. For
        binomial data lme4's values for nAGQ = 1 and nAGQ > 1 differ by a constant
        (cbpp: -92.03 against -50.00), so compare them only between fits with the
        same nAGQ.
    nAGQ : int
        Quadrature points used: 1 is the Laplace approximation.
    singular : bool
        ``isSingular(fit)``: a variance at zero or correlation at +-1.
    messages : list of str
        Warnings and messages emitted while fitting, plus lme4's convergence messages.
    converged : bool
        The optimizer reported success and lme4 raised no convergence warning (a
        singular-fit note alone does not count as non-convergence).
    elapsed_s : float
        Seconds R spent in ``glmer`` itself.
    r_version, lme4_version : str
        Versions used.
    formula : str
        The lme4 formula as given.
    optimizer : list of str
        ``glmerControl(optimizer = ...)`` used.
    """

    fixed: pd.DataFrame
    group_sd: pd.DataFrame
    group_corr: pd.DataFrame
    ranef: pd.DataFrame
    n_obs: int
    n_groups: dict[str, int]
    loglik: float
    aic: float
    nAGQ: int
    singular: bool
    messages: list[str]
    converged: bool
    elapsed_s: float
    r_version: str
    lme4_version: str
    formula: str = ""
    optimizer: list[str] = field(default_factory=lambda: ["bobyqa"])

    _TABLES = ("fixed", "group_sd", "group_corr", "ranef")

    @property
    def method(self) -> str:
        """How the likelihood was integrated: ``Laplace`` or adaptive quadrature."""
        return "Laplace" if self.nAGQ == 1 else f"adaptive Gauss-Hermite quadrature, nAGQ = {self.nAGQ}"

    def sd(self, group: str, term: str = "Intercept") -> float:
        """Return the random-effect standard deviation for ``group`` and ``term``."""
        rows = self.group_sd[(self.group_sd.group == group) & (self.group_sd.term == term)]
        if rows.empty:
            raise KeyError(f"no standard deviation for group {group!r}, term {term!r}")
        return float(rows.sd.iloc[0])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (tables as lists of records, NaN as None)."""
        out: dict[str, Any] = {}
        for name in self._TABLES:
            table: pd.DataFrame = getattr(self, name)
            if name == "fixed":
                table = table.reset_index()
            table = table.astype(object).where(table.notna(), None)
            out[name] = table.to_dict(orient="records")
        out.update(
            n_obs=int(self.n_obs),
            n_groups={k: int(v) for k, v in self.n_groups.items()},
            loglik=float(self.loglik),
            aic=float(self.aic),
            nAGQ=int(self.nAGQ),
            singular=bool(self.singular),
            messages=list(self.messages),
            converged=bool(self.converged),
            elapsed_s=float(self.elapsed_s),
            r_version=self.r_version,
            lme4_version=self.lme4_version,
            formula=self.formula,
            optimizer=list(self.optimizer),
        )
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GlmerResult:
        """Rebuild a result from :meth:`to_dict` output (for example after JSON)."""
        tables = {
            "fixed": ["term", *_FIXED_COLUMNS],
            "group_sd": ["group", "term", "sd"],
            "group_corr": ["group", "term1", "term2", "corr"],
            "ranef": ["group", "level", "term", "mode", "condsd"],
        }
        frames = {}
        for name, cols in tables.items():
            frame = pd.DataFrame.from_records(d.get(name) or [], columns=cols)
            frame = _coerce_table(frame)
            if name == "fixed":
                frame = frame.set_index("term")
            frames[name] = frame
        return cls(
            **frames,
            n_obs=int(d["n_obs"]),
            n_groups={k: int(v) for k, v in d["n_groups"].items()},
            loglik=_float(d["loglik"]),
            aic=_float(d["aic"]),
            nAGQ=int(d["nAGQ"]),
            singular=bool(d["singular"]),
            messages=[str(m) for m in d.get("messages") or []],
            converged=bool(d["converged"]),
            elapsed_s=_float(d["elapsed_s"]),
            r_version=str(d["r_version"]),
            lme4_version=str(d["lme4_version"]),
            formula=str(d.get("formula", "")),
            optimizer=[str(o) for o in d.get("optimizer") or ["bobyqa"]],
        )


def _float(x: Any) -> float:
    return float("nan") if x is None else float(x)


_NUMERIC_COLUMNS = {"estimate", "se", "z", "p", "ci_low", "ci_high", "sd", "corr", "mode", "condsd"}


def _coerce_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Give a table read from records float columns for numbers and str for names."""
    frame = frame.copy()
    for col in frame.columns:
        if col in _NUMERIC_COLUMNS:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        else:
            frame[col] = frame[col].astype(str)
    return frame


# --------------------------------------------------------------------------- data to R


def _columns_used(data: pd.DataFrame, formula: str, extra: list[str]) -> list[str]:
    """Columns the formula reads (asked of the formula parser), plus ``extra``.

    A formula our parser does not read (R-only syntax) sends every column: R then reports
    its own error or fits it.
    """
    try:
        names = set(parse_formula(formula).variables) | set(extra)
    except FormulaError:
        return [str(c) for c in data.columns]
    return [c for c in data.columns if str(c) in names]


def _prepare_data(data: pd.DataFrame, *, logical: bool = False) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Convert ``data`` to a CSV-ready frame and the column-type sidecar for R.

    Categorical columns keep their category order (first = reference level); string and
    object columns become factors with sorted levels, as ``formulae`` does; booleans
    become 0/1 integers (``formulae`` treats them as numeric), or R logicals
    (``TRUE``/``FALSE``, type ``"logical"``) when ``logical`` is true.
    """
    out = {}
    types: list[dict[str, Any]] = []
    for col in data.columns:
        name = str(col)
        s = data[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            levels = [str(c) for c in s.cat.categories]
            if len(set(levels)) != len(levels):
                raise ValueError(f"column '{name}': categories are not distinct as strings")
            out[name] = s.astype(object).map(lambda v: v if pd.isna(v) else str(v))
            types.append({"name": name, "type": "factor", "levels": levels})
        elif pd.api.types.is_bool_dtype(s.dtype) and logical:
            out[name] = s.astype(object).map(lambda v: v if pd.isna(v) else ("TRUE" if v else "FALSE"))
            types.append({"name": name, "type": "logical"})
        elif pd.api.types.is_bool_dtype(s.dtype):
            out[name] = s.astype("Int64")
            types.append({"name": name, "type": "integer"})
        elif pd.api.types.is_integer_dtype(s.dtype):
            fits_int32 = s.dropna().abs().max() < 2**31 - 1 if s.notna().any() else True
            out[name] = s
            types.append({"name": name, "type": "integer" if fits_int32 else "numeric"})
        elif pd.api.types.is_float_dtype(s.dtype):
            if np.isinf(s.to_numpy(dtype=float, na_value=np.nan)).any():
                raise ValueError(f"column '{name}' has infinite values")
            out[name] = s
            types.append({"name": name, "type": "numeric"})
        elif pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
            values = s.astype(object).map(lambda v: v if pd.isna(v) else str(v))
            levels = sorted(values.dropna().unique())
            out[name] = values
            types.append({"name": name, "type": "factor", "levels": levels})
        else:
            raise ValueError(
                f"column '{name}' has dtype {s.dtype}, which cannot be sent to R; "
                "convert it to numeric, bool, string or categorical"
            )
    return pd.DataFrame(out, index=data.index), types


def _factor_levels(types: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {t["name"]: list(t["levels"]) for t in types if t["type"] == "factor"}


def _proportion_weights(formula: str, columns: list[str]) -> str | None:
    """Return ``trials`` for a ``successes/trials ~ ...`` formula, else None."""
    try:
        pair = parse_formula(formula).response.proportion
    except FormulaError:
        return None
    if pair and pair[0] in columns and pair[1] in columns:
        return pair[1]
    return None


# --------------------------------------------------------------------------- fitting


def fit_glmer(
    formula: str,
    data: pd.DataFrame,
    *,
    nAGQ: int | None = None,
    optimizer: str | list[str] = "bobyqa",
    weights: str | None = None,
    condvar: bool = True,
    timeout: float = 1800,
    r_script: str | os.PathLike[str] = FIT_SCRIPT,
    term_names: Mapping[str, str] | None = None,
) -> GlmerResult:
    """Fit ``glmer(formula, family = binomial, data)`` in R and return the estimates.

    Parameters
    ----------
    formula : str
        lme4 formula, passed to R unchanged. The response may be 0/1
        (``y ~ x + (1 | g)``), ``cbind(successes, failures)``, or ``successes/trials``,
        in which case ``trials`` is used as the prior weights (as glmer needs).
    data : pandas.DataFrame
        Data. Only columns whose names occur in the formula are sent. Categorical
        columns become R factors with the same level order (first category =
        reference level); string columns become factors with sorted levels; booleans
        become 0/1. Missing values are dropped by R (``na.omit``).
    nAGQ : int, optional
        Quadrature points. ``None`` chooses adaptive Gauss-Hermite quadrature with
        ``AUTO_NAGQ`` (25) points when the model has a single grouping factor with a
        scalar random intercept (the only case lme4 allows), else Laplace (1).
    optimizer : str or list of str, default "bobyqa"
        ``glmerControl(optimizer = ...)``; two names set the two fitting stages.
    weights : str, optional
        Column of prior weights (number of trials for a proportion response).
    condvar : bool, default True
        Compute conditional SDs of the random effects.
    timeout : float, default 1800
        Seconds before the R process is killed and :class:`GlmerError` raised.
    r_script : path, default ``analysis/r/fit_glmer.R``
        The R script to run.

    Returns
    -------
    GlmerResult

    Raises
    ------
    RNotAvailableError
        R, lme4 or jsonlite is missing.
    GlmerError
        glmer failed (message is R's error text) or timed out.
    """
    if "~" not in formula:
        raise ValueError(f"formula has no '~': {formula!r}")
    if nAGQ is not None and (int(nAGQ) != nAGQ or nAGQ < 0):
        raise ValueError(f"nAGQ must be a non-negative integer, got {nAGQ!r}")
    columns = [str(c) for c in data.columns]
    if weights is None:
        weights = _proportion_weights(formula, columns)
    elif weights not in columns:
        raise ValueError(f"weights column '{weights}' is not in the data")
    optimizers = [optimizer] if isinstance(optimizer, str) else list(optimizer)

    used = _columns_used(data, formula, [weights] if weights else [])
    frame, types = _prepare_data(data[used])
    spec = {
        "formula": formula,
        "nAGQ": None if nAGQ is None else int(nAGQ),
        "optimizer": optimizers,
        "weights": weights,
        "condvar": bool(condvar),
    }
    what = f"glmer({formula})"
    raw = run_r_job(r_script, frame, types, spec, timeout, what, f"while fitting {what}")
    if "error" in raw:
        raise GlmerError(f"glmer({formula}) failed in R: {raw['error']}")
    return _result_from_r(raw, formula, optimizers, _factor_levels(types), term_names)


def _result_from_r(
    raw: dict[str, Any],
    formula: str,
    optimizers: list[str],
    factor_levels: dict[str, list[str]],
    term_names: Mapping[str, str] | None = None,
) -> GlmerResult:
    """Build a :class:`GlmerResult` from the JSON written by ``fit_glmer.R``."""
    names = dict(term_names or {})

    def norm(t: str) -> str:
        return names.get(t) or normalise_term(t, factor_levels)

    fixed = pd.DataFrame.from_records(
        raw["fixed"], columns=["r_term", "estimate", "se", "z", "p", "ci_low", "ci_high"]
    )
    fixed = _coerce_table(fixed)
    fixed.insert(0, "term", [norm(t) for t in fixed.r_term])
    fixed = fixed.set_index("term")[_FIXED_COLUMNS]

    group_sd = _coerce_table(pd.DataFrame.from_records(raw["group_sd"], columns=["group", "term", "sd"]))
    group_sd["term"] = [norm(t) for t in group_sd.term]
    group_corr = _coerce_table(
        pd.DataFrame.from_records(raw["group_corr"], columns=["group", "term1", "term2", "corr"])
    )
    group_corr["term1"] = [norm(t) for t in group_corr.term1]
    group_corr["term2"] = [norm(t) for t in group_corr.term2]
    ranef = _coerce_table(
        pd.DataFrame.from_records(raw["ranef"], columns=["group", "level", "term", "mode", "condsd"])
    )
    ranef["term"] = [norm(t) for t in ranef.term]

    return GlmerResult(
        fixed=fixed,
        group_sd=group_sd,
        group_corr=group_corr,
        ranef=ranef,
        n_obs=int(raw["n_obs"]),
        n_groups={k: int(v) for k, v in raw["n_groups"].items()},
        loglik=_float(raw["loglik"]),
        aic=_float(raw["aic"]),
        nAGQ=int(raw["nAGQ"]),
        singular=bool(raw["singular"]),
        messages=[str(m) for m in raw.get("messages") or []],
        converged=bool(raw["converged"]),
        elapsed_s=_float(raw["elapsed_s"]),
        r_version=str(raw["r_version"]),
        lme4_version=str(raw["lme4_version"]),
        formula=formula,
        optimizer=optimizers,
    )


# --------------------------------------------------------------------------- designs


@dataclass
class RBlock:
    """One random-effects block of lme4's design (an element of ``reTrms$Ztlist``).

    Attributes
    ----------
    factor : str
        Grouping factor as lme4 names it: ``"herd"``, ``"a:b"``; ``(1 | a/b)`` gives the
        blocks ``"b:a"`` and ``"a"`` (lme4 puts the inner factor first).
    terms : list of str
        R's names of the varying terms (``cnms``), e.g. ``["(Intercept)", "x"]``. lme4
        splits ``(1 + x || g)`` into one block per term.
    levels : list of str
        Levels of the grouping factor (unused levels dropped), e.g. ``"u:p"`` for ``b:a``.
    idx : numpy.ndarray
        0-based level of every kept row (int64, length ``len(RDesign.rows)``).
    Z : numpy.ndarray
        Shape (rows, len(terms)): each row's coefficient of each term on its own level.
    """

    factor: str
    terms: list[str]
    levels: list[str]
    idx: np.ndarray
    Z: np.ndarray


@dataclass
class RDesign:
    """lme4's design of a formula on a data frame, as built by ``lme4::glFormula``.

    Attributes
    ----------
    formula : str
        The R formula.
    rows : numpy.ndarray
        0-based positions in the data of the rows kept (R's ``na.omit``), int64.
    X : pandas.DataFrame
        Fixed-effects design (``glFormula(...)$X``, i.e. ``model.matrix``) with R's column
        names, one row per kept row, index ``rows``.
    blocks : list of RBlock
        Random-effects blocks in lme4's order (by decreasing number of levels); empty for
        a formula without bars.
    """

    formula: str
    rows: np.ndarray
    X: pd.DataFrame
    blocks: list[RBlock]


def _design_from_r(raw: dict[str, Any]) -> RDesign:
    """Build an :class:`RDesign` from one formula's JSON written by ``design.R``."""
    rows = np.asarray(raw["rows"], dtype=np.int64) - 1
    n = len(rows)

    def matrix(cols: list[list[float | None]], k: int) -> np.ndarray:
        out = np.empty((n, k))
        for j, col in enumerate(cols):
            out[:, j] = np.asarray([np.nan if v is None else v for v in col], dtype=float)
        return out

    names = [str(c) for c in raw["x_names"]]
    X = pd.DataFrame(matrix(raw["x"], len(names)), columns=names, index=pd.Index(rows, name="row"))
    blocks = []
    for b in raw["blocks"]:
        terms = [str(t) for t in b["terms"]]
        blocks.append(
            RBlock(
                factor=str(b["factor"]),
                terms=terms,
                levels=[str(v) for v in b["levels"]],
                idx=np.asarray(b["idx"], dtype=np.int64) - 1,
                Z=matrix(b["Z"], len(terms)),
            )
        )
    return RDesign(formula=str(raw["formula"]), rows=rows, X=X, blocks=blocks)


def run_r_job(
    script: Path,
    frame: pd.DataFrame,
    types: dict,
    spec: dict[str, Any],
    timeout: float,
    what: str,
    doing: str,
    *,
    strict: bool = False,
) -> Any:
    """Run one of the bridge's R scripts on a data frame: the parsed ``result.json``.

    The script gets a folder holding ``data.csv``, ``coltypes.json`` (from `_prepare_data`)
    and ``spec.json``, and writes ``result.json`` there (an ``"error"`` key when R caught
    the failure itself: left to the caller).

    Parameters
    ----------
    script : Path
        The R script (``analysis/r/*.R``).
    frame, types
        The data and their column types, as `_prepare_data` returns them.
    spec : dict
        What the script is to do (formula, options).
    timeout : float
        Seconds before R is stopped.
    what, doing : str
        The job in words (``"glmer(y ~ x + (1 | g))"``) and in the error message
        (``"while fitting glmer(...)"``).
    strict : bool
        Also refuse a result written by a script that then exited with an error.

    Raises
    ------
    RNotAvailableError
        No ``Rscript``.
    GlmerError
        R wrote no result (its error message is quoted).
    """
    with tempfile.TemporaryDirectory(prefix="sameplace-r-") as tmp:
        workdir = Path(tmp)
        frame.to_csv(workdir / "data.csv", index=False, na_rep="")
        (workdir / "coltypes.json").write_text(json.dumps(types))
        (workdir / "spec.json").write_text(json.dumps(spec))
        proc = _run_r([str(script), str(workdir)], timeout, what)
        result_path = workdir / "result.json"
        if not result_path.exists() or (strict and proc.returncode != 0):
            err = _r_error_text(proc.stderr + "\n" + proc.stdout) or f"exit status {proc.returncode}"
            raise GlmerError(f"R failed {doing}: {err}")
        return json.loads(result_path.read_text())


def _run_design(spec: dict[str, Any], data: pd.DataFrame, timeout: float, what: str) -> Any:
    """Send ``data`` and ``spec`` to ``design.R``; return the parsed result.json."""
    frame, types = _prepare_data(data, logical=True)
    return run_r_job(DESIGN_SCRIPT, frame, types, spec, timeout, what, f"building {what}", strict=True)


def r_design(formula: str, data: pd.DataFrame, *, timeout: float = 300) -> RDesign:
    """Build lme4's design (fixed ``X`` and random-effects blocks) for ``formula`` in R.

    Runs ``lme4::glFormula(formula, data, family = binomial, na.action = na.omit)`` with
    lme4's data checks off (few levels, rank-deficient ``X``), or, for a formula without
    bars, ``model.matrix(formula, model.frame(formula, data))``. Nothing is fitted.

    Parameters
    ----------
    formula : str
        R formula, passed unchanged (write ``factor(x)``, not ``C(x)``; ``cbind(s, n - s)``,
        not ``p(s, n)``).
    data : pandas.DataFrame
        Data; every column is sent. Categorical columns become R factors with the same
        level order, string columns factors with sorted levels, booleans R logicals (so
        R names their columns ``flagTRUE``); missing values become ``NA``.
    timeout : float, default 300
        Seconds before the R process is killed and :class:`GlmerError` raised.

    Returns
    -------
    RDesign
        Rows kept (0-based positions in ``data``), ``X`` with R's column names, blocks.

    Raises
    ------
    RNotAvailableError
        R, lme4 or jsonlite is missing.
    GlmerError
        R could not build the design (message is R's error text) or timed out.

    See Also
    --------
    r_designs : several formulas on the same data in one R process.
    """
    if "~" not in formula:
        raise ValueError(f"formula has no '~': {formula!r}")
    raw = _run_design({"formula": formula}, data, timeout, f"the lme4 design of {formula!r}")
    return _design_from_r(raw)


def r_designs(formulas: list[str], data: pd.DataFrame, *, timeout: float = 300) -> list[RDesign | GlmerError]:
    """Build lme4's designs of several formulas on the same data in one R process.

    Like :func:`r_design` for each formula, but R starts (and loads lme4) once.

    Parameters
    ----------
    formulas : list of str
        R formulas.
    data : pandas.DataFrame
        Data, sent once (see :func:`r_design`).
    timeout : float, default 300
        Seconds for the whole R process.

    Returns
    -------
    list of RDesign or GlmerError
        One entry per formula, in order: the design, or a :class:`GlmerError` holding
        R's error text for a formula R could not build (the others are unaffected).

    Raises
    ------
    RNotAvailableError
        R, lme4 or jsonlite is missing.
    GlmerError
        R failed as a whole (e.g. the data could not be read) or timed out.
    """
    formulas = [str(f) for f in formulas]
    if not formulas:
        return []
    raw = _run_design({"formulas": formulas}, data, timeout, f"lme4 designs of {len(formulas)} formulas")
    out: list[RDesign | GlmerError] = []
    for formula, item in zip(formulas, raw, strict=True):
        if "error" in item:
            out.append(GlmerError(f"lme4 design of {formula!r} failed in R: {item['error']}"))
        else:
            out.append(_design_from_r(item))
    return out


# --------------------------------------------------------------------------- data sets


def glmer_term_names(md: Any) -> dict[str, str]:
    """R's name -> our label, for every fixed and varying column of a model (from the model data)."""
    names = {c.r_name: c.label for c in md.columns}
    for b in md.blocks:
        names.update({c.r_name: c.label for c in b.columns})
    return names


@dataclass(frozen=True)
class Lme4Unavailable:
    """Why a fit has no glmer counterpart (R or lme4 missing, glmer failed, no group effects).

    A value the renderers handle (shown as a note), never an exception.
    """

    reason: str

    def __str__(self) -> str:
        return self.reason


def glmer_for(fit: Any, *, nAGQ: int | None = None, timeout: float = 1800) -> GlmerResult | Lme4Unavailable:
    """glmer of a fit's model on the fit's own rows: the project's one lme4 path.

    Every command (``sameplace main``, ``report``, ``compare``) and `compare.compare_with_lme4`
    come here, so one fit gets one set of glmer numbers. Quadrature policy: adaptive
    Gauss-Hermite quadrature with `AUTO_NAGQ` points where lme4 allows it (one grouping
    factor with a scalar random intercept), the Laplace approximation otherwise; the result's
    ``nAGQ`` and ``method`` say which was used.

    Parameters
    ----------
    fit : models.Fit
        Its ``md.glmer_formula`` (lme4's spelling) and ``md.frame`` are used; term names come
        back as the fit's own labels.
    nAGQ : int, optional
        Override the policy.
    timeout : float
        Seconds before R is stopped.

    Returns
    -------
    GlmerResult or Lme4Unavailable
    """
    if not fit.md.blocks:
        return Lme4Unavailable(
            "lme4 comparison skipped: the model has no group effects (glmer needs at least one)"
        )
    ok, msg = r_available()
    if not ok:
        return Lme4Unavailable(f"R/lme4 not available: {msg}")
    try:
        return fit_glmer(
            fit.md.glmer_formula,
            fit.md.frame,
            nAGQ=nAGQ,
            timeout=timeout,
            term_names=glmer_term_names(fit.md),
        )
    except RNotAvailableError as exc:
        return Lme4Unavailable(f"R/lme4 not available: {exc}")
    except GlmerError as exc:
        return Lme4Unavailable(f"lme4 glmer failed: {exc}")


def glmer_data(name: str, *, package: str = "lme4", timeout: float = 300) -> pd.DataFrame:
    """Return a data set shipped with lme4 (``"cbpp"``) or another R package, read through R.

    Parameters
    ----------
    name : str
        Name for ``data(name, package = package)``.
    package : str, default "lme4"
        The R package, e.g. ``"mlmRev"`` for ``Contraception`` (installed by the set-up).
    timeout : float, default 300
        Seconds before the R process is killed.

    Returns
    -------
    pandas.DataFrame
        Factors become categorical columns of strings with R's level order (so the
        reference level is the same), e.g. cbpp's ``herd`` (``"1"`` ... ``"15"``) and
        ``period`` (``"1"`` ... ``"4"``); integer columns are int64 (Int64 with
        missing values), numeric float64, logical bool.

    Raises
    ------
    RNotAvailableError
        R or lme4 is missing.
    GlmerError
        R could not export the data set (e.g. unknown name).
    """
    if not re.fullmatch(r"[A-Za-z.][\w.]*", name) or not re.fullmatch(r"[A-Za-z.][\w.]*", package):
        raise ValueError(f"not a valid R data set or package name: {name!r}, {package!r}")
    with tempfile.TemporaryDirectory(prefix="sameplace-lme4data-") as tmp:
        workdir = Path(tmp)
        proc = _run_r([str(DATA_SCRIPT), name, str(workdir), package], timeout, f"data({name})")
        if (workdir / "error.txt").exists():
            raise GlmerError(f"lme4 data set '{name}': {(workdir / 'error.txt').read_text()}")
        if not (workdir / "data.csv").exists():
            err = _r_error_text(proc.stderr + "\n" + proc.stdout) or f"exit status {proc.returncode}"
            raise GlmerError(f"R failed exporting lme4 data set '{name}': {err}")
        types = json.loads((workdir / "coltypes.json").read_text())
        raw = pd.read_csv(workdir / "data.csv", dtype=str, keep_default_na=False, na_values=[""])
    out = {}
    for t in types:
        col = raw[t["name"]]
        kind = t["type"]
        if kind == "factor":
            levels = [str(x) for x in t.get("levels") or []]
            out[t["name"]] = pd.Categorical(
                col.astype(object), categories=levels, ordered=bool(t.get("ordered"))
            )
        elif kind == "integer":
            values = pd.to_numeric(col).astype("Int64")
            out[t["name"]] = values.astype("int64") if values.notna().all() else values
        elif kind == "numeric":
            out[t["name"]] = pd.to_numeric(col).astype(float)
        elif kind == "logical":
            out[t["name"]] = col.map({"TRUE": True, "FALSE": False})
        else:
            out[t["name"]] = col
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- other tools


def estimates_from_csv(
    path: str | os.PathLike[str],
    *,
    factor_levels: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Read fixed-effect estimates made elsewhere (e.g. Stata ``melogit``) from CSV.

    The file needs columns ``term``, ``estimate`` and ``se``; ``ci_low`` and ``ci_high``
    are optional (both or neither) and are otherwise Wald 95% intervals. Other columns
    are ignored.

    Parameters
    ----------
    path : path
        The CSV file.
    factor_levels : dict of str to list of str, optional
        Factor levels, to normalise names like ``period2`` to ``period[2]``. Intercept
        names ``(Intercept)``, ``_cons`` and ``const`` always become ``Intercept``.

    Returns
    -------
    pandas.DataFrame
        Same layout as :attr:`GlmerResult.fixed`: indexed by ``term``, columns
        ``estimate``, ``se``, ``z``, ``p``, ``ci_low``, ``ci_high``, ``r_term``
        (the name as in the file).

    Raises
    ------
    EstimatesFileError
        File missing or unreadable, a column missing, a duplicate or empty term, a
        value that is not a finite number, ``se <= 0``, or an interval that does not
        contain its estimate; the message names the file, column and value.
    """
    path = Path(path)
    if not path.is_file():
        raise EstimatesFileError(f"{path}: estimates file not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EstimatesFileError(f"{path}: cannot be read as CSV: {exc}") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in ("term", "estimate", "se") if c not in raw.columns]
    if missing:
        raise EstimatesFileError(
            f"{path}: missing column(s) {', '.join(missing)}; found "
            f"{', '.join(raw.columns) or 'none'} (need term, estimate, se[, ci_low, ci_high])"
        )
    has_ci = [c in raw.columns for c in ("ci_low", "ci_high")]
    if any(has_ci) and not all(has_ci):
        present = "ci_low" if has_ci[0] else "ci_high"
        raise EstimatesFileError(f"{path}: column {present} given without its partner")
    if raw.empty:
        raise EstimatesFileError(f"{path}: no rows")

    terms = raw["term"].str.strip()
    for i, t in enumerate(terms):
        if not t:
            raise EstimatesFileError(f"{path}: column term, row {i + 1}: empty term")
    dup = terms[terms.duplicated()]
    if not dup.empty:
        raise EstimatesFileError(f"{path}: column term: duplicate term '{dup.iloc[0]}'")

    def numbers(col: str) -> np.ndarray:
        values = np.empty(len(raw))
        for i, (term, text) in enumerate(zip(terms, raw[col], strict=True)):
            try:
                v = float(text)
            except ValueError:
                v = float("nan")
            if not math.isfinite(v):
                raise EstimatesFileError(
                    f"{path}: column {col}, row {i + 1} (term '{term}'): value {text!r} "
                    "is not a finite number"
                )
            values[i] = v
        return values

    est = numbers("estimate")
    se = numbers("se")
    for i in np.flatnonzero(se <= 0):
        raise EstimatesFileError(
            f"{path}: column se, row {i + 1} (term '{terms.iloc[i]}'): value "
            f"{raw['se'].iloc[i]!r} must be positive"
        )
    if all(has_ci):
        lo, hi = numbers("ci_low"), numbers("ci_high")
        for i in np.flatnonzero((lo > est) | (hi < est)):
            raise EstimatesFileError(
                f"{path}: columns ci_low/ci_high, row {i + 1} (term '{terms.iloc[i]}'): "
                f"interval [{raw['ci_low'].iloc[i]}, {raw['ci_high'].iloc[i]}] does not "
                f"contain the estimate {raw['estimate'].iloc[i]}"
            )
    else:
        lo, hi = est - _Z975 * se, est + _Z975 * se
    z = est / se
    p = np.array([math.erfc(abs(v) / math.sqrt(2.0)) for v in z])
    names = [normalise_term(t, factor_levels) for t in terms]
    if len(set(names)) != len(names):
        raise EstimatesFileError(f"{path}: column term: terms collide after normalising")
    return pd.DataFrame(
        {
            "estimate": est,
            "se": se,
            "z": z,
            "p": p,
            "ci_low": lo,
            "ci_high": hi,
            "r_term": list(terms),
        },
        index=pd.Index(names, name="term"),
    )


# --------------------------------------------------------------------------- survey::svyglm


@dataclass(frozen=True)
class SvyglmResult:
    """``survey::svyglm`` (quasibinomial, with the sampling design) of a single-level model.

    Attributes
    ----------
    terms : list of str
        Coefficient names as the fit labels them (``Intercept``, ``x``, ``f[level]``).
    coef, se : numpy.ndarray
        Weighted estimates and their design-based (linearisation) standard errors.
    vcov : numpy.ndarray
        Their design-based covariance.
    n, n_psu, n_strata : int
        Rows, PSUs and strata used.
    seconds : float
        R's time to fit.
    """

    terms: list[str]
    coef: np.ndarray
    se: np.ndarray
    vcov: np.ndarray
    n: int
    n_psu: int
    n_strata: int
    seconds: float


def fit_svyglm(
    formula: str,
    data: pd.DataFrame,
    *,
    weights: str,
    psu: str,
    strata: str | None = None,
    lonely_psu: str = "adjust",
    term_names: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> SvyglmResult:
    """Fit ``svyglm(formula, design, family = quasibinomial())`` in R on the same rows.

    The design is ``svydesign(ids = ~psu, strata = ~strata, weights = ~weights, nest = TRUE)``
    with ``options(survey.lonely.psu = lonely_psu)``; rows with a missing model variable are
    dropped before the design is made (send only the rows the Python fit used).

    Parameters
    ----------
    formula : str
        A single-level formula (no ``(... | g)`` terms) in R's spelling.
    data : pandas.DataFrame
        The rows, holding the formula's columns and the design columns.
    weights, psu, strata : str
        Design columns (``strata=None``: one stratum).
    lonely_psu : str
        ``survey``'s treatment of a stratum with one PSU (default "adjust", as
        `analysis.survey.design_score_variance`).
    term_names : mapping, optional
        R's coefficient name -> the fit's label (`glmer_term_names` of the model data).
    timeout : float
        Seconds before R is stopped.

    Returns
    -------
    SvyglmResult

    Raises
    ------
    RNotAvailableError
        R is missing.
    GlmerError
        svyglm failed in R (e.g. the survey package is not installed).
    """
    design = [c for c in (weights, psu, strata) if c is not None]
    missing = [c for c in design if c not in data.columns]
    if missing:
        raise ValueError(f"design column(s) {missing} not in the data")
    used = _columns_used(data, formula, design)
    frame, types = _prepare_data(data[used])
    spec = {"formula": formula, "weights": weights, "psu": psu, "strata": strata, "lonely_psu": lonely_psu}
    what = f"svyglm({formula})"
    raw = run_r_job(SVYGLM_SCRIPT, frame, types, spec, timeout, what, f"while fitting {what}")
    if "error" in raw:
        raise GlmerError(f"svyglm({formula}) failed in R: {raw['error']}")
    names = dict(term_names or {})
    terms = [names.get(t, "Intercept" if t in _INTERCEPT_NAMES else normalise_term(t)) for t in raw["terms"]]
    return SvyglmResult(
        terms=terms,
        coef=np.asarray(raw["coef"], dtype=float),
        se=np.asarray(raw["se"], dtype=float),
        vcov=np.asarray(raw["vcov"], dtype=float),
        n=int(raw["n"]),
        n_psu=int(raw["n_psu"]),
        n_strata=int(raw["n_strata"]),
        seconds=float(raw["seconds"]),
    )


# --------------------------------------------------------------------------- ordinal::clmm

CLMM_SCRIPT = R_DIR / "clmm.R"
CLMM_NAGQ = 10
"""Adaptive Gauss-Hermite points of clmm where it allows them (one scalar random intercept)."""


@dataclass
class ClmmResult:
    """Estimates of ``ordinal::clmm`` (cumulative logit) for the rows of a fit.

    Attributes
    ----------
    cutpoints : pandas.DataFrame
        Index: clmm's threshold names (``"1|2"``, ...), the fit's ``cutpoint`` labels;
        columns ``estimate``, ``se``.
    fixed : pandas.DataFrame
        Index: the fit's term labels; columns ``estimate``, ``se``, ``ci_low``, ``ci_high``
        (Wald 95%), ``r_term`` (R's name).
    group_sd, group_corr : pandas.DataFrame
        SDs (``group``, ``term``, ``sd``) and correlations (``group``, ``term1``, ``term2``,
        ``corr``) of the random effects, term names as the fit's.
    nAGQ : int
        Quadrature points (1: Laplace).
    converged : bool
        Optimiser converged with no warning.
    messages : list of str
    loglik, max_grad, cond_hessian, elapsed_s : float
    """

    cutpoints: pd.DataFrame
    fixed: pd.DataFrame
    group_sd: pd.DataFrame
    group_corr: pd.DataFrame
    nAGQ: int
    converged: bool
    messages: list[str]
    loglik: float
    max_grad: float
    cond_hessian: float
    elapsed_s: float
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return "Laplace" if self.nAGQ <= 1 else f"adaptive Gauss-Hermite quadrature ({self.nAGQ} points)"

    def sd(self, group: str, term: str = "Intercept") -> float:
        row = self.group_sd[(self.group_sd["group"] == group) & (self.group_sd["term"] == term)]
        if row.empty:
            raise KeyError(f"no SD for ({term} | {group}) in the clmm result")
        return float(row["sd"].iloc[0])


def clmm_for(fit: Any, *, nAGQ: int | None = None, timeout: float = 1800) -> ClmmResult | Lme4Unavailable:
    """``ordinal::clmm`` of a cumulative (ordinal) fit's model on the fit's own rows.

    The same R bridge as `glmer_for` (CSV and JSON through ``analysis/r/clmm.R``, which
    reads them with ``shared.R``). clmm's model is ``logit P(Y <= k) = theta_k - eta``, the
    fit's own sign convention (cutpoints minus the linear predictor, no intercept), so its
    thresholds and coefficients compare directly with the posterior's ``cutpoints`` and ``b``.
    Quadrature: adaptive Gauss-Hermite with `CLMM_NAGQ` points for one grouping factor
    with a scalar random intercept (the only case clmm allows), Laplace otherwise.

    Parameters
    ----------
    fit : models.Fit
        A fit with ``md.family == "cumulative"``.
    nAGQ : int, optional
        Override the policy.
    timeout : float
        Seconds before R is stopped.

    Returns
    -------
    ClmmResult or Lme4Unavailable
        The latter (a note for renderers) when R or the ordinal package is missing, clmm
        failed, or the model has no group effects.
    """
    md = fit.md
    if md.family != "cumulative":
        raise ValueError(
            f"clmm_for needs a cumulative (ordinal) fit, got family {md.family!r}; use glmer_for"
        )
    if not md.blocks:
        return Lme4Unavailable("clmm comparison skipped: the model has no group effects")
    ok, msg = r_available()
    if not ok:
        return Lme4Unavailable(f"R not available: {msg}")
    if nAGQ is None:
        scalar = len(md.blocks) == 1 and md.blocks[0].terms == ["Intercept"]
        nAGQ = CLMM_NAGQ if scalar else 1
    frame = md.frame.copy()
    response = md.response
    levels = list(md.response_levels)
    frame[response] = pd.Categorical([levels[k] for k in md.y], categories=levels)
    data, types = _prepare_data(frame)
    spec = {"formula": md.glmer_formula, "response": response, "nAGQ": int(nAGQ)}
    what = f"clmm({md.glmer_formula})"
    try:
        raw = run_r_job(CLMM_SCRIPT, data, types, spec, timeout, what, f"while fitting {what}")
    except RNotAvailableError as exc:
        return Lme4Unavailable(f"clmm not available: {exc}")
    except GlmerError as exc:
        if "ordinal" in str(exc) and "package" in str(exc):
            return Lme4Unavailable(f"R package 'ordinal' not available: {exc}")
        return Lme4Unavailable(f"clmm failed: {exc}")
    if "error" in raw:
        return Lme4Unavailable(f"clmm failed in R: {raw['error']}")
    names = glmer_term_names(md)
    fixed = pd.DataFrame(raw["fixed"]) if raw["fixed"] else pd.DataFrame(columns=["r_term", "estimate", "se"])
    fixed["term"] = [names.get(t, t) for t in fixed["r_term"]]
    fixed["ci_low"] = fixed["estimate"] - 1.959963984540054 * fixed["se"]
    fixed["ci_high"] = fixed["estimate"] + 1.959963984540054 * fixed["se"]
    cut = pd.DataFrame(raw["cutpoints"]).rename(columns={"r_term": "cutpoint"}).set_index("cutpoint")
    sds = pd.DataFrame(raw["group_sd"])
    sds["term"] = [names.get(t, "Intercept" if t == "(Intercept)" else t) for t in sds["term"]]
    corr = (
        pd.DataFrame(raw["group_corr"])
        if raw["group_corr"]
        else pd.DataFrame(columns=["group", "term1", "term2", "corr"])
    )
    for c in ("term1", "term2"):
        corr[c] = [names.get(t, "Intercept" if t == "(Intercept)" else t) for t in corr[c]]
    return ClmmResult(
        cutpoints=cut[["estimate", "se"]],
        fixed=fixed.set_index("term")[["estimate", "se", "ci_low", "ci_high", "r_term"]],
        group_sd=sds,
        group_corr=corr,
        nAGQ=int(raw["nAGQ"]),
        converged=bool(raw["converged"]),
        messages=list(raw.get("messages") or []),
        loglik=float(raw["loglik"]),
        max_grad=float(raw["max_grad"]),
        cond_hessian=_float(raw.get("cond_hessian")),
        elapsed_s=float(raw["elapsed_s"]),
        versions={"r": str(raw.get("r_version")), "ordinal": str(raw.get("ordinal_version"))},
    )
