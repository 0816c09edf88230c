"""MrP: the share of each LA's adult population with an outcome, from a fitted model.

Multilevel regression and post-stratification. The fitted model predicts the outcome for
every population cell of every LA; the cells are weighted by the real ONS mid-2019
population of the LA by sex and age band (`load_population`, ``data/la/``) and summed,
draw by draw, so every LA's share has a posterior interval.

Cells and the other predictors. The population table has LA x sex x age band. Predictors
the table does not have (education, income, sociability, ...) are taken from the
respondents of the same sex and age band anywhere in GB (up to ``per_cell`` of them,
with their survey weights): each population cell is the average prediction over those
respondents, placed in the LA. This is synthetic post-stratification (Leemann and
Wasserfallen 2017): it assumes those predictors are distributed within a sex x age cell
as they are among GB respondents; a model whose predictors are only sex, age and area
factors needs no such assumption. ``age_band`` and ``sex`` are made from ``age`` and
``female`` when the table lacks them (`add_cell_columns`), and ``age50`` and ``female``
follow from the cell.

Area factors stay in the model: every LA gets its own area values (the respondents'
values; for an LA without respondents, the published figure put on the table's z-score
scale, where ``data.areas.PUBLISHED_AREA_COLUMNS`` names one), so an LA with few or no
respondents still gets a model-based estimate. Its LA effect follows the LA mode
(`models.la_modes`, default ``own_la``): the fitted effect of an LA in the fit, a draw from
the fitted LA distribution for an LA without respondents.

Disclosure (real data, ``synthetic=False``; the rule is written in the README): a row
(LA, or LA x subgroup) with fewer than ``k`` respondents publishes the MrP estimate only as
an interval: no point estimate, no direct estimate, no respondent count; and an LA with
fewer than ``k`` respondents is predicted as a new LA (its own fitted effect, which its
few respondents shape, is not used). Direct estimates follow the existing k rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.disclosure import DEFAULT_K, interval_only_below_k
from analysis.summaries.draws import nearly_constant_within
from analysis.summaries.intervals import (
    DEFAULT_PROB,
    describe_interval,
    interval_columns,
    interval_metadata,
    summarise_draws,
    warn_if_not_converged,
)
from data.areas import LA_DIR, PUBLISHED_AREA_COLUMNS, load_la_covariates
from data.errors import DataError
from models.la_modes import LaMode

__all__ = [
    "ADULT_BANDS",
    "POPULATION_FILE",
    "MrpError",
    "add_cell_columns",
    "area_values",
    "load_population",
    "mrp",
    "mrp_table",
    "true_population_shares",
]

POPULATION_FILE = LA_DIR / "population_mid2019_lad19_sex_age.csv"
ADULT_BANDS = ("16-29", "30-49", "50-64", "65-74", "75+")
_BAND_EDGES = (16, 30, 50, 65, 75)
_AGE50 = {"16-29": 0, "30-49": 0, "50-64": 1, "65-74": 1, "75+": 1}
#: Subgroups made from the cells themselves (any other name is a column of the respondents).
CELL_SUBGROUPS = ("all", "sex", "age_band", "age50")


class MrpError(DataError):
    """A model, population or table that MrP cannot use, with the reason."""


def load_population(path: str | Path | None = None, *, adults: bool = True) -> pd.DataFrame:
    """The ONS mid-2019 population by LA, sex and age band.

    Parameters
    ----------
    path : path, optional
        Default ``data/la/population_mid2019_lad19_sex_age.csv`` (371 GB LADs, 2019 codes).
    adults : bool
        Keep the adult bands (16+) only.

    Returns
    -------
    pandas.DataFrame
        ``lad``, ``sex`` (female / male), ``age_band``, ``population`` (persons, 30 June 2019).
    """
    p = Path(path) if path else POPULATION_FILE
    if not p.is_file():
        raise MrpError(f"population file not found: {p}", file=str(p))
    pop = pd.read_csv(p, dtype={"lad19cd": str, "lad": str, "sex": str, "age_band": str})
    pop = pop.rename(columns={"lad19cd": "lad"})
    need = {"lad", "sex", "age_band", "population"}
    if need - set(pop.columns):
        raise MrpError(f"{p.name}: missing columns {sorted(need - set(pop.columns))}", file=str(p))
    if adults:
        pop = pop[pop["age_band"].isin(ADULT_BANDS)]
    return pop.reset_index(drop=True)


def add_cell_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The table with ``age_band`` (ONS bands, from ``age``) and ``sex`` (from ``female``) added
    where missing; rows under 16 get no band."""
    out = table.copy()
    if "age_band" not in out and "age" in out:
        out["age_band"] = pd.cut(
            out["age"].astype(float), [*_BAND_EDGES, np.inf], right=False, labels=list(ADULT_BANDS)
        ).astype(object)
    if "sex" not in out and "female" in out:
        out["sex"] = out["female"].map({1: "female", 0: "male"})
    return out


def _area_columns(fit: Any, table: pd.DataFrame, group: str) -> list[str]:
    """The area factors among the predictors: named ``area_*`` (the analysis table's area
    columns, leave-one-out means included, whose values differ slightly within an LA), or
    constant (nearly) within every LA of the respondents."""
    idx = pd.factorize(table[group])[0]
    cols = []
    for c in fit.md.predictor_columns:
        if c == group or c not in table or not pd.api.types.is_numeric_dtype(table[c]):
            continue
        if c.startswith("area_") or nearly_constant_within(table[c].to_numpy(dtype=float), idx):
            cols.append(c)
    return cols


def area_values(
    table: pd.DataFrame, columns: Sequence[str], las: Sequence[str], group: str = "lad"
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Each LA's area factors in the model's units.

    LAs with respondents take the respondents' mean (their value; for a leave-one-out mean,
    about the LA's mean). Others take the published figure
    (``data.areas.PUBLISHED_AREA_COLUMNS``: the ``<column>_raw`` of the table is the
    published column) mapped to the table's scale by the exact linear map between the
    table's raw and standardised values; a factor with no published source (e.g. a
    leave-one-out mean of respondents) stays missing for such an LA.

    Returns
    -------
    (pandas.DataFrame, dict)
        Area values indexed by LA code (NaN where unknown), and LA code -> why it has no
        values, for every LA with a missing value.
    """
    per_la = table.groupby(group, observed=True)[list(columns)].mean()
    out = per_la.reindex(list(las))
    absent = [c for c in las if c not in per_la.index]
    if absent and columns:
        cov = load_la_covariates().set_index("lad19cd")
        for c in columns:
            source = PUBLISHED_AREA_COLUMNS.get(c, (None,))[0]
            raw = f"{c}_raw"
            if source is None or source not in cov or raw not in table:
                continue
            ok = table[[c, raw]].dropna()
            if len(ok) < 2 or ok[raw].std() == 0:
                continue
            slope, intercept = np.polyfit(ok[raw].astype(float), ok[c].astype(float), 1)
            published = cov[source].reindex(absent).astype(float)
            out.loc[absent, c] = intercept + slope * published.to_numpy()
    why = {}
    for code in out.index[out.isna().any(axis=1)]:
        missing = [c for c in columns if pd.isna(out.at[code, c])]
        why[code] = f"no value of {', '.join(missing)} for this LA (no respondents, no published figure)"
    return out, why


def _pool(
    resp: pd.DataFrame, individual: Sequence[str], weight: str | None, per_cell: int, seed: int
) -> pd.DataFrame:
    """Respondents standing in for each sex x age cell's other predictors, with pool weights."""
    rng = np.random.default_rng(seed)
    keep = [*dict.fromkeys([*individual, "age_band", "sex"])]
    parts = []
    for _cell, rows in resp.groupby(["age_band", "sex"], observed=True, sort=True):
        if len(rows) > per_cell:
            rows = rows.iloc[np.sort(rng.choice(len(rows), per_cell, replace=False))]
        w = rows[weight].astype(float).fillna(0.0) if weight else pd.Series(1.0, index=rows.index)
        if not w.sum() > 0:  # no one in the cell inside the weight's population: equal weights
            w = pd.Series(1.0, index=rows.index)
        part = rows[keep].assign(_w=w.to_numpy())
        part = part.groupby(keep, observed=True, dropna=False, sort=False)["_w"].sum().reset_index()
        part["_w"] = part["_w"] / part["_w"].sum()
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*keep, "_w"])


def _labels(frame: pd.DataFrame, name: str) -> pd.Series:
    if name == "all":
        return pd.Series("everyone", index=frame.index)
    if name == "age50":
        return frame["age_band"].map(_AGE50).map({0: "under 50", 1: "50 and over"})
    if name == "urban" and name in frame:
        return frame["urban"].astype(float).map({1.0: "urban", 0.0: "rural"})
    if name not in frame:
        raise MrpError(
            f"mrp: unknown subgroup {name!r}: use {', '.join(CELL_SUBGROUPS)} or a predictor of the model"
        )
    return frame[name].astype(str)


def mrp(
    fit: Any,
    population: pd.DataFrame | None = None,
    *,
    table: pd.DataFrame | None = None,
    by: Sequence[str] = (),
    la: str | Sequence[str] | LaMode = "own_la",
    las: Sequence[str] | None = None,
    group: str = "lad",
    area: pd.DataFrame | None = None,
    urban_share: pd.Series | bool | None = None,
    synthetic: bool = True,
    k: int = DEFAULT_K,
    weight: str | None = "weight",
    prob: float = DEFAULT_PROB,
    max_draws: int | None = 400,
    per_cell: int = 60,
    chunk_las: int = 25,
    seed: int = 0,
    names: dict[str, str] | None = None,
    model: str | None = None,
    return_draws: bool = False,
) -> pd.DataFrame:
    """MrP estimate of the share of each LA's adult population with the outcome.

    Parameters
    ----------
    fit : models.Fit
        A fitted 0/1 model with an LA grouping factor (``group``).
    population : pandas.DataFrame, optional
        ``lad``, ``sex``, ``age_band``, ``population`` (default: `load_population`, the 371
        GB LAs). Every LA in it gets a row; restrict it to restrict the LAs.
    table : pandas.DataFrame, optional
        The respondents (the analysis table the fit was made from; default the fit's model
        frame). Gives the direct estimates, respondent counts and the stand-ins for
        predictors the population table lacks.
    by : sequence of str
        Subgroups besides everyone: ``sex``, ``age_band``, ``age50``, or any predictor.
    la : str or sequence of str
        LA mode (`models.la_modes`): ``"own_la"`` (default: fitted LA effects, a new-LA
        draw for LAs without respondents), ``"average_la"``, ``"marginal"``, ``"new_la"``
        (every LA as if unseen), ``"these_las"`` / a list of codes (only those LAs, their
        fitted effects).
    las : sequence of str, optional
        LA codes for ``these_las``.
    group : str
        The LA column.
    area : pandas.DataFrame, optional
        Area factors in the model's units, indexed by LA code, for LAs whose values the
        respondents do not give (`area_values` fills what it can from published figures).
    urban_share : pandas.Series or bool, optional
        For a model with ``urban``: each LA's share (0-1) of its population living in urban
        areas, by LA code; every cell is split into urban and rural by it (assuming the
        split is the same in every sex x age cell). Default: the mySociety composite
        rural-urban share of ``data/la/la_covariates.csv`` (``ms_ruc_share_urban``; 343 LAs);
        LAs without a share keep the respondents' mix. False: no split.
    synthetic : bool
        False for real data: the disclosure rule of the module docstring applies.
    k : int
        Disclosure threshold (respondents).
    weight : str or None
        Survey weight column of ``table`` for the direct estimates and stand-ins (used
        when present; otherwise unweighted, and the table says so).
    prob : float
        Interval probability.
    max_draws : int, optional
        Posterior draws used.
    per_cell : int
        Respondents standing in for each sex x age cell's other predictors.
    chunk_las : int
        LAs predicted at a time (memory).
    seed : int
        Seed for the stand-in sample and new-LA draws.
    names : dict, optional
        LA code -> name.
    model : str, optional
        Model name for the table.
    return_draws : bool
        Also return the draws of every row (``attrs["draws"]``, shape draws x rows).

    Returns
    -------
    pandas.DataFrame
        One row per LA (``lad = "GB"`` first: all LAs of the population together) and
        subgroup level: ``model``, ``outcome``, ``lad``, [``name``], ``subgroup``,
        ``level``, ``population``, ``n`` (respondents), ``mrp_mean``, ``mrp_median``,
        ``mrp_sd``, ``mrp_eti95_low``, ``mrp_eti95_high`` (shares 0-1), ``p_above_gb``
        (posterior probability that the share exceeds GB's for the same subgroup),
        ``direct`` (the respondents' weighted or unweighted share), ``la_effect`` (how the
        LA effect entered), ``la_mode``, ``published`` (what the disclosure rule allows).
        ``attrs``: ``la_mode``, ``interval``, ``direct`` (weighted or not), ``not_estimable``
        (LA -> reason), ``unmatched`` (respondent LAs absent from the population),
        ``stand_ins``.
    """
    warn_if_not_converged(fit)
    md = fit.md
    if md.family != "bernoulli":
        raise MrpError(f"mrp: needs a 0/1 outcome; {md.formula!r} is a {md.family} model")
    factors = {b.factor for b in md.blocks}
    if group not in factors:
        raise MrpError(
            f"mrp: {group!r} is not a grouping factor of {md.formula!r} (factors: {sorted(factors)})"
        )
    mode = LaMode.parse(la, las)
    pop = load_population() if population is None else population.copy()
    need = {"lad", "sex", "age_band", "population"}
    if need - set(pop.columns):
        raise MrpError(f"mrp: the population table lacks {sorted(need - set(pop.columns))}")
    pop["lad"] = pop["lad"].astype(str)
    fitted_levels = set(next(b for b in md.blocks if b.factor == group).levels)
    if mode.kind == "these_las":
        unknown = [c for c in mode.las if c not in fitted_levels]
        if unknown:
            raise MrpError(f"mrp: la='these_las' needs fitted LAs; not in the fit: {', '.join(unknown[:5])}")
        pop = pop[pop["lad"].isin(mode.las)]
    resp = add_cell_columns(md.frame if table is None else table)
    resp = resp[md.complete_rows(resp)]
    for c in ("age_band", "sex", group):
        if c not in resp:
            raise MrpError(f"mrp: the respondents lack {c!r} (give table= with age and female, or {c})")
    resp = resp[resp["age_band"].notna() & resp["sex"].notna()]
    resp[group] = resp[group].astype(str)
    weighted = bool(weight) and weight in resp and bool((resp[weight].astype(float) > 0).any())
    wcol = weight if weighted else None
    y = md.response

    area_cols = _area_columns(fit, resp, group)
    derived = {"age_band", "sex", "age50", "female"}
    individual = [c for c in md.predictor_columns if c not in area_cols and c != group]
    stand_ins = [c for c in individual if c not in derived]
    pool = _pool(resp, individual, wcol, per_cell, seed)
    cells = pop.groupby(["lad", "age_band", "sex"], observed=True)["population"].sum().reset_index()
    empty = (
        cells[["age_band", "sex"]]
        .drop_duplicates()
        .merge(pool[["age_band", "sex"]].drop_duplicates(), how="left", indicator=True)
    )
    empty = empty[empty["_merge"] == "left_only"]
    if len(empty) and stand_ins:
        first = empty.iloc[0]
        raise MrpError(
            f"mrp: no respondent of age band {first.age_band} and sex {first.sex} to stand in for "
            f"{', '.join(stand_ins)}"
        )
    if len(empty):  # cells fully described by age band and sex
        pool = pd.concat([pool, empty[["age_band", "sex"]].assign(_w=1.0)], ignore_index=True)
    if "female" in individual:
        pool["female"] = (pool["sex"] == "female").astype(float)
    if "age50" in individual:
        pool["age50"] = pool["age_band"].map(_AGE50).astype(float)

    all_las = list(dict.fromkeys(cells["lad"]))
    areas, not_estimable = area_values(resp, area_cols, all_las, group)
    if area is not None and area_cols:
        given = area.reindex(areas.index)
        for c in area_cols:
            if c in given:
                areas[c] = areas[c].fillna(given[c].astype(float))
        not_estimable = {c: why for c, why in not_estimable.items() if areas.loc[c].isna().any()}
    n_la = resp.groupby(group).size()
    small = set() if synthetic else {c for c in all_las if 0 < n_la.get(c, 0) < k}

    subgroups = ["all", *[b for b in by if b != "all"]]
    frame = cells.rename(columns={"lad": "_la"}).merge(pool, on=["age_band", "sex"], how="inner")
    frame["_weight"] = frame["population"] * frame["_w"]
    urban_note = "urban/rural: not in the model"
    if "urban" in individual:
        frame, urban_note = _split_urban(frame, urban_share)
    for s in subgroups:
        frame[f"_by_{s}"] = _labels(frame, s).to_numpy()
    estimable = [c for c in all_las if c not in not_estimable]
    frame = frame[frame["_la"].isin(estimable)].reset_index(drop=True)
    for c in area_cols:
        frame[c] = areas[c].reindex(frame["_la"]).to_numpy()
    frame[group] = frame["_la"]
    if mode.kind in ("own_la", "these_las"):  # below k on real data: predicted as a new LA
        frame.loc[frame["_la"].isin(small), group] = frame["_la"] + " (as a new LA)"
    for c, levels in md.categorical_levels.items():
        if c in frame and c in individual:
            frame[c] = pd.Categorical(frame[c].astype(str), categories=levels)

    # draws of each (LA, subgroup, level) share, LA chunk by LA chunk
    keys: list[tuple[str, str, str]] = []
    blocks: list[np.ndarray] = []
    pop_of: dict[tuple[str, str, str], float] = {}
    for start in range(0, len(estimable), chunk_las):
        chunk = estimable[start : start + chunk_las]
        rows = frame[frame["_la"].isin(chunk)]
        if rows.empty:
            continue
        with np.errstate(over="ignore"):
            p = np.asarray(
                fit.predict(
                    rows,
                    la="own_la" if mode.kind == "these_las" else mode,
                    unseen="population",
                    seed=seed + start,
                    max_draws=max_draws,
                )
            )
        w = rows["_weight"].to_numpy()
        for s in subgroups:
            key = pd.MultiIndex.from_arrays([rows["_la"], rows[f"_by_{s}"]]).to_flat_index()
            codes, uniq = pd.factorize(key)
            G = np.zeros((len(rows), len(uniq)))
            G[np.arange(len(rows)), codes] = w
            tot = G.sum(axis=0)
            blocks.append((p @ G) / tot)
            for (lad_code, level), t in zip(uniq, tot, strict=True):
                keys.append((lad_code, s, level))
                pop_of[(lad_code, s, level)] = float(t)
    draws = np.concatenate(blocks, axis=1) if blocks else np.zeros((1, 0))
    lost = set(estimable) - {key[0] for key in keys}
    if lost:  # pragma: no cover - a guard: every estimable LA must have its rows
        raise RuntimeError(f"mrp: no estimate made for {sorted(lost)[:5]}")
    index = pd.MultiIndex.from_tuples(keys, names=["lad", "subgroup", "level"])

    # GB: population-weighted over the estimable LAs, per subgroup level
    popw = pd.Series(pop_of).reindex(index).to_numpy()
    gb_keys, gb_cols = [], []
    lvl = pd.Series(list(zip(index.get_level_values(1), index.get_level_values(2), strict=True)))
    for (s, level), pos in lvl.groupby(lvl).groups.items():
        pos = np.asarray(list(pos))
        gb_cols.append((draws[:, pos] * popw[pos]).sum(axis=1) / popw[pos].sum())
        gb_keys.append(("GB", s, level))
    gb = np.column_stack(gb_cols) if gb_cols else np.zeros((draws.shape[0], 0))
    gb_of = {k[1:]: gb[:, j] for j, k in enumerate(gb_keys)}
    p_above = np.array([(draws[:, j] > gb_of[(s, level)]).mean() for j, (_, s, level) in enumerate(keys)])

    all_draws = np.concatenate([gb, draws], axis=1)
    all_keys = gb_keys + keys
    table_out = summarise_draws(all_draws, prob=prob, prefix="mrp_")
    table_out.insert(0, "lad", [k[0] for k in all_keys])
    table_out.insert(1, "subgroup", [k[1] for k in all_keys])
    table_out.insert(2, "level", [k[2] for k in all_keys])
    gb_pop = {k: sum(v for kk, v in pop_of.items() if kk[1:] == k[1:]) for k in gb_keys}
    table_out.insert(3, "population", [gb_pop.get(k, pop_of.get(k)) for k in all_keys])
    table_out["p_above_gb"] = np.concatenate([np.full(len(gb_keys), np.nan), p_above])

    # respondents and direct estimates
    n_col, direct = [], []
    for lad_code, s, level in all_keys:
        m = pd.Series(True, index=resp.index) if lad_code == "GB" else resp[group] == lad_code
        m &= _labels(resp, s) == level
        sub = resp.loc[m]
        n_col.append(len(sub))
        if len(sub) and y in sub:
            wv = sub[wcol].astype(float).fillna(0.0) if wcol else pd.Series(1.0, index=sub.index)
            direct.append(float((sub[y].astype(float) * wv).sum() / wv.sum()) if wv.sum() > 0 else np.nan)
        else:
            direct.append(np.nan)
    table_out.insert(4, "n", n_col)
    table_out["direct"] = direct
    table_out["la_effect"] = [_la_effect(c, mode, fitted_levels, small) for c in table_out["lad"]]
    table_out["la_mode"] = mode.kind
    if names:
        table_out.insert(
            1, "name", [names.get(c, "Great Britain" if c == "GB" else c) for c in table_out["lad"]]
        )
    table_out.insert(0, "outcome", y)
    table_out.insert(0, "model", model or y)
    nonest = pd.DataFrame(
        {
            "model": model or y,
            "outcome": y,
            "lad": list(not_estimable),
            "subgroup": "all",
            "level": "everyone",
            "population": [float(cells.loc[cells.lad == c, "population"].sum()) for c in not_estimable],
            "n": [int(n_la.get(c, 0)) for c in not_estimable],
            "la_effect": ["not estimated: " + why for why in not_estimable.values()],
            "la_mode": mode.kind,
        }
    )
    if len(nonest):
        table_out = pd.concat([table_out, nonest], ignore_index=True)
    table_out = _disclose(table_out, synthetic, k)
    lo, hi = interval_columns("eti", prob, "mrp_")
    table_out.attrs.update(
        {
            "la_mode": mode.describe(),
            "interval": describe_interval("eti", prob) + " of the population share",
            "interval_columns": interval_metadata(table_out),
            "direct": (
                f"direct estimate: respondents' share weighted by {wcol!r}"
                if wcol
                else "direct estimate: unweighted share of respondents (the table has no weights"
                + (f": {weight!r} is empty)" if weight and weight in resp else ")")
            ),
            "not_estimable": not_estimable,
            "unmatched": sorted(set(resp[group]) - set(pop["lad"])),
            "stand_ins": stand_ins,
            "urban": urban_note,
            "synthetic": synthetic,
            "k": k,
            "headline": fit.headline,
            "converged": fit.converged,
            "columns": (lo, hi),
        }
    )
    if return_draws:
        table_out.attrs["draws"] = all_draws
    return table_out


def _split_urban(frame: pd.DataFrame, urban_share: pd.Series | bool | None) -> tuple[pd.DataFrame, str]:
    """Split every cell of an LA with a known urban share into its urban and rural parts."""
    if urban_share is False:
        return frame, "urban/rural: the respondents' mix within each sex x age cell"
    if urban_share is None or urban_share is True:
        cov = load_la_covariates().set_index("lad19cd")
        urban_share = cov["ms_ruc_share_urban"] if "ms_ruc_share_urban" in cov else pd.Series(dtype=float)
    share = frame["_la"].map(pd.Series(urban_share, dtype=float))
    has = share.notna().to_numpy()
    if not has.any():
        return frame, "urban/rural: the respondents' mix (no LA urban shares)"
    base, s = frame[has], share[has].to_numpy()
    parts = [
        frame[~has],
        base.assign(urban=1.0, _weight=base["_weight"].to_numpy() * s),
        base.assign(urban=0.0, _weight=base["_weight"].to_numpy() * (1 - s)),
    ]
    n_split, n_all = frame.loc[has, "_la"].nunique(), frame["_la"].nunique()
    note = (
        f"urban/rural: each cell split by the LA's urban population share in {n_split} of {n_all} LAs "
        "(mySociety composite rural-urban classification, unless given); the respondents' mix elsewhere"
    )
    return pd.concat(parts, ignore_index=True), note


def _la_effect(code: str, mode: LaMode, fitted: set[str], small: set[str]) -> str:
    if code == "GB":
        return "population-weighted over LAs"
    if mode.kind == "average_la":
        return "zero (average LA)"
    if mode.kind == "marginal":
        return "integrated over the LA distribution"
    if mode.kind == "new_la":
        return "new-LA draw (area factors only)"
    if code in small:
        return "new-LA draw (fewer than k respondents: own effect not used)"
    return "fitted" if code in fitted else "new-LA draw (no respondents)"


def _disclose(table: pd.DataFrame, synthetic: bool, k: int) -> pd.DataFrame:
    """Apply the MrP disclosure rule (module docstring) to a table of `mrp` rows."""
    out = table.copy()
    if synthetic:
        out["published"] = "all (synthetic data)"
        return out
    points = ("mrp_mean", "mrp_median", "mrp_sd", "direct", "p_above_gb")
    return interval_only_below_k(out, points, k=k, exempt=out["lad"] == "GB")


def true_population_shares(
    population: pd.DataFrame, probability: pd.Series | np.ndarray, by: Sequence[str] = ()
) -> pd.DataFrame:
    """Population shares from known cell probabilities (for recovery checks on simulated data).

    Parameters
    ----------
    population : pandas.DataFrame
        ``lad``, ``sex``, ``age_band``, ``population``.
    probability : array
        The true probability of each row of ``population``.
    by : sequence of str
        Subgroups (``sex``, ``age_band``, ``age50``) besides everyone.

    Returns
    -------
    pandas.DataFrame
        ``lad``, ``subgroup``, ``level``, ``true_share``.
    """
    pop = population.assign(_p=np.asarray(probability, dtype=float))
    parts = []
    for s in ["all", *by]:
        lab = _labels(pop, s)
        g = pop.assign(level=lab.to_numpy(), _np=pop["population"] * pop["_p"]).groupby(["lad", "level"])
        t = (g["_np"].sum() / g["population"].sum()).rename("true_share").reset_index()
        parts.append(t.assign(subgroup=s))
    return pd.concat(parts, ignore_index=True)[["lad", "subgroup", "level", "true_share"]]


def mrp_table(
    fits: dict[str, Any], table: pd.DataFrame, *, outcome: str | None = None, **kwargs: Any
) -> pd.DataFrame:
    """`mrp` for every fit (of ``outcome``, when given) that MrP can use, in one tidy table.

    Fits MrP cannot use (another family, no ``lad`` factor) are skipped and listed in
    ``attrs["skipped"]`` with the reason.

    Raises
    ------
    MrpError
        When no fit is left.
    """
    parts, skipped = [], {}
    for name, f in fits.items():
        if outcome is not None and f.md.response != outcome:
            continue
        try:
            parts.append(mrp(f, table=table, model=name, **kwargs))
        except MrpError as exc:
            skipped[name] = str(exc)
    if not parts:
        have = sorted({f.md.response for f in fits.values()})
        why = "; ".join(f"{n}: {w}" for n, w in skipped.items())
        raise MrpError(
            "mrp: no fit to post-stratify"
            + (f" for outcome {outcome!r} (outcomes of the fits: {', '.join(have)})" if outcome else "")
            + (f" ({why})" if why else "")
        )
    out = pd.concat(parts, ignore_index=True)
    out.attrs.update({k: v for k, v in parts[0].attrs.items() if k != "draws"})
    out.attrs["skipped"] = skipped
    return out
