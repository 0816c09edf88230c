"""Real local-authority (LA) data and LA code harmonisation.

The open LA covariates in ``data/la/la_covariates.csv`` are keyed by the 2019 GB local
authority district code (``lad19cd``, 371 districts). UKHLS Special Licence files give
the code of the release's vintage (2011-2024), so every code is first mapped back to the
2019 set with :func:`harmonise_la_code` / :func:`harmonise_la_codes`.

Sources of the mapping, in order:

1. the 371 GB 2019 codes themselves (``la_covariates.csv``);
2. Northern Ireland district codes (``N09...``): known, kept as they are, but there are
   no NI covariates, so NI respondents are dropped later with a stated reason;
3. the ONS code history 2016-2024 (``lad_code_history_2016_2024.csv``): a code of any
   year that maps to exactly one 2019 code is recoded; a post-2019 merged code (e.g.
   E06000060 Buckinghamshire) maps to several 2019 districts and raises
   :class:`~data.errors.DataError`;
4. the hand-entered ONS code changes 2011-2016 (``lad_code_changes_2011_2016.csv``) for
   codes retired before 2016 (Northumberland, Gateshead and four Hertfordshire
   districts), followed through to 2019.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from data.errors import DataError

__all__ = [
    "LA_DIR",
    "PUBLISHED_AREA_COLUMNS",
    "JOINED_LA_FILES",
    "load_la_covariates",
    "harmonise_la_code",
    "harmonise_la_codes",
    "is_northern_ireland",
    "la_lookup",
]

LA_DIR = Path(__file__).resolve().parent / "la"

#: Analysis-table name -> (column of ``la_covariates.csv``, units, meaning). The raw
#: value is kept in the table as ``<name>_raw``; ``<name>`` is its z-score.
PUBLISHED_AREA_COLUMNS: dict[str, tuple[str, str, str]] = {
    "area_unemployment": (
        "unemp_rate_apr2015_mar2016",
        "% of economically active people aged 16+",
        "ONS model-based unemployment rate, April 2015 - March 2016",
    ),
    "area_turnout": (
        "euref_turnout_pct",
        "% of the electorate",
        "EU referendum turnout, 23 June 2016 (open stand-in for area voting)",
    ),
    "area_nonwhite": (
        "census11_pct_nonwhite",
        "% of usual residents",
        "Census 2011 share of residents not in a White ethnic group (England and Wales)",
    ),
    "area_deprivation": (
        "imd2019_avg_score",
        "IMD score (higher = more deprived)",
        "English Index of Multiple Deprivation 2019, LA average score (England only)",
    ),
    "area_gdhi": (
        "gdhi_per_head_gbp_2016",
        "GBP per head per year",
        "ONS gross disposable household income per head, 2016 (the published LA income; experimental "
        "statistics)",
    ),
    "area_turnover": (
        "turnover_per_100_2018_19",
        "migrants per 100 residents per year",
        "ONS population turnover mid-2018 to mid-2019: internal + international in- and out-migrants "
        "per 100 residents",
    ),
}

#: Published LA files joined onto ``la_covariates.csv`` by ``lad19cd``: file -> {column: formula}.
#: Turnover is (internal + international, in + out) per 100 residents (mean of mid-2018 and
#: mid-2019 populations), from the per-1,000 rates of the file.
JOINED_LA_FILES: dict[str, dict[str, str]] = {
    "gdhi_per_head_lad19_2012_2016.csv": {"gdhi_per_head_gbp_2016": "gdhi_per_head_gbp_2016"},
    "migration_components_lad19_2017_2019.csv": {
        "turnover_per_100_2018_19": (
            "(internal_turnover_per_1000_2018_19 + international_turnover_per_1000_2018_19) / 10"
        )
    },
}

_NI_PATTERN = re.compile(r"^N09\d{6}$")
_MISSING_CODE = re.compile(r"^-\d+$")


def load_la_covariates(path: str | Path | None = None) -> pd.DataFrame:
    """Read the real LA covariates, one row per 2019 GB local authority district.

    Parameters
    ----------
    path : str or Path, optional
        CSV to read; defaults to ``data/la/la_covariates.csv``.

    Returns
    -------
    pandas.DataFrame
        371 rows keyed by ``lad19cd``, columns with their published names and units
        (see ``data/la/README.md``). Nothing is standardised here. The files of
        `JOINED_LA_FILES` lying beside the CSV are joined on (GDHI per head, population
        turnover) unless the CSV already has their columns.
    """
    return _load_la_covariates(str(path or LA_DIR / "la_covariates.csv")).copy()


@lru_cache(maxsize=4)
def _load_la_covariates(path: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"LA covariates file not found: {p}", file=str(p))
    df = pd.read_csv(p)
    if "lad19cd" not in df.columns:
        raise DataError(f"{p.name}: no 'lad19cd' column", file=str(p), column="lad19cd")
    if df["lad19cd"].duplicated().any():
        dup = df.loc[df["lad19cd"].duplicated(), "lad19cd"].iloc[0]
        raise DataError(f"{p.name}: duplicate lad19cd {dup!r}", file=str(p), value=dup)
    for name, columns in JOINED_LA_FILES.items():
        joined = p.parent / name
        if not joined.is_file() or any(c in df.columns for c in columns):
            continue
        extra = pd.read_csv(joined).set_index("lad19cd")
        for col, expr in columns.items():
            df[col] = extra.eval(expr).reindex(df["lad19cd"]).to_numpy(dtype="float64")
    return df


def is_northern_ireland(code: object) -> bool:
    """True for a Northern Ireland district code (``N09`` followed by six digits)."""
    return isinstance(code, str) and bool(_NI_PATTERN.match(code.strip().upper()))


@dataclass(frozen=True)
class _Entry:
    lad19cd: str | None  # None when ambiguous
    status: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class LaLookup:
    """Code -> 2019 code lookup built from the files in ``data/la``."""

    entries: dict[str, _Entry]
    names: dict[str, str]

    def resolve(self, code: str) -> _Entry | None:
        code = code.strip().upper()
        if code in self.entries:
            return self.entries[code]
        if _NI_PATTERN.match(code):
            return _Entry(code, "Northern Ireland: no LA covariates", (code,))
        return None


@lru_cache(maxsize=1)
def la_lookup() -> LaLookup:
    """Build (once) the code lookup from the files in ``data/la``."""
    cov = _load_la_covariates(str(LA_DIR / "la_covariates.csv"))
    entries: dict[str, _Entry] = {}
    names = dict(zip(cov["lad19cd"], cov["lad19nm"], strict=True))
    for code in cov["lad19cd"]:
        entries[code] = _Entry(code, "2019 code", (code,))

    hist = pd.read_csv(LA_DIR / "lad_code_history_2016_2024.csv", dtype=str)
    targets: dict[str, set[str]] = {}
    first_year: dict[str, str] = {}
    for col in [c for c in hist.columns if c.endswith("_code")]:
        year = "20" + col[4:6]
        for code, t19 in zip(hist[col], hist["ltla19_code"], strict=True):
            if pd.isna(code) or pd.isna(t19):
                continue
            targets.setdefault(code, set()).add(t19)
            first_year.setdefault(code, year)
    for name_col in [c for c in hist.columns if c.endswith("_name")]:
        code_col = name_col.replace("_name", "_code")
        for code, name in zip(hist[code_col], hist[name_col], strict=True):
            if isinstance(code, str) and isinstance(name, str):
                names.setdefault(code, name)
    for code, tset in targets.items():
        if code in entries:
            continue
        if _NI_PATTERN.match(code):
            entries[code] = _Entry(code, "Northern Ireland: no LA covariates", (code,))
            continue
        tt = tuple(sorted(tset))
        if len(tt) == 1:
            entries[code] = _Entry(tt[0], "recoded (ONS code history 2016-2024)", tt)
        else:
            entries[code] = _Entry(None, "ambiguous: merged after 2019", tt)

    hand = pd.read_csv(LA_DIR / "lad_code_changes_2011_2016.csv", dtype=str)
    for old, new, name in zip(hand["old_code"], hand["new_code"], hand["old_name"], strict=True):
        names.setdefault(old, name)
        target = entries.get(new)
        if target is None or target.lad19cd is None:
            raise RuntimeError(f"hand-entered change {old}->{new} leads to no single 2019 code")
        if old in entries:
            if entries[old].lad19cd != target.lad19cd:  # pragma: no cover - data check
                raise RuntimeError(f"{old}: hand-entered change disagrees with ONS history")
            continue
        entries[old] = _Entry(
            target.lad19cd, "recoded (hand-entered ONS code changes 2011-2016)", (target.lad19cd,)
        )
    return LaLookup(entries=entries, names=names)


def _ambiguous_message(code: str, entry: _Entry, names: dict[str, str]) -> str:
    parts = ", ".join(f"{t} {names.get(t, '')}".strip() for t in entry.targets)
    return (
        f"LA code {code} ({names.get(code, 'unknown name')}) was created by merging several "
        f"2019 districts ({parts}); it cannot be mapped to one 2019 LA. Use LA codes of "
        "2019 or earlier (an older SN 6666 release) for this analysis."
    )


def harmonise_la_code(code: str) -> str:
    """Map an LA district code of 2011-2024 to its 2019 code.

    Parameters
    ----------
    code : str
        ONS GSS code, e.g. ``"E06000048"`` (Northumberland before 2013).

    Returns
    -------
    str
        The 2019 code (``lad19cd``). Northern Ireland codes are returned unchanged
        (known, but there are no NI covariates).

    Raises
    ------
    DataError
        If the code is unknown, or is a post-2019 merged code that maps to several
        2019 districts (e.g. E06000060 Buckinghamshire).

    Examples
    --------
    >>> harmonise_la_code("E06000048")
    'E06000057'
    """
    if not isinstance(code, str) or not code.strip():
        raise DataError(f"LA code must be a non-empty string, got {code!r}", value=code)
    lk = la_lookup()
    entry = lk.resolve(code)
    clean = code.strip().upper()
    if entry is None:
        raise DataError(
            f"LA code {code!r} matches no GB local authority of 2011-2024 and is not a "
            "Northern Ireland district code (N09...)",
            value=code,
        )
    if entry.lad19cd is None:
        raise DataError(_ambiguous_message(clean, entry, lk.names), value=code)
    return entry.lad19cd


def harmonise_la_codes(
    codes: pd.Series, *, source: str = "LA codes", column: str | None = None
) -> tuple[pd.Series, pd.DataFrame]:
    """Vectorised :func:`harmonise_la_code` for a Series of codes.

    Parameters
    ----------
    codes : pandas.Series
        Codes as strings. Missing values, empty strings and negative UKHLS missing
        codes (e.g. ``"-9"``) give a missing result with status ``"missing"``.
    source : str
        Name of the file the codes came from, used in error messages.
    column : str, optional
        Column name, used in error messages.

    Returns
    -------
    harmonised : pandas.Series
        2019 codes (string dtype, NA where missing), same index as ``codes``.
    report : pandas.DataFrame
        One row per distinct input code: ``code``, ``n`` (rows), ``lad19cd``,
        ``lad19nm`` and ``status`` ("2019 code", "recoded (...)", "Northern Ireland:
        no LA covariates" or "missing").

    Raises
    ------
    DataError
        Naming the file, column, code, first row and number of rows, for an unknown
        code or a post-2019 merged code.
    """
    lk = la_lookup()
    raw = codes.astype("string").str.strip().str.upper()
    is_missing = raw.isna() | (raw == "") | raw.str.match(_MISSING_CODE.pattern).fillna(False)
    uniq = pd.unique(raw[~is_missing].astype(str))
    mapping: dict[str, str] = {}
    status: dict[str, str] = {}
    col_txt = f", column {column!r}" if column else ""
    for code in uniq:
        entry = lk.resolve(code)
        if entry is None or entry.lad19cd is None:
            where = raw.index[(raw == code).fillna(False).to_numpy()]
            first, count = where[0], len(where)
            more = f" and {count - 1} more" if count > 1 else ""
            if entry is None:
                msg = (
                    f"{source}{col_txt}: LA code {code!r} (row {first}{more}) "
                    "matches no GB local authority of 2011-2024 and is not a Northern "
                    "Ireland district code (N09...)"
                )
            else:
                msg = f"{source}{col_txt}, row {first}{more}: " + _ambiguous_message(code, entry, lk.names)
            raise DataError(msg, file=source, column=column, value=code, row=int(first))
        mapping[code] = entry.lad19cd
        status[code] = entry.status
    harmonised = raw.map(mapping).astype("string")
    harmonised[is_missing] = pd.NA
    counts = raw.fillna("<missing>").where(~is_missing, "<missing>").value_counts(sort=False)
    report = pd.DataFrame({"code": counts.index.astype(str), "n": counts.to_numpy()})
    report["lad19cd"] = report["code"].map(mapping)
    report["lad19nm"] = report["lad19cd"].map(lk.names)
    report["status"] = report["code"].map(status).fillna("missing")
    report = report.sort_values("code", kind="stable").reset_index(drop=True)
    report["n"] = report["n"].astype(np.int64)
    return harmonised, report
