"""Exactness of the sampling form of the model (no sampling).

`models.logistic.hierarchical_logistic(..., fast_likelihood=True)` (what nutpie samples)
computes the likelihood with one Op, `models.ops.glmm_loglik` (kernel:
`models.kernels.glmm_logit`), reading area-level predictors once per level. Here the fast
and the straightforward model are compiled for the same small data and their log densities
and gradients compared at random points, with PyMC's default compile and through nutpie's
compiled callback; the Op's gradient is checked by finite differences and the kernel's
``exp``/``log1p`` against the C library's.
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
from scipy.special import gammaln

from models import build_model_data, resolve_priors
from models.kernels import exp_neg, log1p_unit
from models.logistic import hierarchical_centring, hierarchical_logistic
from models.ops import glmm_loglik
from models.sampling_form import data_values, interleaving, sampling_layout, structure_key

RTOL = 1e-10

FORMULAS = {
    # a correlated varying slope and a second block (random intercept) in one model
    # (``area`` is constant within LAs: read once per LA by the sampling form)
    "bernoulli": "y ~ x + w + area + (1 + x | lad) + (1 | school)",
    "binomial": "cbind(succ, n - succ) ~ x + area + (1 + x | lad) + (1 | school)",
    "intercept_only": "y ~ 1 + (1 | lad)",
    "random_intercept": "y ~ x + area + x:area + (1 | lad)",
    # categorical individual predictors: rows pool into binomial cells
    "pooled": "y ~ female + age50 + area + (1 | lad)",
    "pooled_slope": "cbind(succ, n - succ) ~ female * area + (1 + female | lad) + (1 | school)",
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
            "area": rng.normal(size=15)[lad],
            "female": rng.integers(0, 2, n),
            "age50": rng.integers(0, 2, n),
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


CASES = [(f, c) for f in FORMULAS for c in (False, True)] + [
    # centred for one block, non-centred for the other (the per-factor choice of `models.fitting.fit`)
    ("bernoulli", {"lad": True, "school": False}),
    ("pooled_slope", {"lad": False, "school": True}),
]


@pytest.mark.parametrize(("formula", "centered"), CASES)
def test_sampling_form_has_the_same_log_density_and_gradient(df, formula, centered):
    md = build_model_data(FORMULAS[formula], df)
    priors = resolve_priors(md)
    plain = hierarchical_logistic(md, priors, centered=centered)
    fast = hierarchical_logistic(md, priors, centered=centered, fast_likelihood=True)
    # same free parameters (names and shapes) and the same reported variables
    assert [v.name for v in plain.value_vars] == [v.name for v in fast.value_vars]
    assert [d.name for d in plain.deterministics] == [d.name for d in fast.deterministics]
    if isinstance(centered, dict):  # each block as chosen: r_<g> (or m_<g>) sampled (centred) or z_<g>
        free = {v.name for v in plain.value_vars}
        hc = hierarchical_centring(md, centered)
        sampled = {g: f"m_{g}" if hc and g == hc.block else f"r_{g}" for g in centered}
        assert {g: sampled[g] in free and f"z_{g}" not in free for g in centered} == centered
    reported = [v.name for v in (*plain.free_RVs, *plain.deterministics)]
    assert {k: plain.named_vars_to_dims.get(k) for k in reported} == {
        k: fast.named_vars_to_dims.get(k) for k in reported
    }
    f_plain, f_fast = _logp_dlogp(plain), _logp_dlogp(fast)
    for p in _points(plain, 4, seed=3):
        lp0, g0 = f_plain(p)
        lp1, g1 = f_fast(p)
        assert np.isfinite(lp0)
        np.testing.assert_allclose(lp1, lp0, rtol=RTOL)
        np.testing.assert_allclose(g1, g0, rtol=RTOL, atol=RTOL * np.max(np.abs(g0)))


def test_sampling_layout_reads_area_predictors_per_level(df):
    md = build_model_data(FORMULAS["bernoulli"], df)
    layout = sampling_layout(md)
    coefs = [t for t in md.fixed_terms if t != "Intercept"]
    assert [coefs[j] for j in layout.level_cols] == ["area"]
    assert [coefs[j] for j in layout.row_cols] == ["x", "w"]
    assert md.blocks[layout.level_block].factor == "lad" and not layout.unit_w
    ri = sampling_layout(build_model_data(FORMULAS["random_intercept"], df))
    assert len(ri.level_cols) == 1 and len(ri.row_cols) == 2 and ri.unit_w  # x:area varies within LAs
    assert layout.cells is None and ri.cells is None  # continuous x: nothing to pool
    pooled = build_model_data(FORMULAS["pooled"], df)
    cells = sampling_layout(pooled).cells
    assert cells == len(set(zip(df["female"], df["age50"], df["lad"], strict=True))) <= 60
    arrays = data_values(pooled, resolve_priors(pooled), fast_likelihood=True)
    assert arrays["y_lik"].shape == (cells,) and arrays["y_lik"].sum() == df["y"].sum()
    assert arrays["n_lik"].sum() == len(df) and arrays["XS_rows"].shape == (2, cells)  # dummies: float32
    # one row that breaks the constancy moves the column back to the rows
    md2 = build_model_data(FORMULAS["bernoulli"], df.assign(area=df["area"].where(df.index != 7, 99.0)))
    assert sampling_layout(md2).level_cols == ()


def _equal_pairs(v: np.ndarray) -> int:
    return int(np.sum(v[1:] == v[:-1]))


def test_rows_are_stored_interleaved_by_level(df):
    rng = np.random.default_rng(5)
    levels = rng.integers(0, 7, 200)
    order = interleaving(levels)
    assert np.array_equal(np.sort(order), np.arange(200))
    counts = np.sort(np.bincount(levels))
    # neighbours share a level only once a single level has rows left (36 and 32 rows here)
    assert 0 < _equal_pairs(levels[order]) <= counts[-1] - counts[-2]
    for lv in range(7):  # each level's rows keep their order
        assert np.all(np.diff(order[levels[order] == lv]) > 0)
    # people sorted by LA, as survey files often are: stored interleaved, the same rows
    by_lad = df.sort_values("lad", kind="stable", ignore_index=True)
    md = build_model_data(FORMULAS["bernoulli"], by_lad)
    assert _equal_pairs(md.blocks[0].idx) == len(df) - md.blocks[0].n_levels
    stored = data_values(md, resolve_priors(md), fast_likelihood=True)
    lad_counts = np.sort(np.bincount(md.blocks[0].idx))
    assert _equal_pairs(stored["P_effects"][0]) <= lad_counts[-1] - lad_counts[-2]

    def rows(a):
        table = np.vstack([a["XT_rows"], a["P_effects"], a["W_effects"], a["y_lik"], a["n_lik"]])
        return table[:, np.lexsort(table[::-1])]

    md0 = build_model_data(FORMULAS["bernoulli"], df)
    np.testing.assert_array_equal(
        rows(stored), rows(data_values(md0, resolve_priors(md0), fast_likelihood=True))
    )


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
        structure_key(md, pri, centered=c, fast_likelihood=lk) for c in (False, True) for lk in (False, True)
    }
    assert len(keys) == 4
    # the choice per block is part of the key; a dict naming every block alike is the bool
    mixed = {
        structure_key(md, pri, centered={"lad": c, "school": not c}, fast_likelihood=True)
        for c in (False, True)
    }
    assert len(mixed) == 2 and not mixed & keys
    assert structure_key(
        md, pri, centered={"lad": True, "school": True}, fast_likelihood=True
    ) == structure_key(md, pri, centered=True, fast_likelihood=True)
    # a different area-level layout is a different compiled model; new values of the same layout are not
    moved = df.assign(area=df["area"].where(df.index != 7, 99.0))
    shifted = df.assign(area=df["area"] + 1.0, y=1 - df["y"])
    key = structure_key(md, pri, centered=False, fast_likelihood=True)
    assert (
        structure_key(
            build_model_data(FORMULAS["bernoulli"], moved), pri, centered=False, fast_likelihood=True
        )
        != key
    )
    assert (
        structure_key(
            build_model_data(FORMULAS["bernoulli"], shifted), pri, centered=False, fast_likelihood=True
        )
        == key
    )


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
    plain = nutpie.compile_pymc_model(hierarchical_logistic(md, pri), backend="numba")
    fast = nutpie.compile_pymc_model(hierarchical_logistic(md, pri, fast_likelihood=True), backend="numba")
    assert plain.n_dim == fast.n_dim and plain._shapes == fast._shapes
    assert {k: plain.dims.get(k) for k in plain._shapes} == {k: fast.dims.get(k) for k in fast._shapes}
    rng = np.random.default_rng(5)
    c_plain, c_fast = _nutpie_caller(plain), _nutpie_caller(fast)
    for _ in range(4):
        x = rng.normal(0, 0.7, plain.n_dim)
        lp0, g0 = c_plain(x)
        lp1, g1 = c_fast(x)
        np.testing.assert_allclose(lp1, lp0, rtol=RTOL)
        np.testing.assert_allclose(g1, g0, rtol=RTOL, atol=RTOL * np.max(np.abs(g0)))
    # new data swapped into the compiled model (as `models.compiled` reuses it)
    df2 = df.assign(y=1 - df["y"], x=df["x"][::-1].to_numpy(), area=df["area"] * 2.0)
    md2 = build_model_data(FORMULAS["bernoulli"], df2)
    c_plain2 = _nutpie_caller(plain.with_data(**data_values(md2, pri)))
    c_fast2 = _nutpie_caller(fast.with_data(**data_values(md2, pri, fast_likelihood=True)))
    x = rng.normal(0, 0.7, plain.n_dim)
    lp0, g0 = c_plain2(x)
    lp1, g1 = c_fast2(x)
    np.testing.assert_allclose(lp1, lp0, rtol=RTOL)
    np.testing.assert_allclose(g1, g0, rtol=RTOL, atol=RTOL * np.max(np.abs(g0)))
    assert lp0 != pytest.approx(c_plain(x)[0])  # the data did change


def _op_inputs(rng, m=60, q=9, k=3, J=2, binomial=False):
    XT = rng.normal(size=(k, m))
    PT = rng.integers(0, q, (J, m))
    WT = rng.normal(size=(J, m))
    n = rng.integers(1, 9, m).astype(float) if binomial else np.ones(m)
    y = rng.binomial(n.astype(int), 0.4).astype(float)
    return XT, PT, WT, y, n


@pytest.mark.parametrize("unit_w", [True, False])
@pytest.mark.parametrize("family", ["bernoulli", "binomial"])
def test_op_gradient_by_finite_differences(family, unit_w):
    rng = np.random.default_rng(0)
    XT, PT, WT, y, n = _op_inputs(rng, binomial=family == "binomial")

    def loglik(b, c, R):
        return glmm_loglik(XT, b, c, R, PT, WT, y, n, 0.0, family=family, unit_w=unit_w)

    verify_grad(loglik, [rng.normal(size=3), np.asarray(0.3), rng.normal(0, 2, 9)], rng=rng)


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
@pytest.mark.parametrize("unit_w", [True, False])
def test_op_agrees_with_pymc_in_both_backends(mode, unit_w):
    rng = np.random.default_rng(1)
    m, q = 2_000, 40  # several blocks of the kernel's 512 rows
    XT, PT, WT, y, n = _op_inputs(rng, m=m, q=q, k=4, J=3, binomial=True)
    b, c, R = pt.dvector("b"), pt.dscalar("c"), pt.dvector("R")
    bv, Rv = rng.normal(0, 1, 4), rng.normal(0, 3, q)
    Rv[:3] = [-60.0, 60.0, 0.0]  # tails of the softplus
    w = 1.0 if unit_w else WT
    eta = c + pt.dot(XT.T, b) + sum((w if unit_w else w[j]) * R[PT[j]] for j in range(3))
    const = float(np.sum(gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)))
    for family, yy, nn, ref in (
        (
            "bernoulli",
            (y > 0).astype(float),
            n,
            pm.logp(pm.Bernoulli.dist(logit_p=eta), (y > 0).astype(float)).sum(),
        ),
        ("binomial", y, n, pm.logp(pm.Binomial.dist(n=n, logit_p=eta), y).sum()),
    ):
        lik = glmm_loglik(
            XT, b, c, R, PT, WT, yy, nn, const if family == "binomial" else 0.0, family=family, unit_w=unit_w
        )
        f = pytensor.function(
            [b, c, R], [lik, *pt.grad(lik, [b, c, R]), ref, *pt.grad(ref, [b, c, R])], mode=mode
        )
        out = f(bv, 0.2, Rv)
        for got, want in zip(out[:4], out[4:], strict=True):
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-12)
    bad = glmm_loglik(
        XT, b, c, R, PT, WT, np.where(np.arange(m) == 5, 9.0, y), n, 0.0, family="binomial", unit_w=unit_w
    )
    assert pytensor.function([b, c, R], bad, mode=mode)(bv, 0.2, Rv) == -np.inf


def test_kernel_exp_and_log1p_match_the_c_library():
    rng = np.random.default_rng(2)
    a = np.concatenate([rng.uniform(0, 40, 50_000), rng.uniform(0, 1e-3, 1000), [0.0, 1e-300, 707.9]])
    out, bits = np.empty_like(a), np.empty(a.shape[0], dtype=np.int64)
    exp_neg(a, out, bits)
    np.testing.assert_allclose(out, np.exp(-a), rtol=4e-16, atol=0)
    big = np.array([708.5, 745.0, 1e6])
    exp_neg(big, out[:3], bits[:3])
    assert np.all(out[:3] == 0.0)
    e = np.concatenate([rng.uniform(0, 1, 50_000), [0.0, 1e-300, 1e-17, 0.41421356237309503, 1.0]])
    got = np.empty_like(e)
    log1p_unit(e, got)
    np.testing.assert_allclose(got, np.log1p(e), rtol=6e-16, atol=0)


def test_sampling_form_is_computed_once_per_fit(df, monkeypatch):
    """Layout, pooling and storage are worked out once per fit (the structure key, the data
    values and the model all ask for them); a second fit of new data works them out again."""
    import models.sampling_form as SF
    from models import fit

    calls = []
    real = SF._sampling_form

    def counted(md):
        calls.append(md)
        return real(md)

    monkeypatch.setattr(SF, "_sampling_form", counted)
    f = fit(
        FORMULAS["random_intercept"],
        df,
        chains=1,
        draws=20,
        tune=20,
        seed=1,
        progressbar=False,
        escalate=False,
    )
    assert len(calls) == 1 and calls[0] is f.md
    fit(
        FORMULAS["random_intercept"],
        df.sample(frac=1.0, random_state=2),
        chains=1,
        draws=20,
        tune=20,
        seed=1,
        progressbar=False,
        escalate=False,
    )
    assert len(calls) == 2
