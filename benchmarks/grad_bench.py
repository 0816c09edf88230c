"""Micro-benchmark: one log-density gradient of the 25k model, per form of the model.

Run (from the repository root)::

    .venv/bin/python benchmarks/grad_bench.py                  # random intercept, n = 25,000
    .venv/bin/python benchmarks/grad_bench.py --model slope    # correlated varying slope
    .venv/bin/python benchmarks/grad_bench.py --model slope --sorted   # rows sorted by LA

Forms (`models.logistic.hierarchical_logistic`): ``plain`` (observed ``pm.Bernoulli``,
advanced indexing) and ``fast`` (``fast_likelihood=True``: `models.ops.glmm_loglik`, what
nutpie samples by default). Each is compiled exactly as `models.compiled` does
(``nutpie.compile_pymc_model(model, backend="numba")``), and the compiled C callback that
nutpie's sampler calls (``compiled_logp_func``) is timed through ctypes on one thread with
single-threaded BLAS, the forms alternating in rounds so that load from other jobs on the
machine affects all alike. Reported: median ms per gradient and the ratio to ``plain``.
``--sorted`` sorts the people by LA first, as survey files often are (the sampling form
stores them interleaved by LA, `models.sampling_form.interleaving`).
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation")


FORMS = {
    "plain": {"fast_likelihood": False},
    "fast": {"fast_likelihood": True},
}


def _compiled(md, priors, form: str, centered: bool = False):
    import nutpie

    from models.logistic import hierarchical_logistic

    t0 = time.perf_counter()
    model = hierarchical_logistic(md, priors, centered=centered, **FORMS[form])
    compiled = nutpie.compile_pymc_model(model, backend="numba")
    return compiled, time.perf_counter() - t0


def _caller(compiled):
    """Call nutpie's compiled logp-and-gradient callback like the sampler does."""
    n = compiled.n_dim
    fn = compiled.compiled_logp_func.ctypes
    out = np.zeros(n)
    logp = np.zeros(())
    user = compiled.user_data
    p_out = out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
    p_logp = logp.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
    p_user = ctypes.c_void_p(user.ctypes.data)

    def call(x: np.ndarray) -> tuple[float, np.ndarray]:
        rc = fn(n, x.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), p_out, p_logp, p_user)
        if rc != 0:
            raise RuntimeError(f"logp callback returned {rc}")
        return float(logp), out.copy()

    return call


def _time(call, x: np.ndarray, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        call(x)
    return (time.perf_counter() - t0) / reps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("ri", "slope"), default="ri")
    ap.add_argument("--n", type=int, default=25_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--centered", action="store_true")
    ap.add_argument("--sorted", action="store_true", help="people sorted by LA")
    ap.add_argument("--forms", nargs="+", choices=list(FORMS), default=["plain", "fast"])
    args = ap.parse_args()
    forms = ["plain", *[f for f in args.forms if f != "plain"]]

    import scipy.linalg.cython_blas  # noqa: F401  (load numba's BLAS so its threads can be limited)
    from bench import make_data
    from threadpoolctl import threadpool_limits

    from models.formula import build_model_data
    from models.priors import resolve_priors

    df, formula = make_data(args.n, slope=args.model == "slope")
    if args.sorted:
        df = df.sort_values("lad", kind="stable", ignore_index=True)
    md = build_model_data(formula, df)
    priors = resolve_priors(md, None)
    with threadpool_limits(limits=1):
        compiled, calls, compile_s = {}, {}, {}
        for f in forms:
            compiled[f], compile_s[f] = _compiled(md, priors, f, centered=args.centered)
            calls[f] = _caller(compiled[f])
        n_dim = compiled["plain"].n_dim
        rng = np.random.default_rng(0)
        points = [rng.normal(0, 0.3, n_dim) for _ in range(3)]
        check = {}
        for f in forms:
            diffs = []
            for x in points:
                lp0, g0 = calls["plain"](x)
                lp1, g1 = calls[f](x)
                diffs.append((abs(lp1 - lp0) / abs(lp0), float(np.max(np.abs(g1 - g0)) / np.max(np.abs(g0)))))
            check[f] = np.max(diffs, axis=0)
        times: dict[str, list[float]] = {f: [] for f in forms}
        x = points[0]
        for _ in range(args.rounds):
            for f in forms:
                times[f].append(_time(calls[f], x, args.reps))
    base = float(np.median(times["plain"]))
    print(f"model={args.model} n={args.n} n_dim={n_dim} centered={args.centered} sorted={args.sorted}")
    print(f"ms per logp+gradient, median of {args.rounds} rounds x {args.reps} calls, one thread:")
    for f in forms:
        med = float(np.median(times[f]))
        print(
            f"  {f:7s} {med:7.3f} ms  plain/{f} {base / med:5.2f}x  compile {compile_s[f]:5.1f} s  "
            f"max rel diff vs plain: logp {check[f][0]:.1e}, grad {check[f][1]:.1e}  "
            f"(rounds: {', '.join(f'{t:.2f}' for t in times[f])})"
        )


if __name__ == "__main__":
    main()
