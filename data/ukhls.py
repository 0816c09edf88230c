"""Reader of an Understanding Society (UKHLS) release into the analysis table.

Usage
-----
>>> from data.ukhls import read_release
>>> table, audit = read_release("/path/to/UKDA-6614-tab/tab")   # doctest: +SKIP
>>> print(audit)                                                 # doctest: +SKIP

The release is SN 6614 (``ukhls_w6/f_indresp.tab`` ... or one flat folder) plus the
Special Licence SN 6666 LA files ``f_oslaua_protect.tab`` (in the same folders, a
``sn6666`` subfolder, or ``ReaderConfig.la_path``). One row of the table per wave-6
adult with a GB local authority; every other row is listed in the audit with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from data.areas import harmonise_la_codes, load_la_covariates
from data.audit import Audit, FileRecord
from data.config import DEFAULT_CONFIG, ReaderConfig
from data.derive import derive_table, design_columns, link_waves
from data.errors import DataError
from data.sources import SC_WEIGHT, Source, clean_source, file_stem, locate_release, read_source

__all__ = [
    "ReaderConfig",
    "read_release",
    "build_table",
    "load_extra_area",
    "extra_area_values",
    "DROP_NO_LA_RECORD",
    "DROP_LA_MISSING",
    "DROP_NI",
    "weight_report",
    "WEIGHT_ZERO",
    "WEIGHT_MISSING",
    "WEIGHT_ABSENT",
]

DROP_NO_LA_RECORD = "no LA record for household in {file}"
DROP_LA_MISSING = "LA code missing (negative code or blank) in {file}"
DROP_NI = "LA in Northern Ireland: no LA covariates"
SIMULATED_AREA_FILE = "area_simulated.csv"
_KEY_COLUMNS = ("lad19cd", "lad", "la_code", "oslaua")
_IGNORED_COLUMNS = ("lad19nm", "lad_name", "name", "simulated", "source", "note")


def read_release(path: str | Path, config: ReaderConfig | None = None) -> tuple[pd.DataFrame, Audit]:
    """Read a UKHLS release (SN 6614 + SN 6666) into the analysis table.

    Parameters
    ----------
    path : str or Path
        Release folder: per-wave subfolders (``ukhls_w6/f_indresp.tab``, ...) or one
        flat folder. Files are found case-insensitively; ``.tab`` is read, or ``.dta``
        when there is no ``.tab``.
    config : ReaderConfig, optional
        Cut-offs and options (defaults: :data:`data.config.DEFAULT_CONFIG`).

    Returns
    -------
    table : pandas.DataFrame
        One row per kept wave-6 adult; columns as in :func:`data.dictionary.describe_columns`.
    audit : Audit
        Files read, rows in/out, every dropped row with its reason, missing-value counts.

    Raises
    ------
    DataError
        For missing files or columns, wrong types, unknown LA codes, duplicate ids,
        empty files or wrong wave prefixes; the message names file, column and value.
    """
    config = config or DEFAULT_CONFIG
    root = Path(path)
    files = locate_release(root, config)
    sources = {f"{role}_{wave}": read_source(p, role, wave, config) for (role, wave), p in files.items()}
    extra_files = list(config.extra_area_files)
    notes: list[str] = []
    auto = root / SIMULATED_AREA_FILE
    if config.auto_extra_area and auto.is_file() and auto not in extra_files:
        extra_files.append(auto)
        notes.append(
            f"{SIMULATED_AREA_FILE} found in the release folder: its SIMULATED area "
            "variables (walkability, population turnover) were added."
        )
    table, audit = build_table(sources, config, extra_area_files=extra_files)
    audit.notes = notes + audit.notes
    return table, audit


def load_extra_area(path: str | Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read an extra LA-level CSV (e.g. the synthetic ``area_simulated.csv``).

    Parameters
    ----------
    path : str or Path
        CSV with an LA code column (``lad19cd``, ``lad``, ``la_code`` or ``oslaua``)
        and numeric columns. Name columns and ``simulated``/``source``/``note`` are not
        variables. A column ``x`` becomes ``area_x_raw``.

    Returns
    -------
    values : pandas.DataFrame
        Indexed by 2019 LA code, columns ``area_x_raw``.
    sources : dict
        Variable (``area_x``) -> "simulated" (if the file has an all-true ``simulated``
        column) or "published (extra file <name>)".
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"extra area file not found: {p}", file=str(p))
    try:
        df = pd.read_csv(p)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{p.name}: the file is empty", file=p.name) from exc
    return extra_area_values(df, p.name)


def extra_area_values(df: pd.DataFrame, name: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Validate an extra LA-level table (see :func:`load_extra_area`); ``name`` is used
    in error messages."""
    if df.empty:
        raise DataError(f"{name}: the file has no rows", file=name)
    lower = {c.lower(): c for c in df.columns}
    key = next((lower[k] for k in _KEY_COLUMNS if k in lower), None)
    if key is None:
        raise DataError(
            f"{name}: no LA code column (one of {list(_KEY_COLUMNS)}) among {list(df.columns)}",
            file=name,
        )
    codes = df[key].astype("string")
    codes.index = pd.RangeIndex(1, len(df) + 1)
    lad, _ = harmonise_la_codes(codes, source=name, column=key)
    simulated = False
    if "simulated" in lower:
        simulated = bool(df[lower["simulated"]].astype(str).str.lower().isin(["true", "1"]).all())
    values = pd.DataFrame(index=pd.Index(lad.to_numpy(), name="lad19cd"))
    for col in df.columns:
        if col == key or col.lower() in _IGNORED_COLUMNS:
            continue
        s = df[col]
        if not pd.api.types.is_numeric_dtype(s):
            num = pd.to_numeric(s, errors="coerce")
            bad = num.isna() & s.notna()
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{name}: column {col!r} must be numeric, but data row {pos + 1} holds {s.iloc[pos]!r}",
                file=name,
                column=col,
                value=s.iloc[pos],
                row=pos + 1,
            )
        var = col if col.startswith("area_") else f"area_{col}"
        values[var + "_raw"] = s.to_numpy(dtype="float64")
    if values.index.duplicated().any():
        dup = values.index[values.index.duplicated()][0]
        raise DataError(
            f"{name}: more than one row maps to 2019 LA {dup}; give one row per LA",
            file=name,
            column=key,
            value=dup,
        )
    label = "simulated" if simulated else f"published (extra file {name})"
    return values, {c.removesuffix("_raw"): label for c in values.columns}


WEIGHT_ZERO = "zero weight: outside the weight's population"
WEIGHT_MISSING = "missing (absent from the wave, or a missing-value code)"
WEIGHT_ABSENT = "column not in the release"


def weight_report(table: pd.DataFrame, config: ReaderConfig | None = None) -> pd.DataFrame:
    """Rows of the table by weight and status: positive, zero (outside the weight's
    population, e.g. proxy respondents for a self-completion weight), missing.

    Returns
    -------
    pandas.DataFrame
        ``column`` (table column), ``file_variable`` (released name), ``status``
        (``"positive"``, `WEIGHT_ZERO`, `WEIGHT_MISSING`, or `WEIGHT_ABSENT` when the release
        has no such column) and ``rows``, for the weight and design columns.
    """
    config = config or DEFAULT_CONFIG
    rows = []
    for name, (_, file_var) in design_columns(config).items():
        w = table[name].to_numpy(dtype="float64")
        if np.isnan(w).all():
            rows.append((name, file_var, WEIGHT_ABSENT, len(w)))
            continue
        if name.startswith("weight"):
            rows.append((name, file_var, "positive", int(np.sum(w > 0))))
            rows.append((name, file_var, WEIGHT_ZERO, int(np.sum(w == 0))))
        else:
            rows.append((name, file_var, "present", int(np.sum(~np.isnan(w)))))
        rows.append((name, file_var, WEIGHT_MISSING, int(np.isnan(w).sum())))
    return pd.DataFrame(rows, columns=["column", "file_variable", "status", "rows"])


def build_table(
    sources: Mapping[str, Source],
    config: ReaderConfig | None = None,
    la_covariates: pd.DataFrame | None = None,
    extra_area_files: Sequence[str | Path] = (),
    extra_area_frames: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, Audit]:
    """Clean, link and derive the analysis table from released sources.

    The part of :func:`read_release` after file parsing; the synthetic generator calls
    it on sources built in memory.

    Parameters
    ----------
    sources : mapping
        ``"indresp_f"``, ``"indresp_g"``, ``"indresp_i"``, ``"hhresp_f"`` and
        ``"oslaua_f"`` (for the default waves) -> :class:`~data.sources.Source`. Other
        keys are recorded in the audit but not used.
    config : ReaderConfig, optional
    la_covariates : pandas.DataFrame, optional
        Defaults to :func:`data.areas.load_la_covariates`.
    extra_area_files : sequence of path
        Extra LA-level CSVs (see :func:`load_extra_area`).
    extra_area_frames : mapping, optional
        Name -> extra LA-level table already in memory (same format as the CSVs).

    Returns
    -------
    table, audit
    """
    config = config or DEFAULT_CONFIG
    la_cov = load_la_covariates() if la_covariates is None else la_covariates
    b, w7, w9 = config.base_wave, config.swemwbs_wave, config.lonely_wave
    needed = [f"indresp_{b}", f"indresp_{w7}", f"indresp_{w9}", f"hhresp_{b}", f"oslaua_{b}"]
    for key in needed:
        if key not in sources:
            role, wave = key.split("_")
            raise DataError(f"missing source {file_stem(role, wave)}", file=file_stem(role, wave))
    audit = Audit()
    clean: dict[str, pd.DataFrame] = {}
    counts: list[dict] = []
    for key in needed:
        src = sources[key]
        clean[key], c = clean_source(src, config)
        counts += c
    for key, src in sources.items():
        audit.files.append(
            FileRecord(key, src.path, src.format, len(src.data), len(src.header or src.data.columns))
        )
    audit.missing = pd.DataFrame(counts, columns=["file", "wave", "variable", "code", "label", "count"])

    base = clean[f"indresp_{b}"]
    later = [clean[f"indresp_{w}"].rename(columns={SC_WEIGHT: f"{SC_WEIGHT}_{w}"}) for w in (w7, w9)]
    linked = link_waves(base, *later, clean[f"hhresp_{b}"])
    frame = linked.frame
    audit.rows_in = len(frame)
    audit.found_wave7 = linked.found_wave7
    audit.found_wave9 = linked.found_wave9

    # ---- LA codes: harmonise in the oslaua file (errors name its rows), map to people
    osl_src = sources[f"oslaua_{b}"]
    osl = clean[f"oslaua_{b}"]
    codes = osl["oslaua"].copy()
    codes.index = pd.RangeIndex(1, len(codes) + 1)
    lad19, report = harmonise_la_codes(codes, source=osl_src.name, column=f"{b}_oslaua")
    audit.la_codes = report
    osl_hidp = osl["hidp"].to_numpy()
    osl_lad = pd.Series(lad19.to_numpy(), index=osl_hidp, dtype="string")
    osl_raw = pd.Series(osl["oslaua"].to_numpy(), index=osl_hidp, dtype="string")
    hidp = frame["hidp"].astype("Int64")
    has_record = hidp.isin(osl_hidp).fillna(False).to_numpy(dtype=bool)
    lad = osl_lad.reindex(hidp.fillna(-1).to_numpy()).reset_index(drop=True)
    raw_code = osl_raw.reindex(hidp.fillna(-1).to_numpy()).to_numpy()
    is_ni = lad.str.startswith("N").fillna(False).to_numpy(dtype=bool)
    code_missing = has_record & lad.isna().to_numpy()
    reason = np.full(len(frame), "", dtype=object)
    reason[~has_record] = DROP_NO_LA_RECORD.format(file=osl_src.name)
    reason[code_missing] = DROP_LA_MISSING.format(file=osl_src.name)
    reason[has_record & is_ni] = DROP_NI
    dropped = reason != ""
    audit.drops = pd.DataFrame(
        {
            "pidp": frame.loc[dropped, "pidp"].to_numpy(dtype="int64"),
            "hidp": frame.loc[dropped, "hidp"].to_numpy(),
            "reason": reason[dropped].astype(str),
            "detail": ["" if pd.isna(c) else f"{b}_oslaua={c}" for c in raw_code[dropped]],
        }
    )
    kept = frame.loc[~dropped].copy()
    kept["lad"] = lad[~dropped].to_numpy(dtype=object)

    # ---- extra area files
    extra = None
    sources_by_col: dict[str, str] = {}
    loaded = [(Path(f).name, *load_extra_area(f)) for f in extra_area_files]
    loaded += [(k, *extra_area_values(v, k)) for k, v in (extra_area_frames or {}).items()]
    for fname, vals, src_labels in loaded:
        clash = [c for c in vals.columns if extra is not None and c in extra.columns]
        if clash:
            raise DataError(f"{fname}: area variable {clash[0]!r} given twice", file=fname)
        extra = vals if extra is None else extra.join(vals, how="outer")
        sources_by_col.update(src_labels)

    table = derive_table(kept, la_cov, config, extra)
    table.attrs["column_sources"] = sources_by_col
    audit.rows_out = len(table)
    hh = clean[f"hhresp_{b}"]
    income = hh["fihhmnnet1_dv"].to_numpy(dtype="float64")
    audit.nonpositive_income_households = int(np.sum(income <= 0))
    inc_k = kept["fihhmnnet1_dv"].to_numpy(dtype="float64")
    audit.nonpositive_income_rows = int(np.sum(inc_k <= 0))
    audit.missing_in_table = table.isna().sum().astype("int64")
    audit.weights = weight_report(table, config)
    absent = audit.weights.loc[audit.weights["status"] == WEIGHT_ABSENT, "file_variable"].tolist()
    if absent:
        audit.notes.append(
            "no survey design column " + ", ".join(absent) + " in the release: those table columns are "
            "missing, so weighted fits and design-based intervals cannot use them."
        )
    for col, lab in sources_by_col.items():
        if lab == "simulated":
            audit.notes.append(f"{col} is SIMULATED (synthetic area file), not a published figure.")
    audit.check()
    return table, audit
