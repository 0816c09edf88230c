"""Exactness of the fast forms of the model (no sampling).

`models.ops` provides a gather / segment-sum pair for the group effects and a fused
Bernoulli/binomial log-likelihood; `models.logistic.hierarchical_logistic` uses them with
``fast_gather=True`` / ``fast_likelihood=True`` (nutpie samples the latter by default). Here
the fast and the straightforward model are compiled for the same small data and their log
densities and gradients compared at random points, with PyMC's default compile and through
nutpie's compiled callback; the Ops' gradients are checked by finite differences.
"""

from __future__ import annotations

import ctypes

import numpy as np
import nutpie
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from models import build_model_data, resolve_priors
from models.logistic import data_values, hierarchical_logistic, structure_key
from models.ops import gather, logit_likelihood, segment_sum

RTOL = 1e-10

FORMULAS = {
    # a correlated varying slope and a second block (random intercept) in one model
    "bernoulli": "y ~ x + w + (1 + x | lad) + (1 | school)",
    "binomial": "cbind(succ, n - succ) ~ x + (1 + x | lad) + (1 | school)",
    "intercept_only": "y ~ 1 + (1 | lad)",
}


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 400
    lad = rng.integers(0, 15, n)
    x = rng.normal(size=n)
    eta = -0.2 + 0.5 * x + rng.normal(0, 0.5, 15)[lad] + rng.normal(0, 0.3, 15)[lad] * x
    return pd.DataFrame(
        {
            "y": rng.binomial(1, 1 / (1 + np.exp(-eta))),
            "x": x,
            "w": rng.normal(size=n),
            "lad": [f"E0{k:02d}" for k in lad],
            "school": rng.choice([f"s{k}" for k in range(6)], n),
            "succ": rng.binomial(8, 1 / (1 + np.exp(-eta))),
            "n": np.full(n, 8),
        }
    )


def _points(model: pm.Model, k: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    ip = model.initial_point()
    return [{name: v + rng.normal(0, 0.7, np.shape(v)) for name, v in ip.items()} for _ in range(k)]


def _logp_dlogp(model: pm.Model):
    logp = model.compile_logp()
    dlogp = model.compile_dlogp()
    return lambda p: (float(logp(p)), np.asarray(dlogp(p)))


BOTH = {"fast_gather": True, "fast_likelihood": True}
CASES = [
    *[(f, c, BOTH) for f in FORMULAS for c in (False, True)],
    ("bernoulli", False, {"fast_gather": True}),
    ("bernoulli", False, {"fast_likelihood": True}),
]


@pytest.mark.parametrize(("formula", "centered", "form"), CASES)
def test_fast_forms_have_the_same_log_density_and_gradient(df, formula, centered, form):
    md = build_model_data(FORMULAS[formula], df)
    priors = resolve_priors(md)
    plain = hierarchical_logistic(md, priors, centered=centered, fast_gather=False)
    fast = hierarchical_logistic(md, priors, centered=centered, **form)
    # same free parameters (names and shapes) and the same reported variables
    assert [v.name for v in plain.value_vars] == [v.name for v in fast.value_vars]
    assert [d.name for d in plain.deterministics] == [d.name for d in fast.deterministics]
    assert {k: v for k, v in plain.named_vars_to_dims.items() if k != "y"} == {
        k: v for k, v in fast.named_vars_to_dims.items() if k != "y"
    }
    f_plain, f_fast = _logp_dlogp(plain), _logp_dlogp(fast)
    for p in _points(plain, 4, seed=3):
        lp0, g0 = f_plain(p)
        lp1, g1 = f_fast(p)
        assert np.isfinite(lp0)
        np.testing.assert_allclose(lp1, lp0, rtol=RTOL)
        np.testing.assert_allclose(g1, g0, rtol=RTOL, atol=RTOL * np.max(np.abs(g0)))


def test_default_model_keeps_the_observed_likelihood(df):
    md = build_model_data(FORMULAS["bernoulli"], df)
    model = hierarchical_logistic(md, resolve_priors(md))
    (obs,) = model.observed_RVs
    assert obs.name == "y" and isinstance(obs.owner.op, type(pm.Bernoulli.dist(p=0.5).owner.op))
    md_b = build_model_data(FORMULAS["binomial"], df)
    (obs_b,) = hierarchical_logistic(md_b, resolve_priors(md_b)).observed_RVs
    assert obs_b.name == "y" and isinstance(obs_b.owner.op, type(pm.Binomial.dist(n=2, p=0.5).owner.op))
    sampling = hierarchical_logistic(md, resolve_priors(md), fast_likelihood=True)
    assert not sampling.observed_RVs and [p.name for p in sampling.potentials] == ["y_loglik"]


def test_structure_key_tells_the_forms_apart(df):
    md = build_model_data(FORMULAS["bernoulli"], df)
    pri = resolve_priors(md)
    keys = {
        structure_key(md, pri, centered=False, fast_gather=g, fast_likelihood=lk)
        for g in (False, True)
        for lk in (False, True)
    }
    assert len(keys) == 4


def _nutpie_caller(compiled):
    """Call nutpie's compiled logp-and-gradient callback, as its sampler does."""
    n = compiled.n_dim
    fn = compiled.compiled_logp_func.ctypes
    out, logp = np.zeros(n), np.zeros(())
    dptr = ctypes.POINTER(ctypes.c_double)

    def call(x):
        x = np.ascontiguousarray(x, dtype=np.float64)
        rc = fn(
            n,
            x.ctypes.data_as(dptr),
            out.ctypes.data_as(dptr),
            logp.ctypes.data_as(dptr),
            ctypes.c_void_p(compiled.user_data.ctypes.data),
        )
        assert rc == 0, f"nutpie logp callback returned {rc}"
        return float(logp), out.copy()

    return call


def test_nutpie_compiled_fast_model_matches_the_plain_one(df):
    md = build_model_data(FORMULAS["bernoulli"], df)
    pri = resolve_priors(md)
    plain = nutpie.compile_pymc_model(hierarchical_logistic(md, pri, fast_gather=False), backend="numba")
    fast = nutpie.compile_pymc_model(
        hierarchical_logistic(md, pri, fast_gather=True, fast_likelihood=True), backend="numba"
    )
    assert plain.n_dim == fast.n_dim and plain._shapes == fast._shapes
    assert {k: v for k, v in plain.dims.items() if k != "y"} == fast.dims
    rng = np.random.default_rng(5)
    c_plain, c_fast = _nutpie_caller(plain), _nutpie_caller(fast)
    for _ in range(4):
        x = rng.normal(0, 0.7, plain.n_dim)
        lp0, g0 = c_plain(x)
        lp1, g1 = c_fast(x)
        np.testing.assert_allclose(lp1, lp0, rtol=RTOL)
        np.testing.assert_allclose(g1, g0, rtol=RTOL, atol=RTOL * np.max(np.abs(g0)))
    # new data swapped into the compiled model (as `models.compiled` reuses it)
    df2 = df.assign(y=1 - df["y"], x=df["x"][::-1].to_numpy())
    md2 = build_model_data(FORMULAS["bernoulli"], df2)
    c_plain2 = _nutpie_caller(plain.with_data(**data_values(md2, pri)))
    c_fast2 = _nutpie_caller(fast.with_data(**data_values(md2, pri)))
    x = rng.normal(0, 0.7, plain.n_dim)
    lp0, g0 = c_plain2(x)
    lp1, g1 = c_fast2(x)
    np.testing.assert_allclose(lp1, lp0, rtol=RTOL)
    np.testing.assert_allclose(g1, g0, rtol=RTOL, atol=RTOL * np.max(np.abs(g0)))
    assert lp0 != pytest.approx(c_plain(x)[0])  # the data did change


def test_ops_gradients_by_finite_differences():
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 7, 50).astype("int32")
    idx[:7] = np.arange(7)
    verify_grad(lambda x: gather(x, idx), [rng.normal(size=7)], rng=rng)
    verify_grad(lambda v: segment_sum(v, idx, 7), [rng.normal(size=50)], rng=rng)
    y = rng.integers(0, 2, 50).astype("int32")
    verify_grad(lambda eta: logit_likelihood(eta, y), [rng.normal(0, 3, 50)], rng=rng)
    trials = rng.integers(1, 9, 50).astype("int32")
    succ = rng.binomial(trials, 0.3).astype("int32")
    verify_grad(lambda eta: logit_likelihood(eta, succ, trials), [rng.normal(0, 3, 50)], rng=rng)


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
def test_ops_agree_with_numpy_and_pymc(mode):
    rng = np.random.default_rng(1)
    x, v, eta = pt.dvector("x"), pt.dvector("v"), pt.dvector("eta")
    i, y, n = pt.ivector("i"), pt.ivector("y"), pt.ivector("n")
    xv, iv = rng.normal(size=9), rng.integers(0, 9, 300).astype("int32")
    vv, ev = rng.normal(size=300), rng.normal(0, 4, 300)
    ev[:4] = [-50.0, 50.0, 0.0, -20.0]  # tails of the softplus
    nv = rng.integers(1, 12, 300).astype("int32")
    yb, yn = rng.integers(0, 2, 300).astype("int32"), rng.binomial(nv, 0.6).astype("int32")
    f = pytensor.function([x, i, v], [gather(x, i), segment_sum(v, i, 9)], mode=mode)
    g, s = f(xv, iv, vv)
    np.testing.assert_array_equal(g, xv[iv])
    np.testing.assert_allclose(s, np.bincount(iv, weights=vv, minlength=9), rtol=1e-13)
    bern = logit_likelihood(eta, y)
    ref_b = pm.logp(pm.Bernoulli.dist(logit_p=eta), y).sum()
    binom = logit_likelihood(eta, y, n)
    ref_n = pm.logp(pm.Binomial.dist(n=n, logit_p=eta), y).sum()
    fb = pytensor.function([eta, y], [bern, pt.grad(bern, eta), ref_b, pt.grad(ref_b, eta)], mode=mode)
    fn = pytensor.function([eta, y, n], [binom, pt.grad(binom, eta), ref_n, pt.grad(ref_n, eta)], mode=mode)
    for out in (fb(ev, yb), fn(ev, yn, nv)):
        np.testing.assert_allclose(out[0], out[2], rtol=RTOL)
        np.testing.assert_allclose(out[1], out[3], rtol=RTOL, atol=1e-14)
    assert fb(ev, np.where(np.arange(300) == 5, 2, yb).astype("int32"))[0] == -np.inf
    with pytest.raises(IndexError):
        f(xv, np.where(np.arange(300) == 5, 9, iv).astype("int32"), vv)
