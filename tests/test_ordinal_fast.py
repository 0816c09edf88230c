"""Exactness of the cumulative-logit family's sampling form, and its input checks (no sampling).

`models.cumulative.hierarchical_cumulative(..., fast_likelihood=True)` (what nutpie samples)
computes the likelihood with one Op, `models.ops.cumulative_loglik` (kernel
`models.kernels.cumulative_logit`). Its log density and gradient (with respect to the
slopes, the cutpoints and every group effect, through the transforms) must equal those of
the default model, whose observed variable is PyMC's ``OrderedLogistic``, at random points:
with PyMC's default compile (the Op's numpy ``perform``) and through nutpie's compiled
callback (the numba kernel), for random intercepts, correlated varying slopes, a second
(crossed) factor, area-level predictors, pooled rows, and per-block centring.
"""

from __future__ import annotations

import warnings

import numpy as np
import nutpie
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from models import DataWarning, FormulaError, build_model_data, resolve_priors
from models.cumulative import category_probabilities, hierarchical_cumulative
from models.ops import cumulative_loglik
from models.priors import PriorError
from models.sampling_form import data_values, sampling_layout, structure_key
from tests.test_models_fast import _logp_dlogp, _nutpie_caller, _points

RTOL = 1e-8
"""PyMC's ``OrderedLogistic`` takes the log of a difference of two logistic CDFs, which loses
digits when both are close to 1 (an upper tail: relative error about 1e-16 / P(Y = k)); the
kernel's form has no such cancellation (`test_kernel_is_exact_in_the_far_tails`, against
50-digit arithmetic). At random points the two agree to about 4e-10 relative; 1e-8 leaves room
for that and nothing else (a wrong term moves the sum by far more)."""

FORMULAS = {
    "slopes_crossed": "y ~ x + w + area + (1 + x | lad) + (1 | school)",
    "random_intercept": "y ~ x + area + x:area + (1 | lad)",
    "intercept_only": "y ~ 1 + (1 | lad)",
    "pooled": "y ~ female + age50 + area + (1 | lad)",
    "pooled_slope": "y ~ female * area + (1 + female | lad) + (1 | school)",
}
LEVELS = ["never", "rarely", "sometimes", "often", "always"]


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 400
    lad = rng.integers(0, 15, n)
    x = rng.normal(size=n)
    eta = 0.5 * x + rng.normal(0, 0.5, 15)[lad] + rng.normal(0, 0.3, 15)[lad] * x
    y = np.searchsorted([-1.5, -0.3, 0.4, 1.6], eta + rng.logistic(size=n))
    return pd.DataFrame(
        {
            "y": pd.Categorical([LEVELS[k] for k in y], categories=LEVELS, ordered=True),
            "x": x,
            "w": rng.normal(size=n),
            "area": rng.normal(size=15)[lad],
            "female": rng.integers(0, 2, n),
            "age50": rng.integers(0, 2, n),
            "lad": [f"E0{k:02d}" for k in lad],
            "school": rng.choice([f"s{k}" for k in range(6)], n),
        }
    )


CASES = [
    ("slopes_crossed", {"lad": True, "school": False}),
    ("pooled_slope", {"lad": False, "school": True}),
    ("intercept_only", False),
] + [
    pytest.param(f, c, marks=pytest.mark.slow)  # the rest of the combinations (14 s each)
    for f in FORMULAS
    for c in (False, True)
]


@pytest.mark.parametrize(("formula", "centered"), CASES)
def test_sampling_form_equals_ordered_logistic(df, formula, centered):
    md = build_model_data(FORMULAS[formula], df)
    assert md.family == "cumulative" and md.response_levels == tuple(LEVELS)
    assert "Intercept" not in md.fixed_terms  # the cutpoints take its place
    priors = resolve_priors(md)
    plain = hierarchical_cumulative(md, priors, centered=centered)
    fast = hierarchical_cumulative(md, priors, centered=centered, fast_likelihood=True)
    (obs,) = plain.observed_RVs
    assert obs.name == "y" and not fast.observed_RVs and [p.name for p in fast.potentials] == ["y_loglik"]
    assert [v.name for v in plain.value_vars] == [v.name for v in fast.value_vars]
    assert [d.name for d in plain.deterministics] == [d.name for d in fast.deterministics]
    assert "cutpoints_c" in {v.name for v in plain.free_RVs}
    f_plain, f_fast = _logp_dlogp(plain), _logp_dlogp(fast)
    for p in _points(plain, 4, seed=3):
        lp0, g0 = f_plain(p)
        lp1, g1 = f_fast(p)
        assert np.isfinite(lp0)
        np.testing.assert_allclose(lp1, lp0, rtol=RTOL)
        np.testing.assert_allclose(g1, g0, rtol=RTOL, atol=RTOL * np.max(np.abs(g0)))


def test_rows_pool_into_counted_category_cells(df):
    triple = pd.concat([df] * 3, ignore_index=True)
    md = build_model_data(FORMULAS["pooled"], triple)
    cells = sampling_layout(md).cells
    distinct = len(set(zip(df["female"], df["age50"], df["lad"], df["y"], strict=True)))
    assert cells == distinct <= len(triple) / 2
    arrays = data_values(md, resolve_priors(md), fast_likelihood=True)
    assert arrays["n_lik"].sum() == len(triple)
    # each category keeps its count
    counts = np.bincount(arrays["y_lik"].astype(int), weights=arrays["n_lik"], minlength=5)
    np.testing.assert_array_equal(counts, np.bincount(md.y, minlength=5))
    assert sampling_layout(build_model_data(FORMULAS["slopes_crossed"], df)).cells is None


def test_nutpie_compiled_fast_model_matches_the_plain_one(df):
    triple = pd.concat([df] * 3, ignore_index=True)
    for formula in ("pooled_slope",):  # slopes, a crossed factor, area predictor, pooled rows
        md = build_model_data(FORMULAS[formula], triple)
        assert sampling_layout(md).cells is not None
        pri = resolve_priors(md)
        plain = nutpie.compile_pymc_model(hierarchical_cumulative(md, pri), backend="numba")
        fast = nutpie.compile_pymc_model(
            hierarchical_cumulative(md, pri, fast_likelihood=True), backend="numba"
        )
        assert plain.n_dim == fast.n_dim and plain._shapes == fast._shapes
        rng = np.random.default_rng(5)
        c_plain, c_fast = _nutpie_caller(plain), _nutpie_caller(fast)
        for _ in range(4):
            x = rng.normal(0, 0.7, plain.n_dim)
            lp0, g0 = c_plain(x)
            lp1, g1 = c_fast(x)
            np.testing.assert_allclose(lp1, lp0, rtol=RTOL)
            np.testing.assert_allclose(g1, g0, rtol=RTOL, atol=RTOL * np.max(np.abs(g0)))
        # new outcomes swapped into the compiled model (as `models.compiled` reuses it)
        reversed_y = pd.Categorical([LEVELS[4 - LEVELS.index(v)] for v in triple["y"]], LEVELS, ordered=True)
        md2 = build_model_data(FORMULAS[formula], triple.assign(y=reversed_y))
        assert sampling_layout(md2) == sampling_layout(md)  # same cells, other categories
        x = rng.normal(0, 0.7, plain.n_dim)
        lp0, g0 = _nutpie_caller(plain.with_data(**data_values(md2, pri)))(x)
        lp1, g1 = _nutpie_caller(fast.with_data(**data_values(md2, pri, fast_likelihood=True)))(x)
        np.testing.assert_allclose(lp1, lp0, rtol=RTOL)
        assert lp0 != pytest.approx(c_plain(x)[0])


def _op_inputs(rng, m=60, q=9, k=3, J=2, K=5):
    XT = rng.normal(size=(k, m))
    PT = rng.integers(0, q, (J, m))
    WT = rng.normal(size=(J, m))
    y = rng.integers(0, K, m).astype(float)
    n = rng.integers(1, 6, m).astype(float)
    return XT, PT, WT, y, n


@pytest.mark.parametrize("unit_w", [True, False])
def test_op_gradient_by_finite_differences(unit_w):
    rng = np.random.default_rng(0)
    XT, PT, WT, y, n = _op_inputs(rng)
    xm = rng.normal(size=3)

    def loglik(b, R, tau):
        return cumulative_loglik(XT, b, R, PT, WT, y, n, tau, unit_w=unit_w, xm=xm)

    verify_grad(loglik, [rng.normal(size=3), rng.normal(0, 2, 9), np.array([-1.2, -0.1, 0.3, 2.0])], rng=rng)


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
@pytest.mark.parametrize("unit_w", [True, False])
def test_op_agrees_with_ordered_logistic_in_both_backends(mode, unit_w):
    """Both backends, 2,000 rows (several of the kernel's 512-row blocks), tails included."""
    rng = np.random.default_rng(1)
    m, q = 2_000, 40
    XT, PT, WT, y, n = _op_inputs(rng, m=m, q=q, k=4, J=3, K=6)
    b, R, tau = pt.dvector("b"), pt.dvector("R"), pt.dvector("tau")
    # eta mostly within +-4, where PyMC's difference of CDFs keeps its digits (the far tails:
    # `test_kernel_is_exact_in_the_far_tails`)
    bv, Rv = rng.normal(0, 0.3, 4), rng.normal(0, 0.7, q)
    Rv[:3] = [-2.5, 2.5, 0.0]
    tv = np.array([-2.0, -0.5, -0.45, 1.0, 3.0])  # two close cutpoints: a thin middle category
    w = 1.0 if unit_w else WT
    eta = pt.dot(XT.T, b) + sum((w if unit_w else w[j]) * R[PT[j]] for j in range(3))
    ref = (n * pm.logp(pm.OrderedLogistic.dist(eta=eta, cutpoints=tau), y.astype(int))).sum()
    lik = cumulative_loglik(XT, b, R, PT, WT, y, n, tau, unit_w=unit_w)
    f = pytensor.function(
        [b, R, tau], [lik, *pt.grad(lik, [b, R, tau]), ref, *pt.grad(ref, [b, R, tau])], mode=mode
    )
    out = f(bv, Rv, tv)
    for got, want in zip(out[:4], out[4:], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    # a code outside 0 .. K-1, or cutpoints out of order: -inf
    bad_y = cumulative_loglik(XT, b, R, PT, WT, np.where(np.arange(m) == 5, 6.0, y), n, tau, unit_w=unit_w)
    g = pytensor.function([b, R, tau], [bad_y, lik], mode=mode)
    assert g(bv, Rv, tv)[0] == -np.inf
    assert g(bv, Rv, tv[[0, 2, 1, 3, 4]])[1] == -np.inf


def test_kernel_is_exact_in_the_far_tails():
    """log P(Y = k) against 50-digit decimal arithmetic where PyMC's difference of CDFs fails
    (both CDFs round to 1: log 0) or loses digits."""
    from decimal import Decimal, getcontext

    getcontext().prec = 50
    tau = np.array([-2.0, -0.5, -0.45, 1.0, 3.0])
    etas = np.array([-45.0, -30.0, -12.0, -3.0, 0.0, 4.0, 25.0, 45.0])
    b = pt.dvector("b")
    for k in range(6):
        y = np.full(len(etas), float(k))
        lik = cumulative_loglik(
            etas[None, :],
            b,
            np.zeros(1),
            np.zeros((0, len(etas)), dtype=int),
            np.zeros((0, 0)),
            y,
            np.ones(len(etas)),
            tau,
        )
        got = [pytensor.function([b], lik, mode=mode)(np.ones(1)) for mode in ("FAST_RUN", "NUMBA")]

        def F(x):
            return 1 / (1 + (-Decimal(x)).exp())

        ext = [None, *tau.tolist(), None]
        want = Decimal(0)
        for eta in etas:
            hi = F(ext[k + 1] - eta) if ext[k + 1] is not None else Decimal(1)
            lo = F(ext[k] - eta) if ext[k] is not None else Decimal(0)
            want += (hi - lo).ln()
        for g in got:
            np.testing.assert_allclose(float(g), float(want), rtol=1e-13)


def test_category_probabilities_sum_to_one_and_follow_the_cutpoints():
    eta = np.array([-3.0, 0.0, 2.0])
    tau = np.array([-1.0, 0.5, 2.0])
    p = category_probabilities(eta, tau)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    np.testing.assert_allclose(p[1, 0], 1 / (1 + np.exp(1.0)))  # P(Y = 1 | eta = 0) = F(tau_1)
    assert p[0, 0] > p[1, 0] > p[2, 0] and p[0, -1] < p[1, -1] < p[2, -1]  # higher eta: higher categories


def test_structure_key_sees_the_family_and_the_number_of_categories(df):
    md = build_model_data(FORMULAS["random_intercept"], df)
    pri = resolve_priors(md)
    key = structure_key(md, pri, centered=False, fast_likelihood=True)
    four = df.assign(y=df["y"].cat.remove_categories(["always"]).fillna("often"))
    four["y"] = four["y"].cat.set_categories(LEVELS[:4], ordered=True)
    md4 = build_model_data(FORMULAS["random_intercept"], four)
    assert len(md4.response_levels) == 4
    assert structure_key(md4, resolve_priors(md4), centered=False, fast_likelihood=True) != key
    binary = df.assign(y=(df["y"] > "sometimes").astype(int))
    mdb = build_model_data(FORMULAS["random_intercept"], binary)
    assert structure_key(mdb, resolve_priors(mdb), centered=False, fast_likelihood=True) != key


# --------------------------------------------------------------------------- input checks


def test_ordinal_response_checks(df):
    # an unordered categorical with more than 2 levels: told to order it or pass the family
    unordered = df.assign(y=pd.Categorical(df["y"].astype(str)))
    with pytest.raises(FormulaError, match="ordered categorical.*family='cumulative'"):
        build_model_data(FORMULAS["random_intercept"], unordered)
    # text given as ordinal: its order is unknown
    with pytest.raises(FormulaError, match="holds text, whose order is unknown"):
        build_model_data(
            FORMULAS["random_intercept"], unordered.assign(y=df["y"].astype(str)), family="cumulative"
        )
    # fewer than 3 categories: use the binary family
    two = df.assign(y=pd.Categorical(np.where(df["y"] > "sometimes", "hi", "lo"), ["lo", "hi"], ordered=True))
    with pytest.raises(FormulaError, match="needs 3 or more; fit the binary"):
        build_model_data(FORMULAS["random_intercept"], two)
    # an empty category: dropped with a warning naming it
    empty = df.assign(y=df["y"].cat.add_categories(["unheard"]).cat.reorder_categories(["unheard", *LEVELS]))
    with pytest.warns(DataWarning, match="'unheard'; dropped"):
        md = build_model_data(FORMULAS["random_intercept"], empty)
    assert md.response_levels == tuple(LEVELS)
    # a 1-7 scale of numbers with family="cumulative": numeric order; without it, the 0/1 error hints
    scale = df.assign(y=df["y"].cat.codes + 1)
    md = build_model_data(FORMULAS["random_intercept"], scale, family="cumulative")
    assert md.response_levels == ("1", "2", "3", "4", "5") and md.y.max() == 4
    with pytest.raises(FormulaError, match="family='cumulative' for an ordinal"):
        build_model_data(FORMULAS["random_intercept"], scale)
    with pytest.raises(FormulaError, match="write the formula with one"):
        build_model_data("y ~ 0 + x + (1 | lad)", df)
    with pytest.raises(FormulaError, match="family must be"):
        build_model_data(FORMULAS["random_intercept"], df, family="ordinal")


def test_cutpoint_prior_by_name(df):
    md = build_model_data(FORMULAS["random_intercept"], df)
    assert str(resolve_priors(md)["cutpoints"]) == "normal(0, 2.5)" and "Intercept" not in resolve_priors(md)
    assert (
        str(resolve_priors(md, {"cutpoints": "student_t(3, 0, 2.5)"})["cutpoints"]) == "student_t(3, 0, 2.5)"
    )
    with pytest.raises(PriorError, match="must be normal or student_t"):
        resolve_priors(md, {"cutpoints": "halfnormal(1)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(PriorError, match="unknown prior name 'cutpoints'"):
            resolve_priors(
                build_model_data("y ~ x + (1 | lad)", df.assign(y=(df["x"] > 0).astype(int))),
                {"cutpoints": "normal(0, 1)"},
            )
