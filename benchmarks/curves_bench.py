"""Tipping points: the hinge against the HSGP smooth against the straight line, on data with a
known threshold. Which curve measures better decides the catalogue's default (`analysis/catalogue.toml`).

Run (from the repository root)::

    .venv/bin/python benchmarks/curves_bench.py            # n = 25,000, 4 chains

Data: the synthetic cohort with ``simulate(threshold=6.5)``: life satisfaction falls by a further
0.25 log-odds per percentage point of LA unemployment above 6.5% (`data.synthetic`). Model: the
life-satisfaction formula of `data.truth` with ``area_unemployment`` in its published units
(``area_unemployment_raw``, %), fitted linear (`models.fit`), with a hinge and with a smooth
(`models.area_curves`). Reported per fit: verdict, attempts, wall time; the threshold (hinge) or
the ranges where the slope departs from the straight line (smooth); whether the true curve lies
in the 95% band over the LAs' range; and PSIS-LOO against the linear fit (`analysis.twins`).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=25_000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--threshold", type=float, default=6.5)
    args = ap.parse_args()

    import numpy as np

    from analysis.summaries.intervals import interval_bounds
    from analysis.tipping_points import curve_draws, curve_grid, departure_regions, threshold_summary
    from analysis.twins import curve_loo_table
    from data.synthetic import THRESHOLD_SLOPE, simulate
    from data.truth import TRUTH
    from models import fit
    from models.area_curves import fit_area_curve

    sim = simulate(n=args.n, seed=1, threshold=args.threshold)
    truth = TRUTH["life_satisfied"]
    formula = truth.formula.replace("area_unemployment", "area_unemployment_raw")
    table = sim.table
    scale = float(
        np.polyfit(table["area_unemployment"].dropna(), table["area_unemployment_raw"].dropna(), 1)[0]
    )
    true_slope = truth.fixed["area_unemployment"] / scale  # per percentage point
    t0 = time.perf_counter()
    linear = fit(formula, table, seed=1, chains=args.chains, progressbar=False)
    print(
        f"linear: {linear.headline}; {time.perf_counter() - t0:.1f} s wall, {len(linear.attempts)} attempts"
    )
    curves = {}
    for kind in ("hinge", "smooth"):
        t0 = time.perf_counter()
        c = fit_area_curve(formula, table, "area_unemployment_raw", kind, seed=1, chains=args.chains)
        wall = time.perf_counter() - t0
        curves[kind] = c
        grid = curve_grid(c)
        lo, hi = interval_bounds(curve_draws(c, grid), 0.95, "eti")
        x0 = grid[0]
        true = true_slope * (grid - x0) + THRESHOLD_SLOPE * (
            np.maximum(0, grid - args.threshold) - max(0.0, x0 - args.threshold)
        )
        cover = float(np.mean((lo <= true) & (true <= hi)))
        print(
            f"{kind}: {c.headline}; {wall:.1f} s wall (compile {c.settings['compile_seconds']:.1f} s), "
            f"{len(c.settings['attempts'])} attempts; true curve inside the 95% band at {cover:.0%} "
            "of the grid"
        )
        if kind == "hinge":
            print(threshold_summary(c).round(3).to_string())
        print("departure from the straight line:\n" + departure_regions(c).round(3).to_string())
    loo = curve_loo_table(linear, curves)
    print("PSIS-LOO (elpd_diff = curve - linear):\n" + loo.round(2).to_string())


if __name__ == "__main__":
    main()
