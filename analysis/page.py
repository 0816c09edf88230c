"""The decision makers' page: the levels model as an interactive "what if", from a finished run.

`write_page` reads a run folder of the main job (its fits, manifest and the analysis table
it was made from) and writes one self-contained HTML file that opens from disk, works
offline and fetches nothing: plotly.js (from the installed plotly package) and the data
travel inside the page, gzip-compressed and base64-encoded, and the browser unpacks them
with its own ``DecompressionStream``.

What the page computes, it computes in the browser from a shipped *payload* (`build_payload`):

- per model, a thinned set of posterior draws (the same thinning as `models.Fit.predict`):
  the fixed coefficients and the LA effects, stored as integers in units of
  `COEF_SCALE` / `EFFECT_SCALE`;
- per model, *cells*: for each subgroup (`analysis.scenarios.SUBGROUPS`) and LA, the
  number of people of the model's complete rows in that subgroup level and LA, the mean of
  every design column (fixed and varying), the mean change of each design column per unit
  shift of each area factor (read from the model's own design: an interaction moves with
  its partner), and a spread factor ``kappa = 1 / sqrt(1 + pi v / 8)`` from the cell's
  variance ``v`` of the linear predictor at the posterior mean (the probit approximation of
  the average of a logistic over a spread of people). Never individual rows.

`whatif` computes from that payload exactly what the page's JavaScript computes (the
browser test checks the two agree to 1e-6). For draw s and cell c,
``p0 = logistic(kappa_c eta_cs)`` and ``p1 = logistic(kappa_c (eta_cs + d_cs))`` with
``eta_cs = xbar_c . b_s + zbar_c . r_s[la_c]`` and ``d_cs`` the shift of the linear
predictor; a subgroup's change is the people-weighted mean of ``p1 - p0`` over its cells
in the chosen LAs, summarised like `analysis.scenarios.scenario` (mean, median, 95%
equal-tailed interval, P(change > 0), the gap of the last level minus the first). It
differs from `scenario` only by working on cell means instead of people (the difference
is measured in the tests and the README) and by defining income and sociability bands
once on all of a model's rows.

Disclosure: every LA shipped has at least ``k`` respondents and every cell at least ``k``
people (`analysis.disclosure.DEFAULT_K`, or the run's ``min_cell``), on synthetic data too.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.disclosure import DEFAULT_K
from analysis.scenarios import CAVEAT, SUBGROUPS, Shift, sd_delta, subgroup_labels, subgroup_levels
from analysis.summaries import describe_interval, group_effects, interval_columns
from analysis.summaries.intervals import DEFAULT_PROB

__all__ = [
    "COEF_SCALE",
    "EFFECT_SCALE",
    "FACTORS",
    "PAGE_DRAWS",
    "FactorUnits",
    "PageError",
    "build_payload",
    "page_html",
    "read_payload",
    "whatif",
    "write_page",
]

PAGE_DRAWS = 200
COEF_SCALE = 1e-5
EFFECT_SCALE = 2e-3
ASSETS = Path(__file__).resolve().parent / "page_assets"
PAGE_CAVEAT = "An association in cross-sectional data, not a forecast: " + CAVEAT[0].lower() + CAVEAT[1:]
_PAYLOAD_ID, _PLOTLY_ID = "sameplace-payload", "sameplace-plotly"


class PageError(ValueError):
    """A run folder the page cannot be made from (named in the message)."""


@dataclass(frozen=True)
class FactorUnits:
    """How a slider shows an area factor: ``display = scale * raw`` (or a percentage change of
    ``exp(raw)`` for a factor kept on the log scale), with the slider's half-range and step."""

    label: str
    unit: str
    scale: float = 1.0
    log_percent: bool = False
    half_range: float = 1.0
    step: float = 0.1

    def to_raw(self, value: float) -> float:
        """Raw-unit shift of ``<column>_raw`` for a slider value."""
        return math.log(1.0 + value / 100.0) if self.log_percent else value / self.scale


#: The study's area factors, in their published units.
FACTORS: dict[str, FactorUnits] = {
    "area_volunteering": FactorUnits("Volunteering rate", "percentage points", 100.0, False, 10.0, 0.5),
    "area_unemployment": FactorUnits("Unemployment rate", "percentage points", 1.0, False, 3.0, 0.1),
    "area_sociability": FactorUnits(
        "Area sociability",
        "points of the sociability score (1 = 1 SD of a person's score)",
        1.0,
        False,
        0.5,
        0.02,
    ),
    "area_turnout": FactorUnits("Voting turnout", "percentage points", 1.0, False, 10.0, 0.5),
    "area_income": FactorUnits("Average household income", "% higher", 100.0, True, 20.0, 1.0),
    "area_walkability": FactorUnits(
        "Walkability (walkable local assets)", "index points (0-100)", 1.0, False, 20.0, 1.0
    ),
}


# --------------------------------------------------------------------------- payload


def _thin(n_samples: int, draws: int) -> np.ndarray:
    """The draws kept: the same evenly spaced thinning as `models.Fit.predict`."""
    if draws and draws < n_samples:
        return np.linspace(0, n_samples - 1, draws).astype(int)
    return np.arange(n_samples)


def _stacked(post: Any, name: str) -> np.ndarray:
    da = post[name].stack(sample=("chain", "draw"))
    return np.moveaxis(np.asarray(da.values, dtype=float), -1, 0)


def _rounded(a: np.ndarray, digits: int = 6) -> list:
    return np.round(np.asarray(a, dtype=float), digits).tolist()


def _quantised(a: np.ndarray, scale: float) -> list[int]:
    return np.rint(np.asarray(a, dtype=float) / scale).astype(np.int64).ravel().tolist()


def _lad_block(fit: Any) -> Any:
    blocks = [b for b in fit.md.blocks if b.factor == "lad"]
    if len(blocks) != 1 or len(fit.md.blocks) != 1 or getattr(blocks[0], "spatial", None):
        raise PageError(
            f"the page needs models with one exchangeable (… | lad) term; {fit.md.formula!r} has "
            f"{', '.join(f'({b.expr} | {b.factor})' for b in fit.md.blocks) or 'none'}"
        )
    return blocks[0]


def _unit_change(md: Any, rows: pd.DataFrame, column: str) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """Change of every design column per unit (model units) of ``column``; None if not linear."""
    from models.formula import design_for_new_data

    base_x, base_z = design_for_new_data(md, rows)
    out = []
    for step in (1.0, 2.0):
        moved = rows.copy()
        moved[column] = moved[column] + step
        x, z = design_for_new_data(md, moved)
        out.append((x - base_x, [a - b for a, b in zip(z, base_z, strict=True)]))
    (dx1, dz1), (dx2, dz2) = out
    if not np.allclose(dx2, 2 * dx1, atol=1e-9) or not all(
        np.allclose(b, 2 * a, atol=1e-9) for a, b in zip(dz1, dz2, strict=True)
    ):
        return None
    return dx1, dz1


def _model_payload(
    name: str,
    fit: Any,
    table: pd.DataFrame,
    *,
    draws: int,
    k: int,
    factors: Sequence[str],
    title: str,
    outcome_label: str,
    la_names: Mapping[str, str],
) -> dict[str, Any]:
    from models.formula import design_for_new_data

    md = fit.md
    block = _lad_block(fit)
    rows = table[md.complete_rows(table)].reset_index(drop=True)
    X, Zs = design_for_new_data(md, rows)
    Z = Zs[0]
    lookup = {lv: j for j, lv in enumerate(block.levels)}
    la_idx = np.array([lookup.get(str(v), -1) for v in rows["lad"].astype(str)])
    if (la_idx < 0).any():
        raise PageError(f"model {name}: rows in LAs the fit did not see (is this the run's analysis table?)")

    post = fit.posterior()
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    keep = _thin(n_samples, draws)
    terms = list(md.fixed_terms)
    slope_terms = [t for t in terms if t != "Intercept"]
    b_all = np.zeros((n_samples, len(terms)))
    if md.has_intercept:
        b_all[:, terms.index("Intercept")] = _stacked(post, "Intercept")
    if slope_terms:
        coefs = [str(c) for c in post["coef"].values]
        b = _stacked(post, "b")
        for t in slope_terms:
            b_all[:, terms.index(t)] = b[:, coefs.index(t)]
    r_all = _stacked(post, f"r_{block.name}")  # (S, L, k)

    # LAs shown: at least k of this model's rows
    counts = np.bincount(la_idx, minlength=len(block.levels))
    shown = np.flatnonzero(counts >= k)
    pos = {int(j): i for i, j in enumerate(shown)}

    # spread of the linear predictor at the posterior mean, within each cell
    b_hat, r_hat = b_all.mean(axis=0), r_all.mean(axis=0)[la_idx]
    eta_hat = X @ b_hat + np.einsum("nk,nk->n", Z, r_hat)

    changes: dict[str, tuple[np.ndarray, np.ndarray, list[int], list[int]]] = {}
    for f in factors:
        if f not in md.fixed_columns:
            continue
        unit = _unit_change(md, rows, f)
        if unit is None:
            continue
        dx, dz = unit
        xcols = [j for j in range(dx.shape[1]) if np.any(dx[:, j] != 0)]
        zcols = [q for q in range(dz[0].shape[1]) if np.any(dz[0][:, q] != 0)]
        changes[f] = (dx, dz[0], xcols, zcols)
    # per-person shift of the linear predictor per unit of each factor (posterior mean): where it
    # varies within a cell (an interaction with a person's covariate) the cell's spread changes too
    g_hat = {f: dx @ b_hat + np.einsum("nk,nk->n", dz, r_hat) for f, (dx, dz, _, _) in changes.items()}
    varying = [f for f in changes if np.ptp(g_hat[f]) > 1e-9]
    pairs = [(a, b) for i, a in enumerate(varying) for b in varying[i:]]

    groups: list[dict[str, Any]] = []
    cells: dict[str, list] = {"la": [], "group": [], "n": [], "v": [], "X": [], "Z": []}
    cov: dict[str, list] = {f: [] for f in varying}
    var: dict[tuple[str, str], list] = {pr: [] for pr in pairs}
    dcells: dict[str, dict[str, list]] = {f: {"X": [], "Z": []} for f in changes}
    suppressed_cells = 0
    for sub in SUBGROUPS:
        labels = subgroup_labels(rows, sub).to_numpy()
        for level in subgroup_levels(sub, labels):
            g = len(groups)
            groups.append({"subgroup": sub, "level": str(level)})
            in_level = labels == level
            for j in shown:
                m = in_level & (la_idx == j)
                n = int(m.sum())
                if n == 0:
                    continue
                if n < k:
                    suppressed_cells += 1
                    continue
                e = eta_hat[m] - eta_hat[m].mean()
                dev = {f: g_hat[f][m] - g_hat[f][m].mean() for f in varying}
                cells["la"].append(pos[int(j)])
                cells["group"].append(g)
                cells["n"].append(n)
                cells["v"].append(float(e @ e / n))
                for f in varying:
                    cov[f].append(float(e @ dev[f] / n))
                for a, b2 in pairs:
                    var[(a, b2)].append(float(dev[a] @ dev[b2] / n))
                cells["X"].append(X[m].mean(axis=0))
                cells["Z"].append(Z[m].mean(axis=0))
                for f, (dx, dz, xcols, zcols) in changes.items():
                    dcells[f]["X"].append(dx[m][:, xcols].mean(axis=0))
                    dcells[f]["Z"].append(dz[m][:, zcols].mean(axis=0))

    def flat(parts: list, width: int) -> list:
        return _rounded(np.asarray(parts, dtype=float).reshape(-1, width).ravel(), 4) if parts else []

    shown_codes = [str(block.levels[j]) for j in shown]
    la_table = group_effects(fit, block.name, "Intercept", prob=DEFAULT_PROB)
    or_lo, or_hi = interval_columns("eti", DEFAULT_PROB, "or_")
    la_table = la_table.set_index("level").loc[shown_codes]
    return {
        "name": name,
        "title": title,
        "outcome": md.response,
        "outcome_label": outcome_label,
        "formula": md.formula,
        "converged": bool(fit.converged),
        "verdict": str(fit.headline),
        "n_rows": int(md.n_obs),
        "n_shown": int(counts[shown].sum()),
        "terms": terms,
        "effect_terms": list(block.terms),
        "draws": int(len(keep)),
        "B": _quantised(b_all[keep], COEF_SCALE),
        "R": _quantised(r_all[keep][:, shown, :], EFFECT_SCALE),
        "las": shown_codes,
        "groups": groups,
        "cells": {
            "la": cells["la"],
            "group": cells["group"],
            "n": cells["n"],
            "v": _rounded(cells["v"]),
            "cov": {f: _rounded(c) for f, c in cov.items()},
            "var": [[a, b2, _rounded(c)] for (a, b2), c in var.items()],
            "X": flat(cells["X"], len(terms)),
            "Z": flat(cells["Z"], len(block.terms)),
        },
        "suppressed_cells": suppressed_cells,
        "shifts": {
            f: {
                "xcols": xcols,
                "zcols": zcols,
                "X": flat(dcells[f]["X"], len(xcols)) if xcols else [],
                "Z": flat(dcells[f]["Z"], len(zcols)) if zcols else [],
            }
            for f, (_, _, xcols, zcols) in changes.items()
        },
        "la_effects": {
            "codes": shown_codes,
            "names": [str(la_names.get(c, c)) for c in shown_codes],
            "n": [int(counts[lookup[c]]) for c in shown_codes],
            "or_median": _rounded(la_table["or_median"], 4),
            "or_low": _rounded(la_table[or_lo], 4),
            "or_high": _rounded(la_table[or_hi], 4),
        },
    }


def _arrow_sentence(a: Any, cat: Any, binary: bool) -> str:
    src = cat.label(a.source) if cat is not None else a.source.replace("_", " ")
    tgt = cat.label(a.target) if cat is not None else a.target.replace("_", " ")
    who = f"{src} (compared with not)" if binary else f"1 SD higher {src}"
    if not a.converged:
        return (
            f"The {a.model} fit did not pass the convergence gate: its estimate for {who} and "
            f"{tgt} is not interpreted. Rerun it with more draws."
        )
    if a.low > 1:
        word = "higher"
    elif a.high < 1:
        word = "lower"
    else:
        word = "no clear difference in the"
    return (
        f"{who[0].upper()}{who[1:]} goes with {a.median:.2f} times the odds of {tgt} "
        f"(95% interval {a.low:.2f} to {a.high:.2f}): {word} odds, in the {a.model} model. "
        "An association in cross-sectional data, not a cause."
    )


def build_payload(
    fits: Mapping[str, Any],
    table: pd.DataFrame,
    *,
    catalogue: Any = None,
    synthetic: bool,
    k: int = DEFAULT_K,
    draws: int = PAGE_DRAWS,
    geojson: Mapping[str, Any] | None = None,
    run_name: str = "",
) -> dict[str, Any]:
    """Everything the page shows or computes, as JSON-ready data.

    Parameters
    ----------
    fits : mapping
        Model name -> `models.Fit` (one ``(… | lad)`` term each; others are listed as skipped).
    table : pandas.DataFrame
        The analysis table the fits were made from (``lad``, ``lad_name``, the raw area columns).
    catalogue : Catalogue, optional
        For titles and plain-language labels.
    synthetic : bool
        Mark every view as synthetic data.
    k : int
        Disclosure threshold: LAs and cells with fewer people are not shipped.
    draws : int
        Posterior draws kept per model (evenly thinned).
    geojson : mapping, optional
        LA boundaries (features with ``properties.lad19cd``); only LAs shown are kept.
    run_name : str
        Shown in the page's header.

    Returns
    -------
    dict
        ``models`` (draws, cells, LA effects per model), ``arrows`` (the levels model from
        `analysis.levels.level_arrows`, with sentences), ``factors`` (slider units and the
        conversion to model units from `analysis.scenarios.sd_delta`), ``las`` (code, name,
        respondents) and the notes the page prints.
    """
    from analysis.levels import LINKS, OUTCOMES, level_arrows

    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    la_names = (
        dict(zip(table["lad"].astype(str), table["lad_name"], strict=False)) if "lad_name" in table else {}
    )
    titles = {
        n: (catalogue[n].title if catalogue is not None and n in {e.name for e in catalogue.entries} else n)
        for n in fits
    }

    factors: dict[str, Any] = {}
    for col, units in FACTORS.items():
        if not any(col in f.md.fixed_columns for f in fits.values()) or f"{col}_raw" not in table:
            continue
        raw = table[f"{col}_raw"].dropna()
        factors[col] = {
            "label": units.label,
            "unit": units.unit,
            "scale": units.scale,
            "log_percent": units.log_percent,
            "min": -units.half_range,
            "max": units.half_range,
            "step": units.step,
            "per_raw": sd_delta(Shift(col, 1.0), table),
            "raw_mean": float(raw.mean()),
            "raw_sd": float(raw.std()),
        }
    for name, f in fits.items():
        used = int(f.md.complete_rows(table).sum())
        if used != f.md.n_obs:
            raise PageError(
                f"model {name}: the analysis table gives {used} complete rows but the fit used {f.md.n_obs}; "
                "it is not the table the run was fitted on (was the cohort generated again?)"
            )
    models, skipped = {}, {}
    for name, f in fits.items():
        if f.md.family != "bernoulli":
            skipped[name] = f"family {f.md.family} (the page shows 0/1 outcomes)"
            continue
        try:
            label = catalogue.label(f.md.response) if catalogue is not None else f.md.response
            models[name] = _model_payload(
                name,
                f,
                table,
                draws=draws,
                k=k,
                factors=list(factors),
                title=titles[name],
                outcome_label=label,
                la_names=la_names,
            )
        except PageError as exc:
            skipped[name] = str(exc)

    la_n = table["lad"].astype(str).value_counts()
    shown_las = sorted(set().union(*(m["las"] for m in models.values())) if models else set())
    las = [{"code": c, "name": str(la_names.get(c, c)), "n": int(la_n[c])} for c in shown_las if la_n[c] >= k]
    n_small = int((la_n < k).sum())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arrows = level_arrows(fits)
    binary = {c: bool(c in table and set(pd.unique(table[c].dropna())) <= {0, 1}) for c in table.columns}
    arrow_rows = []
    for a in arrows:
        if a.target not in LINKS + OUTCOMES:
            continue
        arrow_rows.append(
            {
                "source": a.source,
                "target": a.target,
                "model": a.model,
                "source_label": catalogue.label(a.source) if catalogue is not None else a.source,
                "target_label": catalogue.label(a.target) if catalogue is not None else a.target,
                "or_median": round(float(a.median), 4),
                "or_low": round(float(a.low), 4),
                "or_high": round(float(a.high), 4),
                "converged": bool(a.converged),
                "verdict": str(fits[a.model].headline),
                "sentence": _arrow_sentence(a, catalogue, binary.get(a.source, False)),
            }
        )

    geo = None
    if geojson is not None:
        keep = {x["code"] for x in las}
        geo = {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": ft["properties"]["lad19cd"],
                    "properties": {"lad19cd": ft["properties"]["lad19cd"]},
                    "geometry": _round_geometry(ft["geometry"], 3),
                }
                for ft in geojson["features"]
                if ft["properties"]["lad19cd"] in keep
            ],
        }
    return {
        "version": 1,
        "run": run_name,
        "synthetic": bool(synthetic),
        "k": int(k),
        "prob": DEFAULT_PROB,
        "interval": describe_interval("eti", DEFAULT_PROB),
        "caveat": PAGE_CAVEAT,
        "coef_scale": COEF_SCALE,
        "effect_scale": EFFECT_SCALE,
        "factors": factors,
        "subgroup_labels": {
            "all": "Everyone",
            "age50": "Age",
            "income_band": "Household income (thirds of the model's rows)",
            "sociability_band": "Sociability (above / below the median)",
            "urban": "Urban or rural",
        },
        "subgroup_short": {
            "all": "Everyone",
            "age50": "Age",
            "income_band": "Income",
            "sociability_band": "Sociability",
            "urban": "Area",
        },
        "las": las,
        "disclosure": (
            f"Disclosure rule applied to everything in this page: no LA with fewer than {k} respondents "
            f"({n_small} LAs left out) and no subgroup cell of an LA with fewer than {k} people "
            f"({sum(m['suppressed_cells'] for m in models.values())} cells left out over all models); "
            "the what-if averages cover the people in the cells shown."
        ),
        "models": models,
        "skipped": skipped,
        "arrows": arrow_rows,
        "geojson": geo,
    }


def _round_geometry(geom: Mapping[str, Any], digits: int) -> dict[str, Any]:
    """Coordinates rounded to ``digits`` decimals (3: about 100 m), repeated points dropped, and
    rings wound as plotly's d3-geo expects (outer rings clockwise, holes anticlockwise; GeoJSON's
    own convention is the reverse, which d3 reads as "the whole globe except this polygon")."""

    def area2(pts: list) -> float:
        return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False))

    def ring(points: list, outer: bool) -> list:
        out: list = []
        for x, y in points:
            p = [round(x, digits), round(y, digits)]
            if not out or p != out[-1]:
                out.append(p)
        if len(out) < 4:  # keep a valid ring even for tiny islands
            out = [[round(x, digits), round(y, digits)] for x, y in points]
        clockwise = area2(out) < 0
        return out if clockwise == outer else out[::-1]

    def polygon(rings: list) -> list:
        return [ring(r, i == 0) for i, r in enumerate(rings)]

    if geom["type"] == "Polygon":
        return {"type": "Polygon", "coordinates": polygon(geom["coordinates"])}
    if geom["type"] == "MultiPolygon":
        return {"type": "MultiPolygon", "coordinates": [polygon(poly) for poly in geom["coordinates"]]}
    return dict(geom)


# --------------------------------------------------------------------------- the computation


def _quantile(sorted_x: np.ndarray, q: float) -> float:
    """numpy's default ('linear') quantile of sorted values, written as the page's JS writes it."""
    h = (len(sorted_x) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_x) - 1)
    t = h - lo
    a, b = float(sorted_x[lo]), float(sorted_x[hi])
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def _summary(d: np.ndarray, prob: float) -> dict[str, float]:
    s = np.sort(d)
    low, high = interval_columns("eti", prob, "change_pp_")
    return {
        "change_pp_mean": float(d.sum() / len(d)),
        "change_pp_median": _quantile(s, 0.5),
        low: _quantile(s, (1 - prob) / 2),
        high: _quantile(s, (1 + prob) / 2),
        "p_positive": float((d > 0).sum() / len(d)),
    }


def whatif(
    payload: Mapping[str, Any],
    model: str,
    shifts: Mapping[str, float],
    las: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The page's what-if for one model: exactly what its JavaScript computes from the payload.

    Parameters
    ----------
    payload : mapping
        From `build_payload` (or `read_payload` of a written page).
    model : str
        Model name in ``payload["models"]``.
    shifts : mapping
        Area factor -> slider value in the factor's display units (``payload["factors"]``);
        factors the model does not contain are ignored.
    las : sequence of str, optional
        LA codes (default: every LA shown).

    Returns
    -------
    pandas.DataFrame
        ``subgroup``, ``level``, ``n``, ``baseline_pct``, ``change_pp_mean``,
        ``change_pp_median``, ``change_pp_eti95_low``, ``change_pp_eti95_high`` (percentage
        points) and ``p_positive``; a ``gap: <last> minus <first>`` row per subgroup with two
        or more levels present, as in `analysis.scenarios.scenario`.
    """
    m = payload["models"][model]
    factors = payload["factors"]
    S, terms, eterms = m["draws"], m["terms"], m["effect_terms"]
    B = np.asarray(m["B"], dtype=float).reshape(S, len(terms)) * payload["coef_scale"]
    R = np.asarray(m["R"], dtype=float).reshape(S, len(m["las"]), len(eterms)) * payload["effect_scale"]
    cells = m["cells"]
    la = np.asarray(cells["la"], dtype=int)
    group = np.asarray(cells["group"], dtype=int)
    n = np.asarray(cells["n"], dtype=float)
    v = np.asarray(cells["v"], dtype=float)
    X = np.asarray(cells["X"], dtype=float).reshape(len(la), len(terms))
    Z = np.asarray(cells["Z"], dtype=float).reshape(len(la), len(eterms))
    sel = np.ones(len(la), bool)
    if las is not None:
        wanted = {i for i, c in enumerate(m["las"]) if c in set(las)}
        sel = np.isin(la, sorted(wanted))
    eta = X @ B.T + np.einsum("cq,scq->cs", Z, R[:, la, :])  # (cells, S)
    d = np.zeros_like(eta)
    dzs: dict[str, float] = {}
    for f, value in shifts.items():
        if f not in m["shifts"] or f not in factors:
            continue
        fi = factors[f]
        raw = math.log(1.0 + value / 100.0) if fi["log_percent"] else value / fi["scale"]
        dzs[f] = dz = raw * fi["per_raw"]
        sh = m["shifts"][f]
        if sh["xcols"]:
            dX = np.asarray(sh["X"], dtype=float).reshape(len(la), len(sh["xcols"]))
            d += dz * (dX @ B[:, sh["xcols"]].T)
        if sh["zcols"]:
            dZ = np.asarray(sh["Z"], dtype=float).reshape(len(la), len(sh["zcols"]))
            d += dz * np.einsum("cq,scq->cs", dZ, R[:, la, :][:, :, sh["zcols"]])
    # the cell's spread of the linear predictor, now and shifted (probit approximation)
    v1 = v.copy()
    for f, c in cells["cov"].items():
        if f in dzs:
            v1 = v1 + 2.0 * dzs[f] * np.asarray(c, dtype=float)
    for a, b2, c in cells["var"]:
        if a in dzs and b2 in dzs:
            v1 = v1 + (1.0 if a == b2 else 2.0) * dzs[a] * dzs[b2] * np.asarray(c, dtype=float)
    kappa0 = 1.0 / np.sqrt(1.0 + math.pi * v / 8.0)
    kappa1 = 1.0 / np.sqrt(1.0 + math.pi * np.maximum(v1, 0.0) / 8.0)
    p0 = 1.0 / (1.0 + np.exp(-kappa0[:, None] * eta))
    p1 = 1.0 / (1.0 + np.exp(-kappa1[:, None] * (eta + d)))
    prob = payload["prob"]
    out: list[dict[str, Any]] = []
    by_sub: dict[str, list[tuple[str, np.ndarray]]] = {}
    for g, grp in enumerate(m["groups"]):
        c = sel & (group == g)
        if not c.any():
            continue
        w = n[c]
        ntot = w.sum()
        change = 100.0 * (w[:, None] * (p1[c] - p0[c])).sum(axis=0) / ntot
        base = 100.0 * (w[:, None] * p0[c]).sum(axis=0) / ntot
        row = {"subgroup": grp["subgroup"], "level": grp["level"], "n": int(ntot)}
        row["baseline_pct"] = float(base.sum() / S)
        row.update(_summary(change, prob))
        out.append(row)
        by_sub.setdefault(grp["subgroup"], []).append((grp["level"], change))
    for sub, levels in by_sub.items():
        if len(levels) >= 2:
            (first, a), (last, b) = levels[0], levels[-1]
            row = {
                "subgroup": sub,
                "level": f"gap: {last} minus {first}",
                "n": np.nan,
                "baseline_pct": np.nan,
            }
            row.update(_summary(b - a, prob))
            out.append(row)
    order = {s: i for i, s in enumerate(SUBGROUPS)}
    res = pd.DataFrame(out)
    if not res.empty:
        res = res.sort_values("subgroup", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    res.attrs["caveat"] = payload["caveat"]
    return res


# --------------------------------------------------------------------------- the page


def _packed(data: bytes) -> str:
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)).decode("ascii")


def page_html(payload: Mapping[str, Any]) -> str:
    """The page: the template of `ASSETS` with plotly.js and the payload packed inside."""
    import plotly
    from plotly.offline import get_plotlyjs

    template = (ASSETS / "page.html").read_text(encoding="utf-8")
    title = "Same place, different people: what if?" + (" (SYNTHETIC DATA)" if payload["synthetic"] else "")
    parts = {
        "{{TITLE}}": html.escape(title),
        "{{STYLE}}": (ASSETS / "page.css").read_text(encoding="utf-8"),
        "{{SCRIPT}}": (ASSETS / "page.js").read_text(encoding="utf-8"),
        "{{PLOTLY_VERSION}}": html.escape(str(plotly.__version__)),
        "{{PLOTLY}}": _packed(get_plotlyjs().encode("utf-8")),
        "{{PAYLOAD}}": _packed(json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")),
    }
    for key, value in parts.items():
        template = template.replace(key, value)
    return template


def read_payload(page: str | Path) -> dict[str, Any]:
    """The payload embedded in a written page (to inspect what it ships)."""
    text = Path(page).read_text(encoding="utf-8")
    start = text.index(f'id="{_PAYLOAD_ID}"')
    body = text[text.index(">", start) + 1 : text.index("</script>", start)].strip()
    return json.loads(gzip.decompress(base64.b64decode(body)))


def _geojson() -> dict[str, Any] | None:
    from data.areas import LA_DIR

    path = LA_DIR / "lad19_gb_simplified.geojson"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_page(
    run: str | Path,
    out: str | Path | None = None,
    *,
    draws: int = PAGE_DRAWS,
    k: int | None = None,
    table: pd.DataFrame | None = None,
) -> Path:
    """Write ``page.html`` for a finished run folder of the main job.

    Parameters
    ----------
    run : path
        Run folder with ``manifest.json`` and ``fits/*.nc``.
    out : path, optional
        Output file (default ``<run>/page.html``).
    draws : int
        Posterior draws shipped per model.
    k : int, optional
        Disclosure threshold (default: the run's ``min_cell``, else `DEFAULT_K`).
    table : pandas.DataFrame, optional
        The run's analysis table (default: prepared again from the manifest's settings).

    Returns
    -------
    pathlib.Path
    """
    from analysis.catalogue import load_catalogue
    from analysis.files import write_text_atomic
    from analysis.main_job import RunSettings
    from models import load_fit

    run = Path(run)
    manifest_path = run / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path} does not exist: not a finished run folder")
    manifest = json.loads(manifest_path.read_text())
    settings = RunSettings.from_manifest(manifest_path)
    if table is None:
        from data.prepare import prepare

        table, _ = prepare(settings.release, n=settings.n, seed=settings.seed)
    names = list(manifest.get("models", {}))
    paths = [run / "fits" / f"{n}.nc" for n in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"fit file(s) of the manifest missing: {', '.join(missing)}")
    try:
        cat = load_catalogue(manifest.get("catalogue"))
    except Exception:  # a catalogue moved since the run: labels fall back to column names
        cat = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {n: load_fit(p) for n, p in zip(names, paths, strict=True)}
        payload = build_payload(
            fits,
            table,
            catalogue=cat,
            synthetic=bool(manifest.get("synthetic", settings.release is None)),
            k=int(k if k is not None else settings.min_cell or DEFAULT_K),
            draws=draws,
            geojson=_geojson(),
            run_name=str(run),
        )
    if not payload["models"]:
        raise PageError(f"no model of {run} can be shown: {payload['skipped']}")
    target = Path(out) if out else run / "page.html"
    write_text_atomic(target, page_html(payload))
    return target
