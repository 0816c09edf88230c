"""Finding, reading, validating and cleaning UKHLS files (SN 6614 and SN 6666).

A *source* is one UKHLS file as released: wave-prefixed column names (``f_sclfsato``),
integer missing-value codes. :func:`clean_source` turns it into a *clean frame*:
unprefixed names (``sclfsato``), every negative value missing, and a count of each
missing-value code per variable. The synthetic generator builds the same sources in
memory, so the reader and the generator share every step after file parsing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data.audit import MISSING_LABELS
from data.config import ReaderConfig
from data.errors import DataError, closest_name

__all__ = [
    "Source",
    "Spec",
    "source_spec",
    "wave_number",
    "file_stem",
    "locate_release",
    "read_source",
    "clean_source",
    "SC_WEIGHT",
    "MAIN_WEIGHT",
    "DESIGN_VARIABLES",
]

ID_COLUMNS = ("pidp", "hidp")
KNOWN_CODES = (-1, -2, -7, -8, -9, -10, -11)
_PREFIX = re.compile(r"^([a-z])_", re.IGNORECASE)
_MAX_DEPTH = 4


def wave_number(letter: str) -> int:
    """Wave number of a wave letter (a=1, ..., f=6, g=7, i=9)."""
    return ord(letter.lower()) - ord("a") + 1


def file_stem(role: str, wave: str) -> str:
    """Released file name without extension, e.g. ``f_indresp`` or ``f_oslaua_protect``."""
    return f"{wave}_oslaua_protect" if role == "oslaua" else f"{wave}_{role}"


@dataclass
class Source:
    """One UKHLS file as released (prefixed names, integer missing codes).

    Attributes
    ----------
    role : str
        ``"indresp"``, ``"hhresp"`` or ``"oslaua"``.
    wave : str
        Wave letter, e.g. ``"f"``.
    name : str
        File name used in messages (e.g. ``f_indresp.tab``).
    data : pandas.DataFrame
        The columns read, with their released names.
    path : str
        Where it was read from (``"<memory>"`` for in-memory sources).
    format : str
        ``"tab"``, ``"dta"`` or ``"memory"``.
    header : list of str
        All column names of the file (before column selection).
    """

    role: str
    wave: str
    name: str
    data: pd.DataFrame
    path: str = "<memory>"
    format: str = "memory"
    header: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.role}_{self.wave}"


@dataclass(frozen=True)
class Spec:
    """Variables (unprefixed) to take from one source.

    ``required`` must all exist; of each group in ``one_of`` the first name present is
    taken; ``all_of_alternatives`` lists groups where either the first name or *all*
    of the rest must exist; ``optional`` are taken when present; ``text`` are kept as
    strings (LA codes).
    """

    required: tuple[str, ...]
    one_of: tuple[tuple[str, ...], ...] = ()
    optional: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    key: str = "pidp"


SWEMWBS_ITEMS = tuple(f"scwemwb{x}" for x in "abcdefg")
#: Cross-sectional weights (waves 6+; zero outside the weight's population): self-completion
#: ``<w>_indscui_xw`` and main interview ``<w>_indinui_xw``; design: ``<w>_psu``, ``<w>_strata``.
SC_WEIGHT = "indscui_xw"
MAIN_WEIGHT = "indinui_xw"
DESIGN_VARIABLES = (SC_WEIGHT, MAIN_WEIGHT, "psu", "strata")
COHESION_ITEMS = tuple(f"scopngbh{x}" for x in "abcdefgh")


def source_spec(role: str, wave: str, config: ReaderConfig) -> Spec:
    """Variables the reader needs from the file of ``role`` and ``wave``."""
    if role == "indresp" and wave == config.base_wave:
        return Spec(
            required=(
                "pidp",
                "hidp",
                "sex",
                "hiqual_dv",
                "jbstat",
                "mastat_dv",
                "health",
                "urban_dv",
                "volun",
                "crdark",
                "closenum",
                "sclfsato",
                "scghq2_dv",
                *COHESION_ITEMS,
            ),
            one_of=(tuple(config.age_vars),),
            optional=("ivfio", "gor_dv", *DESIGN_VARIABLES),
        )
    if role == "indresp" and wave == config.swemwbs_wave:
        weight = (SC_WEIGHT,)
        if config.swemwbs_source == "dv":
            return Spec(required=("pidp", "hidp", "swemwbs_dv"), optional=weight)
        if config.swemwbs_source == "items":
            return Spec(required=("pidp", "hidp", *SWEMWBS_ITEMS), optional=weight)
        return Spec(required=("pidp", "hidp"), optional=("swemwbs_dv", *SWEMWBS_ITEMS, *weight))
    if role == "indresp" and wave == config.lonely_wave:
        return Spec(required=("pidp", "hidp", "sclonely"), optional=(SC_WEIGHT,))
    if role == "hhresp":
        return Spec(required=("hidp", "fihhmnnet1_dv", "ieqmoecd_dv"), key="hidp")
    if role == "oslaua":
        return Spec(required=("hidp", "oslaua"), text=("oslaua",), key="hidp")
    raise ValueError(f"no variables defined for {role} wave {wave}")


def _prefixed(name: str, wave: str) -> str:
    return name if name == "pidp" else f"{wave}_{name}"


# --------------------------------------------------------------------------- locating
def _index_files(root: Path) -> dict[str, list[Path]]:
    """Lower-case file name -> paths, searching ``root`` up to a few levels down."""
    index: dict[str, list[Path]] = {}
    root = Path(root)
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        if len(Path(dirpath).parts) - base_depth >= _MAX_DEPTH:
            dirnames[:] = []
        dirnames.sort()
        for fn in sorted(filenames):
            index.setdefault(fn.lower(), []).append(Path(dirpath) / fn)
    return index


def _pick(paths: list[Path], preferred_dir: str, name: str) -> Path:
    if len(paths) == 1:
        return paths[0]
    pref = [p for p in paths if p.parent.name.lower() == preferred_dir]
    if len(pref) == 1:
        return pref[0]
    listing = "\n  ".join(str(p) for p in paths)
    raise DataError(
        f"{name}: found more than one copy and cannot tell which to read:\n  {listing}\n"
        "Point the reader at a folder holding one release.",
        file=name,
    )


def locate_release(path: str | Path, config: ReaderConfig) -> dict[tuple[str, str], Path]:
    """Find the release files, case-insensitively.

    Looks for ``<w>_indresp``, ``<w>_hhresp`` (base wave) and ``<w>_oslaua_protect``
    with extension ``.tab`` (or ``.dta`` when there is no ``.tab``) in ``path`` and its
    subfolders (per-wave ``ukhls_w6`` ... or flat), SN 6666 files also in
    ``config.la_path``.

    Returns
    -------
    dict
        ``(role, wave) -> Path`` for each file found. Optional files (wave-7/9
        ``oslaua``) are included when present.

    Raises
    ------
    DataError
        Listing every name and folder searched when a required file is missing.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"UKHLS release folder not found: {root}", file=str(root))
    index = _index_files(root)
    la_index = _index_files(Path(config.la_path)) if config.la_path else {}
    if config.la_path and not Path(config.la_path).is_dir():
        raise DataError(f"SN 6666 folder (la_path) not found: {config.la_path}")
    base = config.base_wave
    wanted = [
        ("indresp", base, True),
        ("hhresp", base, True),
        ("oslaua", base, True),
        ("indresp", config.swemwbs_wave, True),
        ("indresp", config.lonely_wave, True),
        ("oslaua", config.swemwbs_wave, False),
        ("oslaua", config.lonely_wave, False),
    ]
    found: dict[tuple[str, str], Path] = {}
    missing: list[str] = []
    for role, wave, required in wanted:
        stem = file_stem(role, wave)
        pref_dir = "sn6666" if role == "oslaua" else f"ukhls_w{wave_number(wave)}"
        hit: Path | None = None
        searches = [la_index, index] if role == "oslaua" else [index]
        for idx in searches:
            for ext in (".tab", ".dta"):
                paths = idx.get(stem + ext, [])
                if paths:
                    hit = _pick(paths, pref_dir, stem + ext)
                    break
            if hit is not None:
                break
        if hit is not None:
            found[(role, wave)] = hit
        elif required:
            missing.append(stem)
    if missing:
        where = [str(root)] + ([str(config.la_path)] if config.la_path else [])
        names = ", ".join(f"{m}.tab (or .dta)" for m in missing)
        raise DataError(
            f"Missing UKHLS file(s): {names}. Looked (case-insensitively) in "
            f"{' and '.join(where)} and subfolders (e.g. ukhls_w6/, sn6666/). "
            "SN 6614 gives indresp/hhresp; the LA files w_oslaua_protect come from the "
            "Special Licence study SN 6666 (set ReaderConfig.la_path if they are elsewhere).",
            file=missing[0],
        )
    return found


# --------------------------------------------------------------------------- reading
def _select(header: list[str], spec: Spec, wave: str, name: str) -> dict[str, str]:
    """Map released column names (any case) to the unprefixed names to keep."""
    lower = {h.lower(): h for h in header}
    for h in header:
        m = _PREFIX.match(h)
        if m and m.group(1).lower() != wave:
            letter = m.group(1).lower()
            raise DataError(
                f"{name}: column {h!r} carries the wave prefix '{letter}_' (wave "
                f"{wave_number(letter)}), but this is the wave-{wave_number(wave)} file whose "
                f"columns start with '{wave}_'. Is the file from another wave or renamed?",
                file=name,
                column=h,
                value=h,
            )
    out: dict[str, str] = {}
    for var in spec.required:
        full = _prefixed(var, wave)
        if full not in lower:
            hint = closest_name(full, header)
            sugg = f"; did you mean {hint!r}?" if hint else ""
            raise DataError(
                f"{name}: required column {full!r} not found{sugg}",
                file=name,
                column=full,
                value=hint,
            )
        out[lower[full]] = var
    for group in spec.one_of:
        fulls = [_prefixed(v, wave) for v in group]
        hit = next((f for f in fulls if f in lower), None)
        if hit is None:
            hint = closest_name(fulls[0], header)
            sugg = f"; did you mean {hint!r}?" if hint else ""
            raise DataError(
                f"{name}: none of the columns {fulls} found{sugg}",
                file=name,
                column=fulls[0],
                value=hint,
            )
        out[lower[hit]] = group[fulls.index(hit)]
    for var in spec.optional:
        full = _prefixed(var, wave)
        if full in lower:
            out[lower[full]] = var
    return out


def read_source(path: Path, role: str, wave: str, config: ReaderConfig) -> Source:
    """Read the columns the reader needs from one ``.tab`` or ``.dta`` file.

    Raises
    ------
    DataError
        For an empty file, a wrong wave prefix, or a missing/misspelt column.
    """
    path = Path(path)
    name = path.name
    spec = source_spec(role, wave, config)
    fmt = path.suffix.lower().lstrip(".")
    if path.stat().st_size == 0:
        raise DataError(f"{name}: the file is empty ({path})", file=name)
    if fmt == "tab":
        try:
            header = list(pd.read_csv(path, sep="\t", nrows=0).columns)
        except pd.errors.EmptyDataError as exc:
            raise DataError(f"{name}: the file is empty ({path})", file=name) from exc
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{name}: not a readable tab-delimited file ({exc}) ({path})", file=name
            ) from None
        cols = _select(header, spec, wave, name)
        text = {orig for orig, var in cols.items() if var in spec.text}
        try:
            data = pd.read_csv(
                path,
                sep="\t",
                usecols=list(cols),
                dtype={c: str for c in text},
                float_precision="round_trip",
                low_memory=False,
            )
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{name}: not a well-formed tab-delimited file ({exc}); is it truncated or edited by hand? "
                f"({path})",
                file=name,
            ) from None
    elif fmt == "dta":
        try:
            with pd.io.stata.StataReader(path) as rdr:
                header = list(rdr.variable_labels())
        except Exception as exc:  # pandas raises KeyError, ValueError, ... on a damaged file
            raise DataError(f"{name}: not a readable Stata .dta file ({exc}) ({path})", file=name) from None
        cols = _select(header, spec, wave, name)
        try:
            data = pd.read_stata(path, columns=list(cols), convert_categoricals=False)
        except Exception as exc:  # as above
            raise DataError(
                f"{name}: cannot read the data of this Stata .dta file ({exc}); is it truncated? ({path})",
                file=name,
            ) from None
    else:  # pragma: no cover - locate_release only yields .tab/.dta
        raise DataError(f"{name}: unsupported file type {path.suffix!r}", file=name)
    if len(data) == 0:
        raise DataError(f"{name}: the file has a header but no data rows ({path})", file=name)
    return Source(role, wave, name, data, str(path), fmt, header)


# --------------------------------------------------------------------------- cleaning
def _code_label(code: float) -> str:
    c = int(code)
    return str(c) if c in KNOWN_CODES else "other negative"


def _rows(k: int) -> str:
    return f"{k} row" if k == 1 else f"{k} rows"


def _to_numeric(col: pd.Series, name: str, column: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(col):
        return col.astype("float64")
    if pd.api.types.is_numeric_dtype(col):
        return col
    as_text = col.astype("string").str.strip()
    num = pd.to_numeric(as_text, errors="coerce")
    bad = num.isna() & as_text.notna() & (as_text != "")
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        value = col.iloc[pos]
        raise DataError(
            f"{name}: column {column!r} must be numeric, but data row {pos + 1} "
            f"(line {pos + 2} of the file) holds {value!r} ({_rows(int(bad.sum()))} like this)",
            file=name,
            column=column,
            value=value,
            row=pos + 1,
        )
    return num.astype("float64")


def clean_source(src: Source, config: ReaderConfig) -> tuple[pd.DataFrame, list[dict]]:
    """Turn a released file into a clean frame and count its missing-value codes.

    Parameters
    ----------
    src : Source
        File as released (or built in memory by the generator).
    config : ReaderConfig
        Gives the variables to keep (see :func:`source_spec`).

    Returns
    -------
    clean : pandas.DataFrame
        Unprefixed names; ``pidp`` (int64) and ``hidp`` (nullable Int64) ids; other
        numeric variables as float64 with every negative value set to NaN; text
        variables (LA code) stripped, upper case, negative codes as NA.
    counts : list of dict
        One record per (variable, code): ``file``, ``wave``, ``variable``, ``code``,
        ``label``, ``count``. Codes are "-1", "-2", "-7", "-8", "-9", "-10", "-11",
        "other negative" (any other negative value) and "blank" (empty cell).

    Raises
    ------
    DataError
        Wrong wave prefix, missing column, text in a numeric column (naming value and
        row), missing or duplicate ids.
    """
    spec = source_spec(src.role, src.wave, config)
    header = src.header or list(src.data.columns)
    cols = _select(header, spec, src.wave, src.name)
    lower = {c.lower(): c for c in src.data.columns}
    cols = {lower[orig.lower()]: var for orig, var in cols.items()}
    clean: dict[str, pd.Series | np.ndarray] = {}
    counts: list[dict] = []
    wave_no = wave_number(src.wave)

    for orig, var in cols.items():
        col = src.data[orig]
        tally: dict[str, int] = {}
        if var in spec.text:
            txt = col.astype("string").str.strip().str.upper()
            is_code = txt.str.fullmatch(r"-\d+").fillna(False).astype(bool)
            blank = (txt.isna() | (txt == "")).fillna(True).astype(bool)
            for v in txt[is_code]:
                lab = _code_label(float(v))
                tally[lab] = tally.get(lab, 0) + 1
            if blank.any():
                tally["blank"] = int(blank.sum())
            clean[var] = txt.mask(is_code | blank)
        else:
            arr = _to_numeric(col, src.name, orig).to_numpy(dtype="float64", na_value=np.nan)
            neg = arr < 0 if var not in config.signed_variables else np.zeros(len(arr), bool)
            blank_arr = np.isnan(arr)
            if neg.any():
                vals, ns = np.unique(arr[neg], return_counts=True)
                for v, n in zip(vals, ns, strict=True):
                    lab = _code_label(v)
                    tally[lab] = tally.get(lab, 0) + int(n)
                arr = np.where(neg, np.nan, arr)
            if blank_arr.any():
                tally["blank"] = int(blank_arr.sum())
            clean[var] = arr
        for code, n in sorted(tally.items(), key=lambda kv: _code_order(kv[0])):
            counts.append(
                {
                    "file": src.name,
                    "wave": wave_no,
                    "variable": var,
                    "code": code,
                    "label": MISSING_LABELS.get(code, code),
                    "count": n,
                }
            )
    df = pd.DataFrame(clean, index=pd.RangeIndex(len(src.data)))
    _check_ids(df, spec, src)
    return df, counts


def _code_order(code: str) -> tuple[int, int]:
    if code == "other negative":
        return (1, 0)
    if code == "blank":
        return (2, 0)
    return (0, -int(code))


def _check_ids(df: pd.DataFrame, spec: Spec, src: Source) -> None:
    for var in ID_COLUMNS:
        if var not in df:
            continue
        col = _prefixed(var, src.wave)
        vals = df[var].to_numpy()
        if var == spec.key:
            if np.isnan(vals).any():
                pos = int(np.flatnonzero(np.isnan(vals))[0])
                raise DataError(
                    f"{src.name}: column {col!r} is missing or negative in data row {pos + 1}; "
                    f"every row needs a {var}",
                    file=src.name,
                    column=col,
                    row=pos + 1,
                )
            dup = pd.Series(vals).duplicated(keep=False).to_numpy()
            if dup.any():
                rows = np.flatnonzero(dup)
                value = int(vals[rows[0]])
                same = rows[vals[rows] == vals[rows[0]]] + 1
                raise DataError(
                    f"{src.name}: duplicate {col} {value} in data rows "
                    f"{', '.join(map(str, same[:5]))} ({int(dup.sum())} rows share a {var}); "
                    f"{'each person must appear once' if var == 'pidp' else 'each household once'}",
                    file=src.name,
                    column=col,
                    value=value,
                    row=int(same[0]),
                )
            df[var] = vals.astype("int64")
        else:
            df[var] = pd.array(np.where(np.isnan(vals), 0, vals).astype("int64"), dtype="Int64")
            df.loc[np.isnan(vals), var] = pd.NA
