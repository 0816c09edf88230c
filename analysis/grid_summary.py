"""What the report shows of a grid run: forest plots of each claim across cells, and the
parameters flagged by power-scaling prior sensitivity.

`grid_section` reads a grid run folder (`analysis.grid`: ``grid_results.csv`` and, with
the ``psense`` job, ``grid_sensitivity.csv``), draws one forest plot per entry and claimed
term (the posterior odds ratio of every cell: subgroup x prior set, and sampler set or
replicate where the grid varies them) with `analysis.figures.forest_plot`, and returns a
`GridSection` that `analysis.report` renders as it is. The odds ratios and intervals are
those of the results table, which `analysis.summaries.fixed_effects` computed for each
cell; their column names come from `analysis.summaries.interval_columns`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.summaries import DEFAULT_PROB, describe_interval, interval_columns

#: Cell coordinates that name a row of a forest plot (those that vary in the grid).
CELL_AXES = ("subgroup", "prior_set", "sampler_set", "replicate")


@dataclass
class GridForest:
    """One claim of one entry across the grid's cells.

    Attributes
    ----------
    entry, term, expect : str
        Catalogue entry, claimed term and expected sign.
    table : pandas.DataFrame
        One row per cell: ``cell``, the axes, ``label`` (the varying axes joined), ``rows``,
        ``or_median``, the interval columns, ``p_or_gt_1``, ``converged``, ``verdict``.
    figure : pathlib.Path
        The forest plot (PNG).
    caption : str
    """

    entry: str
    term: str
    expect: str
    table: pd.DataFrame
    figure: Path
    caption: str


@dataclass
class GridSection:
    """A grid run, ready to render.

    Attributes
    ----------
    run : pathlib.Path
        The run folder.
    cells : int
        Cells in the results table.
    not_converged : list of str
        Cells whose fit did not pass the convergence gate.
    forests : list of GridForest
    interval : str
        Words for the intervals (e.g. "95% equal-tailed interval (ETI)").
    sensitivity : pandas.DataFrame or None
        The flagged rows of the sensitivity table (None: the grid did not run psense).
    sensitivity_cells : int
        Cells with a sensitivity table.
    """

    run: Path
    cells: int
    not_converged: list[str]
    forests: list[GridForest] = field(default_factory=list)
    interval: str = ""
    sensitivity: pd.DataFrame | None = None
    sensitivity_cells: int = 0


def _labels(table: pd.DataFrame) -> pd.Series:
    varying = [a for a in CELL_AXES if a in table and table[a].nunique() > 1] or ["subgroup"]
    return table[varying].astype(str).agg(" / ".join, axis=1)


def grid_section(
    run: str | os.PathLike, fig_dir: str | os.PathLike, *, synthetic: bool, prob: float = DEFAULT_PROB
) -> GridSection:
    """Forest plots and sensitivity flags of a grid run folder, for the report.

    Parameters
    ----------
    run : path
        Grid run folder (``grid_results.csv``; ``grid_sensitivity.csv`` when present).
    fig_dir : path
        Where the forest plots are written (``grid_<entry>_<term>.png``).
    synthetic : bool
        Mark the figures as synthetic data.
    prob : float
        Interval probability of the results table (the grid writes `DEFAULT_PROB`).

    Returns
    -------
    GridSection

    Raises
    ------
    FileNotFoundError
        No results table in ``run``.
    ValueError
        The results table lacks the interval columns of ``prob``.
    """
    from analysis.figures import forest_plot
    from analysis.grid import RESULTS_FILE, SENSITIVITY_FILE

    run, fig_dir = Path(run), Path(fig_dir)
    path = run / RESULTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no grid results table (run `sameplace grid` first)")
    results = pd.read_csv(path, keep_default_na=False, na_values=[""])
    results["term"] = results["term"].fillna("")
    low, high = interval_columns("eti", prob, "or_")
    cells = results.drop_duplicates("cell")
    section = GridSection(
        run=run,
        cells=len(cells),
        not_converged=[str(c) for c in cells.loc[~cells["converged"].astype(bool), "cell"]],
        interval=describe_interval("eti", prob),
    )
    claimed = results[results["term"] != ""]
    if len(claimed) and not {low, high, "or_median"} <= set(claimed.columns):
        raise ValueError(f"{path}: no columns or_median, {low}, {high} (intervals of probability {prob})")
    fig_dir.mkdir(parents=True, exist_ok=True)
    for (entry, term), rows in claimed.groupby(["entry", "term"], sort=False):
        rows = rows.reset_index(drop=True)
        table = rows.assign(label=_labels(rows))
        keep = ["cell", *[a for a in CELL_AXES if a in table], "label"]
        keep += [
            c for c in ("rows", "or_median", low, high, "p_or_gt_1", "converged", "verdict") if c in table
        ]
        table = table[keep]
        plotted = table.assign(
            term=table["label"] + table["converged"].map({True: "", False: " (NOT CONVERGED)"})
        )
        figure = forest_plot(
            plotted,
            fig_dir / f"grid_{entry}_{term}.png".replace(":", "-"),
            synthetic=synthetic,
            title=f"{entry}: {term} across {len(table)} cells",
        )
        expect = str(rows["expect"].iloc[0]) if "expect" in rows else ""
        caption = (
            f"{entry}, odds ratio of {term} (expected sign {expect or 'none'}) in each cell of the grid: "
            f"posterior median and {section.interval}, one row per cell ({' / '.join(_axes(table))})."
        )
        section.forests.append(GridForest(str(entry), str(term), expect, table, figure, caption))
    sens_path = run / SENSITIVITY_FILE
    if sens_path.exists():
        sens = pd.read_csv(sens_path)
        section.sensitivity_cells = int(sens["cell"].nunique()) if len(sens) else 0
        flagged = sens[sens["flagged"].astype(bool)] if len(sens) else sens
        section.sensitivity = flagged.reset_index(drop=True)
    return section


def _axes(table: pd.DataFrame) -> list[str]:
    names = {"subgroup": "subgroup", "prior_set": "prior set", "sampler_set": "sampler set"}
    names["replicate"] = "replicate"
    varying = [a for a in CELL_AXES if a in table and table[a].nunique() > 1] or ["subgroup"]
    return [names[a] for a in varying]
