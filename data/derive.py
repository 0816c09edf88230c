"""Derivation of the analysis table from clean frames.

These functions are the single definition of every analysis-table variable. The reader
calls them on frames read from files; the synthetic generator calls them on frames built
in memory, so the generator's truth is stated on exactly the variables the reader
produces.

Conventions
-----------
* Binary variables are float64: 1.0, 0.0, or NaN when the source item is missing.
* ``zscore`` standardises over the table's rows with a value (population SD, ddof=0).
* Leave-one-out (LOO) LA means average a variable over the *other* respondents of the
  same LA that have a value; NaN when there is no such respondent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.config import ReaderConfig
from data.sources import COHESION_ITEMS, MAIN_WEIGHT, SC_WEIGHT, SWEMWBS_ITEMS, wave_number

__all__ = [
    "zscore",
    "loo_mean",
    "binary",
    "link_waves",
    "derive_individual",
    "derive_area",
    "derive_outcomes",
    "derive_table",
    "derive_design",
    "design_columns",
    "ID_COLUMNS",
    "INDIVIDUAL_COLUMNS",
    "AREA_LOO",
    "OUTCOME_COLUMNS",
]

ID_COLUMNS = ["pidp", "hidp", "lad", "lad_name", "region", "country", "in_wave7", "in_wave9"]
INDIVIDUAL_COLUMNS = [
    "age",
    "age50",
    "female",
    "education",
    "unemployed",
    "married",
    "illness",
    "urban",
    "volunteer",
    "unsafe",
    "closenum",
    "sociability_raw",
    "sociability",
    "income_eq",
    "log_income",
]
#: Survey design columns of the table (default waves): analysis name -> what it is.
DESIGN_INFO = {
    "weight_sc": "wave-6 cross-sectional self-completion weight (f_indscui_xw)",
    "weight_main": "wave-6 cross-sectional main-interview weight (f_indinui_xw)",
    "weight_sc_w7": "wave-7 cross-sectional self-completion weight (g_indscui_xw)",
    "weight_sc_w9": "wave-9 cross-sectional self-completion weight (i_indscui_xw)",
    "psu": "primary sampling unit (f_psu)",
    "strata": "sampling stratum (f_strata)",
}


def design_columns(config: ReaderConfig) -> dict[str, tuple[str, str]]:
    """Design columns of the table: name -> (variable in the linked frame, file variable).

    Later-wave weights carry their wave number: ``weight_sc_w7`` is ``g_indscui_xw`` for
    the default SWEMWBS wave ``g``.
    """
    b, w7, w9 = config.base_wave, config.swemwbs_wave, config.lonely_wave
    out = {
        "weight_sc": (SC_WEIGHT, f"{b}_{SC_WEIGHT}"),
        "weight_main": (MAIN_WEIGHT, f"{b}_{MAIN_WEIGHT}"),
    }
    for w in dict.fromkeys((w7, w9)):
        out[f"weight_sc_w{wave_number(w)}"] = (f"{SC_WEIGHT}_{w}", f"{w}_{SC_WEIGHT}")
    out["psu"] = ("psu", f"{b}_psu")
    out["strata"] = ("strata", f"{b}_strata")
    return out


#: LOO area means: analysis name -> (individual variable, how it is transformed).
AREA_LOO = {
    "area_income": "log_income_raw",
    "area_volunteering": "volunteer",
    "area_sociability": "sociability_raw",
    "area_unsafe": "unsafe",
}
OUTCOME_COLUMNS = [
    "lifesat_score",
    "life_satisfied",
    "swemwbs",
    "mental_wellbeing_high",
    "ghq_score",
    "ghq_case",
    "belonging",
    "local_friends",
    "lonely",
    "community_score",
    "community_abs",
    "community_rel",
]


# --------------------------------------------------------------------------- helpers
def zscore(x: pd.Series | np.ndarray) -> np.ndarray:
    """Standardise over the non-missing values (mean 0, population SD 1).

    Returns zeros for the non-missing values when they are all equal, NaN elsewhere.
    """
    a = np.asarray(x, dtype="float64")
    ok = ~np.isnan(a)
    if not ok.any():
        return np.full_like(a, np.nan)
    mu = a[ok].mean()
    sd = a[ok].std()
    return (a - mu) / sd if sd > 0 else np.where(ok, 0.0, np.nan)


def loo_mean(x: pd.Series | np.ndarray, groups: pd.Series | np.ndarray) -> np.ndarray:
    """Leave-one-out group mean of ``x`` over the other rows of the same group.

    Rows whose own value is missing get the mean of all valued rows of their group.
    NaN where the group has no other row with a value.
    """
    a = np.asarray(x, dtype="float64")
    codes, _ = pd.factorize(pd.Series(groups), sort=False)
    ok = ~np.isnan(a)
    v = np.where(ok, a, 0.0)
    g = codes.max() + 1 if len(codes) else 0
    s = np.bincount(codes, weights=v, minlength=g)
    c = np.bincount(codes, weights=ok.astype("float64"), minlength=g)
    s_i = s[codes] - v
    c_i = c[codes] - ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c_i > 0, s_i / np.where(c_i > 0, c_i, 1.0), np.nan)


def binary(
    x: pd.Series | np.ndarray, ones: tuple[float, ...], valid: tuple[float, ...] | None = None
) -> np.ndarray:
    """1.0 where ``x`` is in ``ones``, 0.0 where it is another valid value, NaN otherwise.

    ``valid`` (optional) restricts which non-missing values count as 0; others are NaN.
    """
    a = np.asarray(x, dtype="float64")
    out = np.where(np.isin(a, ones), 1.0, 0.0)
    ok = ~np.isnan(a) if valid is None else np.isin(a, valid + ones)
    return np.where(ok, out, np.nan)


def _at_least(x: pd.Series | np.ndarray, cut: float) -> np.ndarray:
    a = np.asarray(x, dtype="float64")
    return np.where(np.isnan(a), np.nan, (a >= cut).astype("float64"))


# --------------------------------------------------------------------------- linking
@dataclass
class Linked:
    """Base-wave rows with later-wave and household variables attached."""

    frame: pd.DataFrame
    found_wave7: int
    found_wave9: int


def link_waves(
    base: pd.DataFrame,
    wave7: pd.DataFrame,
    wave9: pd.DataFrame,
    hhresp: pd.DataFrame,
) -> Linked:
    """Link waves by ``pidp`` and the household file by base-wave ``hidp``.

    Parameters
    ----------
    base : pandas.DataFrame
        Clean base-wave (wave 6) indresp: one row per adult.
    wave7, wave9 : pandas.DataFrame
        Clean wave-7 / wave-9 indresp (SWEMWBS / loneliness variables).
    hhresp : pandas.DataFrame
        Clean base-wave household file (income variables).

    Returns
    -------
    Linked
        ``frame``: base rows in file order, plus ``in_wave7``, ``in_wave9``, the wave-7
        and wave-9 variables (NaN when the person is absent) and household income
        variables (NaN when the household is absent from hhresp).
    """
    out = base.copy()
    pidp = out["pidp"]
    for frame, flag in ((wave7, "in_wave7"), (wave9, "in_wave9")):
        idx = frame.set_index("pidp")
        out[flag] = pidp.isin(idx.index).to_numpy()
        for col in idx.columns:
            if col == "hidp":
                continue
            out[col] = idx[col].reindex(pidp).to_numpy()
    hh = hhresp.set_index("hidp")
    hidp = out["hidp"].astype("Int64")
    for col in ("fihhmnnet1_dv", "ieqmoecd_dv"):
        out[col] = hh[col].reindex(hidp).to_numpy(dtype="float64", na_value=np.nan)
    return Linked(out, int(out["in_wave7"].sum()), int(out["in_wave9"].sum()))


# --------------------------------------------------------------------------- derivation
def derive_individual(df: pd.DataFrame, config: ReaderConfig) -> pd.DataFrame:
    """Individual predictors (see ``INDIVIDUAL_COLUMNS``) of the kept rows.

    ``df`` holds clean variables of the base wave (and household income). Returns a
    frame with the same index; ``log_income_raw`` (log of ``income_eq``) is included
    for the LOO area income and dropped later.
    """
    out = pd.DataFrame(index=df.index)
    age_var = next(v for v in config.age_vars if v in df.columns)
    age = df[age_var].to_numpy(dtype="float64")
    out["age"] = age
    out["age50"] = _at_least(age, config.age50_min)
    out["female"] = binary(df["sex"], (2,), valid=(1,))
    codes = dict(config.education_codes)
    cats = list(dict.fromkeys(codes.values()))
    out["education"] = pd.Categorical(df["hiqual_dv"].map(codes), categories=cats)
    out["unemployed"] = binary(df["jbstat"], tuple(config.unemployed_codes))
    out["married"] = binary(df["mastat_dv"], tuple(config.married_codes))
    out["illness"] = binary(df["health"], (1,), valid=(2,))
    out["urban"] = binary(df["urban_dv"], (1,), valid=(2,))
    out["volunteer"] = binary(df["volun"], (1,), valid=(2,))
    safe = tuple(c for c in (1, 2, 3, 4) if c not in config.unsafe_codes)
    unsafe_ones = tuple(config.unsafe_codes)
    if config.unsafe_never_out == "unsafe":
        unsafe_ones += (5,)
    elif config.unsafe_never_out == "safe":
        safe += (5,)
    out["unsafe"] = binary(df["crdark"], unsafe_ones, valid=safe)
    closenum = df["closenum"].to_numpy(dtype="float64")
    out["closenum"] = closenum
    talk = 6.0 - df["scopngbhh"].to_numpy(dtype="float64")
    talk = np.where((talk >= 1) & (talk <= 5), talk, np.nan)
    parts = np.column_stack([zscore(talk), zscore(np.log1p(closenum))])
    soc_raw = parts.mean(axis=1)  # NaN unless both parts are present
    out["sociability_raw"] = soc_raw
    out["sociability"] = zscore(soc_raw)
    inc = df["fihhmnnet1_dv"].to_numpy(dtype="float64")
    eq = df["ieqmoecd_dv"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        income_eq = np.where((inc > 0) & (eq > 0), inc / eq, np.nan)
    out["income_eq"] = income_eq
    out["log_income_raw"] = np.log(income_eq)
    out["log_income"] = zscore(out["log_income_raw"])
    return out


def derive_area(
    lad: pd.Series,
    individual: pd.DataFrame,
    la_covariates: pd.DataFrame,
    config: ReaderConfig,
    extra: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Area covariates: published (joined by 2019 code), LOO means, extra files.

    Every area variable ``area_x`` is the z-score (over the table's rows with a value)
    of ``area_x_raw``, which is kept in published units (or, for LOO means, in the
    units of the individual variable).

    Parameters
    ----------
    lad : pandas.Series
        2019 LA code of each row.
    individual : pandas.DataFrame
        Output of :func:`derive_individual`.
    la_covariates : pandas.DataFrame
        :func:`data.areas.load_la_covariates`.
    config : ReaderConfig
        ``area_columns`` picks the published columns.
    extra : pandas.DataFrame, optional
        Indexed by 2019 code, columns ``area_x_raw`` (see ``data.ukhls``).
    """
    out = pd.DataFrame(index=individual.index)
    cov = la_covariates.set_index("lad19cd")
    codes = pd.Index(lad.astype(str))
    raws: dict[str, np.ndarray] = {}
    for name, col in config.area_columns:
        raws[name] = cov[col].reindex(codes).to_numpy(dtype="float64", na_value=np.nan)
    for name, var in AREA_LOO.items():
        raws[name] = loo_mean(individual[var], lad.to_numpy())
    if extra is not None:
        for col in extra.columns:
            name = col.removesuffix("_raw")
            raws[name] = extra[col].reindex(codes).to_numpy(dtype="float64", na_value=np.nan)
    for name, raw in raws.items():
        out[name] = zscore(raw)
        out[name + "_raw"] = raw
    return out


def derive_outcomes(df: pd.DataFrame, lad: pd.Series, config: ReaderConfig) -> pd.DataFrame:
    """Outcomes and their continuous scores (see ``OUTCOME_COLUMNS``).

    Parameters
    ----------
    df : pandas.DataFrame
        Clean linked variables (base wave, wave-7 SWEMWBS, wave-9 loneliness).
    lad : pandas.Series
        2019 LA code of each row (for ``community_rel``).
    config : ReaderConfig
        Cut-offs.
    """
    out = pd.DataFrame(index=df.index)
    ls = df["sclfsato"].to_numpy(dtype="float64")
    out["lifesat_score"] = ls
    out["life_satisfied"] = _at_least(ls, config.life_satisfied_min)
    use_dv = config.swemwbs_source == "dv" or (config.swemwbs_source == "auto" and "swemwbs_dv" in df.columns)
    if use_dv:
        sw = df["swemwbs_dv"].to_numpy(dtype="float64")
    else:
        sw = df[list(SWEMWBS_ITEMS)].to_numpy(dtype="float64").sum(axis=1)  # NaN if any NaN
    out["swemwbs"] = sw
    out["mental_wellbeing_high"] = _at_least(sw, config.swemwbs_high_min)
    gh = df["scghq2_dv"].to_numpy(dtype="float64")
    out["ghq_score"] = gh
    out["ghq_case"] = _at_least(gh, config.ghq_case_min)
    likert = (1, 2, 3, 4, 5)
    out["belonging"] = binary(df["scopngbha"], tuple(config.belonging_codes), valid=likert)
    out["local_friends"] = binary(df["scopngbhb"], tuple(config.local_friends_codes), valid=likert)
    out["lonely"] = _at_least(df["sclonely"], config.lonely_min)
    items = [f"scopngbh{x}" for x in config.community_items]
    assert set(items) <= set(COHESION_ITEMS)
    rev = 6.0 - df[items].to_numpy(dtype="float64")
    rev = np.where((rev >= 1) & (rev <= 5), rev, np.nan)
    score = rev.mean(axis=1)  # NaN unless all chosen items are present
    out["community_score"] = score
    out["community_abs"] = _at_least(score, config.community_abs_min)
    loo = loo_mean(score, lad.to_numpy())
    rel = np.where(np.isnan(score) | np.isnan(loo), np.nan, (score > loo).astype("float64"))
    out["community_rel"] = rel
    return out


def derive_design(df: pd.DataFrame, config: ReaderConfig) -> pd.DataFrame:
    """Survey weights and design variables of the kept rows (see `design_columns`).

    Weights are float64 as released (0 for people outside the weight's population, NaN
    where the file lacks the column, the person is absent from that wave, or the value is
    a missing-value code); ``psu`` and ``strata`` are float64 ids.
    """
    out = pd.DataFrame(index=df.index)
    for name, (var, _) in design_columns(config).items():
        out[name] = df[var].to_numpy(dtype="float64") if var in df.columns else np.nan
    return out


def derive_table(
    kept: pd.DataFrame,
    la_covariates: pd.DataFrame,
    config: ReaderConfig,
    extra: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Build the analysis table from linked rows that have a GB 2019 LA code.

    Parameters
    ----------
    kept : pandas.DataFrame
        Linked clean frame (:func:`link_waves`) restricted to the rows kept, with a
        ``lad`` column (2019 code).
    la_covariates : pandas.DataFrame
        Real LA covariates.
    config : ReaderConfig
        Cut-offs and options.
    extra : pandas.DataFrame, optional
        Extra area variables indexed by 2019 code.

    Returns
    -------
    pandas.DataFrame
        Columns in the order ids, survey design (weights, PSU, strata), individual
        predictors, area covariates, outcomes.
    """
    kept = kept.reset_index(drop=True)
    lad = kept["lad"].astype(str)
    cov = la_covariates.set_index("lad19cd")
    ids = pd.DataFrame(
        {
            "pidp": kept["pidp"].to_numpy(dtype="int64"),
            "hidp": kept["hidp"].to_numpy(dtype="int64"),
            "lad": lad.to_numpy(),
            "lad_name": cov["lad19nm"].reindex(lad).to_numpy(),
            "region": cov["rgn19nm"].reindex(lad).to_numpy(),
            "country": cov["country"].reindex(lad).to_numpy(),
            "in_wave7": kept["in_wave7"].to_numpy(dtype=bool),
            "in_wave9": kept["in_wave9"].to_numpy(dtype=bool),
        }
    )
    for c in ("lad", "lad_name", "region", "country"):
        ids[c] = ids[c].astype("string")
    ind = derive_individual(kept, config)
    area = derive_area(lad, ind, la_covariates, config, extra)
    outc = derive_outcomes(kept, lad, config)
    ind = ind.drop(columns="log_income_raw")
    design = derive_design(kept, config)
    return pd.concat([ids, design, ind, area, outc], axis=1)
