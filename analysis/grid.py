"""Many fits at once: a declarative grid of catalogue fits, run on Dask.

A grid file (TOML) names catalogue entries and the axes to cross with them: subgroups of
the analysis table, prior sets, replicate seeds and sampler settings. Every combination is
one *cell*, one fit. `load_grid` reads and checks the file, `plan_grid` turns it into cells
for one analysis table (refusing a subgroup with no rows or a prior that does not apply),
and `run_grid` fits the cells on a ``dask.distributed`` cluster (a `LocalCluster` of
process workers with one thread each by default, or a running scheduler's address), or
one after another in this process (``scheduler="serial"``).

File layout::

    [grid]
    entries = ["life_satisfaction", "community_wellbeing"]   # catalogue entries
    catalogue = "my_catalogue.toml"   # optional, relative to this file (default: the project's)
    seed = 1                          # grid seed (every cell's sampling seed derives from it)
    replicates = [1, 2]               # optional replicate numbers (default [1])
    n = 4000                          # optional synthetic cohort size (`--n` overrides)
    data_seed = 20240601              # optional seed of the synthetic cohort
    jobs = ["fit", "psense"]          # optional: also power-scaling prior sensitivity per cell

    [subgroups]                       # name = filter on analysis-table columns ("" = everyone)
    everyone = ""
    over50 = "age50 == 1"
    rural_women = "urban == 0 and female == 1"

    [priors.default]                  # a prior set: overrides over the entry's own priors
    [priors.tight_lad]
    sd_lad = "exponential(2)"

    [sampler.default]                 # a sampler set: overrides over the entry's settings
    [sampler.short]
    draws = 500
    tune = 300

Absent tables mean one level: ``everyone``, ``default`` (the catalogue's priors) and
``default`` (the catalogue's sampler settings).

Same answers as serial: a cell's sampling seed depends only on the grid seed and the cell's
entry, subgroup and replicate (`cell_seed`): prior sets and sampler sets of the same
entry, subgroup and replicate share a seed (common random numbers, so a prior-sensitivity
comparison is not blurred by Monte Carlo noise). Which worker fits a cell, in which order,
changes nothing: a grid on Dask gives the same draws as the same cells one by one.

Nothing lost: each finished fit is written to ``<out>/fits/<cell>.nc`` under a temporary
name and renamed when complete, as soon as it finishes; a rerun keeps every complete,
valid fit whose stored ``grid_cell_key`` (formula, priors, sampler settings, seed, rows)
matches. A worker that dies mid-fit has its cell sent to another worker (Dask reschedules
tasks of lost workers; a cell whose workers keep dying is resubmitted up to ``retries``
times). While a cell runs, ``<out>/running/<cell>.json`` names the worker process (host,
pid, start time); it is removed when the fit is written.

Results: ``<out>/grid_results.csv`` has one row per cell and claimed term (cells without
sign claims get one row with an empty term): cell, entry, subgroup, prior set, sampler
set, replicate, seed, the convergence verdict, and the term's posterior odds ratio with
its 95% equal-tailed interval from `analysis.summaries.fixed_effects`.

Prior sensitivity: with ``jobs = ["fit", "psense"]`` every fitted cell also gets
`analysis.sensitivity.prior_sensitivity` (ArviZ's power-scaling psense, computed from the
stored fit, on the same workers), written to ``<out>/sensitivity/<cell>.csv`` (reused on
rerun when the cell key matches) and gathered in ``<out>/grid_sensitivity.csv``: one row
per cell and parameter with the prior and likelihood sensitivities and the flags
(prior-sensitive, likelihood-weak; threshold 0.05).

Worker directories: PyTensor's compile directory and numba's cache directory are set per
worker (``PYTENSOR_FLAGS=compiledir=...``, ``NUMBA_CACHE_DIR``, under ``worker_dirs``)
before the worker process starts, so that no two processes compile into the same folder.
The project's own compiled-model cache (`models.compiled`) is shared: it is written
atomically under a file lock, so workers reuse each other's compiled models.

This module imports neither PyMC nor PyTensor at import time (worker processes must be
able to unpickle its functions before their directories are set).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from distributed import Client

    from analysis.catalogue import Catalogue

#: Sampler settings a sampler set may override (catalogue settings plus ``escalate``).
GRID_SAMPLER_KEYS: dict[str, type | tuple[type, ...]] = {
    "chains": int,
    "draws": int,
    "tune": int,
    "target_accept": float,
    "adaptation": str,
    "escalate": bool,
}
ADAPTATIONS = ("diag", "low_rank", "draw_diag")
_GRID_KEYS = {"entries", "catalogue", "seed", "replicates", "n", "data_seed", "jobs"}
#: Jobs a grid may run on each cell: the fit (always), and power-scaling prior sensitivity.
JOBS = ("fit", "psense")
_TOP_KEYS = {"grid", "subgroups", "priors", "sampler"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CLAUSE = re.compile(
    r"^\s*(?P<col>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>==|!=|<=|>=|<|>)\s*"
    r"(?P<val>-?\d+(?:\.\d+)?|'[^']*'|\"[^\"]*\")\s*$"
)
RESULTS_FILE = "grid_results.csv"
SENSITIVITY_FILE = "grid_sensitivity.csv"


class GridError(ValueError):
    """A grid file is malformed or does not fit the data (the message names the file, key and value)."""


@dataclass(frozen=True)
class GridSpec:
    """A checked grid file.

    Attributes
    ----------
    path : pathlib.Path
        The grid file.
    entries : tuple of str
        Catalogue entries to fit.
    catalogue : pathlib.Path or None
        Catalogue file (None: the project's ``analysis/catalogue.toml``).
    seed : int
        Grid seed.
    replicates : tuple of int
        Replicate numbers (each gives the cell another seed).
    subgroups : dict of str to str
        Subgroup name -> row filter (``""``: every row).
    priors : dict of str to dict
        Prior set name -> overrides by parameter name.
    sampler : dict of str to dict
        Sampler set name -> overrides of sampler settings.
    n : int or None
        Synthetic cohort size.
    data_seed : int or None
        Synthetic cohort seed.
    jobs : tuple of str
        Jobs per cell (`JOBS`): ``("fit",)`` or ``("fit", "psense")``.
    """

    path: Path
    entries: tuple[str, ...]
    catalogue: Path | None
    seed: int
    replicates: tuple[int, ...]
    subgroups: dict[str, str]
    priors: dict[str, dict[str, str]]
    sampler: dict[str, dict[str, Any]]
    n: int | None = None
    data_seed: int | None = None
    jobs: tuple[str, ...] = ("fit",)

    def load_catalogue(self) -> Catalogue:
        """The catalogue the grid's entries come from."""
        from analysis.catalogue import CatalogueError, load_catalogue

        try:
            return load_catalogue(self.catalogue)
        except CatalogueError as exc:
            raise GridError(f"{self.path} [grid] catalogue: {exc}") from None


@dataclass(frozen=True)
class Cell:
    """One fit of a grid: an entry on one subgroup with one prior set, sampler set and replicate.

    Attributes
    ----------
    entry, subgroup, prior_set, sampler_set : str
        The cell's coordinates (names from the grid file).
    replicate : int
        Replicate number.
    seed : int
        Sampling seed (`cell_seed`).
    formula : str
        The entry's formula.
    filter : str
        The subgroup's row filter (``""``: every row).
    priors : dict of str to str
        The entry's priors with the prior set's overrides.
    settings : dict
        Sampler settings: the entry's with the sampler set's overrides.
    terms : tuple of (str, str)
        The entry's sign claims: (term, expected sign).
    key : str
        Hash of everything that determines the draws (`cell_key`); stored in the fit file.
    """

    entry: str
    subgroup: str
    prior_set: str
    sampler_set: str
    replicate: int
    seed: int
    formula: str
    filter: str
    priors: dict[str, str]
    settings: dict[str, Any]
    terms: tuple[tuple[str, str], ...]
    key: str = ""

    @property
    def name(self) -> str:
        """File-name-safe cell id: ``entry__subgroup__priorset__samplerset__r<replicate>``."""
        return f"{self.entry}__{self.subgroup}__{self.prior_set}__{self.sampler_set}__r{self.replicate}"

    def label(self) -> dict[str, Any]:
        """The cell's coordinates as a mapping (stored in the fit and the results table)."""
        return {
            "cell": self.name,
            "entry": self.entry,
            "subgroup": self.subgroup,
            "prior_set": self.prior_set,
            "sampler_set": self.sampler_set,
            "replicate": self.replicate,
            "seed": self.seed,
        }


# --------------------------------------------------------------------------- reading the grid file


def _check_name(name: str, where: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or "__" in name:
        raise GridError(
            f"{where}: name {name!r} must be letters, digits, '_', '.' or '-' (no '__', not empty)"
        )
    return name


def parse_filter(text: str, where: str = "filter") -> list[tuple[str, str, Any]]:
    """Read a subgroup filter: clauses ``column OP value`` joined by ``and``.

    Parameters
    ----------
    text : str
        E.g. ``"age50 == 1 and urban == 0"`` or ``"region == 'London'"``; ``""`` is every row.
        OP is one of ``== != < <= > >=``; a value is a number or a quoted string.
    where : str
        Where the filter comes from, for the error message.

    Returns
    -------
    list of (column, operator, value)

    Raises
    ------
    GridError
        A clause that is not ``column OP value``.
    """
    if not isinstance(text, str):
        raise GridError(f'{where} = {text!r}: a filter is a string such as "age50 == 1"')
    if not text.strip():
        return []
    out = []
    for clause in re.split(r"\s+and\s+|\s*&\s*", text.strip()):
        m = _CLAUSE.match(clause)
        if not m:
            raise GridError(
                f"{where} = {text!r}: clause {clause!r} is not 'column OP value' "
                "(OP one of == != < <= > >=; value a number or a quoted string; clauses joined by 'and')"
            )
        raw = m["val"]
        value: Any = raw[1:-1] if raw[0] in "'\"" else (float(raw) if "." in raw else int(raw))
        out.append((m["col"], m["op"], value))
    return out


def apply_filter(table: pd.DataFrame, text: str, where: str = "filter") -> pd.DataFrame:
    """The rows of ``table`` that satisfy a subgroup filter (`parse_filter`).

    Raises
    ------
    GridError
        A column that is not in the table.
    """
    keep = pd.Series(True, index=table.index)
    ops: dict[str, Callable[[pd.Series, Any], pd.Series]] = {
        "==": lambda s, v: s == v,
        "!=": lambda s, v: s != v,
        "<": lambda s, v: s < v,
        "<=": lambda s, v: s <= v,
        ">": lambda s, v: s > v,
        ">=": lambda s, v: s >= v,
    }
    for col, op, value in parse_filter(text, where):
        if col not in table.columns:
            raise GridError(f"{where} = {text!r}: no column {col!r} in the analysis table")
        try:
            keep &= ops[op](table[col], value).fillna(False).astype(bool)
        except TypeError:
            raise GridError(
                f"{where} = {text!r}: column {col!r} ({table[col].dtype}) cannot be compared with {value!r}"
            ) from None
    return table.loc[keep]


def _table(raw: Mapping[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise GridError(f"{path} [{key}]: must be a table, not {value!r}")
    return value


def load_grid(path: str | os.PathLike) -> GridSpec:
    """Read and check a grid file.

    Parameters
    ----------
    path : path
        A TOML file in the grid layout (module docstring).

    Returns
    -------
    GridSpec

    Raises
    ------
    GridError
        Malformed file; the message names the file, the key and the value.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GridError(f"grid file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise GridError(f"{path}: unknown table(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    grid = _table(raw, "grid", path)
    unknown = set(grid) - _GRID_KEYS
    if unknown:
        raise GridError(f"{path} [grid]: unknown key(s) {sorted(unknown)}; allowed: {sorted(_GRID_KEYS)}")
    entries = grid.get("entries")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, str) for e in entries):
        raise GridError(
            f"{path} [grid] entries = {entries!r}: give a non-empty list of catalogue entry names"
        )
    if len(set(entries)) != len(entries):
        raise GridError(f"{path} [grid] entries = {entries!r}: an entry is named twice")
    for k in ("seed", "n", "data_seed"):
        v = grid.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < (1 if k == "n" else 0)):
            raise GridError(
                f"{path} [grid] {k} = {v!r}: must be a {'positive' if k == 'n' else 'non-negative'} integer"
            )
    reps = grid.get("replicates", [1])
    if (
        not isinstance(reps, list)
        or not reps
        or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in reps)
        or len(set(reps)) != len(reps)
    ):
        raise GridError(f"{path} [grid] replicates = {reps!r}: give a list of distinct non-negative integers")
    jobs = grid.get("jobs", ["fit"])
    if (
        not isinstance(jobs, list)
        or not jobs
        or not all(isinstance(j, str) and j in JOBS for j in jobs)
        or len(set(jobs)) != len(jobs)
    ):
        raise GridError(f"{path} [grid] jobs = {jobs!r}: give a list of distinct jobs from {list(JOBS)}")
    catalogue = grid.get("catalogue")
    if catalogue is not None:
        if not isinstance(catalogue, str) or not catalogue.strip():
            raise GridError(f"{path} [grid] catalogue = {catalogue!r}: give a file name")
        catalogue = Path(catalogue) if Path(catalogue).is_absolute() else path.parent / catalogue
        if not catalogue.exists():
            raise GridError(
                f"{path} [grid] catalogue = {grid['catalogue']!r}: file {catalogue} does not exist"
            )

    subgroups = _table(raw, "subgroups", path) or {"everyone": ""}
    for name, text in subgroups.items():
        _check_name(name, f"{path} [subgroups]")
        parse_filter(text, f"{path} [subgroups] {name}")

    priors = _table(raw, "priors", path) or {"default": {}}
    for name, overrides in priors.items():
        where = f"{path} [priors.{_check_name(name, f'{path} [priors]')}]"
        if not isinstance(overrides, dict):
            raise GridError(f'{where}: must be a table of NAME = "distribution", not {overrides!r}')
        for k, v in overrides.items():
            if not isinstance(v, str) or not v.strip():
                raise GridError(f'{where} {k} = {v!r}: a prior is a string such as "exponential(2)"')

    sampler = _table(raw, "sampler", path) or {"default": {}}
    for name, overrides in sampler.items():
        where = f"{path} [sampler.{_check_name(name, f'{path} [sampler]')}]"
        if not isinstance(overrides, dict):
            raise GridError(f"{where}: must be a table of sampler settings, not {overrides!r}")
        for k, v in overrides.items():
            want = GRID_SAMPLER_KEYS.get(k)
            if want is None:
                raise GridError(f"{where}: unknown setting {k!r}; allowed: {sorted(GRID_SAMPLER_KEYS)}")
            ok = isinstance(v, want) and (want is bool or not isinstance(v, bool))
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                ok = True
            if k == "target_accept" and not (ok and 0 < v < 1):
                raise GridError(f"{where} {k} = {v!r}: must be a number between 0 and 1")
            if k == "adaptation" and v not in ADAPTATIONS:
                raise GridError(f"{where} {k} = {v!r}: must be one of {ADAPTATIONS}")
            low = 0 if k == "tune" else 1
            if not ok or (want is int and v < low):
                what = f"an integer >= {low}" if want is int else want.__name__
                raise GridError(f"{where} {k} = {v!r}: must be {what}")

    spec = GridSpec(
        path=path,
        entries=tuple(entries),
        catalogue=catalogue,
        seed=int(grid.get("seed", 1)),
        replicates=tuple(int(r) for r in reps),
        subgroups={str(k): str(v) for k, v in subgroups.items()},
        priors={str(k): {str(a): str(b) for a, b in v.items()} for k, v in priors.items()},
        sampler={str(k): dict(v) for k, v in sampler.items()},
        n=grid.get("n"),
        data_seed=grid.get("data_seed"),
        jobs=tuple(j for j in JOBS if j == "fit" or j in jobs),
    )
    from analysis.catalogue import CatalogueError

    try:
        spec.load_catalogue().select(spec.entries)
    except CatalogueError as exc:
        raise GridError(f"{path} [grid] entries = {entries!r}: {exc}") from None
    return spec


# --------------------------------------------------------------------------- cells


def cell_seed(grid_seed: int, entry: str, subgroup: str, replicate: int) -> int:
    """Sampling seed of a cell: a stable hash of the grid seed, entry, subgroup and replicate.

    Prior sets and sampler sets do not enter it (common random numbers across them).
    """
    text = json.dumps([int(grid_seed), entry, subgroup, int(replicate)])
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % (2**31 - 1)


def cell_key(cell: Cell, data_fingerprint: str) -> str:
    """Hash of everything that determines a cell's draws (reuse is allowed only on a match)."""
    spec = {
        "formula": cell.formula,
        "filter": cell.filter,
        "priors": dict(sorted(cell.priors.items())),
        "settings": dict(sorted(cell.settings.items())),
        "seed": int(cell.seed),
        "data": data_fingerprint,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:20]


def plan_grid(spec: GridSpec, table: pd.DataFrame) -> list[Cell]:
    """Every cell of a grid for one analysis table, in a fixed order, with its key.

    Checks what can only be checked with the data: the entries exist, each subgroup has
    rows, each entry's formula can be built on each subgroup (e.g. a subgroup ``age50 == 1``
    makes ``age50`` constant) and each prior set's names apply to the entry's model.

    Parameters
    ----------
    spec : GridSpec
    table : pandas.DataFrame
        The analysis table.

    Returns
    -------
    list of Cell

    Raises
    ------
    GridError
        Naming the grid file, the key and the value (and the entry).
    """
    from analysis.catalogue import CatalogueError, fit_settings
    from models import FormulaError, PriorError
    from models.formula import build_model_data
    from models.priors import resolve_priors

    catalogue = spec.load_catalogue()
    try:
        entries = catalogue.select(spec.entries)
    except CatalogueError as exc:
        raise GridError(f"{spec.path} [grid] entries: {exc}") from None
    entries.sort(key=lambda e: spec.entries.index(e.name))
    cells: list[Cell] = []
    for entry in entries:
        for sub, text in spec.subgroups.items():
            where = f"{spec.path} [subgroups] {sub}"
            rows = apply_filter(table, text, where)
            if rows.empty:
                raise GridError(f"{where} = {text!r}: no rows of the analysis table")
            try:
                md = build_model_data(entry.formula, rows)
            except FormulaError as exc:
                raise GridError(
                    f"{where} = {text!r}: entry {entry.name!r} cannot be fitted there: {exc}"
                ) from None
            fingerprint = md.fingerprint()
            for pset, overrides in spec.priors.items():
                priors = {**entry.priors, **overrides}
                try:
                    resolve_priors(md, priors or None)
                except PriorError as exc:
                    raise GridError(f"{spec.path} [priors.{pset}] for entry {entry.name!r}: {exc}") from None
                for sset, settings in spec.sampler.items():
                    for rep in spec.replicates:
                        cell = Cell(
                            entry=entry.name,
                            subgroup=sub,
                            prior_set=pset,
                            sampler_set=sset,
                            replicate=rep,
                            seed=cell_seed(spec.seed, entry.name, sub, rep),
                            formula=entry.formula,
                            filter=text,
                            priors=priors,
                            settings=fit_settings(entry.sampler, settings),
                            terms=tuple((c.term, c.expect) for c in entry.claims if c.term),
                        )
                        cells.append(replace(cell, key=cell_key(cell, fingerprint)))
    return cells


def cell_path(out: str | os.PathLike, cell: Cell) -> Path:
    """Where a cell's fit is written: ``<out>/fits/<cell name>.nc``."""
    return Path(out) / "fits" / f"{cell.name}.nc"


def reusable(path: Path, key: str) -> bool:
    """A complete, valid fit file whose stored ``grid_cell_key`` is ``key``."""
    from models import FitFileError, load_fit

    if not path.exists():
        return False
    try:
        f = load_fit(path)
    except FitFileError:
        return False
    return f.attrs.get("grid_cell_key") == key


# --------------------------------------------------------------------------- fitting one cell


def fit_cell(cell: Cell, table: pd.DataFrame, out: str | os.PathLike, cores: int | None = 1) -> list[dict]:
    """Fit one cell, write it atomically, and return its rows of the results table.

    Runs wherever it is called: in a Dask worker or in this process (the same draws).

    Parameters
    ----------
    cell : Cell
    table : pandas.DataFrame
        The whole analysis table (the cell's filter is applied here).
    out : path
        Grid run folder (the fit goes to `cell_path`).
    cores : int, optional
        Chains sampled at once (does not change the draws).

    Returns
    -------
    list of dict
        `cell_rows` of the fit.
    """
    import warnings

    from models import fit
    from models.formula import build_model_data

    out = Path(out)
    path = cell_path(out, cell)
    marker = out / "running" / f"{cell.name}.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}))
    md = build_model_data(cell.formula, apply_filter(table, cell.filter, f"subgroup {cell.subgroup}"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = fit(
            cell.formula,
            md,
            priors=cell.priors or None,
            seed=cell.seed,
            cores=cores,
            progressbar=False,
            **cell.settings,
        )
    f.attrs.update({"grid_cell_key": cell.key, "grid_cell": json.dumps(cell.label())})
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{time.time_ns()}.tmp")
    f.save(tmp)  # Fit.save itself writes <tmp>.partial and renames it to tmp
    os.replace(tmp, path)
    marker.unlink(missing_ok=True)
    return cell_rows(cell, f)


def cell_rows(cell: Cell, fit: Any) -> list[dict]:
    """One results row per claimed term of a cell (one row with an empty term when none).

    Odds ratios and intervals come from `analysis.summaries.fixed_effects` (95% ETI,
    `analysis.summaries.DEFAULT_PROB`); ``rows`` is the number of rows the fit used.
    """
    from analysis.summaries import DEFAULT_PROB, fixed_effects, interval_columns

    low, high = interval_columns("eti", DEFAULT_PROB, "or_")
    base = {
        **cell.label(),
        "key": cell.key,
        "rows": int(fit.md.n_obs),
        "converged": bool(fit.converged),
        "verdict": fit.headline,
    }
    if not cell.terms:
        return [{**base, "term": "", "expect": ""}]
    fe = fixed_effects(fit, DEFAULT_PROB, quiet=True).set_index("term")
    rows = []
    for term, expect in cell.terms:
        row = {**base, "term": term, "expect": expect}
        if term in fe.index:
            r = fe.loc[term]
            row.update({"or_median": r["or_median"], low: r[low], high: r[high], "p_or_gt_1": r["p_or_gt_1"]})
        rows.append(row)
    return rows


def sensitivity_path(out: str | os.PathLike, cell: Cell) -> Path:
    """Where a cell's prior sensitivity table is written: ``<out>/sensitivity/<cell name>.csv``."""
    return Path(out) / "sensitivity" / f"{cell.name}.csv"


def sensitivity_reusable(path: Path, key: str) -> bool:
    """A complete sensitivity table of the cell whose fit has key ``key``."""
    if not path.exists():
        return False
    try:
        old = pd.read_csv(path)
    except (ValueError, OSError):
        return False
    return not old.empty and "key" in old and (old["key"].astype(str) == key).all()


def sensitivity_cell(cell: Cell, out: str | os.PathLike) -> list[dict]:
    """Power-scaling prior sensitivity of a cell's stored fit, written atomically.

    Runs wherever it is called (a Dask worker or this process), after the cell's fit has
    been written (`fit_cell`).

    Parameters
    ----------
    cell : Cell
    out : path
        Grid run folder: the fit is read from `cell_path`, the table written to
        `sensitivity_path`.

    Returns
    -------
    list of dict
        One row per parameter: the cell's coordinates, its key and the columns of
        `analysis.sensitivity.prior_sensitivity`.
    """
    from analysis.files import write_text_atomic
    from analysis.sensitivity import prior_sensitivity
    from models import load_fit

    table = prior_sensitivity(load_fit(cell_path(out, cell)))
    for k, v in reversed([*cell.label().items(), ("key", cell.key)]):
        table.insert(0, k, v)
    path = sensitivity_path(out, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, table.to_csv(index=False))
    return table.to_dict("records")


# --------------------------------------------------------------------------- Dask


def worker_dirs(base: str | os.PathLike, name: str | int) -> dict[str, str]:
    """Environment of one worker: its own PyTensor compile directory and numba cache.

    Parameters
    ----------
    base : path
        Folder that holds one sub-folder per worker name.
    name : str or int
        The worker's name (a restarted worker keeps its name, and its folders).

    Returns
    -------
    dict of str to str
        ``PYTENSOR_FLAGS`` (``compiledir=...``, appended to any flags already set) and
        ``NUMBA_CACHE_DIR``.
    """
    root = Path(base).expanduser().resolve() / f"worker-{name}"
    flags = [
        f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("compiledir=")
    ]
    return {
        "PYTENSOR_FLAGS": ",".join([*flags, f"compiledir={root / 'pytensor'}"]),
        "NUMBA_CACHE_DIR": str(root / "numba"),
    }


def default_worker_base() -> Path:
    """Default parent of the per-worker folders: ``grid-workers`` in the project's cache folder."""
    from models.compiled import cache_dir

    return cache_dir() / "grid-workers"


def local_cluster(workers: int = 2, base: str | os.PathLike | None = None, **kwargs: Any) -> Any:
    """A `distributed.LocalCluster` of process workers, one thread each, own compile folders.

    Each worker's ``PYTENSOR_FLAGS`` and ``NUMBA_CACHE_DIR`` (`worker_dirs`) are set in its
    environment before its process starts (a restarted worker gets them again), and worker
    processes start one at a time so that one worker's environment never leaks into another.

    Parameters
    ----------
    workers : int
        Number of worker processes.
    base : path, optional
        Parent of the per-worker folders (default `default_worker_base`).
    **kwargs
        Passed to `LocalCluster` (e.g. ``dashboard_address=":8787"``).

    Returns
    -------
    distributed.LocalCluster
    """
    import asyncio

    from distributed import LocalCluster, Nanny

    root = Path(base) if base is not None else default_worker_base()
    lock: dict[str, asyncio.Lock] = {}

    class GridNanny(Nanny):
        """A nanny that starts its worker with that worker's own compile folders."""

        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            dirs = worker_dirs(root, self.name)
            self.pre_spawn_env = {**self.pre_spawn_env, **dirs}
            self.env = {**self.env, **dirs}

        async def instantiate(self) -> Any:
            guard = lock.setdefault("spawn", asyncio.Lock())
            async with guard:
                saved = {k: os.environ.get(k) for k in self.pre_spawn_env}
                try:
                    return await super().instantiate()
                finally:
                    for k, v in saved.items():
                        if v is None:
                            os.environ.pop(k, None)
                        else:
                            os.environ[k] = v

    kwargs.setdefault("dashboard_address", ":0")
    kwargs.setdefault("silence_logs", 40)
    return LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, worker_class=GridNanny, **kwargs
    )


@dataclass
class GridRun:
    """Outcome of `run_grid`.

    Attributes
    ----------
    cells : list of Cell
    results : pandas.DataFrame
        The results table (also written to ``<out>/grid_results.csv``).
    fitted, reused : list of str
        Cell names fitted in this run, and kept from an earlier one.
    failed : dict of str to str
        Cells that raised an error (after ``retries``), with the error; they have no fit
        and no rows in the results table, and a rerun tries them again.
    resubmitted : int
        Cells sent again after their workers died.
    seconds : float
        Wall time.
    out : pathlib.Path
    sensitivity : pandas.DataFrame
        With the ``psense`` job: the prior sensitivity table (also written to
        ``<out>/grid_sensitivity.csv``); empty otherwise.
    """

    cells: list[Cell]
    results: pd.DataFrame
    fitted: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    resubmitted: int = 0
    seconds: float = 0.0
    out: Path = Path(".")
    sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)


def run_grid(
    spec: GridSpec | str | os.PathLike,
    out: str | os.PathLike,
    *,
    table: pd.DataFrame | None = None,
    n: int | None = None,
    scheduler: str = "local",
    workers: int = 2,
    client: Client | None = None,
    retries: int = 2,
    reuse: bool = True,
    worker_base: str | os.PathLike | None = None,
    cluster_options: Mapping[str, Any] | None = None,
    cores_per_fit: int = 1,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> GridRun:
    """Fit every cell of a grid, on Dask or in this process, into ``out``.

    Parameters
    ----------
    spec : GridSpec or path
        The grid (a file is read with `load_grid`).
    out : path
        Run folder: ``fits/<cell>.nc``, ``grid_results.csv``.
    table : pandas.DataFrame, optional
        The analysis table; default the synthetic cohort, ``data.prepare.prepare(n=...)``
        with ``n`` (or the grid's ``n``, else 25,000) and the grid's ``data_seed``. It is
        prepared here once and sent to the workers once (Parquet bytes in one task).
    n : int, optional
        Synthetic cohort size (overrides the grid's).
    scheduler : str
        ``"local"``: a `local_cluster` of ``workers`` processes; ``"serial"``: one cell after
        another in this process, no Dask; otherwise a scheduler address
        (``tcp://host:8786``) of a running cluster.
    workers : int
        Worker processes of the local cluster.
    client : distributed.Client, optional
        Use this client (and its cluster) instead of ``scheduler``.
    retries : int
        Times a failed cell is tried again (Dask ``retries``), and times a cell whose
        workers keep dying is resubmitted.
    reuse : bool
        Keep complete, valid fits with the same cell key.
    worker_base : path, optional
        Parent of the per-worker compile folders of a local cluster.
    cluster_options : mapping, optional
        More options of the local cluster (e.g. ``{"dashboard_address": ":8787"}``).
    cores_per_fit : int
        Chains a worker samples at once (default 1: one thread per worker; raise it where
        each worker has several cores, e.g. a batch job of 4 CPUs). The draws do not change.
        The serial mode samples a fit's chains on all cores.
    progress : bool
        A progress bar over cells.
    log : callable
        Messages.

    Returns
    -------
    GridRun
    """
    t0 = time.time()
    spec = spec if isinstance(spec, GridSpec) else load_grid(spec)
    out = Path(out)
    if table is None:
        from data.prepare import DEFAULT_SEED, prepare

        size = n or spec.n or 25_000
        table, _ = prepare(n=size, seed=spec.data_seed if spec.data_seed is not None else DEFAULT_SEED)
    cells = plan_grid(spec, table)
    todo = [c for c in cells if not (reuse and reusable(cell_path(out, c), c.key))]
    reused = [c.name for c in cells if c not in todo]
    log(f"grid {spec.path}: {len(cells)} cells, {len(reused)} complete and reused, {len(todo)} to fit")
    rows: dict[str, list[dict]] = {}
    failed: dict[str, str] = {}
    sens: dict[str, list[dict]] = {}
    resubmitted = 0
    psense = "psense" in spec.jobs
    from contextlib import ExitStack

    with ExitStack() as stack:
        dask_client = None
        stale = psense and any(
            not (reuse and sensitivity_reusable(sensitivity_path(out, c), c.key)) for c in cells
        )
        if todo or stale:
            if not (scheduler == "serial" and client is None):
                dask_client = _dask_client(
                    stack, scheduler, workers, client, worker_base, cluster_options, log
                )
        if todo:
            if dask_client is None:
                rows, failed = _run_serial(todo, fit_cell, (table, out), {"cores": None}, progress, log)
            else:
                data = _scatter_table(dask_client, table)
                rows, failed, resubmitted = _run_dask(
                    dask_client, todo, fit_cell, (data, str(out), cores_per_fit), retries, progress, log
                )
        if psense:
            fitted_ok = [c for c in cells if c.name not in failed]
            ps_todo = [
                c for c in fitted_ok if not (reuse and sensitivity_reusable(sensitivity_path(out, c), c.key))
            ]
            log(f"prior sensitivity (psense): {len(ps_todo)} of {len(fitted_ok)} cells to compute")
            if ps_todo and dask_client is None:
                done, ps_failed = _run_serial(ps_todo, sensitivity_cell, (out,), {}, progress, log)
            elif ps_todo:
                done, ps_failed, more = _run_dask(
                    dask_client, ps_todo, sensitivity_cell, (str(out),), retries, progress, log
                )
                resubmitted += more
            else:
                done, ps_failed = {}, {}
            sens.update(done)
            failed.update({k: f"psense: {v}" for k, v in ps_failed.items()})
            for c in fitted_ok:
                if c.name not in sens and c.name not in ps_failed:
                    sens[c.name] = pd.read_csv(sensitivity_path(out, c)).to_dict("records")
    if reused:
        from models import load_fit

        for c in cells:
            if c.name in reused:
                rows[c.name] = cell_rows(c, load_fit(cell_path(out, c)))
    results = pd.DataFrame([r for c in cells if c.name in rows for r in rows[c.name]])
    out.mkdir(parents=True, exist_ok=True)
    from analysis.files import write_text_atomic

    write_text_atomic(out / RESULTS_FILE, results.to_csv(index=False))
    sensitivity = pd.DataFrame([r for c in cells if c.name in sens for r in sens[c.name]])
    if psense:
        write_text_atomic(out / SENSITIVITY_FILE, sensitivity.to_csv(index=False))
    fitted = [c.name for c in todo if c.name in rows]
    run = GridRun(cells, results, fitted, reused, failed, resubmitted, time.time() - t0, out, sensitivity)
    log(
        f"grid done in {run.seconds:.0f} s: {len(fitted)} fitted, {len(reused)} reused, "
        f"{len(failed)} failed; {out / RESULTS_FILE}"
    )
    if psense and not sensitivity.empty:
        flagged = sensitivity[sensitivity["flagged"].astype(bool)]
        log(
            f"prior sensitivity: {len(flagged)} of {len(sensitivity)} cell parameters flagged "
            f"(prior sensitivity >= 0.05); {out / SENSITIVITY_FILE}"
        )
    for name, why in failed.items():
        log(f"  FAILED {name}: {why}")
    return run


def run_tasks(
    task: Callable[..., Any],
    items: list[Any],
    args: tuple = (),
    *,
    scheduler: str = "local",
    workers: int = 2,
    client: Client | None = None,
    retries: int = 2,
    worker_base: str | os.PathLike | None = None,
    cluster_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Run ``task(item, *args)`` for every item, on the grid's Dask set-up or in this process.

    The runner of `run_grid` for work that is not a catalogue fit (e.g. the replicates of
    `analysis.calibration`): the same local cluster (one-thread process workers with their
    own compile folders), scheduler addresses, retries and resubmission of items whose
    workers died.

    Parameters
    ----------
    task : callable
        Importable function (workers unpickle it by name) of an item and ``args``.
    items : list
        Objects with a unique ``name`` and a ``key`` (str) attribute.
    args : tuple
        More arguments of every call (sent with each task).
    scheduler, workers, client, retries, worker_base, cluster_options, progress, log
        As in `run_grid`.

    Returns
    -------
    results : dict of str to object
        By item name, what ``task`` returned.
    failed : dict of str to str
        By item name, the error of items that failed.
    """
    from contextlib import ExitStack

    if scheduler == "serial" and client is None:
        return _run_serial(items, task, args, {}, progress, log)
    with ExitStack() as stack:
        dask_client = _dask_client(stack, scheduler, workers, client, worker_base, cluster_options, log)
        rows, failed, _ = _run_dask(dask_client, items, task, args, retries, progress, log)
    return rows, failed


def table_bytes(table: pd.DataFrame) -> bytes:
    """The analysis table as Parquet bytes (exact for numbers, keeps categories)."""
    import io

    buf = io.BytesIO()
    table.to_parquet(buf)
    return buf.getvalue()


def table_from_bytes(blob: bytes) -> pd.DataFrame:
    """The table that `table_bytes` wrote."""
    import io

    return pd.read_parquet(io.BytesIO(blob))


def _bar(total: int, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="cell", desc="grid", disable=not progress)


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _run_serial(
    todo: list[Cell],
    task: Callable[..., list[dict]],
    args: tuple,
    kwargs: dict[str, Any],
    progress: bool,
    log: Callable[[str], None],
) -> tuple[dict[str, list[dict]], dict[str, str]]:
    rows, failed = {}, {}
    with _bar(len(todo), progress) as bar:
        for c in todo:
            try:
                rows[c.name] = task(c, *args, **kwargs)
            except Exception as exc:  # one failed cell does not stop the grid
                failed[c.name] = _failure(exc)
                log(f"cell {c.name} failed: {failed[c.name]}")
            bar.update()
    return rows, failed


def _dask_client(
    stack: Any,
    scheduler: str,
    workers: int,
    client: Client | None,
    worker_base: str | os.PathLike | None,
    cluster_options: Mapping[str, Any] | None,
    log: Callable[[str], None],
) -> Client:
    """The given client, or one to a new local cluster or a running scheduler (closed with ``stack``)."""
    from distributed import Client

    if client is not None:
        return client
    if scheduler == "local":
        cluster = stack.enter_context(local_cluster(workers, worker_base, **(cluster_options or {})))
        client = stack.enter_context(Client(cluster))
    else:
        client = stack.enter_context(Client(scheduler))
    n_workers = len(client.scheduler_info()["workers"])
    log(f"dask: {n_workers} workers; dashboard {client.dashboard_link or 'off'}")
    return client


def _scatter_table(client: Client, table: pd.DataFrame) -> Any:
    # The table travels once, as Parquet bytes inside a task rather than scattered data:
    # the scheduler can then rebuild it on another worker when a worker holding it dies.
    blob = table_bytes(table)
    return client.submit(table_from_bytes, blob, key=f"grid-table-{hashlib.sha256(blob).hexdigest()[:16]}")


def _run_dask(
    client: Client,
    todo: list[Cell],
    task: Callable[..., list[dict]],
    args: tuple,
    retries: int,
    progress: bool,
    log: Callable[[str], None],
) -> tuple[dict[str, list[dict]], dict[str, str], int]:
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    by_key: dict[str, Cell] = {}
    tries: dict[str, int] = {}
    kind = task.__name__.removesuffix("_cell").replace("_", "-")

    def submit(c: Cell) -> Any:
        fut = client.submit(
            task,
            c,
            *args,
            key=f"{kind}-{c.name}-{c.key[:8]}-{tries.get(c.name, 0)}",
            retries=retries,
        )
        by_key[fut.key] = c
        return fut

    futures = [submit(c) for c in todo]
    rows: dict[str, list[dict]] = {}
    failed: dict[str, str] = {}
    resubmitted = 0
    pending = as_completed(futures)
    with _bar(len(todo), progress) as bar:
        for fut in pending:
            c = by_key[fut.key]
            try:
                rows[c.name] = fut.result()
            except KilledWorker as exc:
                if tries.get(c.name, 0) < retries:
                    tries[c.name] = tries.get(c.name, 0) + 1
                    resubmitted += 1
                    log(f"cell {c.name}: its workers died; resubmitted ({tries[c.name]}/{retries})")
                    pending.add(submit(c))
                    continue
                failed[c.name] = _failure(exc)
            except Exception as exc:  # one failed cell does not stop the grid
                failed[c.name] = _failure(exc)
                log(f"cell {c.name} failed: {failed[c.name]}")
            bar.update()
    return rows, failed, resubmitted
