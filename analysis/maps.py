"""Choropleth maps of LA results on the real December 2019 LA boundaries.

Boundaries: ``data/la/lad19_gb_simplified.geojson`` (ONS Local Authority Districts,
December 2019, BUC; 371 GB districts; OGL v3.0, attribution in ``data/la/README.md``),
drawn with geopandas in British National Grid (EPSG:27700) so that GB keeps its shape.

Every map joins its values to the boundaries by LA code and reports the join
(`BoundaryJoin`): codes with no boundary are counted and named, never silently lost. Maps
show point values, so on real data an LA below the disclosure threshold ``k`` is drawn
hatched (legend entry "suppressed (fewer than k respondents)"); an LA with no estimate is
light grey. Palettes are colour-blind safe (viridis / cividis for shares and widths,
ColorBrewer PuOr for odds ratios and probabilities, centred on "no difference"); every
colour scale is labelled with its units.

Public functions: `load_boundaries`, `join_boundaries`, `choropleth`, `la_effect_values`,
`mrp_map_values`, `la_maps`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize, TwoSlopeNorm
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from analysis.disclosure import DEFAULT_K
from analysis.figures import figure_title, new_figure, save
from data.areas import LA_DIR

__all__ = [
    "BOUNDARY_FILE",
    "BoundaryJoin",
    "MAP_ENTRIES",
    "MapSection",
    "MapSet",
    "choropleth",
    "join_boundaries",
    "la_effect_values",
    "la_maps",
    "map_section",
    "load_boundaries",
    "mrp_map_values",
    "suppressed_codes",
]

BOUNDARY_FILE = LA_DIR / "lad19_gb_simplified.geojson"
_NO_ESTIMATE = "#e6e6e6"


@lru_cache(maxsize=2)
def _boundaries(path: str):  # noqa: ANN202 - GeoDataFrame (geopandas imported lazily)
    import geopandas as gpd

    g = gpd.read_file(path)
    if "lad19cd" not in g:
        raise ValueError(f"{path}: no 'lad19cd' property in the boundary file")
    return g.to_crs(27700)


def load_boundaries(path: str | Path | None = None):  # noqa: ANN201 - geopandas.GeoDataFrame
    """The 2019 GB LA boundaries (371 districts) in British National Grid.

    Returns
    -------
    geopandas.GeoDataFrame
        ``lad19cd``, ``lad19nm``, ``geometry``.
    """
    return _boundaries(str(path or BOUNDARY_FILE)).copy()


@dataclass(frozen=True)
class BoundaryJoin:
    """What happened when values were joined to the boundaries by LA code.

    Attributes
    ----------
    n_values : int
        LA codes with a value.
    n_matched : int
        Of those, codes with a boundary.
    unmatched : tuple of str
        Codes with a value and no boundary (not drawn; named in the caption).
    without_value : int
        Boundaries with no value to colour (absent from the table, or missing).
    """

    n_values: int
    n_matched: int
    unmatched: tuple[str, ...]
    without_value: int

    def sentence(self) -> str:
        """One sentence for captions and the report."""
        text = f"{self.n_matched} of {self.n_values} LA codes of the table joined to the 2019 boundaries"
        if self.unmatched:
            shown = ", ".join(self.unmatched[:8]) + (" ..." if len(self.unmatched) > 8 else "")
            text += f"; {len(self.unmatched)} code(s) have no boundary and are not drawn ({shown})"
        return text + f"; {self.without_value} LA(s) have no value to colour."


def join_boundaries(values: pd.DataFrame, code: str = "lad", column: str | None = None):  # noqa: ANN201
    """Join a table of LA values to the boundaries by code.

    Parameters
    ----------
    values : pandas.DataFrame
        One row per LA, the code in column ``code``.
    code : str
        The LA code column.
    column : str, optional
        The value column: a boundary whose value is missing counts as without value.

    Returns
    -------
    (geopandas.GeoDataFrame, BoundaryJoin)
        Every boundary with the values joined (NaN where an LA has none), and the join
        report.
    """
    if values[code].duplicated().any():
        dup = values.loc[values[code].duplicated(), code].iloc[0]
        raise ValueError(f"map values: LA code {dup!r} appears more than once")
    g = load_boundaries()
    codes = values[code].astype(str)
    known = set(g["lad19cd"])
    unmatched = tuple(sorted(c for c in codes if c not in known))
    joined = g.merge(values.assign(**{code: codes}), how="left", left_on="lad19cd", right_on=code)
    report = BoundaryJoin(
        n_values=len(values),
        n_matched=len(values) - len(unmatched),
        unmatched=unmatched,
        without_value=int(
            (~g["lad19cd"].isin(set(codes[values[column].notna()] if column else codes))).sum()
        ),
    )
    return joined, report


def choropleth(
    values: pd.DataFrame,
    column: str,
    path: str | Path,
    *,
    title: str,
    units: str,
    synthetic: bool,
    suppressed: Iterable[str] = (),
    k: int = DEFAULT_K,
    kind: str = "sequential",
    code: str = "lad",
) -> tuple[Path, BoundaryJoin]:
    """Draw one choropleth of ``column`` and save it as PNG.

    Parameters
    ----------
    values : pandas.DataFrame
        One row per LA (code in ``code``); NaN in ``column`` means no estimate.
    column : str
        The value to colour by.
    path : path
        PNG file.
    title : str
        Figure title (say the LA mode and the interval where they apply).
    units : str
        Label of the colour scale, with its units.
    synthetic : bool
        Mark as synthetic data.
    suppressed : iterable of str
        LA codes to draw hatched instead of coloured (disclosure control).
    k : int
        The threshold named in the legend.
    kind : {"sequential", "odds_ratio", "probability"}
        Sequential (viridis), odds ratio (PuOr on a log scale centred at 1) or probability
        (PuOr centred at 0.5).
    code : str
        The LA code column.

    Returns
    -------
    (pathlib.Path, BoundaryJoin)
    """
    suppressed = {str(c) for c in suppressed}
    joined, report = join_boundaries(values[[code, column]], code, column)
    hidden = joined["lad19cd"].isin(suppressed)
    shown = joined[joined[column].notna() & ~hidden]
    fig = new_figure(8.5, 10.5)
    ax = fig.add_subplot()
    joined.plot(ax=ax, color=_NO_ESTIMATE, edgecolor="white", linewidth=0.15)
    vals = shown[column].astype(float)
    if kind == "odds_ratio":
        lo, hi = (float(vals.min()), float(vals.max())) if len(vals) else (0.5, 2.0)
        span = max(abs(np.log(lo)), abs(np.log(hi)), 1e-3)
        norm: Normalize = LogNorm(vmin=np.exp(-span), vmax=np.exp(span))
        cmap = "PuOr"
    elif kind == "probability":
        norm, cmap = TwoSlopeNorm(vcenter=0.5, vmin=0.0, vmax=1.0), "PuOr"
    else:
        norm, cmap = (
            Normalize(vmin=float(vals.min()), vmax=float(vals.max())) if len(vals) else None,
            "viridis",
        )
    plot_frame = joined[joined[column].notna() | hidden].copy()
    plot_frame.loc[plot_frame["lad19cd"].isin(suppressed), column] = np.nan
    if len(plot_frame):
        plot_frame.plot(
            ax=ax,
            column=column,
            cmap=cmap,
            norm=norm,
            legend=len(shown) > 0,
            legend_kwds={"label": units, "shrink": 0.6, "pad": 0.02, "orientation": "horizontal"},
            edgecolor="white",
            linewidth=0.15,
            missing_kwds={
                "facecolor": "white",
                "edgecolor": "#555555",
                "hatch": "///",
                "linewidth": 0.3,
                "label": f"suppressed (fewer than {k} respondents)",
            },
        )
    if kind == "odds_ratio" and len(shown) and len(fig.axes) > 1:
        cax = fig.axes[-1]  # the colour bar geopandas added
        ticks = np.exp(np.linspace(np.log(norm.vmin), np.log(norm.vmax), 5))
        cax.xaxis.set_major_locator(FixedLocator(ticks))
        cax.xaxis.set_minor_locator(NullLocator())
        cax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.2f}"))
    handles = []
    if hidden.any():
        handles.append(
            Patch(
                facecolor="white",
                edgecolor="#555555",
                hatch="///",
                label=f"suppressed (fewer than {k} respondents)",
            )
        )
    if (joined[column].isna() & ~hidden).any():
        handles.append(Patch(facecolor=_NO_ESTIMATE, edgecolor="#999999", label="no estimate"))
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=10.5, frameon=False)
    ax.set_axis_off()
    ax.set_aspect("equal")
    ax.set_title(report.sentence(), fontsize=9.5, color="#444444", wrap=True)
    figure_title(fig, title, synthetic)
    return save(fig, path), report


def la_effect_values(fit: Any, *, names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Each LA's odds ratio against the average LA (posterior median), from
    `analysis.summaries.group_effects`, with its respondent count."""
    from analysis.summaries import group_effects

    ge = group_effects(fit, "lad", "Intercept", names=names)
    return ge.rename(columns={"level": "lad"})[["lad", "n", "or_median", "p_or_gt_1"]]


def mrp_map_values(mrp_table: pd.DataFrame, model: str | None = None) -> pd.DataFrame:
    """One row per LA from an `analysis.mrp.mrp` table (everyone): share (%), the width of
    its interval (percentage points) and P(above GB), with the published flag."""
    t = mrp_table[(mrp_table["subgroup"] == "all") & (mrp_table["lad"] != "GB")]
    if model is not None:
        t = t[t["model"] == model]
    lo, hi = mrp_table.attrs.get("columns") or ("mrp_eti95_low", "mrp_eti95_high")
    return pd.DataFrame(
        {
            "lad": t["lad"].to_numpy(),
            "share_pct": 100 * t["mrp_mean"].to_numpy(dtype=float),
            "width_pp": 100 * (t[hi] - t[lo]).to_numpy(dtype=float),
            "p_above_gb": t["p_above_gb"].to_numpy(dtype=float),
            "published": t["published"].to_numpy() if "published" in t else "all",
        }
    )


@dataclass
class MapSet:
    """The maps of one model: (path, caption) pairs for the report, and the joins."""

    figures: list[tuple[Path, str]] = field(default_factory=list)
    joins: dict[str, BoundaryJoin] = field(default_factory=dict)
    suppressed: set[str] = field(default_factory=set)


def la_maps(
    fit: Any,
    mrp_table: pd.DataFrame,
    out_dir: str | Path,
    *,
    synthetic: bool,
    k: int = DEFAULT_K,
    n_respondents: Mapping[str, int] | None = None,
    name: str = "model",
    outcome: str | None = None,
) -> MapSet:
    """The four maps of one model: LA effects (odds ratios), MrP shares, the widths of their
    intervals, and P(LA above the GB average).

    Parameters
    ----------
    fit : models.Fit
    mrp_table : pandas.DataFrame
        `analysis.mrp.mrp` of this fit (its LA mode goes into the titles).
    out_dir : path
        Folder for ``map_<name>_<kind>.png``.
    synthetic : bool
        Synthetic data: nothing suppressed.
    k : int
        Disclosure threshold: on real data every LA with fewer than ``k`` respondents is
        hatched on every map (the maps show point values).
    n_respondents : mapping, optional
        LA code -> respondents (default: the fit's model frame).
    name : str
        Model name for file names and titles.
    outcome : str, optional
        Outcome name for labels (default the fit's response).
    """
    out_dir = Path(out_dir)
    outcome = outcome or fit.md.response
    if n_respondents is None:
        n_respondents = fit.md.frame["lad"].astype(str).value_counts().to_dict()
    effects = la_effect_values(fit)
    mv = mrp_map_values(mrp_table)
    all_las = set(mv["lad"]) | set(effects["lad"])
    small = suppressed_codes(sorted(all_las), n_respondents, k, synthetic)
    maps = MapSet(suppressed=small)
    mode = str(mrp_table.attrs.get("la_mode", "")).split(":")[0]
    stem = "".join(ch if ch.isalnum() else "_" for ch in name)
    specs = [
        (
            "la_effects",
            effects,
            "or_median",
            "odds_ratio",
            f"{name}: each LA's odds ratio of {outcome} against the average LA",
            "odds ratio vs the average LA (posterior median; log scale)",
            "Odds ratio of each LA against the average LA (same person, other LA), posterior median.",
        ),
        (
            "mrp_share",
            mv,
            "share_pct",
            "sequential",
            f"{name}: share of adults with {outcome} (MrP; {mode})",
            f"share of adults with {outcome} (%, posterior mean)",
            "MrP estimate of the share of each LA's adult population (ONS mid-2019 age x sex cells).",
        ),
        (
            "mrp_width",
            mv,
            "width_pp",
            "sequential",
            f"{name}: width of the 95% interval of the MrP share (MrP; {mode})",
            "width of the 95% equal-tailed interval (percentage points)",
            "Uncertainty of the MrP share: width of its 95% equal-tailed interval.",
        ),
        (
            "mrp_above_gb",
            mv,
            "p_above_gb",
            "probability",
            f"{name}: probability that the LA's share is above GB's (MrP; {mode})",
            "P(LA share > GB share) (posterior probability, 0-1)",
            "Posterior probability that the LA's MrP share exceeds the GB share.",
        ),
    ]
    for kind, values, column, scale, title, units, caption in specs:
        path, join = choropleth(
            values,
            column,
            out_dir / f"map_{stem}_{kind}.png",
            title=title,
            units=units,
            synthetic=synthetic,
            suppressed=small,
            k=k,
            kind=scale,
        )
        maps.joins[kind] = join
        hatch = f" Hatched: {len(small)} LA(s) with fewer than {k} respondents (suppressed)." if small else ""
        maps.figures.append((path, f"{caption}{hatch} {join.sentence()}"))
    return maps


def suppressed_codes(values: Sequence[str], counts: Mapping[str, int], k: int, synthetic: bool) -> set[str]:
    """The LAs a map hatches: on real data those with fewer than ``k`` respondents."""
    return set() if synthetic else {c for c in values if int(counts.get(c, 0)) < k}


#: Catalogue entries mapped by the main job, in order of preference (the first one fitted).
MAP_ENTRIES = ("life_satisfaction", "mental_wellbeing", "community_wellbeing")


@dataclass
class MapSection:
    """The main job's map section: what the report renders (it computes nothing)."""

    model: str
    maps: MapSet
    mrp_csv: Path
    note: str


def map_section(
    fits: Mapping[str, Any],
    table: pd.DataFrame,
    out_dir: str | Path,
    *,
    synthetic: bool,
    k: int = DEFAULT_K,
    names: Mapping[str, str] | None = None,
    entries: Sequence[str] = MAP_ENTRIES,
    max_draws: int = 400,
) -> MapSection | None:
    """MrP and the four maps of one fitted model, for the report's map section.

    The model is the first of ``entries`` among ``fits`` with a 0/1 outcome and an ``lad``
    factor (else the first such fit). Writes ``<out_dir>/mrp/<model>.csv`` (the published
    MrP table, disclosure rule applied) and ``<out_dir>/figures/map_<model>_*.png``.

    Returns
    -------
    MapSection or None
        None when no fit can be mapped.
    """
    from analysis.mrp import mrp

    usable = [
        n
        for n, f in fits.items()
        if f.md.family == "bernoulli" and any(b.factor == "lad" for b in f.md.blocks)
    ]
    if not usable:
        return None
    name = next((e for e in entries if e in usable), usable[0])
    fit = fits[name]
    weight = next((w for w in ("weight_sc", "weight") if w in table), None)
    res = mrp(
        fit,
        table=table,
        synthetic=synthetic,
        k=k,
        names=dict(names or {}),
        model=name,
        weight=weight,
        max_draws=max_draws,
        by=["age50"],
    )
    out_dir = Path(out_dir)
    csv = out_dir / "mrp" / f"{name}.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    res.to_csv(csv, index=False)
    counts = table.loc[fit.md.complete_rows(table), "lad"].astype(str).value_counts().to_dict()
    maps = la_maps(fit, res, out_dir / "figures", synthetic=synthetic, k=k, n_respondents=counts, name=name)
    rule = (
        "Synthetic data: nothing suppressed."
        if synthetic
        else (
            f"Disclosure control: every map hatches the {len(maps.suppressed)} LA(s) with fewer than {k} "
            f"respondents; in the MrP table their shares are published only as intervals (no point "
            f"estimate, direct estimate or respondent count) and their own LA effect is not used."
        )
    )
    n_not = len(res.attrs["not_estimable"])
    note = (
        f"Maps of {name} ({fit.md.response}). LA effects: odds ratio against the average LA. MrP: the "
        f"share of each LA's adult population with {fit.md.response}, post-stratified over the ONS "
        f"mid-2019 sex x age-band cells (other predictors from respondents of the same cell); LA mode: "
        f"{res.attrs['la_mode']}; {res.attrs['interval']}. {res.attrs['direct'].capitalize()}. "
        + (f"{n_not} LA(s) have no estimate (no area values). " if n_not else "")
        + rule
    )
    return MapSection(model=name, maps=maps, mrp_csv=csv, note=note)
