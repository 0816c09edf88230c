"""Classic public GLMM data sets fitted with `fit(formula, df)` defaults: does every fit
pass the convergence gate with no user setting, and what does a first touch cost?

Each case runs twice, each time in a fresh process with the same empty compile cache: the
first compiles (cold), the second loads the compiled model from the disk cache (warm).
glmer (R, the project's one lme4 path) is timed on the same rows once. One run, one table:

    .venv/bin/python benchmarks/classic_bench.py            # writes classic.json and classic.md
    .venv/bin/python benchmarks/classic_bench.py --only cbpp_binomial,polls_state
    .venv/bin/python benchmarks/classic_bench.py --seeds 1,2,3   # more seeds, warm cache

With several seeds, the first runs cold and warm as above and every further seed runs once
more, warm, in a fresh process: does the verdict hold beyond one seed?

Data: lme4's cbpp and VerbAgg, mlmRev's Contraception, HSAUR3's toenail (Debian
r-cran-hsaur3; skipped with a note when missing), and the 1988 polls and seeds in
data/validation/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "cbpp_binomial": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)"),
    "cbpp_per_animal": ("cbpp_animals", "y ~ period + (1 | herd)"),
    "verbagg_crossed": ("VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"),
    "contraception_ri": ("Contraception", "use ~ age + I(age^2) + urban + livch + (1 | district)"),
    "contraception_slope": ("Contraception", "use ~ age + I(age^2) + urban + livch + (1 + urban | district)"),
    "toenail": ("toenail", "outcome ~ treatment * visit + (1 | patientID)"),
    "polls_state": ("polls88", "y ~ black + female + (1 | state)"),
    "polls_five_factors": (
        "polls88",
        "y ~ black * female + v_prev_full + (1 | age) + (1 | edu) + (1 | age_edu) + (1 | state)"
        " + (1 | region_full)",
    ),
    "seeds": ("seeds", "cbind(r, n - r) ~ x1 * x2 + (1 | plate)"),
}


def load(name: str):
    """The data set as a pandas DataFrame (R's level order kept)."""
    import pandas as pd

    from analysis.lme4 import glmer_data

    if name == "polls88":
        return pd.read_csv(ROOT / "data" / "validation" / "polls88.csv")
    if name == "seeds":
        return pd.read_csv(ROOT / "data" / "validation" / "seeds.csv")
    if name == "cbpp_animals":  # one row per animal: the same likelihood as the binomial rows
        d = glmer_data("cbpp")
        rows = []
        for r in d.itertuples(index=False):
            rows += [(r.herd, r.period, 1)] * int(r.incidence)
            rows += [(r.herd, r.period, 0)] * int(r.size - r.incidence)
        return pd.DataFrame(rows, columns=["herd", "period", "y"])
    if name == "Contraception":
        return glmer_data("Contraception", package="mlmRev")
    if name == "toenail":
        return glmer_data("toenail", package="HSAUR3")
    return glmer_data(name)


def one_fit(case: str, seed: int = 1) -> dict:
    """Fit one case with the defaults in this process (called in a fresh subprocess)."""
    import warnings

    from models import fit

    data_name, formula = CASES[case]
    df = load(data_name)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = fit(formula, df, seed=seed, progressbar=False)
    wall = time.perf_counter() - t0
    last = f.attempts[-1]
    return {
        "seed": seed,
        "verdict": f.headline,
        "converged": bool(f.converged),
        "attempts": len(f.attempts),
        "tune": last["tune"],
        "draws": last["draws"],
        "iterations": f.settings["total_draws"],
        "wall_s": round(wall, 1),
        "compile_s": round(float(f.settings.get("compile_seconds", float("nan"))), 2),
        "compile_cache": f.settings.get("compile_cache", ""),
        "rows": f.md.n_obs,
    }


def glmer_seconds(case: str) -> float | None:
    import warnings

    from analysis.lme4 import fit_glmer, glmer_term_names, r_available
    from models.formula import build_model_data

    if not r_available()[0]:
        return None
    data_name, formula = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = build_model_data(formula, load(data_name))
    t0 = time.perf_counter()
    fit_glmer(md.glmer_formula, md.frame, term_names=glmer_term_names(md))
    return round(time.perf_counter() - t0, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "classic.json"))
    ap.add_argument("--seeds", default="1", help="comma-separated fit seeds (the first runs cold and warm)")
    ap.add_argument("--markdown", default=str(ROOT / "benchmarks" / "classic.md"))
    ap.add_argument("--merge", action="store_true", help="add the cases run to the results file's others")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-seed", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(one_fit(a.child, a.child_seed)))
        return 0
    seeds = [int(x) for x in a.seeds.split(",")]
    cases = a.only.split(",") if a.only else list(CASES)
    results = json.loads(Path(a.out).read_text()) if a.merge and Path(a.out).exists() else {}
    results = {c: results[c] for c in CASES if c in results}  # the table keeps the cases' order
    for case in cases:
        try:
            load(CASES[case][0])
        except Exception as exc:  # noqa: BLE001 - a missing R package: say so, go on
            results[case] = {"skipped": f"{type(exc).__name__}: {exc}"}
            print(f"{case}: skipped ({exc})", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix="sameplace-classic-") as cache:
            env = {**os.environ, "SAMEPLACE_CACHE_DIR": cache}
            runs = []
            for seed in [seeds[0], seeds[0], *seeds[1:]]:  # cold, warm, then the other seeds warm
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", case, "--child-seed", str(seed)],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                if proc.returncode != 0:
                    runs.append({"seed": seed, "error": proc.stderr.strip().splitlines()[-1:]})
                    if len(runs) < 2:
                        break
                    continue
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        row = {
            "formula": CASES[case][1],
            "cold": runs[0],
            "warm": runs[1] if len(runs) > 1 else None,
            "other_seeds": runs[2:],
        }
        row["glmer_s"] = glmer_seconds(case)
        results[case] = row
        results = {c: results[c] for c in CASES if c in results}
        print(case, json.dumps(row), flush=True)
        Path(a.out).write_text(json.dumps(results, indent=1))
    Path(a.markdown).write_text(markdown(results, seeds))
    return 0


def markdown(results: dict, seeds: list[int]) -> str:
    """The table of `benchmarks/classic.md` from a run's results."""
    from datetime import date

    lines = [
        "# Classic data sets at `fit(formula, df)` defaults",
        "",
        f"One run of `.venv/bin/python benchmarks/classic_bench.py --seeds {','.join(map(str, seeds))}` "
        f"({date.today()}, this 2-core machine). Each case ran in a fresh process twice with the same "
        f"empty compile cache at seed {seeds[0]}: cold (compiles) and warm (loads the compiled model "
        "from disk); every further seed once more, warm. Wall time includes compiling and every "
        "escalation attempt; glmer is `lme4.glmer_for`'s policy (adaptive quadrature where lme4 "
        "allows it), R start-up included. Draws: of the last attempt, per chain (4 chains), the "
        "run stopped when the gate passed.",
        "",
        "| case | formula | rows | verdict (defaults) | attempts | tune + draws | wall s cold | wall s warm "
        "| glmer s | other seeds: verdict, attempts, wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    passed = total = 0
    for case, row in results.items():
        if "skipped" in row:
            why = " ".join(row["skipped"].split())
            lines.append(f"| {case} | | | skipped: {why} | | | | | | |")
            continue
        cold, warm = row["cold"], row.get("warm") or {}
        formula = row["formula"].replace("|", "\\|")
        others = []
        for r in [cold, *row.get("other_seeds", [])]:
            if "converged" in r:
                total += 1
                passed += bool(r["converged"])
        for r in row.get("other_seeds", []):
            if "error" in r:
                others.append(f"seed {r['seed']}: error")
            else:
                word = "CONVERGED" if r["converged"] else "NOT CONVERGED"
                others.append(f"seed {r['seed']}: {word}, {r['attempts']}, {r['wall_s']}")
        if "error" in cold:
            lines.append(f"| {case} | `{formula}` | | error: {cold['error']} | | | | | | |")
            continue
        lines.append(
            f"| {case} | `{formula}` | {cold['rows']:,} | {cold['verdict']} | {cold['attempts']} | "
            f"{cold.get('tune', '')} + {cold.get('draws', '')} | {cold['wall_s']} | "
            f"{warm.get('wall_s', '')} | {row.get('glmer_s', '')} | {'; '.join(others)} |"
        )
    lines += ["", f"{passed} of {total} fits pass the convergence gate with no user setting.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
