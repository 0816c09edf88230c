"""Benchmark: this project's default fit against plain PyMC, bambi and lme4 on the same data.

Run (from the repository root, after the set-up)::

    .venv/bin/python benchmarks/bench.py                 # everything, writes benchmarks/results.md
    .venv/bin/python benchmarks/bench.py --only project plain --models ri
    .venv/bin/python benchmarks/bench.py --scaling-only

Every contender runs in its own subprocess (so its peak memory is its own) on data
generated from the same seed: a synthetic 25,000-person x 380-LA logistic model with 15
individual and 8 LA covariates, as a random-intercept model (``ri``) and with a correlated
varying slope (``slope``, true correlation -0.5). Each result is reported with its ratio
to the project's default measured in the same run.

bambi pins formulae < 0.7, which conflicts with this project's formulae 0.9, so it runs
from its own virtual environment (``benchmarks/.venv-bambi``, created on first use from
PyPI) and is reported as "did not finish" when it exceeds its time cap.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
N_IND, N_AREA, N_LA = 15, 8, 380
BAMBI_CAP_S = 300
GLMER_CAP_S = 1800


# --------------------------------------------------------------------------- data


def make_data(
    n: int = 25_000, seed: int = 2026, slope: bool = False, kind: str | None = None
) -> tuple[pd.DataFrame, str]:
    """Synthetic people in LAs with a known hierarchical logistic model.

    ``kind`` (default ``$SAMEPLACE_BENCH_DATA`` or ``"continuous"``): the individual
    covariates are standard normal (``"continuous"``), or survey-like (``"survey"``: an age
    16-90 centred at 50, 11 dummies and 3 counts 0-5, all exact in float32; too many
    combinations to pool into cells).
    """
    kind = kind or os.environ.get("SAMEPLACE_BENCH_DATA", "continuous")
    rng = np.random.default_rng(seed)
    lad = rng.integers(0, N_LA, n)
    Xi = rng.normal(size=(n, N_IND))
    scale = np.ones(N_IND)
    if kind == "survey":
        Xi[:, 0] = rng.integers(16, 91, n) - 50  # age in years from 50
        Xi[:, 1:12] = rng.integers(0, 2, (n, 11))  # dummies
        Xi[:, 12:] = rng.integers(0, 6, (n, N_IND - 12))  # counts
        scale = Xi.std(axis=0)  # effects per standard deviation as for the continuous data
    elif kind != "continuous":
        raise ValueError(f"kind must be 'continuous' or 'survey', got {kind!r}")
    Xa = rng.normal(size=(N_LA, N_AREA))
    beta_i = rng.normal(0, 0.25, N_IND) / scale
    beta_a = rng.normal(0, 0.2, N_AREA)
    eta = -0.3 + Xi @ beta_i + Xa[lad] @ beta_a
    if slope:
        sd = np.array([0.4, 0.25])
        cov = np.outer(sd, sd) * np.array([[1, -0.5], [-0.5, 1]])
        u = rng.multivariate_normal([0, 0], cov, N_LA)
        eta = eta + u[lad, 0] + u[lad, 1] * Xi[:, 0]
    else:
        eta = eta + rng.normal(0, 0.4, N_LA)[lad]
    df = pd.DataFrame({f"x{k + 1}": Xi[:, k] for k in range(N_IND)})
    for k in range(N_AREA):
        df[f"a{k + 1}"] = Xa[lad, k]
    df["lad"] = [f"LA{j:03d}" for j in lad]
    df["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    fixed = " + ".join([f"x{k + 1}" for k in range(N_IND)] + [f"a{k + 1}" for k in range(N_AREA)])
    group = "(1 + x1 | lad)" if slope else "(1 | lad)"
    return df, f"y ~ {fixed} + {group}"


def diagnostics(posterior, stats) -> dict:
    import arviz as az

    keep = [v for v in posterior.data_vars if not str(v).startswith(("z_", "chol_", "z"))]
    post = posterior[keep]
    bulk = az.ess(post, method="bulk")
    tail = az.ess(post, method="tail")
    rhat = az.rhat(post)

    def _min(ds):
        return float(min(np.nanmin(v.values) for v in ds.data_vars.values()))

    def _max(ds):
        return float(max(np.nanmax(v.values) for v in ds.data_vars.values()))

    div = int(stats["diverging"].values.sum()) if "diverging" in stats else None
    steps = int(stats["n_steps"].values.sum()) if "n_steps" in stats else None
    return {
        "min_ess_bulk": _min(bulk),
        "min_ess_tail": _min(tail),
        "max_rhat": _max(rhat),
        "divergences": div,
        "leapfrog_steps": steps,
    }


# --------------------------------------------------------------------------- contenders


def run_project(model: str, n: int, chains: int, draws: int, tune: int) -> dict:
    """The project's fit. With ``$SAMEPLACE_BENCH_ESS`` (set by ``--ess``, default 1000): its
    defaults (``fit(formula, df, ess=...)``: tuning and draws chosen by the fit, the run
    stopped when the gate passes), otherwise ``draws`` and ``tune`` as given (the scaling
    runs). A second fit of the same structure on new data follows (compile cache warm)."""
    sys.path.insert(0, str(ROOT))
    from models import fit

    df, formula = make_data(n, slope=model == "slope")
    # the scaling runs time one sampler run per size: no further attempts (escalation)
    once = {"escalate": False} if os.environ.get("SAMEPLACE_BENCH_ESCALATE") == "0" else {}
    ess = float(os.environ.get("SAMEPLACE_BENCH_ESS", "0"))
    how = {"ess": ess} if ess and not once else {"draws": draws, "tune": tune}
    t0 = time.perf_counter()
    f = fit(formula, df, chains=chains, seed=1, progressbar=False, **how, **once)
    wall = time.perf_counter() - t0
    out = {
        "wall_s": wall,
        "compile_s": f.settings["compile_seconds"],
        "sampling_s": f.settings["sampling_seconds"],
        **diagnostics(f.posterior(), f.idata["sample_stats"].to_dataset()),
        "converged": f.converged,
        "draws": f.settings["draws"],
        "tune": f.settings["tune"],
        "attempts": len(f.attempts),
    }
    if "warmup_sample_stats" in f.idata.children:  # every gradient of the run, tuning included
        warm = int(f.idata["warmup_sample_stats"]["n_steps"].values.sum())
        out["leapfrog_steps_all"] = warm + int(out["leapfrog_steps"] or 0)
    # a second fit of the same structure on new data: compilation is skipped
    k = int(os.environ.get("SAMEPLACE_BENCH_SECOND_DRAWS", draws))
    if k == 0:  # not wanted (the scaling runs at millions of rows)
        return out
    df2, _ = make_data(n, seed=7, slope=model == "slope")
    how2 = how if "ess" in how else {"draws": k, "tune": k}
    t1 = time.perf_counter()
    f2 = fit(formula, df2, chains=chains, seed=2, progressbar=False, **how2, **once)
    out["second_fit"] = {
        "wall_s": time.perf_counter() - t1,
        "compile_s": f2.settings["compile_seconds"],
        "reused": f2.settings["reused"],
        "draws": f2.settings["draws"],
        "tune": f2.settings["tune"],
        "attempts": len(f2.attempts),
        **diagnostics(f2.posterior(), f2.idata["sample_stats"].to_dataset()),
        "converged": f2.converged,
    }
    return out


def run_plain(model: str, n: int, chains: int, draws: int, tune: int) -> dict:
    """PyMC's default sampler on the straightforward model (what a user would write first)."""
    import pymc as pm

    df, _ = make_data(n, slope=model == "slope")
    X = df[[c for c in df.columns if c.startswith(("x", "a"))]].to_numpy()
    codes, levels = pd.factorize(df["lad"], sort=True)
    coords = {"coef": list(range(X.shape[1])), "lad": list(levels), "term": ["Intercept", "x1"]}
    with pm.Model(coords=coords) as m:
        a = pm.Normal("a", 0, 2.5)
        b = pm.Normal("b", 0, 1, dims="coef")
        if model == "slope":
            chol, _, _ = pm.LKJCholeskyCov("chol", n=2, eta=2, sd_dist=pm.HalfNormal.dist(1, shape=2))
            z = pm.Normal("z", 0, 1, dims=("lad", "term"))
            r = pm.Deterministic("r", z @ chol.T, dims=("lad", "term"))
            eta = a + X @ b + r[codes, 0] + r[codes, 1] * df["x1"].to_numpy()
        else:
            sd = pm.HalfNormal("sd", 1)
            z = pm.Normal("z", 0, 1, dims="lad")
            eta = a + X @ b + sd * z[codes]
        pm.Bernoulli("y", logit_p=eta, observed=df["y"].to_numpy())
    t0 = time.perf_counter()
    idata = pm.sample(draws=draws, tune=tune, chains=chains, random_seed=1, progressbar=False, model=m)
    wall = time.perf_counter() - t0
    sampling = float(idata["posterior"].attrs.get("sampling_time", np.nan))
    return {
        "wall_s": wall,
        "sampling_s": sampling,
        "compile_s": wall - sampling,
        **diagnostics(idata["posterior"].to_dataset(), idata["sample_stats"].to_dataset()),
    }


def run_glmer(model: str, n: int, **_) -> dict:
    sys.path.insert(0, str(ROOT))
    from analysis.lme4 import fit_glmer

    df, formula = make_data(n, slope=model == "slope")
    t0 = time.perf_counter()
    g = fit_glmer(formula, df, nAGQ=1, timeout=GLMER_CAP_S)
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "sampling_s": g.elapsed_s,
        "compile_s": 0.0,
        "converged": g.converged,
        "singular": g.singular,
        "note": "point estimate (Laplace); wall includes R start-up",
    }


BAMBI_SCRIPT = """
import json, sys, time
sys.path.insert(0, {bench!r})
from bench import make_data, diagnostics
import bambi as bmb
df, formula = make_data({n}, slope={slope})
t0 = time.perf_counter()
m = bmb.Model(formula, df, family="bernoulli")
idata = m.fit(draws={draws}, tune={tune}, chains={chains}, random_seed=1, progressbar=False)
wall = time.perf_counter() - t0
def ds(group):
    g = idata[group]
    return g.to_dataset() if hasattr(g, "to_dataset") else g
nan = float("nan")
diag = diagnostics(ds("posterior"), ds("sample_stats"))
res = {{"wall_s": wall, "sampling_s": nan, "compile_s": nan, **diag}}
print(json.dumps(res))
"""


def bambi_python() -> Path:
    venv = HERE / ".venv-bambi"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "bambi==0.21.0", "nutpie"], check=True)
    return py


def run_bambi(model: str, n: int, chains: int, draws: int, tune: int) -> dict:
    py = bambi_python()
    code = BAMBI_SCRIPT.format(
        bench=str(HERE), n=n, slope=model == "slope", chains=chains, draws=draws, tune=tune
    )
    t0 = time.perf_counter()
    try:
        res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=BAMBI_CAP_S)
    except subprocess.TimeoutExpired:
        return {
            "wall_s": time.perf_counter() - t0,
            "did_not_finish": True,
            "note": f"did not finish {tune}+{draws} draws x {chains} chains within {BAMBI_CAP_S} s (cap)",
        }
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


CONTENDERS = {"project": run_project, "plain": run_plain, "bambi": run_bambi, "glmer": run_glmer}


# --------------------------------------------------------------------------- driver


def _one(contender: str, model: str, n: int, chains: int, draws: int, tune: int, out: Path) -> None:
    res = CONTENDERS[contender](model, n, chains=chains, draws=draws, tune=tune)
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    res["peak_mem_mb"] = max(self_peak, child_peak)
    out.write_text(json.dumps(res, default=float))


def _spawn(contender: str, model: str, n: int, chains: int, draws: int, tune: int) -> dict:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{contender}_{model}_{n}.json"
    cmd = [
        sys.executable,
        __file__,
        "--one",
        contender,
        model,
        str(n),
        str(chains),
        str(draws),
        str(tune),
        str(path),
    ]
    print(f"  {contender} {model} n={n} ...", flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not path.exists():
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail)}
    return json.loads(path.read_text())


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    mem = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def _row(name: str, r: dict, base: dict) -> dict:
    def ratio(key: str, inverse: bool = False) -> float:
        a, b = r.get(key), base.get(key)
        if not a or not b or np.isnan(a) or np.isnan(b):
            return float("nan")
        return b / a if inverse else a / b

    ess_s = r["min_ess_bulk"] / r["wall_s"] if r.get("min_ess_bulk") and r.get("wall_s") else float("nan")
    return {
        "contender": name,
        "compile_s": r.get("compile_s"),
        "sampling_s": r.get("sampling_s"),
        "wall_s": r.get("wall_s"),
        "min_ess_bulk": r.get("min_ess_bulk"),
        "min_ess_tail": r.get("min_ess_tail"),
        "ess_bulk_per_s": ess_s,
        "max_rhat": r.get("max_rhat"),
        "divergences": r.get("divergences"),
        "peak_mem_mb": r.get("peak_mem_mb"),
        "wall_vs_project": ratio("wall_s"),
        "note": r.get("note", r.get("error", "")),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--one", nargs=7, metavar=("CONTENDER", "MODEL", "N", "CHAINS", "DRAWS", "TUNE", "OUT"))
    p.add_argument("--only", nargs="+", default=list(CONTENDERS))
    p.add_argument("--models", nargs="+", default=["ri", "slope"])
    p.add_argument("--n", type=int, default=25_000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--scaling", nargs="*", type=int, default=[5_000, 25_000, 100_000, 400_000])
    p.add_argument("--scaling-only", action="store_true")
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--merge", action="store_true", help="add to the results.json of an earlier run")
    p.add_argument(
        "--data",
        choices=["continuous", "survey"],
        default=None,
        help="individual covariates of the synthetic data (see make_data; default continuous)",
    )
    p.add_argument("--second-fit-draws", type=int, default=100, help="draws and tuning of the second fit")
    p.add_argument(
        "--ess",
        type=float,
        default=1000.0,
        help="the project's fits ask for this bulk and tail ESS at its defaults (0: --draws/--tune as given)",
    )
    a = p.parse_args(argv)
    os.environ["SAMEPLACE_BENCH_ESS"] = str(a.ess)  # read by run_project in the children
    if a.data:  # read by make_data, here and in the children (which inherit it)
        os.environ["SAMEPLACE_BENCH_DATA"] = a.data
    data_kind = os.environ.get("SAMEPLACE_BENCH_DATA", "continuous")
    if a.one:
        c, m, n, ch, dr, tu, out = a.one
        _one(c, m, int(n), int(ch), int(dr), int(tu), Path(out))
        return 0

    results: dict = {
        "date": str(date.today()),
        "machine": machine(),
        "n": a.n,
        "chains": a.chains,
        "draws": a.draws,
        "tune": a.tune,
        "ess": a.ess,
        "models": {},
        "scaling": [],
    }
    scaling_key = "scaling" if data_kind == "continuous" else f"scaling_{data_kind}"
    previous = HERE / "results.json"
    if a.no_scaling and not a.merge and previous.exists():  # the scaling tables are not redone: keep them
        old = json.loads(previous.read_text())
        results.update({k: v for k, v in old.items() if k.startswith("scaling")})
    if a.merge and previous.exists():  # keep what this run does not redo
        old = json.loads(previous.read_text())
        kept = {k: v for k, v in old.items() if k.startswith("scaling")}
        results = {**old, **kept} if a.scaling_only else {**results, **kept}
    if not a.scaling_only:
        for model in a.models:
            print(f"model {model}", flush=True)
            res = {c: _spawn(c, model, a.n, a.chains, a.draws, a.tune) for c in a.only}
            results["models"].setdefault(model, {}).update(res)
    if not a.no_scaling:
        print("scaling", flush=True)
        results[scaling_key] = []
        results[f"{scaling_key}_date"] = str(date.today())
        os.environ["SAMEPLACE_BENCH_ESCALATE"] = "0"  # read by run_project in the children
        for n in a.scaling:
            r = _spawn("project", "ri", n, 2, 100, 100)
            r["n"] = n
            results[scaling_key].append(r)
    (HERE / "results.json").write_text(json.dumps(results, indent=1, default=float))
    write_table(results)
    return 0


def _markdown(df: pd.DataFrame) -> str:
    """A Markdown table (pandas' to_markdown needs the optional tabulate package)."""

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.3g}"
        return "" if v is None else str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _scaling_table(runs: list[dict], data: str, when: str) -> list[str]:
    """The scaling table of one run (ratios to its 25k row)."""
    rows = []
    base = next((r for r in runs if r.get("n") == 25_000), runs[0])
    for r in runs:
        per_step, base_step = (
            x.get("sampling_s", np.nan) / x["leapfrog_steps_all"] * 1e3
            if x.get("leapfrog_steps_all")
            else np.nan
            for x in (r, base)
        )
        rows.append(
            {
                "n": r["n"],
                "compile_s": r.get("compile_s"),
                "sampling_s": r.get("sampling_s"),
                "ms_per_leapfrog_step": per_step,
                "per_step_vs_25k": per_step / base_step,
                "n_vs_25k": r["n"] / 25_000,
                "peak_mem_mb": r.get("peak_mem_mb"),
                "note": r.get("error", ""),
            }
        )
    return [
        f"## Scaling of the project default ({data} individual covariates; random intercept; "
        "2 chains x 100+100)",
        "",
        f"Run {when} (`--scaling-only --data {data}`). Sampling seconds per leapfrog step (one gradient "
        "per chain; tuning included, 2 chains on 2 cores) against n; linear scaling means "
        "per_step_vs_25k <= n_vs_25k.",
        "",
        _markdown(pd.DataFrame(rows)),
        "",
    ]


def write_table(results: dict) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Date: {results['date']}. Machine: {results['machine']}. Data: synthetic, n = {results['n']:,} "
        f"people in {N_LA} LAs, {N_IND} individual + {N_AREA} LA covariates; {results['chains']} chains x "
        f"({results['tune']} tuning + {results['draws']} draws) for plain PyMC and bambi. Command: "
        "`.venv/bin/python benchmarks/bench.py`.",
        "",
    ]
    for model, res in results["models"].items():
        base = res.get("project", {})
        rows = [_row(name, r, base) for name, r in res.items()]
        title = "random intercept" if model == "ri" else "correlated varying slope (1 + x1 | lad)"
        lines += [f"## {title}", "", _markdown(pd.DataFrame(rows)), ""]
        lines += [
            f"Plain PyMC and bambi: {results['chains']} chains x ({results['tune']} tuning + "
            f"{results['draws']} draws).",
            "",
        ]
        if "project" in res and res["project"].get("draws"):
            pr = res["project"]
            lines += [
                f"The project's fit: `fit(formula, df, ess={results.get('ess', 0):g})` at its defaults: "
                f"{pr['attempts']} attempt(s), {results['chains']} chains x ({pr['tune']} tuning + "
                f"{pr['draws']} draws), stopped when the gate passed.",
                "",
            ]
        if "project" in res and "second_fit" in res["project"]:
            s = res["project"]["second_fit"]
            glmer = res.get("glmer", {}).get("wall_s")
            vs = f"; {s['wall_s'] / glmer:.2f}x glmer's wall time in this run" if glmer else ""
            extra = (
                f", {s['tune']} tuning + {s['draws']} draws, min bulk ESS {s['min_ess_bulk']:.0f}, "
                f"max R-hat {s['max_rhat']:.3f}, converged {s['converged']}"
                if "draws" in s
                else ""
            )
            lines += [
                f"Second fit of the same structure on new data (compile cache warm): compile "
                f"{s['compile_s']:.1f} s (reused: {s['reused']}), wall {s['wall_s']:.1f} s{extra}{vs}.",
                "",
            ]
        if base.get("min_ess_bulk") and res.get("plain", {}).get("min_ess_bulk"):
            r = (base["min_ess_bulk"] / base["wall_s"]) / (
                res["plain"]["min_ess_bulk"] / res["plain"]["wall_s"]
            )
            lines += [f"ESS per second (min bulk ESS / wall), project default vs plain PyMC: {r:.1f}x.", ""]
    for key, data in (("scaling", "continuous"), ("scaling_survey", "survey")):
        if results.get(key):
            lines += _scaling_table(results[key], data, results.get(f"{key}_date", results["date"]))
    lines += _other_sections(HERE / "results.md", lines)
    (HERE / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _other_sections(path: Path, lines: list[str]) -> list[str]:
    """The sections of an existing results file that this script does not write (those of
    grid_bench.py, spatial_bench.py, curves_bench.py, ...), kept as they are."""
    if not path.exists():
        return []
    own = {line for line in lines if line.startswith("## ")}
    kept: list[str] = []
    keep = False
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            keep = line not in own and not line.startswith("## Scaling of the project default")
        if keep:
            kept.append(line)
    return ["", *kept] if kept else []


if __name__ == "__main__":
    sys.exit(main())
