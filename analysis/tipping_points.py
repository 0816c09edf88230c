"""Where the slope of an area factor changes: summaries and figures of a hinge or smooth
fit (`models.area_curves`).

How to read a hinge: ``threshold`` is the factor's value (e.g. % unemployed) above which
the slope changes by ``delta`` log-odds per unit; ``slope_below`` and ``slope_above`` are
the slopes on either side. A threshold is supported when ``delta``'s interval excludes 0;
its location is then read from the threshold's interval (the posterior can be multimodal
when the data hold little about it: look at the figure).

How to read a smooth: the curve is the straight line ``b[x]`` plus a departure with no
linear trend; `departure_regions` lists the ranges of the factor where the slope differs
credibly from the straight line's (the interval of the departure's derivative excludes 0).
No region: the data show no tipping point.

`curve_draws`, `slope_draws` and `linear_slope_draws` are the one place where the curve,
its slope and its best linear slope are computed from a fit's draws; the summaries, the
figure and the catalogue's tipping-point twins (`analysis.twins`) ask them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.summaries.intervals import DEFAULT_PROB, interval_bounds, summarise_draws
from models.area_curves import AreaCurveFit, hinge_projection

__all__ = [
    "curve_draws",
    "curve_grid",
    "departure_regions",
    "linear_slope_draws",
    "slope_draws",
    "smooth_summary",
    "threshold_figure",
    "threshold_summary",
]


def _slope_b(fit: AreaCurveFit) -> np.ndarray:
    coef = list(fit.idata["posterior"]["b"].coords["coef"].values)
    return fit.draws("b")[:, coef.index(fit.factor)]


def curve_grid(fit: AreaCurveFit, n: int = 200) -> np.ndarray:
    """``n`` points from the lowest to the highest LA value of the factor."""
    return np.linspace(float(fit.level_values.min()), float(fit.level_values.max()), n)


def _departure(fit: AreaCurveFit, x: np.ndarray, derivative: bool = False) -> np.ndarray:
    """The non-linear part h(x) (or h'(x)) per draw, shape (draws, len(x))."""
    x = np.asarray(x, dtype=float)
    if fit.kind == "hinge":
        delta, c = fit.draws("delta")[:, None], fit.draws("threshold")[:, None]
        level, slope = _hinge_line(fit)
        if derivative:
            return delta * ((x[None, :] > c) - slope[:, None])
        x_bar = float(fit.level_counts @ fit.level_values / fit.level_counts.sum())
        h = np.maximum(0.0, x[None, :] - c) - level[:, None] - slope[:, None] * (x[None, :] - x_bar)
        return delta * h
    hs = fit.basis()
    weights = hs.spectral_sd(fit.draws("gp_alpha"), fit.draws("gp_ell")) * fit.draws("gp_beta")
    return weights @ (hs.dphi(x) if derivative else hs.phi(x)).T


def _hinge_line(fit: AreaCurveFit) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, the line removed from the hinge (`models.area_curves.hinge_projection`)."""
    w = fit.level_counts / fit.level_counts.sum()
    xc = fit.level_values - float(w @ fit.level_values)
    h = np.maximum(0.0, fit.level_values[None, :] - fit.draws("threshold")[:, None])
    return hinge_projection(h, w, xc)


def curve_draws(fit: AreaCurveFit, x: np.ndarray) -> np.ndarray:
    """The factor's effect on the log-odds at ``x``, relative to its lowest LA value (draws, len(x))."""
    x0 = np.array([float(fit.level_values.min())])
    b = _slope_b(fit)[:, None]
    return b * (np.asarray(x)[None, :] - x0) + _departure(fit, x) - _departure(fit, x0)


def slope_draws(fit: AreaCurveFit, x: np.ndarray) -> np.ndarray:
    """The slope of the curve (log-odds per unit of the factor) at ``x`` (draws, len(x))."""
    return _slope_b(fit)[:, None] + _departure(fit, x, derivative=True)


def linear_slope_draws(fit: AreaCurveFit) -> np.ndarray:
    """Per draw, the row-weighted least-squares slope of the curve over the LAs' values: the
    straight line that best summarises it, comparable with the linear model's ``b[x]`` (for a
    smooth it is ``b[x]`` itself, by construction)."""
    x, w = fit.level_values, fit.level_counts / fit.level_counts.sum()
    xc = x - w @ x
    h = _departure(fit, x)
    return _slope_b(fit) + (h * (w * xc)).sum(axis=1) / float(w @ xc**2)


def threshold_summary(fit: AreaCurveFit, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    """A hinge's threshold, the change of slope and the slopes below and above, with intervals.

    Returns
    -------
    pandas.DataFrame
        Rows ``threshold``, ``delta``, ``slope_below``, ``slope_above``, ``linear_slope``;
        `analysis.summaries.intervals.summarise_draws` columns.
    """
    if fit.kind != "hinge":
        raise ValueError(f"threshold_summary needs a hinge fit, not a {fit.kind}: use smooth_summary")
    delta = fit.draws("delta")
    below = _slope_b(fit) - delta * _hinge_line(fit)[1]
    table = summarise_draws(
        np.column_stack([fit.draws("threshold"), delta, below, below + delta, linear_slope_draws(fit)]),
        ["threshold", "delta", "slope_below", "slope_above", "linear_slope"],
        prob=prob,
    )
    table.attrs.update({"factor": fit.factor, "headline": fit.headline})
    return table


def departure_regions(fit: AreaCurveFit, prob: float = DEFAULT_PROB, n: int = 200) -> pd.DataFrame:
    """Ranges of the factor where the slope differs credibly from the straight line's.

    For a smooth, the departure's derivative ``h'(x)`` (the slope minus ``b[x]``) has an
    equal-tailed interval excluding 0 there; for a hinge, the slope minus the linear slope
    (`linear_slope_draws`).

    Returns
    -------
    pandas.DataFrame
        One row per contiguous range: ``start``, ``end``, ``direction`` (``"steeper
        rise"``/``"steeper fall"``: the slope is above/below the straight line's),
        ``max_abs_departure`` (largest posterior-mean slope difference in the range).
    """
    grid = curve_grid(fit, n)
    if fit.kind == "smooth":
        diff = _departure(fit, grid, derivative=True)
    else:
        diff = slope_draws(fit, grid) - linear_slope_draws(fit)[:, None]
    lo, hi = interval_bounds(diff, prob, "eti")
    sign = np.where(lo > 0, 1, np.where(hi < 0, -1, 0))
    rows, start = [], None
    for i, s in enumerate(sign):
        if start is None and s != 0:
            start = i
        if start is not None and (i == len(sign) - 1 or sign[i + 1] != sign[start]):
            if sign[start] != 0:
                mean = diff[:, start : i + 1].mean(axis=0)
                rows.append(
                    {
                        "start": float(grid[start]),
                        "end": float(grid[i]),
                        "direction": "steeper rise" if sign[start] > 0 else "steeper fall",
                        "max_abs_departure": float(np.abs(mean).max()),
                    }
                )
            start = None
    out = pd.DataFrame(rows, columns=["start", "end", "direction", "max_abs_departure"])
    out.attrs.update({"factor": fit.factor, "prob": prob, "kind": fit.kind})
    return out


def smooth_summary(fit: AreaCurveFit, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    """A smooth's hyperparameters and its straight-line slope, with intervals.

    Returns
    -------
    pandas.DataFrame
        Rows ``linear_slope`` (``b[x]``), ``gp_alpha`` (the departure's amplitude, log-odds)
        and ``gp_ell`` (its length scale in the factor's units); `summarise_draws` columns.
    """
    if fit.kind != "smooth":
        raise ValueError(f"smooth_summary needs a smooth fit, not a {fit.kind}: use threshold_summary")
    ell_units = fit.draws("gp_ell") * fit.basis().half_range
    table = summarise_draws(
        np.column_stack([_slope_b(fit), fit.draws("gp_alpha"), ell_units]),
        ["linear_slope", "gp_alpha", "gp_ell"],
        prob=prob,
    )
    table.attrs.update({"factor": fit.factor, "headline": fit.headline})
    return table


def threshold_figure(
    fit: AreaCurveFit,
    path: str | Path,
    *,
    units: str = "",
    prob: float = DEFAULT_PROB,
    synthetic: bool = True,
    label: str | None = None,
) -> Path:
    """The factor's effect on the log-odds (relative to its lowest LA value) with its band and
    the straight line, the LAs' values as a rug, and below it the threshold's posterior (hinge)
    or the departure's derivative with the ranges of `departure_regions` (smooth); saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = curve_grid(fit)
    curve = curve_draws(fit, grid)
    low, high = interval_bounds(curve, prob, "eti")
    line = linear_slope_draws(fit).mean() * (grid - grid[0])
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.fill_between(grid, low, high, alpha=0.3, label=f"{100 * prob:g}% interval (ETI)")
    ax.plot(grid, curve.mean(axis=0), label="posterior mean")
    ax.plot(grid, line + curve.mean(axis=0).mean() - line.mean(), "k--", lw=1, label="best straight line")
    ax.plot(fit.level_values, np.full_like(fit.level_values, ax.get_ylim()[0]), "|", color="grey", alpha=0.5)
    name = label or fit.factor
    ax.set_ylabel(f"log-odds change from {name} = {grid[0]:.3g}")
    ax.legend(frameon=False)
    title = f"Effect of {name}: {'hinge (change point)' if fit.kind == 'hinge' else 'smooth (HSGP)'}"
    if not fit.converged:
        title += " - NOT CONVERGED"
    ax.set_title(("SYNTHETIC DATA - " if synthetic else "") + title)
    if fit.kind == "hinge":
        ax2.hist(fit.draws("threshold"), bins=60, density=True, color="tab:orange")
        ax2.set_ylabel("threshold\nposterior")
    else:
        d = _departure(fit, grid, derivative=True)
        dlo, dhi = interval_bounds(d, prob, "eti")
        ax2.fill_between(grid, dlo, dhi, alpha=0.3, color="tab:orange")
        ax2.plot(grid, d.mean(axis=0), color="tab:orange")
        ax2.axhline(0, color="k", lw=0.8)
        for _, r in departure_regions(fit, prob).iterrows():
            ax2.axvspan(r["start"], r["end"], color="tab:red", alpha=0.15)
        ax2.set_ylabel("slope minus\nstraight line")
    ax2.set_xlabel(f"{name}{f' ({units})' if units else ''}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
