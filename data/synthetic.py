"""Synthetic UKHLS release with a known truth (SN 6614 + SN 6666 layout).

:func:`generate_release` writes tab-delimited files with real variable names, wave
prefixes and integer missing-value codes, plus the simulated LA variables
(``area_simulated.csv``), the truth (``truth.json``, ``truth_la_effects.csv``) and a
README. Nothing in it is real individual data.

How exactness is achieved
-------------------------
1. Covariates are generated for ``n`` adults in households in real GB LAs (and a few in
   Northern Ireland, which the reader drops), with their missing-value codes.
2. The released files are built in memory and passed through the reader's own
   :func:`data.ukhls.build_table`, which gives the standardised predictors and LOO area
   means exactly as a reader of the files will compute them.
3. Links and outcomes are drawn from :data:`data.truth.TRUTH` on those predictors;
   the response items are then written so that the reader's default cut-offs give back
   the drawn 0/1 outcomes (e.g. ``life_satisfied = 1`` -> ``sclfsato`` 6 or 7).
4. The final files are built and read back in memory; that table is the expected
   output of :func:`data.ukhls.read_release` on the written release.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from data.areas import LA_DIR, load_la_covariates
from data.audit import Audit
from data.config import DEFAULT_CONFIG
from data.derive import zscore
from data.sources import COHESION_ITEMS, MAIN_WEIGHT, SC_WEIGHT, SWEMWBS_ITEMS, Source, file_stem
from data.truth import DRAW_ORDER, LINKS, TRUTH, UNSAFE_MODEL, design_matrix
from data.ukhls import build_table

__all__ = [
    "DEFAULT_SEED",
    "GENERATOR_VERSION",
    "SyntheticRelease",
    "simulate",
    "write_release",
    "generate_release",
]

DEFAULT_SEED = 20240601
GENERATOR_VERSION = "1.1"  # 1.1: sampling design and weights, ONS population mix, GDHI
N_MIN, N_MAX = 1_000, 500_000
CANDIDATE_RESPONSE = 0.4  # adults drawn per respondent needed: n / 0.4 (response is about 0.6)

GOR = {
    "North East": 1,
    "North West": 2,
    "Yorkshire and The Humber": 3,
    "East Midlands": 4,
    "West Midlands": 5,
    "East of England": 6,
    "London": 7,
    "South East": 8,
    "South West": 9,
    "Wales": 10,
    "Scotland": 11,
    "Northern Ireland": 12,
}
URBAN_BY_TYPE = {
    "London borough": 1.0,
    "English metropolitan district": 0.95,
    "English unitary authority": 0.85,
    "English non-metropolitan district": 0.6,
    "Welsh unitary authority": 0.6,
    "Scottish council area": 0.7,
}
NI_CODES = tuple(f"N09{i:06d}" for i in range(1, 12))
NI_SHARE = 0.015  # share of households in Northern Ireland (dropped by the reader)
NO_LA_RECORD_SHARE = 0.003  # households missing from f_oslaua_protect
PROXY_SHARE = 0.03
PHONE_SHARE = 0.02  # telephone interviews: routed out of self-completion (-8)
SELF_COMPLETION_EXTRA = ("closenum", "crdark", "volun", "volfreq")  # not in proxy interview

# scale of the latent (logistic) variable -> ordinal item response
ITEM_SCALES = {"sclfsato": 0.7, "scghq2_dv": 1.6, "swemwbs": 2.6, "community": 2.4}

# Options of `simulate`, off by default (then the truth is exactly as without them):
# spatially structured LA intercepts of one outcome (BYM2 on the 2019 GB adjacency graph,
# islands joined, `models.spatial`) and a threshold in one area factor.
SPATIAL_OUTCOME = "life_satisfied"
THRESHOLD_OUTCOME = "life_satisfied"
THRESHOLD_FACTOR = "area_unemployment_raw"  # % unemployed, ONS model-based, 2015-16
THRESHOLD_SLOPE = -0.25  # extra log-odds per percentage point above the threshold


@dataclass
class SyntheticRelease:
    """A simulated release held in memory.

    Attributes
    ----------
    sources : dict
        File key (e.g. ``"indresp_f"``) -> :class:`~data.sources.Source` with the
        released columns and codes.
    table : pandas.DataFrame
        The analysis table a reader of the files gets (default config).
    audit : Audit
        Its audit.
    latent : pandas.DataFrame
        One row per table row: ``pidp``, ``lad``, and per drawn variable ``v`` the
        linear predictor ``eta_v`` and the drawn value ``true_v`` (complete, also
        where the file has a missing code).
    truth : dict
        Content of ``truth.json``.
    la_effects : pandas.DataFrame
        Realised LA effects: ``lad``, ``outcome``, ``term``, ``value``.
    area_simulated : pandas.DataFrame
        Content of ``area_simulated.csv``.
    """

    n: int
    seed: int
    sources: dict[str, Source]
    table: pd.DataFrame
    audit: Audit
    latent: pd.DataFrame
    truth: dict
    la_effects: pd.DataFrame
    area_simulated: pd.DataFrame


# --------------------------------------------------------------------------- helpers
def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _categorical(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one category index per row of a probability matrix."""
    c = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(len(p))[:, None]
    return np.minimum((u > c).sum(axis=1), p.shape[1] - 1)


def _ordinal(ystar: np.ndarray, cut: int, lo: int, hi: int, scale: float) -> np.ndarray:
    """Ordinal response from a latent variable; ``value >= cut`` iff ``ystar > 0``."""
    v = np.rint(cut - 0.5 + scale * ystar)
    v = np.where(ystar > 0, np.maximum(v, cut), np.minimum(v, cut - 1))
    return np.clip(v, lo, hi).astype("int64")


def _split_sum(total: np.ndarray, k: int, lo: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    """Split each total into ``k`` integer items in ``[lo, hi]`` that add up to it."""
    n = len(total)
    cap = hi - lo
    rem = total - lo * k
    w = rng.dirichlet(np.full(k, 3.0), size=n)
    alloc = np.minimum(np.floor(w * rem[:, None]), cap).astype("int64")
    left = rem - alloc.sum(axis=1)
    while (left > 0).any():
        room = alloc < cap
        pick = (rng.random((n, k)) * room).argmax(axis=1)
        add = left > 0
        alloc[add, pick[add]] += 1
        left = left - add
    return alloc + lo


def _sprinkle(
    values: np.ndarray,
    rates: dict[int, float],
    rng: np.random.Generator,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Overwrite a random share of values with missing codes (``code -> rate``)."""
    out = values.copy()
    u = rng.random(len(values))
    ok = out >= 0 if eligible is None else eligible & (out >= 0)
    edge = 0.0
    for code, rate in rates.items():
        hit = ok & (u >= edge) & (u < edge + rate)
        out[hit] = code
        edge += rate
    return out


# --------------------------------------------------------------------------- design
#: The sampling design of the synthetic release (unequal selection that the weights undo).
#: LAs: households are drawn in proportion to the electorate times ``la_rate`` (Scotland and
#: Wales boosted, as are LAs in the top quarter of the Census 2011 non-White share, like a
#: minority boost). Persons: each adult of a drawn household responds with probability
#: ``logistic(intercept + age * (age - 45) / 20 + female * female + informative * eps)``,
#: where ``eps`` is the person's logistic error of ``life_satisfied`` (0 unless the release
#: is simulated with ``informative=True``). Households form PSUs of about ``psu_households``
#: within each LA; strata are region x tercile of LA deprivation within the region.
DESIGN = {
    "la_rate": {"Scotland": 1.6, "Wales": 1.6, "nonwhite_top_quarter": 1.5, "other": 1.0},
    "response": {"intercept": 0.6, "age": 0.5, "female": 0.3},
    "informative": 1.0,
    "informative_outcome": "life_satisfied",
    "psu_households": 10,
}
ADULT_BANDS = {"16-29": (18, 29), "30-49": (30, 49), "50-64": (50, 64), "65-74": (65, 74), "75+": (75, 95)}


def _la_sampling_rates(gb: pd.DataFrame) -> np.ndarray:
    """Relative household selection rate of each GB LA (see `DESIGN`)."""
    r = DESIGN["la_rate"]
    nonwhite = gb["census11_pct_nonwhite"].to_numpy(dtype="float64")
    top = nonwhite >= np.nanquantile(nonwhite, 0.75)
    rate = np.where(top, r["nonwhite_top_quarter"], r["other"])
    country = gb["country"].astype(str).to_numpy()
    rate = np.where(country == "Scotland", r["Scotland"], rate)
    return np.where(country == "Wales", r["Wales"], rate)


def _adult_mix(codes: pd.Series) -> list[np.ndarray]:
    """Per LA: shares of the adult (16+) population by (sex, age band), from the ONS mid-2019
    table (`ADULT_BANDS` order, female first); NI districts get the GB mix."""
    pop = pd.read_csv(LA_DIR / "population_mid2019_lad19_sex_age.csv")
    pop = pop[pop["age_band"].isin(list(ADULT_BANDS))]
    wide = pop.pivot_table(index="lad19cd", columns=["sex", "age_band"], values="population", aggfunc="sum")
    wide = wide[[(s, b) for s in ("female", "male") for b in ADULT_BANDS]]
    shares = wide.div(wide.sum(axis=1), axis=0)
    gb_mix = (wide.sum(axis=0) / wide.to_numpy().sum()).to_numpy()
    return [shares.loc[c].to_numpy() if c in shares.index else gb_mix for c in codes.astype(str)]


def response_probability(age: np.ndarray, female: np.ndarray, eps: np.ndarray | None = None) -> np.ndarray:
    """A drawn adult's response probability under `DESIGN` (``eps``: the informative part)."""
    r = DESIGN["response"]
    lin = r["intercept"] + r["age"] * (np.asarray(age) - 45) / 20 + r["female"] * np.asarray(female)
    if eps is not None:
        lin = lin + DESIGN["informative"] * np.asarray(eps)
    return _logistic(lin)


# --------------------------------------------------------------------------- areas
def _areas(rng: np.random.Generator) -> pd.DataFrame:
    """GB LAs with the core covariates plus NI districts, with simulated traits."""
    cov = load_la_covariates()
    gb = cov[cov["unemp_rate_apr2015_mar2016"].notna()].reset_index(drop=True)
    urban = gb["ms_ruc_share_urban"].fillna(gb["lad_type"].map(URBAN_BY_TYPE)).to_numpy()
    imd_z = zscore(gb["imd2019_avg_score"])
    unemp = gb["unemp_rate_apr2015_mar2016"].to_numpy()
    dep_z = np.where(np.isnan(imd_z), zscore(unemp), imd_z)
    la = pd.DataFrame(
        {
            "lad19cd": gb["lad19cd"].astype(str),
            "lad19nm": gb["lad19nm"].astype(str),
            "weight": gb["euref_electorate"].to_numpy(dtype="float64"),
            "urban_share": urban,
            "dep_z": dep_z,
            "unemp": unemp,
            "gdhi_z": zscore(np.log(gb["gdhi_per_head_gbp_2016"].to_numpy(dtype="float64"))),
            "gor": gb["rgn19nm"].map(GOR).to_numpy(dtype="int64"),
            "london": (gb["rgn19nm"] == "London").to_numpy(),
            "ni": False,
            "rate": _la_sampling_rates(gb),
        }
    )
    ni = pd.DataFrame(
        {
            "lad19cd": list(NI_CODES),
            "lad19nm": "Northern Ireland district",
            "weight": np.nan,
            "urban_share": 0.65,
            "dep_z": 0.0,
            "unemp": 5.5,
            "gdhi_z": 0.0,
            "gor": 12,
            "london": False,
            "ni": True,
            "rate": 1.0,
        }
    )
    la = pd.concat([la, ni], ignore_index=True)
    j = len(la)
    urb_z = zscore(la["urban_share"])
    walk = 0.6 * urb_z + 0.8 * rng.standard_normal(j)
    la["walk_z"] = zscore(walk)
    la["soc_la"] = -0.25 * urb_z + 0.35 * rng.standard_normal(j)
    la["vol_la"] = -0.25 * la["dep_z"] - 0.15 * urb_z + 0.25 * rng.standard_normal(j)
    la["unsafe_la"] = UNSAFE_MODEL["la_sd"] * rng.standard_normal(j)
    # design strata: region x tercile of deprivation within the region (NI: one stratum)
    tercile = la.groupby("gor")["dep_z"].transform(lambda d: np.ceil(3 * d.rank(pct=True)).clip(1, 3))
    la["stratum"] = (la["gor"] * 10 + tercile).astype("int64")
    la["adult_mix"] = _adult_mix(la["lad19cd"])
    # wave-6 (2015) vintage code: a predecessor of LAs that changed in 2018-2019
    hand = pd.read_csv(LA_DIR / "lad_code_changes_2011_2016.csv", dtype=str)
    later = hand[hand["effective"] >= "2016"]
    preds = later.groupby("new_code")["old_code"].apply(list).to_dict()
    la["predecessors"] = [preds.get(c, [c]) for c in la["lad19cd"]]
    return la


# --------------------------------------------------------------------------- people
def _households(n: int, la: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    sizes = rng.choice([1, 2, 3, 4], p=[0.32, 0.45, 0.14, 0.09], size=n)
    csum = np.cumsum(sizes)
    h = int(np.searchsorted(csum, n) + 1)
    sizes = sizes[:h].copy()
    sizes[-1] -= csum[h - 1] - n
    gb = ~la["ni"].to_numpy()
    w = la["weight"].to_numpy() * la["rate"].to_numpy()
    w[gb] = (1 - NI_SHARE) * w[gb] / w[gb].sum()
    w[~gb] = NI_SHARE / (~gb).sum()
    la_idx = rng.choice(len(la), size=h, p=w / w.sum())
    urban = rng.random(h) < la["urban_share"].to_numpy()[la_idx]
    children = np.minimum(rng.poisson(0.45, size=h), 4) * (sizes <= 3)
    hidp = 68_000_000 + np.cumsum(rng.integers(1, 9, size=h)) * 4
    code_w6 = [
        p[0] if len(p) == 1 else p[int(u * len(p))]
        for p, u in zip(la["predecessors"].to_numpy()[la_idx], rng.random(h), strict=True)
    ]
    return pd.DataFrame(
        {
            "hidp": hidp.astype("int64"),
            "size": sizes,
            "la": la_idx,
            "urban": urban,
            "children": children,
            "code_w6": code_w6,
        }
    )


def _people(hh: pd.DataFrame, la: pd.DataFrame, rng: np.random.Generator) -> dict:
    """True (complete) individual characteristics."""
    hi = np.repeat(np.arange(len(hh)), hh["size"].to_numpy())
    n = len(hi)
    pno = (
        np.arange(n)
        - np.repeat(np.cumsum(hh["size"].to_numpy()) - hh["size"].to_numpy(), hh["size"].to_numpy())
    ) + 1
    li = hh["la"].to_numpy()[hi]
    size = hh["size"].to_numpy()[hi]
    dep = la["dep_z"].to_numpy()[li]
    p: dict[str, np.ndarray] = {"hi": hi, "pno": pno, "li": li}
    p["pidp"] = (68_000_000 + np.cumsum(rng.integers(1, 7, size=n)) * 17).astype("int64")
    # householder's sex and age band from the LA's adult population (ONS mid-2019), age
    # uniform within the band (75+: 75 + an exponential tail, at most 95); partner close in
    # age, others young adults
    mix = np.stack(la["adult_mix"].to_numpy())[hh["la"].to_numpy()]
    cat = _categorical(mix, rng)
    bands = np.array(list(ADULT_BANDS.values()))[cat % len(ADULT_BANDS)]
    a1 = bands[:, 0] + np.floor(rng.random(len(hh)) * (bands[:, 1] - bands[:, 0] + 1))
    old_band = bands[:, 0] == 75
    a1[old_band] = 75 + np.minimum(np.floor(rng.exponential(6.0, old_band.sum())), 20)
    age = a1.astype("int64")[hi].copy()
    partner = pno == 2
    age[partner] = np.clip(age[partner] + np.rint(rng.normal(-2, 5, partner.sum())), 18, 95)
    other = pno >= 3
    age[other] = rng.integers(16, 36, size=other.sum())
    age = np.clip(age, 16, 95).astype("int64")
    p["age"] = age
    s1 = cat < len(ADULT_BANDS)  # female householder
    female = rng.random(n) < 0.52
    female[pno == 1] = s1[hi][pno == 1]
    female[partner] = np.where(rng.random(partner.sum()) < 0.97, ~s1[hi][partner], s1[hi][partner])
    p["female"] = female
    # education (latent), hiqual_dv codes
    edu = -0.015 * (age - 45) - 0.35 * dep + rng.standard_normal(n)
    cuts = np.quantile(edu, [0.12, 0.20, 0.40, 0.61, 0.72])
    cat = np.searchsorted(cuts, edu)  # 0 none ... 5 degree
    p["hiqual"] = np.array([9, 5, 4, 3, 2, 1])[cat]
    p["edu"] = edu
    # economic activity (jbstat)
    unemp = la["unemp"].to_numpy()[li] / 100
    p_unemp = np.clip(1.3 * unemp * np.exp(-0.4 * edu), 0.005, 0.4)
    old = age >= 66
    young = age <= 22
    probs = np.column_stack(
        [
            np.full(n, 0.10),  # 1 self-employed
            np.full(n, 0.62),  # 2 employed
            p_unemp,  # 3 unemployed
            np.where(age >= 60, 0.35, 0.0),  # 4 retired
            np.where(female & (age < 45), 0.05, 0.0),  # 6 family care
            np.where(young, 0.9, np.where(age < 26, 0.1, 0.0)),  # 7 student
            0.04 + 0.015 * np.clip(dep, -2, 2) + 0.002 * np.clip(age - 40, 0, 30),  # 8 LT sick
        ]
    )
    codes = np.array([1, 2, 3, 4, 6, 7, 8])
    jb = codes[_categorical(probs, rng)]
    retired_old = np.where(rng.random(n) < 0.92, 4, np.where(rng.random(n) < 0.6, 2, 1))
    p["jbstat"] = np.where(old, retired_old, jb)
    # marital status: householder and partner form a couple in most 2+ households
    couple_hh = (hh["size"].to_numpy() >= 2) & (rng.random(len(hh)) < 0.82)
    in_couple = couple_hh[hi] & (pno <= 2)
    ctype = np.array([2, 3, 10])[_categorical(np.tile([0.72, 0.01, 0.27], (len(hh), 1)), rng)]
    single_p = np.column_stack(
        [
            np.where(age < 35, 0.9, 0.35),  # 1 never married
            np.full(n, 0.04),  # 4 separated
            np.where(age >= 35, 0.3, 0.02),  # 5 divorced
            np.where(age >= 65, 0.45, 0.01),  # 6 widowed
        ]
    )
    single = np.array([1, 4, 5, 6])[_categorical(single_p, rng)]
    p["mastat"] = np.where(in_couple, ctype[hi], single)
    p["health"] = np.where(
        rng.random(n) < _logistic(-1.0 + 0.035 * (age - 45) + 0.25 * dep + 1.5 * (p["jbstat"] == 8)),
        1,
        2,
    )
    p["urban"] = hh["urban"].to_numpy()[hi]
    vol_la = la["vol_la"].to_numpy()[li]
    p["volun"] = np.where(rng.random(n) < _logistic(-1.45 + vol_la + 0.35 * edu + 0.01 * (age - 45)), 1, 2)
    m = UNSAFE_MODEL
    eta_unsafe = (
        m["Intercept"]
        + m["walkability"] * la["walk_z"].to_numpy()[li]
        + m["female"] * female
        + m["deprivation"] * dep
        + m["age70"] * (age >= 70)
    )
    eta_unsafe = eta_unsafe + la["unsafe_la"].to_numpy()[li]
    unsafe = rng.random(n) < _logistic(eta_unsafe)
    crdark = np.where(unsafe, np.where(rng.random(n) < 0.7, 3, 4), np.where(rng.random(n) < 0.55, 1, 2))
    never = rng.random(n) < 0.015 + 0.08 * (age >= 75)
    p["crdark"] = np.where(never, 5, crdark)
    soc = la["soc_la"].to_numpy()[li] + rng.standard_normal(n)
    talk = np.clip(np.rint(3.1 + 0.9 * soc + rng.normal(0, 0.6, n)), 1, 5)
    p["scopngbhh"] = (6 - talk).astype("int64")
    p["closenum"] = np.minimum(rng.poisson(np.exp(1.3 + 0.35 * soc + 0.1 * female)), 50)
    # household income (equivalised, then household total)
    hrp = pno == 1
    edu_h = np.zeros(len(hh))
    edu_h[hi[hrp]] = edu[hrp]
    working = np.zeros(len(hh))
    np.maximum.at(working, hi, np.isin(p["jbstat"], [1, 2]).astype(float))
    log_eq = (
        7.35
        + 0.22 * edu_h
        + 0.35 * working
        - 0.06 * la["dep_z"].to_numpy()[hh["la"]]
        + 0.12 * la["gdhi_z"].to_numpy()[hh["la"]]
        + rng.normal(0, 0.42, len(hh))
    )
    eq = np.round(1 + 0.5 * (hh["size"].to_numpy() - 1) + 0.3 * hh["children"].to_numpy(), 2)
    income = np.round(np.exp(log_eq) * eq, 2)
    nonpos = rng.random(len(hh)) < 0.003
    neg = rng.random(len(hh)) < 0.5
    income = np.where(nonpos, np.where(neg, -np.round(rng.uniform(5, 800, len(hh)), 2), 0.0), income)
    p["hh_income"], p["hh_eq"], p["hh_log_eq"] = income, eq, log_eq
    p["size"] = size
    # proxies and attrition (depend on covariates only, never on outcomes)
    p["proxy6"] = rng.random(n) < PROXY_SHARE
    p_hh7 = rng.random(len(hh)) < 0.05
    p_hh9 = rng.random(len(hh)) < 0.13
    miss7 = p_hh7[hi] | (rng.random(n) < _logistic(-2.9 - 0.02 * (age - 45)))
    miss9 = (
        p_hh9[hi] | (miss7 & (rng.random(n) < 0.6)) | (rng.random(n) < _logistic(-2.6 - 0.02 * (age - 45)))
    )
    p["in7"], p["in9"] = ~miss7, ~miss9
    p["proxy7"] = (p["proxy6"] & (rng.random(n) < 0.7)) | (rng.random(n) < 0.01)
    p["proxy9"] = (p["proxy6"] & (rng.random(n) < 0.7)) | (rng.random(n) < 0.01)
    for w in ("6", "7", "9"):
        p["phone" + w] = (rng.random(n) < PHONE_SHARE) & ~p["proxy" + w]
    return p


# --------------------------------------------------------------------------- items
def _coded_predictors(p: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Wave-6 predictor items with their missing-value codes."""
    n = len(p["pidp"])
    proxy = p["proxy6"]
    c: dict[str, np.ndarray] = {}
    c["ivfio"] = np.where(proxy, 2, 1)
    c["indmode"] = np.where(p["phone6"], 2, 1)
    c["sex"] = np.where(p["female"], 2, 1)
    c["age_dv"] = p["age"]
    c["gor_dv"] = np.zeros(n, dtype="int64")  # filled by caller (needs LA table)
    c["urban_dv"] = _sprinkle(np.where(p["urban"], 1, 2), {-9: 0.001}, rng)
    c["hiqual_dv"] = _sprinkle(p["hiqual"], {-9: 0.004}, rng)
    c["jbstat"] = _sprinkle(p["jbstat"], {-1: 0.001, -9: 0.002}, rng)
    c["mastat_dv"] = _sprinkle(p["mastat"], {-9: 0.001}, rng)
    c["health"] = _sprinkle(p["health"], {-1: 0.001, -2: 0.001}, rng)
    c["volun"] = _sprinkle(p["volun"], {-1: 0.001, -9: 0.002}, rng)
    c["volfreq"] = np.where(c["volun"] == 1, rng.integers(1, 8, n), -8)
    c["volfreq"] = np.where(c["volun"] < 0, -9, c["volfreq"])
    c["crdark"] = _sprinkle(p["crdark"], {-1: 0.002, -9: 0.003}, rng)
    c["closenum"] = _sprinkle(p["closenum"], {-1: 0.005, -9: 0.003}, rng)
    c["scopngbhh"] = _sprinkle(p["scopngbhh"], {-1: 0.002, -2: 0.001, -9: 0.004}, rng)
    for var in SELF_COMPLETION_EXTRA:
        c[var] = np.where(proxy, -7, c[var])
    c["scopngbhh"] = np.where(proxy, -7, np.where(p["phone6"], -8, c["scopngbhh"]))
    return c


_SC_RATES = {-1: 0.002, -2: 0.002, -9: 0.005}


def _sc_item(
    values: np.ndarray, proxy: np.ndarray, phone: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Self-completion item: -7 for proxies, -8 for telephone interviews (routed out of
    the self-completion module), -1/-2/-9 sprinkled."""
    out = np.where(proxy, -7, _sprinkle(values, _SC_RATES, rng))
    return np.where(phone & ~proxy, -8, out)


def _indresp_frame(wave: str, cols: dict[str, np.ndarray], order: list[str]) -> pd.DataFrame:
    data = {}
    for var in order:
        name = var if var == "pidp" else f"{wave}_{var}"
        if var in WEIGHT_VARIABLES:
            data[name] = np.round(np.asarray(cols[var], dtype="float64"), 6)
        else:
            data[name] = np.asarray(cols[var]).astype("int64")
    return pd.DataFrame(data)


WEIGHT_VARIABLES = (SC_WEIGHT, MAIN_WEIGHT)
HOUSEHOLD_ARRAYS = ("hh_income", "hh_eq", "hh_log_eq")


def _respondents(
    hh: pd.DataFrame,
    p: dict,
    la: pd.DataFrame,
    eps: np.ndarray,
    n: int,
    informative: bool,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """The first ``n`` responding adults of the drawn households (`DESIGN`), with their
    weights, PSUs and strata in ``p``; households without a respondent are dropped.

    Returns the households, the people (``p`` restricted) and the rows of ``eps`` kept.
    """
    k = DRAW_ORDER.index(DESIGN["informative_outcome"])
    rho = response_probability(p["age"], p["female"], eps[:, k] if informative else None)
    responds = rng.random(len(rho)) < rho
    if responds.sum() < n:
        raise AssertionError(f"only {int(responds.sum())} of {len(rho)} drawn adults responded; need {n}")
    keep = np.flatnonzero(responds)[:n]
    hh_keep = np.unique(p["hi"][keep])
    new_hi = np.full(len(hh), -1)
    new_hi[hh_keep] = np.arange(len(hh_keep))
    out = {}
    for key, value in p.items():
        out[key] = value[hh_keep] if key in HOUSEHOLD_ARRAYS else value[keep]
    out["hi"] = new_hi[p["hi"][keep]]
    hh = hh.iloc[hh_keep].reset_index(drop=True)
    # design weight: inverse of the selection probability (LA rate x response), mean 1
    w = 1.0 / (la["rate"].to_numpy()[out["li"]] * rho[keep])
    out["design_weight"] = w / w.mean()
    out["response_probability"] = rho[keep]
    # PSUs: about DESIGN["psu_households"] consecutive households within each LA
    order = np.argsort(hh["la"].to_numpy(), kind="stable")
    rank = np.empty(len(hh), dtype="int64")
    la_sorted = hh["la"].to_numpy()[order]
    start = np.r_[0, np.flatnonzero(np.diff(la_sorted)) + 1]
    within = np.arange(len(hh)) - np.repeat(start, np.diff(np.r_[start, len(hh)]))
    rank[order] = within
    psu_hh = hh["la"].to_numpy() * 1000 + rank // DESIGN["psu_households"] + 1
    out["psu"] = psu_hh[out["hi"]]
    out["strata"] = la["stratum"].to_numpy()[out["li"]]
    return hh, out, eps[keep]


def _selection_probability(p: dict, la: pd.DataFrame) -> np.ndarray:
    """Relative selection probability of each respondent (LA rate x response probability)."""
    return la["rate"].to_numpy()[p["li"]] * p["response_probability"]


def _wave_weights(p: dict) -> dict[str, np.ndarray]:
    """Cross-sectional weights: main interview (all respondents) and self-completion (0 for
    proxies and telephone interviews, which have no self-completion), waves 6, 7, 9; later
    waves divide by the known probability of still taking part (`_people`'s attrition)."""
    w6 = p["design_weight"]
    l7 = _logistic(-2.9 - 0.02 * (p["age"] - 45))
    l9 = _logistic(-2.6 - 0.02 * (p["age"] - 45))
    miss7 = 1 - 0.95 * (1 - l7)
    stay = {"6": np.ones_like(w6), "7": 0.95 * (1 - l7), "9": 0.87 * (1 - 0.6 * miss7) * (1 - l9)}
    out = {"main6": w6 / w6.mean()}
    for w, s in stay.items():
        sc = np.where(p["proxy" + w] | p["phone" + w], 0.0, w6 / s)
        present = np.ones(len(w6), bool) if w == "6" else p["in" + w]
        out["sc" + w] = sc / sc[present & (sc > 0)].mean()
    return out


def _sources(frames: dict[str, pd.DataFrame]) -> dict[str, Source]:
    out = {}
    for key, df in frames.items():
        role, wave = key.split("_")
        out[key] = Source(role, wave, file_stem(role, wave) + ".tab", df, header=list(df.columns))
    return out


# --------------------------------------------------------------------------- simulate
def simulate(
    n: int = 25_000,
    seed: int = DEFAULT_SEED,
    informative: bool = False,
    *,
    spatial_rho: float | None = None,
    spatial_sd: float | None = None,
    threshold: float | None = None,
) -> SyntheticRelease:
    """Simulate a release in memory (see the module docstring).

    Parameters
    ----------
    n : int
        Wave-6 adults (1,000 to 500,000), before the reader's drops (Northern Ireland
        about 1.5%, no LA record about 0.3%).
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same release.
    informative : bool
        Sampling design (`DESIGN`). False (default): unequal selection by LA, age and sex
        only, so the outcome models (which condition on their predictors) hold in the
        sample as in the population and ``truth.json`` is exact for unweighted fits;
        weights still matter for population shares. True: response also depends on each
        person's latent ``life_satisfied`` error, so unweighted estimates of that model are
        biased; the weights (inverse selection probabilities, known exactly) undo it.
    spatial_rho, spatial_sd : float, optional
        Spillover (off by default): the LA intercepts of `SPATIAL_OUTCOME` are BYM2 effects
        on the real 2019 GB adjacency graph (islands joined to their nearest mainland LA)
        with this mixing proportion rho and total SD (default: the outcome's LA SD), drawn
        with their own random stream (every other draw is unchanged). Recorded in
        ``truth.json`` under the outcome's ``"spatial"``.
    threshold : float, optional
        Tipping point (off by default): `THRESHOLD_OUTCOME`'s log-odds fall by a further
        `THRESHOLD_SLOPE` per percentage point of LA unemployment (`THRESHOLD_FACTOR`)
        above this rate (e.g. 6.5 for 6.5%). Recorded under the outcome's ``"threshold"``.

    Returns
    -------
    SyntheticRelease
    """
    if not N_MIN <= n <= N_MAX:
        raise ValueError(f"n must be between {N_MIN:,} and {N_MAX:,}, got {n:,}")
    rng = np.random.default_rng(seed)
    cfg = DEFAULT_CONFIG
    la = _areas(rng)
    n_drawn = int(np.ceil(n / CANDIDATE_RESPONSE))
    hh = _households(n_drawn, la, rng)
    p = _people(hh, la, rng)
    eps = rng.logistic(size=(len(p["pidp"]), len(DRAW_ORDER)))  # each outcome's latent error
    hh, p, eps = _respondents(hh, p, la, eps, n, informative, rng)
    weights = _wave_weights(p)
    p["weight_sc7"], p["weight_sc9"] = weights["sc7"], weights["sc9"]
    pred = _coded_predictors(p, rng)
    pred[SC_WEIGHT] = weights["sc6"]
    pred[MAIN_WEIGHT] = weights["main6"]
    pred["psu"] = p["psu"]
    pred["strata"] = p["strata"]
    pred["gor_dv"] = la["gor"].to_numpy()[p["li"]]
    pred["pidp"] = p["pidp"]
    pred["hidp"] = hh["hidp"].to_numpy()[p["hi"]]
    pred["pno"] = p["pno"]
    npers = len(p["pidp"])

    # ---- household-level files
    nh = len(hh)
    hh_rec = rng.random(nh) >= NO_LA_RECORD_SHARE
    hh_ids = hh["hidp"].to_numpy()
    hh_f = pd.DataFrame(
        {
            "f_hidp": hh_ids,
            "f_hhsize": hh["size"].to_numpy() + hh["children"].to_numpy(),
            "f_nkids_dv": hh["children"].to_numpy(),
            "f_fihhmnnet1_dv": p["hh_income"],
            "f_ieqmoecd_dv": p["hh_eq"],
        }
    )
    osl_f = pd.DataFrame(
        {"f_hidp": hh_ids[hh_rec], "f_oslaua": np.asarray(hh["code_w6"], dtype=object)[hh_rec]}
    )
    osl_f["f_oslaua"] = osl_f["f_oslaua"].astype("string")
    later = _later_waves(p, hh, la, rng)

    # ---- pass 1: predictors only (outcome items set to -9)
    placeholder = np.full(npers, -9, dtype="int64")
    outcome_items = ["sclfsato", "scghq2_dv", *[f"scopngbh{x}" for x in "abcdefg"]]
    f_order = [
        "pidp",
        "hidp",
        "pno",
        "ivfio",
        "indmode",
        "sex",
        "age_dv",
        "gor_dv",
        "urban_dv",
        "hiqual_dv",
        "jbstat",
        "mastat_dv",
        "health",
        "volun",
        "volfreq",
        "crdark",
        "closenum",
        "sclfsato",
        "scghq2_dv",
        *COHESION_ITEMS,
        SC_WEIGHT,
        MAIN_WEIGHT,
        "psu",
        "strata",
    ]
    cols6 = dict(pred) | {v: placeholder for v in outcome_items}
    w7_cols = later["w7"] | {v: np.full(len(later["w7"]["pidp"]), -9) for v in [*SWEMWBS_ITEMS, "swemwbs_dv"]}
    w9_cols = later["w9"] | {"sclonely": np.full(len(later["w9"]["pidp"]), -9)}
    frames = {
        "indresp_f": _indresp_frame("f", cols6, f_order),
        "indresp_g": _indresp_frame("g", w7_cols, later["w7_order"]),
        "indresp_i": _indresp_frame("i", w9_cols, later["w9_order"]),
        "hhresp_f": hh_f,
        "oslaua_f": osl_f,
    }
    area_sim = pd.DataFrame(
        {
            "lad19cd": la.loc[~la["ni"], "lad19cd"].to_numpy(),
            "lad19nm": la.loc[~la["ni"], "lad19nm"].to_numpy(),
            "walkability": np.round(50 + 15 * la.loc[~la["ni"], "walk_z"].to_numpy(), 1),
            "simulated": True,
        }
    )
    extra = {"area_simulated.csv": area_sim}
    table1, _ = build_table(_sources(frames), cfg, extra_area_frames=extra)
    # ---- LA effects and draws
    gb_codes = la.loc[~la["ni"], "lad19cd"].to_numpy()
    la_pos = pd.Series(np.arange(len(gb_codes)), index=gb_codes)
    row_la = la_pos.reindex(table1["lad"].astype(str)).to_numpy()
    effects: dict[str, np.ndarray] = {}
    eff_rows = []
    for name in DRAW_ORDER:
        t = TRUTH[name]
        chol = np.linalg.cholesky(t.covariance())
        u = rng.standard_normal((len(gb_codes), len(t.group_terms))) @ chol.T
        if spatial_rho is not None and name == SPATIAL_OUTCOME:
            u[:, 0] = _spatial_intercepts(gb_codes, spatial_rho, spatial_sd or t.sd[0], seed)
        effects[name] = u
        for k, term in enumerate(t.group_terms):
            eff_rows.append(pd.DataFrame({"lad": gb_codes, "outcome": name, "term": term, "value": u[:, k]}))
    latent = pd.DataFrame({"pidp": table1["pidp"].to_numpy(), "lad": table1["lad"]})
    row_person = pd.Series(np.arange(npers), index=p["pidp"]).reindex(table1["pidp"]).to_numpy()
    latent["selection_probability"] = _selection_probability(p, la)[row_person]
    drawn: dict[str, np.ndarray] = {}
    ystar: dict[str, np.ndarray] = {}
    for name in DRAW_ORDER:
        t = TRUTH[name]
        x = design_matrix(table1, t.terms, overrides=drawn)
        beta = np.array([t.fixed[k] for k in t.terms])
        z = design_matrix(table1, [g for g in t.group_terms if g != "Intercept"], drawn)
        z = np.column_stack([np.ones(len(table1)), z])
        eta = t.fixed["Intercept"] + x @ beta + (z * effects[name][row_la]).sum(axis=1)
        if threshold is not None and name == THRESHOLD_OUTCOME:
            excess = np.maximum(0.0, table1[THRESHOLD_FACTOR].to_numpy(dtype=float) - threshold)
            eta = eta + THRESHOLD_SLOPE * np.nan_to_num(excess)
        ystar[name] = eta + eps[row_person, DRAW_ORDER.index(name)]
        drawn[name] = (ystar[name] > 0).astype("float64")
        latent[f"eta_{name}"] = eta
        latent[f"true_{name}"] = drawn[name]

    # ---- response items consistent with the draws (dropped rows: intercept only)
    pos = pd.Series(np.arange(npers), index=p["pidp"]).reindex(table1["pidp"]).to_numpy()

    def full(name: str) -> np.ndarray:
        y = TRUTH[name].fixed["Intercept"] + rng.logistic(size=npers)
        y[pos] = ystar[name]
        return y

    proxy6, phone6 = p["proxy6"], p["phone6"]
    answers: dict[str, np.ndarray] = {"scopngbhh": p["scopngbhh"]}  # before missing codes
    for name, var in (("belonging", "scopngbha"), ("local_friends", "scopngbhb")):
        answers[var] = 6 - _ordinal(full(name), 4, 1, 5, 1.0)
    answers["sclfsato"] = _ordinal(full("life_satisfied"), 6, 1, 7, ITEM_SCALES["sclfsato"])
    answers["scghq2_dv"] = _ordinal(full("ghq_case"), 4, 0, 12, ITEM_SCALES["scghq2_dv"])
    total = _ordinal(full("community_abs"), 18, 5, 25, ITEM_SCALES["community"])
    rev = _split_sum(total, 5, 1, 5, rng)
    for k, x in enumerate("cdefg"):
        answers[f"scopngbh{x}"] = 6 - rev[:, k]
    items6 = {v: _sc_item(a, proxy6, phone6, rng) for v, a in answers.items() if v != "scopngbhh"}
    cols6 = dict(pred) | items6

    # wave 7: SWEMWBS items and score for people present
    in7 = p["in7"]
    sw_total = _ordinal(full("mental_wellbeing_high"), 24, 7, 35, ITEM_SCALES["swemwbs"])
    sw_items = _split_sum(sw_total[in7], 7, 1, 5, rng)
    proxy7, phone7 = p["proxy7"][in7], p["phone7"][in7]
    w7_items = {}
    for k, var in enumerate(SWEMWBS_ITEMS):
        w7_items[var] = _sc_item(sw_items[:, k], proxy7, phone7, rng)
    item_mat = np.column_stack([w7_items[v] for v in SWEMWBS_ITEMS])
    dv = np.where((item_mat > 0).all(axis=1), item_mat.sum(axis=1), -9)
    w7_items["swemwbs_dv"] = np.where(proxy7, -7, np.where(phone7, -8, dv))
    w7_cols = later["w7"] | w7_items
    # wave 9: loneliness
    in9 = p["in9"]
    lonely = _ordinal(full("lonely"), 2, 1, 3, 1.0)[in9]
    w9_cols = later["w9"] | {"sclonely": _sc_item(lonely, p["proxy9"][in9], p["phone9"][in9], rng)}
    # later-wave copies of life satisfaction and cohesion items (not used by the reader)
    for wave_cols, mask, w in ((w7_cols, in7, "7"), (w9_cols, in9, "9")):
        ls = np.clip(answers["sclfsato"] + rng.choice([-1, 0, 0, 1], npers), 1, 7)
        wave_cols["sclfsato"] = _sc_item(ls[mask], p["proxy" + w][mask], p["phone" + w][mask], rng)
    for x in "abcdefgh":
        v9 = np.clip(answers[f"scopngbh{x}"] + rng.choice([-1, 0, 0, 0, 1], npers), 1, 5)
        w9_cols[f"scopngbh{x}"] = _sc_item(v9[in9], p["proxy9"][in9], p["phone9"][in9], rng)

    frames["indresp_f"] = _indresp_frame("f", cols6, f_order)
    frames["indresp_g"] = _indresp_frame("g", w7_cols, later["w7_order"] + ["sclfsato"])
    frames["indresp_i"] = _indresp_frame(
        "i", w9_cols, later["w9_order"] + ["sclfsato"] + list(COHESION_ITEMS)
    )
    frames.update(later["files"])
    sources = _sources(frames)
    table, audit = build_table(sources, cfg, extra_area_frames=extra)
    audit.notes.append("SYNTHETIC release: no real person's data.")

    _check_consistency(table1, table, latent)
    truth = _truth_json(n, seed, len(gb_codes), informative)
    _record_options(truth, spatial_rho, spatial_sd, threshold)
    return SyntheticRelease(
        n=n,
        seed=seed,
        sources=sources,
        table=table,
        audit=audit,
        latent=latent,
        truth=truth,
        la_effects=pd.concat(eff_rows, ignore_index=True),
        area_simulated=area_sim,
    )


def _later_waves(p: dict, hh: pd.DataFrame, la: pd.DataFrame, rng: np.random.Generator) -> dict:
    """Wave-7 and wave-9 person ids, households, household and LA files."""
    hi = p["hi"]
    nh = len(hh)
    out: dict = {"files": {}}
    codes19 = la["lad19cd"].to_numpy()
    code6 = np.asarray(hh["code_w6"], dtype=object)
    gbw = la["weight"].fillna(0).to_numpy()
    for wave, key, base, present, move in (
        ("g", "w7", 69_000_000, p["in7"], 0.02),
        ("i", "w9", 71_000_000, p["in9"], 0.04),
    ):
        hh_present = np.zeros(nh, dtype=bool)
        hh_present[hi[present]] = True
        new_id = base + np.cumsum(rng.integers(1, 9, size=nh)) * 4
        proxy = p["proxy7"] if wave == "g" else p["proxy9"]
        out[key] = {
            "pidp": p["pidp"][present],
            "hidp": new_id[hi[present]],
            "ivfio": np.where(proxy[present], 2, 1),
            "indmode": np.where(p["phone" + key[1]][present], 2, 1),
            SC_WEIGHT: p["weight_sc" + key[1]][present],
        }
        out[f"{key}_order"] = ["pidp", "hidp", "ivfio", "indmode", SC_WEIGHT] + (
            [*SWEMWBS_ITEMS, "swemwbs_dv"] if wave == "g" else ["sclonely"]
        )
        ids = new_id[hh_present]
        drift = np.exp(rng.normal(0.02, 0.15, nh))
        income = np.where(p["hh_income"] > 0, np.round(p["hh_income"] * drift, 2), p["hh_income"])
        out["files"][f"hhresp_{wave}"] = pd.DataFrame(
            {
                f"{wave}_hidp": ids,
                f"{wave}_fihhmnnet1_dv": income[hh_present],
                f"{wave}_ieqmoecd_dv": p["hh_eq"][hh_present],
            }
        )
        lad = code6.copy() if wave == "g" else codes19[hh["la"].to_numpy()].astype(object)
        movers = rng.random(nh) < move
        dest = rng.choice(len(la), size=nh, p=gbw / gbw.sum())
        lad[movers] = codes19[dest[movers]]
        osl = pd.DataFrame({f"{wave}_hidp": ids, f"{wave}_oslaua": lad[hh_present]})
        osl[f"{wave}_oslaua"] = osl[f"{wave}_oslaua"].astype("string")
        out["files"][f"oslaua_{wave}"] = osl
    return out


def _check_consistency(table1: pd.DataFrame, table: pd.DataFrame, latent: pd.DataFrame) -> None:
    """The final table must reproduce the predictors of pass 1 and the drawn outcomes."""
    preds = [c for c in table1.columns if c not in TRUTH and not c.endswith("_score")]
    preds = [c for c in preds if c not in ("swemwbs", "community_rel")]
    if list(table1.columns) != list(table.columns) or len(table1) != len(table):
        raise AssertionError("pass-1 and final tables differ in shape")
    for c in preds:
        a, b = table1[c], table[c]
        if isinstance(a.dtype, pd.CategoricalDtype):
            same = np.array_equal(a.cat.codes.to_numpy(), b.cat.codes.to_numpy())
        elif pd.api.types.is_float_dtype(a.dtype):
            same = np.array_equal(a.to_numpy(), b.to_numpy(), equal_nan=True)
        else:
            same = bool((a.astype(str).to_numpy() == b.astype(str).to_numpy()).all())
        if not same:
            raise AssertionError(f"{c}: predictor changed after the outcome items were written")
    for name in DRAW_ORDER:
        obs = table[name].to_numpy()
        ok = ~np.isnan(obs)
        if not np.array_equal(obs[ok], latent[f"true_{name}"].to_numpy()[ok]):
            raise AssertionError(f"{name}: written items do not reproduce the drawn outcome")


def _spatial_intercepts(codes: np.ndarray, rho: float, sd: float, seed: int) -> np.ndarray:
    """BYM2 LA intercepts (`models.spatial.simulate_bym2`) on the GB graph, in ``codes`` order."""
    from models.spatial import gb_lad_graph, simulate_bym2

    if not 0.0 <= rho <= 1.0 or not sd > 0:
        raise ValueError(f"spatial_rho must be in [0, 1] and spatial_sd > 0, got {rho!r}, {sd!r}")
    graph = gb_lad_graph("join")
    effect = simulate_bym2(graph, sd, rho, np.random.default_rng([seed, 2019]))["effect"]
    return pd.Series(effect, index=graph.nodes).reindex(codes).to_numpy()


def _record_options(truth: dict, rho: float | None, sd: float | None, threshold: float | None) -> None:
    """Add the spatial and threshold options, when on, to the truth of their outcomes."""
    if rho is not None:
        entry = truth[SPATIAL_OUTCOME]
        entry["spatial"] = {
            "type": "bym2",
            "term": 'car(lad, type = "bym2")',
            "rho": float(rho),
            "sd": float(sd or TRUTH[SPATIAL_OUTCOME].sd[0]),
            "graph": "2019 GB LA adjacency (data/la/lad19_adjacency.csv), islands joined by centroid",
        }
        entry["groups"]["lad"]["sd"][0] = entry["spatial"]["sd"]
        entry["note"] += " LA intercepts are spatially structured (BYM2, see 'spatial')."
    if threshold is not None:
        entry = truth[THRESHOLD_OUTCOME]
        entry["threshold"] = {
            "factor": THRESHOLD_FACTOR,
            "location": float(threshold),
            "extra_slope": THRESHOLD_SLOPE,
            "form": f"{THRESHOLD_SLOPE:g} * max(0, {THRESHOLD_FACTOR} - {threshold:g}) added to the log-odds",
        }
        entry["exact"] = False
        entry["note"] += " Not exact for a linear formula: LA unemployment has a threshold (see 'threshold')."


def _truth_json(n: int, seed: int, n_la: int, informative: bool = False) -> dict:
    cfg = DEFAULT_CONFIG
    design = {k: v for k, v in DESIGN.items() if k not in ("informative", "informative_outcome")}
    design["informative"] = (
        {"outcome": DESIGN["informative_outcome"], "coefficient_of_latent_error": DESIGN["informative"]}
        if informative
        else False
    )
    design["weights"] = (
        "f_indinui_xw = 1 / (LA rate x response probability), mean 1; f_indscui_xw the same, 0 for "
        "proxy and telephone interviews; g_/i_indscui_xw also divided by the probability of still "
        "taking part at waves 7 / 9; f_psu about 10 households within an LA; f_strata region x "
        "deprivation tercile"
    )
    meta = {
        "generator": "sameplace data.synthetic",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n": n,
        "n_la": n_la,
        "cutoffs": {
            "life_satisfied": f"sclfsato >= {cfg.life_satisfied_min:g}",
            "mental_wellbeing_high": f"swemwbs >= {cfg.swemwbs_high_min:g} (raw sum 7-35)",
            "ghq_case": f"scghq2_dv >= {cfg.ghq_case_min:g}",
            "belonging": f"scopngbha in {list(cfg.belonging_codes)}",
            "local_friends": f"scopngbhb in {list(cfg.local_friends_codes)}",
            "lonely": f"sclonely >= {cfg.lonely_min:g}",
            "community_abs": f"community_score >= {cfg.community_abs_min:g}",
        },
        "links": list(LINKS),
        "design": design,
        "unsafe_model": {
            "formula": "unsafe ~ walkability(LA) + female + deprivation(LA) + I(age >= 70)",
            "fixed": {k: v for k, v in UNSAFE_MODEL.items() if k != "la_sd"},
            "la_sd": UNSAFE_MODEL["la_sd"],
            "note": "Generates crdark; not an analysis-table model. walkability and "
            "deprivation are LA z-scores (deprivation: IMD 2019, unemployment where no IMD).",
        },
        "note": "Keys starting with '_' are not outcomes. Truths hold for the reader's "
        "default ReaderConfig; exact ones are exact for complete cases of the formula.",
    }
    out: dict = {"_meta": meta}
    for name in (*DRAW_ORDER, "community_rel"):
        out[name] = TRUTH[name].to_json()
    return out


# --------------------------------------------------------------------------- writing
README = """SYNTHETIC Understanding Society release - NOT REAL DATA
=========================================================

Made by the sameplace project (data/synthetic.py, version {version}) with seed {seed}
and n = {n} wave-6 adults. Every person, household and answer here is simulated.
Local authorities are real GB districts (2019 codes; the wave-6 SN 6666 file uses the
codes in force before the 2018-2019 changes), chosen in proportion to the EU-referendum
electorate; about 1.5% of households are in Northern Ireland and about 0.3% have no
SN 6666 record, so that the reader's drops are exercised.

Layout ({layout}): SN 6614 files {sn6614}; SN 6666 files {sn6666}.
Variables keep their real names and wave prefixes (f = wave 6, g = 7, i = 9) and the
UKHLS missing-value codes (-1 don't know, -2 refused, -7 proxy, -8 inapplicable,
-9 missing). SWEMWBS is only in wave 7, loneliness only in wave 9; swemwbs_dv here is
the raw sum 7-35.

area_simulated.csv: SIMULATED LA walkability (index 0-100). No open LA-level source
exists for it (population turnover is the published ONS figure of the reader's LA data).
Weights and design: f_indscui_xw (self-completion), f_indinui_xw (main interview),
f_psu, f_strata in f_indresp; g_/i_indscui_xw in the later waves. They are inverse
selection probabilities of the simulated design ("design" in truth.json).
truth.json: the hierarchical logistic models the outcomes were drawn from (fixed
effects, LA standard deviations and correlations), stated on the analysis-table
variables of the project's reader with its default cut-offs.
truth_la_effects.csv: the realised LA effects (lad, outcome, term, value).
"""


def write_release(
    sim: SyntheticRelease, out_dir: str | Path, layout: Literal["per_wave", "flat"] = "per_wave"
) -> Path:
    """Write a simulated release to ``out_dir`` (created if needed).

    Parameters
    ----------
    sim : SyntheticRelease
        From :func:`simulate`.
    out_dir : str or Path
        Target folder.
    layout : {"per_wave", "flat"}
        "per_wave": ``ukhls_w6/f_indresp.tab`` ... and ``sn6666/f_oslaua_protect.tab``;
        "flat": every file in ``out_dir``.

    Returns
    -------
    Path
        ``out_dir``.
    """
    if layout not in ("per_wave", "flat"):
        raise ValueError(f"layout must be 'per_wave' or 'flat', not {layout!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for src in sim.sources.values():
        stem = file_stem(src.role, src.wave)
        if layout == "flat":
            folder = out
        elif src.role == "oslaua":
            folder = out / "sn6666"
        else:
            folder = out / f"ukhls_w{ord(src.wave) - ord('a') + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        src.data.to_csv(folder / f"{stem}.tab", sep="\t", index=False, lineterminator="\n")
    sim.area_simulated.to_csv(out / "area_simulated.csv", index=False, lineterminator="\n")
    (out / "truth.json").write_text(json.dumps(_rounded(sim.truth), indent=2) + "\n")
    eff = sim.la_effects.copy()
    eff["value"] = eff["value"].round(6)
    eff.to_csv(out / "truth_la_effects.csv", index=False, lineterminator="\n")
    per_wave = layout == "per_wave"
    (out / "README.txt").write_text(
        README.format(
            version=GENERATOR_VERSION,
            seed=sim.seed,
            n=f"{sim.n:,}",
            layout=layout,
            sn6614="ukhls_w6/, ukhls_w7/, ukhls_w9/" if per_wave else "in this folder",
            sn6666="sn6666/" if per_wave else "in this folder",
        )
    )
    return out


def _rounded(obj: object) -> object:
    if isinstance(obj, float):
        return round(obj, 6)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    return obj


def generate_release(
    out_dir: str | Path,
    n: int = 25_000,
    seed: int = DEFAULT_SEED,
    layout: Literal["per_wave", "flat"] = "per_wave",
    return_frame: bool = False,
    informative: bool = False,
) -> Path | tuple[Path, SyntheticRelease]:
    """Simulate and write a synthetic UKHLS release with a known truth.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write.
    n : int
        Wave-6 adults (1,000 to 500,000).
    seed : int
        Random seed; the same seed gives byte-identical files.
    layout : {"per_wave", "flat"}
        Folder layout (see :func:`write_release`).
    return_frame : bool
        Also return the in-memory :class:`SyntheticRelease` (its ``table`` is what
        :func:`data.ukhls.read_release` must give; ``latent`` holds the drawn values).
    informative : bool
        Informative response (see :func:`simulate`).

    Returns
    -------
    Path, or (Path, SyntheticRelease)
    """
    sim = simulate(n=n, seed=seed, informative=informative)
    path = write_release(sim, out_dir, layout)
    return (path, sim) if return_frame else path
