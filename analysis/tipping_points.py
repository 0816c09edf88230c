"""Where the slope of an area factor changes: summaries and the figure of a hinge fit
(`models.hinge`).

How to read it: ``threshold`` is the factor's value (e.g. % unemployed) above which the
slope changes by ``delta`` log-odds per unit; ``slope_below`` and ``slope_above`` are the
slopes on either side. A threshold is supported when ``delta``'s interval excludes 0; its
location is then read from the threshold's interval (the posterior can be multimodal
when the data hold little about it: look at the figure).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.summaries.intervals import DEFAULT_PROB, interval_bounds, summarise_draws
from models.hinge import HingeFit

__all__ = ["threshold_figure", "threshold_summary"]


def threshold_summary(fit: HingeFit, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    """The threshold, the change of slope and the slopes below and above, with intervals.

    Returns
    -------
    pandas.DataFrame
        Rows ``threshold``, ``delta``, ``slope_below``, ``slope_above``;
        `analysis.summaries.intervals.summarise_draws` columns.
    """
    coef = list(fit.idata["posterior"]["b"].coords["coef"].values)
    slope = fit.draws("b")[:, coef.index(fit.factor)]
    delta = fit.draws("delta")
    table = summarise_draws(
        np.column_stack([fit.draws("threshold"), delta, slope, slope + delta]),
        ["threshold", "delta", "slope_below", "slope_above"],
        prob=prob,
    )
    table.attrs.update({"factor": fit.factor, "headline": fit.convergence.headline})
    return table


def threshold_figure(
    fit: HingeFit, path: str | Path, *, units: str = "", prob: float = DEFAULT_PROB, synthetic: bool = True
) -> Path:
    """The factor's effect on the log-odds (relative to its lowest LA value) with its band,
    the LAs' values as a rug, and the threshold's posterior below it; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coef = list(fit.idata["posterior"]["b"].coords["coef"].values)
    slope = fit.draws("b")[:, coef.index(fit.factor)]
    delta, c = fit.draws("delta"), fit.draws("threshold")
    lo_x, hi_x = float(fit.level_values.min()), float(fit.level_values.max())
    grid = np.linspace(lo_x, hi_x, 200)
    curve = slope[:, None] * (grid - lo_x) + delta[:, None] * np.maximum(0.0, grid[None, :] - c[:, None])
    low, high = interval_bounds(curve, prob, "eti")
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.fill_between(grid, low, high, alpha=0.3, label=f"{100 * prob:g}% interval")
    ax.plot(grid, curve.mean(axis=0), label="posterior mean")
    ax.plot(fit.level_values, np.full_like(fit.level_values, ax.get_ylim()[0]), "|", color="grey", alpha=0.5)
    ax.set_ylabel(f"log-odds change from {fit.factor} = {lo_x:.3g}")
    ax.legend(frameon=False)
    title = f"Effect of {fit.factor} with a hinge"
    ax.set_title(("SYNTHETIC DATA - " if synthetic else "") + title)
    ax2.hist(c, bins=60, density=True, color="tab:orange")
    ax2.set_ylabel("threshold\nposterior")
    ax2.set_xlabel(f"{fit.factor}{f' ({units})' if units else ''}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
