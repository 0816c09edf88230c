"""BYM2 spatial LA effects against the exchangeable random intercept on the 25k cohort.

Run (from the repository root)::

    .venv/bin/python benchmarks/spatial_bench.py            # n = 25,000, 4 chains

Data: the synthetic cohort (`data.synthetic.simulate`) with spatially structured LA
intercepts of life satisfaction (``spatial_rho=0.8, spatial_sd=0.3`` on the real GB
graph). Model: the life-satisfaction formula of `data.truth` with ``(1 | lad)`` and with
``car(lad, type = "bym2")`` (all 371 GB LAs on the graph). Reported for one default
`models.fit` of each: wall time, compilation, ESS per second, leapfrog steps per draw,
ms per leapfrog step (sampling time x chains in parallel / all steps, tuning included),
and sd and rho with 95% intervals.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=25_000)
    ap.add_argument("--chains", type=int, default=4)
    args = ap.parse_args()

    import arviz as az
    import scipy.linalg.cython_blas  # noqa: F401

    from data.synthetic import simulate
    from data.truth import TRUTH
    from models import fit
    from models.formula import build_model_data

    sim = simulate(n=args.n, seed=1, spatial_rho=0.8, spatial_sd=0.3)
    base = TRUTH["life_satisfied"].formula
    formulas = {"random intercept": base, "BYM2": base.replace("(1 | lad)", 'car(lad, type = "bym2")')}
    mds = {k: build_model_data(f, sim.table) for k, f in formulas.items()}
    print(f"n rows used: {mds['BYM2'].n_obs}, LAs with data: {mds['BYM2'].blocks[0].n_levels}")
    for k, f in formulas.items():
        t0 = time.perf_counter()
        res = fit(f, mds[k], seed=1, chains=args.chains, progressbar=False)
        wall = time.perf_counter() - t0
        ess = az.ess(res.idata, var_names=res.parameter_names())
        min_ess = float(min(float(ess[v].min()) for v in ess.data_vars))
        steps = res.idata["sample_stats"]["n_steps"].to_numpy()
        total = steps.sum()
        if "warmup_sample_stats" in res.idata.children:  # tuning steps count too
            total += res.idata["warmup_sample_stats"]["n_steps"].to_numpy().sum()
        parallel = min(args.chains, os.cpu_count() or 1)
        ms = 1e3 * res.settings["sampling_seconds"] * parallel / total
        compile_s = res.settings.get("compile_seconds", 0)
        print(
            f"{k}: {res.headline}\n  wall {wall:.1f} s (compile {compile_s:.1f} s, attempts "
            f"{len(res.attempts)}), min bulk ESS {min_ess:.0f}, ESS/s {min_ess / wall:.1f}, mean leapfrog "
            f"steps per draw {steps.mean():.1f}, {ms:.3f} ms per leapfrog step (sampling time / steps)"
        )
        print(res.summary([n for n in res.parameter_names() if n.startswith(("sd_", "rho_"))]).to_string())


if __name__ == "__main__":
    main()
