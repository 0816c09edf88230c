"""Spillover and tipping-point twins of catalogue entries: do they change the study's reading?

For an entry with one exchangeable LA intercept ``(1 | lad)`` the catalogue may declare a
``[[twin]]`` (`analysis.catalogue.Twin`):

- the **spillover twin** refits the entry with ``car(lad, type = "bym2")`` in place of
  ``(1 | lad)`` (`models.spatial`): LA effects that neighbouring LAs share;
- the **tipping-point twin** refits it with a hinge or a smooth in one area factor
  (`models.area_curves`), on the factor's published units.

`twin_story` sets, claim by claim, the entry's odds ratio beside each twin's and says whether
the reading changes: the same direction, with the 95% interval excluding 1 in all models or
in none (`analysis.thresholds.or_direction`; a probability statement: the same verdict). A
curve has no single slope, so its odds ratio for the curved factor is that of the curve's
best straight line over the LAs (`analysis.tipping_points.linear_slope_draws`), per standard
deviation of the factor as in the entry. `curve_loo` compares each twin with the entry by
PSIS-LOO on the same rows (the difference of expected log predictive densities and its
standard error, from the pointwise values). `twin_step` runs it all for the main job and
returns a `TwinSection` that `analysis.report.write_report` renders.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.catalogue import Entry, Twin
from analysis.disclosure import DEFAULT_K
from analysis.files import write_text_atomic
from analysis.summaries import (
    DEFAULT_PROB,
    fixed_draws,
    interval_columns,
    statement_probability,
    statement_verdict,
    summarise_draws,
    with_log_likelihood,
)
from analysis.thresholds import or_direction
from analysis.tipping_points import departure_regions, linear_slope_draws, threshold_figure, threshold_summary
from models import Fit, fit
from models.area_curves import AreaCurveFit, fit_area_curve

__all__ = [
    "LOO_MAX_DRAWS",
    "MODEL_LABELS",
    "TwinSection",
    "curve_loo",
    "curve_loo_table",
    "twin_draws",
    "twin_story",
    "twin_step",
]

#: PSIS-LOO uses at most this many posterior draws per model (thinned evenly): at 25,000 rows
#: the full pointwise log-likelihood of 6,000 draws would hold 1.2 GB per model.
LOO_MAX_DRAWS = 1000
#: Column prefixes and words of the three models in `twin_story`.
MODEL_LABELS = {"entry": "the study's model", "spillover": "spillover (BYM2)", "curve": "tipping point"}
#: Sampler settings of the run that the curve fits take (`models.area_curves.fit_area_curve`;
#: target_accept is the curve's own default).
_CURVE_KEYS = ("chains", "draws", "tune", "seed", "escalate")


@dataclass
class TwinSection:
    """One entry's twins, as the report renders them.

    Attributes
    ----------
    model : str
        The catalogue entry.
    twin : analysis.catalogue.Twin
    story : pandas.DataFrame
        `twin_story`'s table.
    loo : pandas.DataFrame
        `curve_loo_table` of the entry against its twins.
    spatial : pandas.DataFrame or None
        rho and sd of the spillover twin (`analysis.spatial.spatial_share`).
    moran : pandas.DataFrame or None
        Moran's I of the LA effects (`analysis.spatial.moran_table`).
    curve : pandas.DataFrame or None
        `threshold_summary` (hinge) or `departure_regions` (smooth) of the curve twin.
    curve_kind, curve_factor, curve_units : str
    verdicts : dict
        ``"spillover"``/``"curve"`` -> the convergence verdict.
    settings : dict
        ``"spillover"``/``"curve"`` -> the sampler settings.
    figures : list of (pathlib.Path, str)
    csvs : list of (pathlib.Path, str)
    """

    model: str
    twin: Twin
    story: pd.DataFrame
    loo: pd.DataFrame
    spatial: pd.DataFrame | None = None
    moran: pd.DataFrame | None = None
    curve: pd.DataFrame | None = None
    curve_kind: str = ""
    curve_factor: str = ""
    curve_units: str = ""
    verdicts: dict[str, str] = field(default_factory=dict)
    settings: dict[str, dict] = field(default_factory=dict)
    figures: list[tuple[Path, str]] = field(default_factory=list)
    csvs: list[tuple[Path, str]] = field(default_factory=list)


def _thinned(f: Any, max_draws: int) -> Any:
    """The fit with its posterior thinned evenly to at most ``max_draws`` draws in all."""
    post = f.idata["posterior"]
    n = post.sizes["chain"] * post.sizes["draw"]
    step = int(np.ceil(n / max_draws))
    if step <= 1:
        return f
    tree = f.idata.copy()
    tree["posterior"] = tree["posterior"].isel(draw=slice(None, None, step))
    return dataclasses.replace(f, idata=tree)


def curve_loo(f: Fit | AreaCurveFit, max_draws: int = LOO_MAX_DRAWS) -> Any:
    """PSIS-LOO of a fit (`arviz.loo`, pointwise) from at most ``max_draws`` draws."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo(with_log_likelihood(_thinned(f, max_draws)), pointwise=True)


def curve_loo_table(
    base: Fit, twins: Mapping[str, Fit | AreaCurveFit], max_draws: int = LOO_MAX_DRAWS
) -> pd.DataFrame:
    """PSIS-LOO of the entry's fit and each twin on the same rows, with each twin's difference.

    Returns
    -------
    pandas.DataFrame
        Index ``entry`` and the twins' names; columns ``elpd``, ``se``, ``p_loo``,
        ``elpd_diff`` (twin minus entry: above 0, the twin predicts held-out people better),
        ``dse`` (standard error of the difference, from the pointwise differences),
        ``n_k_high`` (observations with Pareto k above the reliability threshold).

    Raises
    ------
    ValueError
        When a twin was fitted to other rows.
    """
    loos = {"entry": curve_loo(base, max_draws)}
    for name, f in twins.items():
        if f.md.n_obs != base.md.n_obs or not np.array_equal(f.md.y, base.md.y):
            raise ValueError(f"twin {name!r} is not fitted to the same rows as {base.md.formula!r}")
        loos[name] = curve_loo(f, max_draws)
    ref = np.asarray(loos["entry"].elpd_i).ravel()
    rows = []
    for name, lo in loos.items():
        pointwise = np.asarray(lo.elpd_i).ravel()
        diff = pointwise - ref
        k = np.asarray(lo.pareto_k).ravel()
        rows.append(
            {
                "model": name,
                "elpd": float(lo.elpd),
                "se": float(lo.se),
                "p_loo": float(lo.p),
                "elpd_diff": float(diff.sum()),
                "dse": float(np.sqrt(len(diff) * diff.var())),
                "n_k_high": int((k > float(lo.good_k)).sum()),
            }
        )
    table = pd.DataFrame(rows).set_index("model")
    table.attrs["note"] = (
        f"PSIS-LOO from at most {max_draws} evenly thinned draws per model; elpd_diff = twin - entry"
    )
    return table


def twin_draws(f: Fit | AreaCurveFit, factor: str | None = None, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Fixed-effect draws by term, on the entry's scale.

    For a curve fit, the curved factor (fitted in published units as ``<factor>_raw``) is
    replaced by its best straight-line slope times ``scale`` (the factor's standard deviation,
    so the slope is per SD as in the entry) and named ``factor``.
    """
    if isinstance(f, AreaCurveFit):
        coef = [str(c) for c in f.idata["posterior"]["b"].coords["coef"].values]
        b = f.draws("b")
        out = {t: b[:, i] for i, t in enumerate(coef)}
        del out[f.factor]
        out[factor or f.factor] = linear_slope_draws(f) * scale
        return out
    return fixed_draws(f)


def twin_story(
    entry: Entry,
    fits: Mapping[str, Fit | AreaCurveFit],
    *,
    factor: str | None = None,
    scale: float = 1.0,
    prob: float = DEFAULT_PROB,
) -> pd.DataFrame:
    """Claim by claim: the entry's odds ratio beside its twins', and whether the reading changes.

    Parameters
    ----------
    entry : analysis.catalogue.Entry
    fits : mapping
        ``"entry"`` (the entry's fit) and any of ``"spillover"``, ``"curve"``.
    factor : str, optional
        The curved factor as the entry names it (for the curve twin).
    scale : float
        SD of the curved factor in its published units (`twin_draws`).
    prob : float

    Returns
    -------
    pandas.DataFrame
        One row per claim: ``finding``, ``claim``, ``term``, ``expected``; per model m in
        ``fits``: ``m_or`` (median), its ETI columns (`interval_columns("eti", prob, "m_or_")`),
        ``m_direction`` (for a statement: its verdict) and ``p_m`` (probability of the expected
        direction or of the statement); then ``reading`` (``"unchanged"``, ``"changed: <models>"``
        or ``"n/a: not converged"``) and ``converged``.
    """
    draws = {m: twin_draws(f, factor, scale) if m == "curve" else twin_draws(f) for m, f in fits.items()}
    converged = all(f.converged for f in fits.values())
    rows: list[dict[str, Any]] = []
    for claim in entry.claims:
        row: dict[str, Any] = {"finding": claim.finding, "claim": claim.says or claim.term or claim.statement}
        if claim.term:
            row.update(term=claim.term, expected=claim.expect)
            for m, d in draws.items():
                if claim.term not in d:
                    raise KeyError(f"term {claim.term!r} is not in the {m} model of {entry.name!r}")
                x = d[claim.term]
                s = summarise_draws(x, [claim.term], prob=prob).iloc[0]
                lo, hi = interval_columns("eti", prob)
                olo, ohi = interval_columns("eti", prob, f"{m}_or_")
                row[f"{m}_or"] = float(np.exp(s["median"]))
                row[olo], row[ohi] = float(np.exp(s[lo])), float(np.exp(s[hi]))
                row[f"{m}_direction"] = or_direction(row[olo], row[ohi])
                p_pos = float((x > 0).mean())
                row[f"p_{m}"] = (
                    np.nan if claim.expect == "0" else (p_pos if claim.expect == "+" else 1 - p_pos)
                )
        else:
            row.update(term="", expected=claim.statement)
            for m, d in draws.items():
                p = statement_probability(fits[m], claim.statement, d)
                row[f"p_{m}"], row[f"{m}_direction"] = p, statement_verdict(p, prob)
        changed = [m for m in draws if m != "entry" and row[f"{m}_direction"] != row["entry_direction"]]
        row["reading"] = (
            "n/a: not converged"
            if not converged
            else ("unchanged" if not changed else "changed: " + ", ".join(MODEL_LABELS[m] for m in changed))
        )
        row["converged"] = converged
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update({"prob": prob, "models": list(fits)})
    return out


def _factor_scale(table: pd.DataFrame, factor: str, raw: str) -> float:
    """SD of ``raw`` per unit of its z-score ``factor`` (exact: ``raw = mean + scale * z``)."""
    if raw == factor:
        return 1.0
    both = table[[factor, raw]].dropna()
    return float(np.polyfit(both[factor].to_numpy(float), both[raw].to_numpy(float), 1)[0])


def twin_step(
    entry: Entry,
    base: Fit,
    twin: Twin,
    table: pd.DataFrame,
    out: str | Path,
    *,
    synthetic: bool = True,
    k: int = DEFAULT_K,
    units: str = "",
    log: Callable[[str], None] = print,
    **fit_kwargs: Any,
) -> TwinSection:
    """Fit an entry's twins, compare them with its fit and write their tables and figures.

    Writes ``<out>/twins/story_<model>.csv``, ``loo_<model>.csv``, ``curve_<model>.csv`` and
    ``spatial_<model>.csv``, and under ``<out>/figures/twins/<model>/`` the maps of the
    structured and unstructured LA parts and the curve's figure.

    Parameters
    ----------
    entry : analysis.catalogue.Entry
    base : models.Fit
        The entry's fit in this run.
    twin : analysis.catalogue.Twin
    table : pandas.DataFrame
        The analysis table.
    out : path
        Run folder.
    synthetic : bool
        Label figures as synthetic data.
    k : int
        With real data, LAs with fewer respondents are hatched on the maps (disclosure).
    units : str
        Units of the curved factor's published values (axis label).
    log : callable
    **fit_kwargs
        Sampler settings of the run (seed, chains, draws, tune, target_accept, ...).

    Returns
    -------
    TwinSection
    """
    from analysis.spatial import map_parts, moran_table, spatial_share

    out = Path(out)
    folder = out / "figures" / "twins" / entry.name
    fits: dict[str, Fit | AreaCurveFit] = {"entry": base}
    section = TwinSection(entry.name, twin, pd.DataFrame(), pd.DataFrame())
    priors = entry.priors or None
    if twin.spillover:
        log(f'      spillover twin of {entry.name}: car(lad, type = "bym2")')
        f = fit(twin.spillover_formula(entry), table, priors=priors, progressbar=False, **fit_kwargs)
        fits["spillover"] = f
        section.verdicts["spillover"] = f.headline
        section.settings["spillover"] = dict(f.settings)
        log(f"      spillover twin: {f.headline}")
        section.spatial = spatial_share(f)
        section.moran = moran_table({"exchangeable": base, "BYM2": f})
        for path in map_parts(f, folder, synthetic=synthetic, k=k):
            part = (
                "structured (shared with neighbours)" if "unstructured" not in path.name else "unstructured"
            )
            section.figures.append((path, f"{entry.name}: the LA effects' {part} part, as odds ratios"))
    scale = 1.0
    if twin.tipping_point:
        factor = twin.curve_factor(table.columns)
        scale = _factor_scale(table, twin.tipping_point, factor)
        section.curve_kind, section.curve_factor, section.curve_units = twin.curve, factor, units
        log(f"      tipping-point twin of {entry.name}: {twin.curve} in {factor}")
        curve_kwargs = {k: v for k, v in fit_kwargs.items() if k in _CURVE_KEYS}
        c = fit_area_curve(
            twin.curve_formula(entry, table.columns), table, factor, twin.curve, **curve_kwargs
        )
        fits["curve"] = c
        section.verdicts["curve"] = c.headline
        section.settings["curve"] = dict(c.settings)
        log(f"      tipping-point twin: {c.headline}")
        section.curve = threshold_summary(c) if twin.curve == "hinge" else departure_regions(c)
        path = threshold_figure(c, folder / f"curve_{factor}.png", units=units, synthetic=synthetic)
        section.figures.append(
            (path, f"{entry.name}: the effect of {factor} as a {twin.curve}, with its band")
        )
    log(f"      LOO of {entry.name} against its twins")
    section.loo = curve_loo_table(base, {k: v for k, v in fits.items() if k != "entry"})
    section.story = twin_story(entry, fits, factor=twin.tipping_point, scale=scale)
    tables = {
        "story": (section.story, "claims, entry against twins"),
        "loo": (section.loo.reset_index(), "PSIS-LOO, entry against twins"),
        "spatial": (section.spatial.reset_index() if section.spatial is not None else None, "rho and sd"),
        "curve": (
            section.curve.reset_index() if section.curve is not None else None,
            "the threshold" if twin.curve == "hinge" else "where the slope departs from a straight line",
        ),
    }
    (out / "twins").mkdir(parents=True, exist_ok=True)
    for name, (frame, words) in tables.items():
        if frame is None:
            continue
        path = out / "twins" / f"{name}_{entry.name}.csv"
        write_text_atomic(path, frame.to_csv(index=False))
        section.csvs.append((path, words))
    return section
