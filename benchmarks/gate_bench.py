"""The convergence gate's diagnostics: `models.convergence.rank_diagnostics` against ArviZ's
``rhat`` / ``ess(method="bulk")`` / ``ess(method="tail")`` on posteriors the size of the
25k study models, in one run (best of 3 each), with the largest difference between them.

    .venv/bin/python benchmarks/gate_bench.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.convergence import rank_diagnostics  # noqa: E402

#: (label, parameters, draws per chain): the 25k random-intercept and slope models at the
#: lengths where their runs stopped.
SIZES = [("random intercept", 405, 775), ("correlated slope", 790, 925)]


def ar1(rng: np.random.Generator, draws: int, k: int) -> np.ndarray:
    phi = rng.uniform(-0.3, 0.9, k)
    x = np.zeros((4, draws, k))
    e = rng.normal(size=(4, draws, k))
    for t in range(draws):
        x[:, t] = (phi * x[:, t - 1] if t else 0.0) + e[:, t]
    return x


def arviz_diagnostics(ds: xr.Dataset) -> tuple[np.ndarray, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            az.rhat(ds)["v"].values,
            az.ess(ds, method="bulk")["v"].values,
            az.ess(ds, method="tail")["v"].values,
        )


def best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    head = "| posterior | parameters | draws | ArviZ s | project s | ArviZ / project | max rel. diff |"
    print(head)
    print("|---|---|---|---|---|---|---|")
    for label, k, draws in SIZES:
        x = ar1(rng, draws, k)
        ds = xr.Dataset({"v": (("chain", "draw", "k"), x)})
        ours = rank_diagnostics(x)
        ref = arviz_diagnostics(ds)
        diff = max(
            float(np.max(np.abs(ours[key] / r - 1)))
            for key, r in zip(("rhat", "ess_bulk", "ess_tail"), ref, strict=True)
        )
        t_a = best(lambda ds=ds: arviz_diagnostics(ds))
        t_o = best(lambda x=x: rank_diagnostics(x))
        print(f"| {label} | {k} | 4 x {draws} | {t_a:.2f} | {t_o:.2f} | {t_a / t_o:.1f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
