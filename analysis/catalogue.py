"""The model catalogue: the study's analyses as declarative entries, and their runner.

The entries live in ``analysis/catalogue.toml`` (one ``[[model]]`` per analysis: outcome,
formula, priors, sampler settings, and the findings it tests as claims). This module reads
and checks that file, fits entries into a run folder (skipping fits that are already
complete and valid for the same data and settings), and caches the lme4 fits beside them.

Run folder layout::

    <out>/fits/<name>.nc       NetCDF fit (written to a temporary name, then renamed)
    <out>/lme4/<name>.json     glmer estimates for the same rows (same write discipline)

A fit is reused only when its stored ``catalogue_key`` (formula, priors, sampler settings,
seed and data fingerprint) equals the key the entry would get now, and it loads cleanly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import tomllib
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.files import write_text_atomic
from analysis.summaries import parse_statement, statement_term
from models import Fit, FitFileError, fit, load_fit
from models.formula import FormulaError, build_model_data, parse_formula, split_level

CATALOGUE_PATH = Path(__file__).with_name("catalogue.toml")

#: Sampler settings an entry may set (and their types). ``ess``: the bulk and tail ESS asked
#: for on every parameter (`models.fit`'s ``ess``; the run stops when the gate passes with it).
SAMPLER_KEYS = {
    "chains": int,
    "draws": int,
    "tune": int,
    "target_accept": float,
    "adaptation": str,
    "ess": (int, float),
}


def fit_settings(
    entry_sampler: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An entry's sampler settings with a run's overrides (``--draws`` ...) applied.

    An explicit number of draws replaces the entry's ESS target: the fit then draws exactly
    that many (more only by escalation) and the gate keeps its own ESS threshold, so a smoke
    run with few draws is not held to the catalogue's ESS.
    """
    out = {**entry_sampler, **(overrides or {})}
    if overrides and "draws" in overrides and "ess" not in overrides:
        out.pop("ess", None)
    return out


_ENTRY_KEYS = {"name", "title", "outcome", "formula", "truth", "headline", "family", "priors", "sampler"}
_ENTRY_KEYS |= {"claims", "note"}
_CLAIM_KEYS = {"finding", "term", "expect", "statement", "says"}

#: Findings of the study (docs/study.md); 0 = beyond the study.
FINDINGS = {
    0: "Beyond the study: interactions between community-level predictors",
    1: "Area volunteering and unemployment with community and individual wellbeing",
    2: "Area turnout with individual wellbeing",
    3: "Area income with individual wellbeing",
    4: "Urban residents' community wellbeing, and urban x turnout",
    5: "Walkable assets, with and without perceived safety",
    6: "Different people, same place: cross-level interactions",
    7: "Mechanisms: belonging and loneliness versus local friendships",
}


class CatalogueError(ValueError):
    """The catalogue file is malformed (the message names the file, entry and key)."""


class ManifestError(ValueError):
    """A run manifest cannot be read or repeated (the message names the file)."""


@dataclass(frozen=True)
class Claim:
    """One tested statement of a catalogue entry.

    Attributes
    ----------
    finding : int
        Number of the study's finding (`FINDINGS`).
    term : str or None
        Fixed-effect term whose sign is claimed (``"a:b"`` for interactions).
    expect : {"+", "-", "0"} or None
        Expected sign; ``"0"`` means no association (the 95% interval includes zero).
    statement : str or None
        A probability statement instead, e.g. ``"abs(belonging) > abs(local_friends)"``.
    says : str
        The claim in plain words (optional in the file).
    """

    finding: int
    term: str | None = None
    expect: str | None = None
    statement: str | None = None
    says: str = ""


@dataclass(frozen=True)
class Entry:
    """One analysis of the catalogue."""

    name: str
    title: str
    outcome: str
    formula: str
    claims: tuple[Claim, ...]
    sampler: dict[str, Any]
    priors: dict[str, str] = field(default_factory=dict)
    truth: str | None = None
    headline: bool = False
    family: str = ""
    note: str = ""

    @property
    def findings(self) -> list[int]:
        """Findings this entry tests, sorted."""
        return sorted({c.finding for c in self.claims})

    def seed(self, base: int) -> int:
        """Sampling seed of this entry: stable per name, whatever else runs alongside it."""
        return (int(base) * 1_000_003 + zlib.crc32(self.name.encode())) % (2**31 - 1)

    def key(self, data_fingerprint: str, seed: int, sampler: Mapping[str, Any] | None = None) -> str:
        """Hash of everything that determines this entry's posterior draws."""
        spec = {
            "formula": self.formula,
            "priors": dict(sorted(self.priors.items())),
            "sampler": dict(sorted((sampler or self.sampler).items())),
            "seed": int(seed),
            "data": data_fingerprint,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


#: Keys of a ``[[twin]]`` table and the non-linear curves a tipping-point twin may use.
_TWIN_KEYS = {"of", "spillover", "tipping_point", "curve", "note"}
TWIN_CURVES = ("hinge", "smooth")
_RANDOM_INTERCEPT = re.compile(r"\(\s*1\s*\|\s*lad\s*\)")


@dataclass(frozen=True)
class Twin:
    """The spillover and tipping-point twins of one catalogue entry (``[[twin]]``).

    Attributes
    ----------
    of : str
        The entry it twins; its formula has exactly one LA term, ``(1 | lad)``.
    spillover : bool
        Fit the entry with ``(1 | lad)`` replaced by ``car(lad, type = "bym2")``.
    tipping_point : str or None
        An area factor of the formula to give a non-linear curve; the curve is fitted on the
        factor's published units (``<factor>_raw``) where the table has them.
    curve : {"hinge", "smooth"}
        The tipping-point curve (`models.area_curves`).
    note : str
    """

    of: str
    spillover: bool = True
    tipping_point: str | None = None
    curve: str = "hinge"
    note: str = ""

    def spillover_formula(self, entry: Entry) -> str:
        """The entry's formula with its exchangeable LA intercept replaced by BYM2."""
        return _RANDOM_INTERCEPT.sub('car(lad, type = "bym2")', entry.formula)

    def curve_factor(self, columns: Iterable[str]) -> str:
        """The column the curve is fitted on: ``<factor>_raw`` when present, else the factor."""
        raw = f"{self.tipping_point}_raw"
        return raw if raw in set(columns) else str(self.tipping_point)

    def curve_formula(self, entry: Entry, columns: Iterable[str]) -> str:
        """The entry's formula with the factor in the units the curve is fitted on."""
        factor = self.curve_factor(columns)
        return re.sub(rf"\b{re.escape(str(self.tipping_point))}\b", factor, entry.formula)


@dataclass
class Catalogue:
    """All entries, the defaults they were merged with, and plain-language labels."""

    entries: list[Entry]
    labels: dict[str, str]
    defaults: dict[str, Any]
    path: Path
    twins: list[Twin] = field(default_factory=list)

    def twins_of(self, names: Iterable[str]) -> list[Twin]:
        """The twins of the named entries, in catalogue order."""
        wanted = set(names)
        return [t for t in self.twins if t.of in wanted]

    def __getitem__(self, name: str) -> Entry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(f"no entry {name!r} in {self.path}; entries: {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def select(self, names: Iterable[str] | None = None, *, headline_only: bool = False) -> list[Entry]:
        """Entries by name (in catalogue order), or the headline ones, or all."""
        if names is not None:
            wanted = list(names)
            unknown = [n for n in wanted if n not in self.names]
            if unknown:
                raise CatalogueError(
                    f"{self.path}: no entry named {', '.join(map(repr, unknown))}; "
                    f"entries: {', '.join(self.names)}"
                )
            return [e for e in self.entries if e.name in wanted]
        return [e for e in self.entries if e.headline or not headline_only]

    def label(self, column: str) -> str:
        """Plain-language name of a column (the column itself when none is given)."""
        return self.labels.get(column, column.replace("_", " "))


def _normalise_formula(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _is_term(name: str, terms: list[str]) -> bool:
    """A fixed term of the formula, or one level's column of a factor term (``education[degree]``,
    ``urban[Y]:age``); which levels exist is known only with the data, when findings are read."""
    return name in terms or split_level(name) in terms


def _claim(raw: Mapping[str, Any], where: str, terms: list[str]) -> Claim:
    unknown = set(raw) - _CLAIM_KEYS
    if unknown:
        raise CatalogueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_CLAIM_KEYS)}")
    finding = raw.get("finding")
    if not isinstance(finding, int) or finding not in FINDINGS:
        raise CatalogueError(f"{where}: finding = {finding!r} is not one of {sorted(FINDINGS)}")
    term, statement, expect = raw.get("term"), raw.get("statement"), raw.get("expect")
    if (term is None) == (statement is None):
        raise CatalogueError(f"{where}: give exactly one of 'term' (with 'expect') or 'statement'")
    if term is not None:
        if expect not in ("+", "-", "0"):
            raise CatalogueError(f"{where}: expect = {expect!r} must be '+', '-' or '0' for term {term!r}")
        if not _is_term(term, terms):
            raise CatalogueError(f"{where}: term {term!r} is not a fixed term of the formula; terms: {terms}")
    else:
        try:
            operands = parse_statement(statement)
        except ValueError as exc:
            raise CatalogueError(f"{where}: {exc}") from None
        for t in map(statement_term, operands):
            if t is not None and not _is_term(t, terms):
                raise CatalogueError(
                    f"{where}: statement {statement!r} uses {t!r}, not a term of the formula"
                )
    return Claim(int(finding), term, expect, statement, str(raw.get("says", "")))


def load_catalogue(path: str | os.PathLike | None = None) -> Catalogue:
    """Read and check a catalogue file (default: the project's ``analysis/catalogue.toml``).

    Parameters
    ----------
    path : path, optional
        A TOML file in the catalogue's layout.

    Returns
    -------
    Catalogue

    Raises
    ------
    CatalogueError
        Malformed file; the message names the file, the entry and the key.
    """
    path = Path(path) if path is not None else CATALOGUE_PATH
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogueError(f"catalogue file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path}: not valid TOML ({exc})") from None
    defaults = dict(raw.get("defaults", {}))
    for k, v in defaults.items():
        if k not in SAMPLER_KEYS or not isinstance(v, SAMPLER_KEYS[k]):
            raise CatalogueError(f"{path} [defaults]: {k} = {v!r} is not a sampler setting {SAMPLER_KEYS}")
    entries: list[Entry] = []
    for i, e in enumerate(raw.get("model", []), 1):
        name = e.get("name", f"#{i}")
        where = f"{path} [[model]] {name!r}"
        unknown = set(e) - _ENTRY_KEYS
        if unknown:
            raise CatalogueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}")
        for req in ("name", "outcome", "formula"):
            if not isinstance(e.get(req), str) or not e[req].strip():
                raise CatalogueError(f"{where}: '{req}' is missing or empty")
        if name in [x.name for x in entries]:
            raise CatalogueError(f"{where}: duplicate name")
        formula = _normalise_formula(e["formula"])
        try:
            parsed = parse_formula(formula)
        except FormulaError as exc:
            raise CatalogueError(f"{where}: formula: {exc}") from None
        lhs = parsed.response.name
        if lhs != e["outcome"]:
            raise CatalogueError(f"{where}: outcome {e['outcome']!r} is not the formula's response {lhs!r}")
        sampler = {**defaults, **e.get("sampler", {})}
        for k, v in sampler.items():
            if k not in SAMPLER_KEYS or not isinstance(v, SAMPLER_KEYS[k]):
                raise CatalogueError(f"{where}: sampler {k} = {v!r} is not a setting {sorted(SAMPLER_KEYS)}")
        terms = parsed.fixed_terms()
        claims = tuple(_claim(c, f"{where} claim {j}", terms) for j, c in enumerate(e.get("claims", []), 1))
        entries.append(
            Entry(
                name=name,
                title=str(e.get("title", name)),
                outcome=e["outcome"],
                formula=formula,
                claims=claims,
                sampler=sampler,
                priors={str(k): str(v) for k, v in e.get("priors", {}).items()},
                truth=e.get("truth"),
                headline=bool(e.get("headline", False)),
                family=str(e.get("family", "")),
                note=str(e.get("note", "")),
            )
        )
    if not entries:
        raise CatalogueError(f"{path}: no [[model]] entries")
    labels = {str(k): str(v) for k, v in raw.get("labels", {}).items()}
    twins = [_twin(t, f"{path} [[twin]] {i}", entries) for i, t in enumerate(raw.get("twin", []), 1)]
    return Catalogue(entries, labels, defaults, path, twins)


def _twin(raw: Mapping[str, Any], where: str, entries: list[Entry]) -> Twin:
    unknown = set(raw) - _TWIN_KEYS
    if unknown:
        raise CatalogueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TWIN_KEYS)}")
    of = raw.get("of")
    by_name = {e.name: e for e in entries}
    if of not in by_name:
        raise CatalogueError(f"{where}: of = {of!r} is not an entry of the catalogue")
    entry = by_name[of]
    blocks = parse_formula(entry.formula).bars
    if len(blocks) != 1 or not _RANDOM_INTERCEPT.search(entry.formula):
        raise CatalogueError(
            f"{where}: entry {of!r} must have exactly one LA term (1 | lad) to have spillover or "
            f"tipping-point twins; its formula is {entry.formula!r}"
        )
    curve = str(raw.get("curve", "hinge"))
    if curve not in TWIN_CURVES:
        raise CatalogueError(f"{where}: curve = {curve!r}; allowed: {', '.join(TWIN_CURVES)}")
    factor = raw.get("tipping_point")
    if factor is not None and factor not in parse_formula(entry.formula).fixed_terms():
        raise CatalogueError(f"{where}: tipping_point = {factor!r} is not a term of {of!r}'s formula")
    spillover = raw.get("spillover", True)
    if not isinstance(spillover, bool):
        raise CatalogueError(f"{where}: spillover = {spillover!r} must be true or false")
    return Twin(str(of), spillover, factor, curve, str(raw.get("note", "")))


# --------------------------------------------------------------------------- running entries


@dataclass
class EntryResult:
    """One entry's fit in a run folder, with its lme4 counterpart."""

    entry: Entry
    fit: Fit
    glmer: Any = None
    reused: bool = False
    seconds: float = 0.0
    path: Path | None = None


def _reusable_fit(path: Path, key: str) -> Fit | None:
    if not path.exists():
        return None
    try:
        f = load_fit(path)
    except FitFileError:
        return None
    return f if f.attrs.get("catalogue_key") == key else None


def _glmer_cached(entry: Entry, f: Fit, out: Path, key: str, log: Callable[[str], None]) -> Any:
    from analysis.lme4 import GlmerResult, Lme4Unavailable, glmer_for

    path = out / "lme4" / f"{entry.name}.json"
    if path.exists():
        try:
            stored = json.loads(path.read_text())
            if stored.get("catalogue_key") == key:
                return GlmerResult.from_dict(stored["result"])
        except (ValueError, KeyError, TypeError):
            pass
    res = glmer_for(f)
    if isinstance(res, Lme4Unavailable):
        return res
    write_text_atomic(path, json.dumps({"catalogue_key": key, "result": res.to_dict()}, default=str))
    log(f"      lme4 glmer ({res.method}) {res.elapsed_s:.0f} s{'' if res.converged else ': NOT CONVERGED'}")
    return res


def run_entries(
    entries: Iterable[Entry],
    table: pd.DataFrame,
    out: str | os.PathLike,
    *,
    seed: int = 1,
    sampler: Mapping[str, Any] | None = None,
    compare_lme4: bool = True,
    reuse: bool = True,
    attrs: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, EntryResult]:
    """Fit catalogue entries to one analysis table, into ``<out>/fits``.

    Parameters
    ----------
    entries : iterable of Entry
    table : pandas.DataFrame
        The analysis table (real or synthetic).
    out : path
        Run folder.
    seed : int
        Base seed; each entry's seed is `Entry.seed` of it.
    sampler : mapping, optional
        Settings that override every entry's (e.g. ``{"draws": 200}`` for a smoke run).
    compare_lme4 : bool
        Fit glmer (Laplace, ``nAGQ = 1``) to the same rows, cached in ``<out>/lme4``.
    reuse : bool
        Keep complete, valid fits whose key matches (an interrupted catalogue resumes).
    attrs : mapping, optional
        Extra attributes stored in every fit file (e.g. ``{"synthetic": "True"}``).
    log : callable
        Progress messages.

    Returns
    -------
    dict of str to EntryResult
    """
    out = Path(out)
    results: dict[str, EntryResult] = {}
    entries = list(entries)
    for i, entry in enumerate(entries, 1):
        settings = fit_settings(entry.sampler, sampler)
        s = entry.seed(seed)
        path = out / "fits" / f"{entry.name}.nc"
        t0 = time.time()
        md = build_model_data(entry.formula, table)
        key = entry.key(md.fingerprint(), s, settings)
        f = _reusable_fit(path, key) if reuse else None
        reused = f is not None
        if reused:
            log(f"[fit {i}/{len(entries)}] {entry.name}: complete fit reused ({path})")
        else:
            log(f"[fit {i}/{len(entries)}] {entry.name}: {entry.formula}")
            f = fit(entry.formula, md, priors=entry.priors or None, seed=s, progressbar=False, **settings)
            f.attrs.update({"catalogue_key": key, "catalogue_entry": entry.name, **(attrs or {})})
            f.save(path)
        log(f"      {f.headline} ({time.time() - t0:.0f} s)")
        g = _glmer_cached(entry, f, out, key, log) if compare_lme4 else None
        results[entry.name] = EntryResult(entry, f, g, reused, time.time() - t0, path)
    return results
