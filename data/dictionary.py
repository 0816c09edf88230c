"""Data dictionary of the analysis table."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from data.areas import PUBLISHED_AREA_COLUMNS

__all__ = ["describe_columns", "COLUMN_INFO"]

PUB = "published"
IND = "UKHLS individual data"
LOO = "derived from individual data (LOO LA mean)"
SIM = "simulated"

#: name -> (meaning, units, source)
COLUMN_INFO: dict[str, tuple[str, str, str]] = {
    "pidp": ("UKHLS cross-wave person id", "id", IND),
    "hidp": ("wave-6 household id (f_hidp)", "id", IND),
    "lad": ("local authority district, 2019 GSS code (harmonised from f_oslaua)", "code", IND),
    "lad_name": ("local authority name, 2019", "text", PUB),
    "region": ("English region, or Wales / Scotland (2019)", "text", PUB),
    "country": ("England, Wales or Scotland", "text", PUB),
    "in_wave7": ("person has a wave-7 indresp record (g_indresp)", "bool", IND),
    "in_wave9": ("person has a wave-9 indresp record (i_indresp)", "bool", IND),
    "weight_sc": (
        "wave-6 cross-sectional self-completion weight f_indscui_xw (0 outside its population)",
        "weight",
        IND,
    ),
    "weight_main": ("wave-6 cross-sectional main-interview weight f_indinui_xw", "weight", IND),
    "weight_sc_w7": ("wave-7 self-completion weight g_indscui_xw (SWEMWBS models)", "weight", IND),
    "weight_sc_w9": ("wave-9 self-completion weight i_indscui_xw (loneliness models)", "weight", IND),
    "psu": ("primary sampling unit f_psu (design-based variances)", "id", IND),
    "strata": ("sampling stratum f_strata (design-based variances)", "id", IND),
    "age": ("age at wave-6 interview (age_dv or dvage)", "years", IND),
    "age50": ("aged 50 or over", "0/1", IND),
    "female": ("sex == 2 (female)", "0/1", IND),
    "education": (
        "highest qualification (hiqual_dv 1 degree, 2 other higher, 3 A level, 4 GCSE, 5 other, 9 none)",
        "category",
        IND,
    ),
    "unemployed": ("jbstat == 3 (unemployed)", "0/1", IND),
    "married": ("mastat_dv in {2 married, 3 civil partnership}", "0/1", IND),
    "illness": ("long-standing illness or impairment (health == 1)", "0/1", IND),
    "urban": ("urban area (urban_dv == 1)", "0/1", IND),
    "volunteer": ("unpaid voluntary work in the last 12 months (volun == 1)", "0/1", IND),
    "unsafe": (
        "feels a bit or very unsafe walking alone after dark (crdark in {3, 4}); "
        "crdark 5 (never goes out alone) is missing by default",
        "0/1",
        IND,
    ),
    "closenum": ("number of close friends", "count", IND),
    "sociability_raw": (
        "mean of z(6 - scopngbhh, talks to neighbours) and z(log1p(closenum)); missing unless both present",
        "SD units",
        IND,
    ),
    "sociability": ("z-score of sociability_raw", "SD", IND),
    "income_eq": (
        "equivalised household net income fihhmnnet1_dv / ieqmoecd_dv (non-positive income -> missing)",
        "GBP per month",
        IND,
    ),
    "log_income": ("z-score of log(income_eq)", "SD", IND),
    "area_income": ("z-score of area_income_raw (survey-based LA income; published: area_gdhi)", "SD", LOO),
    "area_income_raw": (
        "respondents' LA income: LOO LA mean of log(income_eq) (the published LA income is area_gdhi)",
        "log GBP per month",
        LOO,
    ),
    "area_volunteering": ("z-score of area_volunteering_raw", "SD", LOO),
    "area_volunteering_raw": ("LOO LA share volunteering", "proportion 0-1", LOO),
    "area_sociability": ("z-score of area_sociability_raw", "SD", LOO),
    "area_sociability_raw": ("LOO LA mean of sociability_raw", "SD units", LOO),
    "area_unsafe": ("z-score of area_unsafe_raw", "SD", LOO),
    "area_unsafe_raw": ("LOO LA share feeling unsafe after dark", "proportion 0-1", LOO),
    "area_walkability": ("z-score of area_walkability_raw", "SD", SIM),
    "area_walkability_raw": (
        "neighbourhood walkability / access to assets (no open LA source)",
        "index 0-100",
        SIM,
    ),
    "lifesat_score": ("life satisfaction sclfsato (w6), 1-7", "score 1-7", IND),
    "life_satisfied": ("lifesat_score >= 6 (configurable)", "0/1", IND),
    "swemwbs": (
        "SWEMWBS (w7): swemwbs_dv, or raw sum of scwemwba-g when absent",
        "score 7-35",
        IND,
    ),
    "mental_wellbeing_high": ("swemwbs >= 24 (configurable)", "0/1", IND),
    "ghq_score": ("GHQ-12 caseness scghq2_dv (w6)", "count 0-12", IND),
    "ghq_case": ("ghq_score >= 4 (configurable)", "0/1", IND),
    "belonging": ("agrees (1, 2) that they belong to the neighbourhood (scopngbha, w6)", "0/1", IND),
    "local_friends": ("agrees (1, 2) local friendships mean a lot (scopngbhb, w6)", "0/1", IND),
    "lonely": ("sclonely >= 2: lonely some of the time or often (w9)", "0/1", IND),
    "community_score": (
        "mean of reversed (6 - x) cohesion items c-g (w6; configurable); missing unless all present",
        "score 1-5",
        IND,
    ),
    "community_abs": ("community_score >= 3.5 (configurable)", "0/1", IND),
    "community_rel": (
        "community_score above the LOO mean of the other respondents in the same LA",
        "0/1",
        LOO,
    ),
}

for _name, (_col, _units, _meaning) in PUBLISHED_AREA_COLUMNS.items():
    COLUMN_INFO[_name] = (f"z-score of {_name}_raw", "SD", PUB)
    COLUMN_INFO[_name + "_raw"] = (f"{_meaning} [{_col}]", _units, PUB)


def describe_columns(
    table: pd.DataFrame | None = None, sources: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Data dictionary: one row per analysis-table column.

    Parameters
    ----------
    table : pandas.DataFrame, optional
        An analysis table from :func:`data.ukhls.read_release`. When given, only its
        columns are listed (in its order), and the sources recorded in
        ``table.attrs["column_sources"]`` (e.g. "simulated" for variables from the
        synthetic ``area_simulated.csv``) override the defaults.
    sources : mapping, optional
        Further overrides: column -> source label.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``meaning``, ``units``, ``source`` (published / UKHLS
        derived / derived from individual data (LOO) / simulated).
    """
    over: dict[str, str] = {}
    if table is not None:
        over.update(table.attrs.get("column_sources", {}))
    over.update(sources or {})
    names = list(table.columns) if table is not None else list(COLUMN_INFO)
    rows = []
    for name in names:
        base = name.removesuffix("_raw")
        meaning, units, source = COLUMN_INFO.get(
            name, (f"extra area variable ({base})", "as in the extra file", "extra file")
        )
        if base in over:
            source = over[base]
        rows.append((name, meaning, units, source))
    return pd.DataFrame(rows, columns=["name", "meaning", "units", "source"])
