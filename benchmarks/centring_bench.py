"""ESS per second, centred against non-centred group effects, on the 25k benchmark data.

Run (from the repository root)::

    .venv/bin/python benchmarks/centring_bench.py                      # ri and slope, 2 x (300 + 300)
    .venv/bin/python benchmarks/centring_bench.py --models ri --draws 500 --tune 500

Both parameterisations are fitted with the project default (`models.fit`: nutpie, diag mass
matrix, target_accept 0.8) on the same data and seed, one after the other in this process.
Reported per fit: sampling seconds (compilation excluded), leapfrog steps per retained draw, the
minimum bulk and tail ESS over every reported variable except the sampler's own ``z_`` /
``chol_`` coordinates (as benchmarks/bench.py), max R-hat, divergences, min bulk ESS per
sampling second and per 1000 leapfrog steps (gradients; unlike seconds, not inflated by
other jobs on the machine), with the ratios centred / non-centred.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation")


def run(model: str, centered: bool, n: int, chains: int, draws: int, tune: int, seed: int) -> dict:
    from bench import diagnostics, make_data

    from models import fit

    df, formula = make_data(n, slope=model == "slope")
    f = fit(
        formula, df, chains=chains, draws=draws, tune=tune, seed=seed, centered=centered, progressbar=False
    )
    d = diagnostics(f.posterior(), f.idata["sample_stats"].to_dataset())
    s = f.settings["sampling_seconds"]
    return {
        "model": model,
        "centered": centered,
        "compile_s": round(f.settings["compile_seconds"], 1),
        "sampling_s": round(s, 1),
        "steps_per_draw": round(d["leapfrog_steps"] / (chains * draws), 1),
        "min_ess_bulk": round(d["min_ess_bulk"]),
        "min_ess_tail": round(d["min_ess_tail"]),
        "max_rhat": round(d["max_rhat"], 3),
        "divergences": d["divergences"],
        "ess_bulk_per_s": round(d["min_ess_bulk"] / s, 2),
        # per gradient: not affected by other jobs' load on the machine
        "ess_bulk_per_1k_steps": round(1e3 * d["min_ess_bulk"] / d["leapfrog_steps"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=("ri", "slope"), default=["ri", "slope"])
    ap.add_argument("--n", type=int, default=25_000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--tune", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--centred-first", action="store_true", help="fit the centred model first")
    args = ap.parse_args()
    order = (True, False) if args.centred_first else (False, True)
    rows = []
    for model in args.models:
        pair = {}
        for centered in order:
            r = run(model, centered, args.n, args.chains, args.draws, args.tune, args.seed)
            print(json.dumps(r), flush=True)
            pair[centered] = r
            rows.append(r)
        ratio = pair[True]["ess_bulk_per_s"] / pair[False]["ess_bulk_per_s"]
        per_step = pair[True]["ess_bulk_per_1k_steps"] / pair[False]["ess_bulk_per_1k_steps"]
        print(f"{model}: centred / non-centred: ESS/s {ratio:.2f}, ESS per step {per_step:.2f}", flush=True)


if __name__ == "__main__":
    main()
