"""Structure tests of the model core: formulas, priors, parameterisations, no sampling
unless the test is about sampling (then tiny chains)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from models import (
    FormulaError,
    PriorError,
    SamplerSettingsError,
    build_model_data,
    default_priors,
    fit,
    hierarchical_logistic,
    resolve_priors,
    sample_prior_predictive,
)
from models.logistic import HierarchicalCentring, hierarchical_centring


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 300
    return pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "x": rng.normal(size=n),
            "w": rng.normal(size=n),
            "edu": rng.choice(["none", "gcse", "degree"], n),
            "lad": rng.choice([f"E0{k}" for k in range(12)], n),
            "school": rng.choice([f"s{k}" for k in range(5)], n),
            "cls": rng.choice(["a", "b", "c"], n),
            "succ": rng.integers(0, 6, n),
            "n": np.full(n, 6),
        }
    )


def test_fixed_terms_follow_treatment_contrasts(df):
    md = build_model_data("y ~ x * w + edu + (1 | lad)", df)
    # reference level is the first sorted level ("degree"), as in lme4; terms by degree, as in R
    assert md.fixed_terms == ["Intercept", "x", "w", "edu[gcse]", "edu[none]", "x:w"]
    j = md.fixed_terms.index("x:w")
    np.testing.assert_allclose(md.X[:, j], df["x"] * df["w"])
    np.testing.assert_array_equal(md.X[:, md.fixed_terms.index("edu[none]")], (df["edu"] == "none"))


def test_group_effects_use_integer_index_not_dummies(df):
    md = build_model_data("y ~ x + (1 + x | lad)", df)
    (block,) = md.blocks
    assert block.idx.dtype.kind == "i" and block.idx.shape == (len(df),)
    assert block.Z.shape == (len(df), 2)  # intercept and slope, not one column per LA
    assert [block.levels[i] for i in block.idx[:5]] == list(df["lad"].iloc[:5])
    assert block.correlated


def test_crossed_nested_and_uncorrelated_blocks(df):
    md = build_model_data("y ~ x + (1 | lad) + (1 | school/cls) + (1 + x || edu)", df)
    names = [b.name for b in md.blocks]
    assert names == ["lad", "school", "school__cls", "edu"]
    nested = md.blocks[2]
    assert nested.n_levels == df.groupby(["school", "cls"]).ngroups
    assert not md.blocks[3].correlated
    model = hierarchical_logistic(md, resolve_priors(md))
    free = {v.name for v in model.free_RVs}
    assert {"sd_lad", "sd_school", "sd_school__cls", "sd_edu"} <= free
    assert not any(n.startswith("chol_edu") for n in free)


def test_correlated_block_has_lkj_and_labelled_dims(df):
    md = build_model_data("y ~ x + (1 + x | lad)", df)
    model = hierarchical_logistic(md, resolve_priors(md))
    assert "chol_lad" in {v.name for v in model.free_RVs}
    assert model.named_vars_to_dims["r_lad"] == ("lad", "lad_term")
    assert list(model.coords["lad"]) == sorted(df["lad"].unique())
    assert list(model.coords["lad_term"]) == ["Intercept", "x"]
    assert list(model.coords["coef"]) == ["x"]


def test_centred_and_non_centred_have_the_same_density_of_r(df):
    """The centred random intercept is sampled on the intercept, m = Intercept_c + r (Jacobian
    1); the non-centred one as z = r / sd (Jacobian sd per level). At matching points the joint
    log densities differ by exactly those Jacobians, and both record the same r."""
    md = build_model_data("y ~ x + (1 | lad)", df)
    pri = resolve_priors(md)
    nc = hierarchical_logistic(md, pri, centered=False)
    c = hierarchical_logistic(md, pri, centered=True)
    assert "z_lad" in nc.named_vars and "z_lad" not in c.named_vars
    assert hierarchical_centring(md, {"lad": True}) == HierarchicalCentring("lad", (), (None,))
    assert "m_lad" in {v.name for v in c.free_RVs} and "r_lad" in {v.name for v in c.deterministics}
    rng = np.random.default_rng(0)
    r = rng.normal(0, 0.5, size=(12, 1))
    point_c = c.initial_point()
    point_c |= {"Intercept_c": 0.7, "b": np.array([0.3]), "sd_lad_log__": np.array([-0.4])}
    point_c["m_lad"] = 0.7 + r
    point_nc = {k: v for k, v in point_c.items() if k != "m_lad"}
    point_nc["z_lad"] = r / np.exp(-0.4)
    # same likelihood
    ll_c = c.compile_logp(vars=c.observed_RVs)(point_c)
    ll_nc = nc.compile_logp(vars=nc.observed_RVs)(point_nc)
    np.testing.assert_allclose(ll_c, ll_nc, rtol=1e-10)
    # same joint density of (Intercept_c, b, sd, r): z's density carries sd^12
    lp_c, lp_nc = c.compile_logp()(point_c), nc.compile_logp()(point_nc)
    np.testing.assert_allclose(lp_nc, lp_c + 12 * -0.4, rtol=1e-10)
    (r_graph,) = c.replace_rvs_by_values([c["r_lad"]])
    r_c = c.compile_fn(r_graph, inputs=c.value_vars, on_unused_input="ignore")(point_c)
    np.testing.assert_allclose(r_c, r, rtol=1e-12)
    # a model without an intercept, or a non-centred block, keeps r itself
    assert hierarchical_centring(build_model_data("y ~ 0 + x + (1 | lad)", df), {"lad": True}) is None
    assert hierarchical_centring(md, {"lad": False}) is None


def test_hierarchical_centring_of_slopes_and_area_predictors_keeps_the_density(df):
    """A centred (1 + x | lad) block with an area predictor a is sampled as each LA's own
    coefficients, m = (Intercept_c + a_j b_a, b_x) + r. At matching points the likelihood
    equals the non-centred form's and the joint densities differ by exactly the Jacobian of
    r = z L' (|det L| per level), and the recorded r is the same."""
    d = df.copy()
    area = {lad: 0.5 * k - 2.0 for k, lad in enumerate(sorted(d["lad"].unique()))}
    d["a"] = d["lad"].map(area)
    md = build_model_data("y ~ x + a + (1 + x | lad)", d)
    by_block = {"lad": True}
    hc = hierarchical_centring(md, by_block)
    assert hc == HierarchicalCentring("lad", (1,), (None, 0))  # b = (x, a): a is area-level
    # a slope term whose values differ from the fixed column is not centred on it
    md_w = build_model_data("y ~ x + a + (1 + w | lad)", d)
    assert hierarchical_centring(md_w, by_block) == HierarchicalCentring("lad", (1,), (None, None))
    pri = resolve_priors(md)
    c = hierarchical_logistic(md, pri, centered=True)
    nc = hierarchical_logistic(md, pri, centered=False)
    assert "m_lad" in {v.name for v in c.free_RVs} and "z_lad" in {v.name for v in nc.free_RVs}
    rng = np.random.default_rng(1)
    r = rng.normal(0, 0.4, size=(12, 2))
    point_nc = nc.initial_point()
    point_nc |= {"Intercept_c": 0.4, "b": np.array([0.3, -0.2])}
    packed = [k for k in point_nc if k.startswith("chol_lad")][0]
    point_nc[packed] = np.array([-0.3, 0.2, -0.5])
    graphs = nc.replace_rvs_by_values([nc["sd_lad"], nc["cor_lad"]])
    sd, cor = nc.compile_fn(graphs, inputs=nc.value_vars, on_unused_input="ignore")(point_nc)
    L = np.linalg.cholesky(np.outer(sd, sd) * cor)
    point_nc["z_lad"] = np.linalg.solve(L, r.T).T  # r = z L'
    levels = list(md.blocks[0].levels)
    a_centred = np.array([area[lv] for lv in levels]) - d["a"].mean()
    mean = np.column_stack([0.4 + a_centred * -0.2, np.full(12, 0.3)])
    point_c = {k: v for k, v in point_nc.items() if k != "z_lad"} | {"m_lad": mean + r}
    ll_c = c.compile_logp(vars=c.observed_RVs)(point_c)
    ll_nc = nc.compile_logp(vars=nc.observed_RVs)(point_nc)
    np.testing.assert_allclose(ll_c, ll_nc, rtol=1e-10)
    lp_c, lp_nc = c.compile_logp()(point_c), nc.compile_logp()(point_nc)
    np.testing.assert_allclose(lp_nc, lp_c + 12 * np.log(np.diag(L)).sum(), rtol=1e-10)
    (r_graph,) = c.replace_rvs_by_values([c["r_lad"]])
    r_c = c.compile_fn(r_graph, inputs=c.value_vars, on_unused_input="ignore")(point_c)
    np.testing.assert_allclose(r_c, r, rtol=1e-10, atol=1e-12)


def test_binomial_equals_expanded_bernoulli(df):
    """cbind(s, n - s) and the same data as 0/1 rows have the same log-likelihood up to the
    binomial coefficient."""
    from scipy.special import gammaln

    small = df.iloc[:40].copy()
    md_b = build_model_data("cbind(succ, n - succ) ~ x + (1 | lad)", small)
    assert md_b.family == "binomial" and md_b.trials.tolist() == [6] * 40
    rows = []
    for _, r in small.iterrows():
        rows += [{"y": int(k < r.succ), "x": r.x, "lad": r.lad} for k in range(int(r.n))]
    long = pd.DataFrame(rows)
    md_l = build_model_data("y ~ x + (1 | lad)", long)
    m_b = hierarchical_logistic(md_b, resolve_priors(md_b))
    m_l = hierarchical_logistic(md_l, resolve_priors(md_l))
    pt_b, pt_l = m_b.initial_point(), m_l.initial_point()
    for k in pt_b:
        pt_b[k] = pt_b[k] + 0.3
        pt_l[k] = pt_b[k]
    ll_b = m_b.compile_logp(vars=m_b.observed_RVs)(pt_b)
    ll_l = m_l.compile_logp(vars=m_l.observed_RVs)(pt_l)
    log_binom = np.sum(gammaln(7) - gammaln(small.succ + 1) - gammaln(7 - small.succ))
    np.testing.assert_allclose(ll_b, ll_l + log_binom, rtol=1e-9)


def test_p_syntax_for_binomial(df):
    md = build_model_data("p(succ, n) ~ x", df)
    assert md.family == "binomial" and (md.trials == 6).all()


def test_default_priors_scale_with_predictor_sd(df):
    d = df.assign(x10=df["x"] * 10)
    md = build_model_data("y ~ x10 + (1 + x10 | lad)", d)
    pri = default_priors(md)
    assert pri["b[x10]"].params[1] == pytest.approx(2.5 / np.std(d["x10"]), rel=1e-3)
    assert str(pri["sd_lad"]) == "halfnormal(1)" and str(pri["cor_lad"]) == "lkj(2)"


def test_prior_overrides_by_name_reach_the_model(df):
    md = build_model_data("y ~ x + w + (1 + x | lad)", df)
    pri = resolve_priors(md, {"b": "normal(0, 1)", "b[w]": "normal(0.5, 0.1)", "sd_lad": "exponential(3)"})
    assert str(pri["b[x]"]) == "normal(0, 1)" and str(pri["b[w]"]) == "normal(0.5, 0.1)"
    prior = sample_prior_predictive(
        "y ~ x + w + (1 + x | lad)",
        df,
        priors={"b[w]": "normal(0.5, 0.1)", "sd_lad": "exponential(3)"},
        draws=2000,
        seed=1,
    )
    b = prior["prior"]["b"].sel(coef="w").values.ravel()
    assert abs(b.mean() - 0.5) < 0.02 and abs(b.std() - 0.1) < 0.01
    sd = prior["prior"]["sd_lad"].values.reshape(-1, 2)
    assert abs(sd.mean() - 1 / 3) < 0.03  # exponential(3) has mean 1/3
    assert "y" in prior["prior_predictive"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sd_school": "halfnormal(1)"}, "unknown prior name 'sd_school'"),
        ({"b[x]": "cauchy(0, 1)"}, "unknown prior family 'cauchy'"),
        ({"sd_lad": "normal(0, 1)"}, "must be positive-valued"),
        ({"b[x]": "normal(0, -1)"}, "sigma must be positive"),
        ({"Intercept": "normal(0)"}, "takes 2 parameters"),
        ({"cor_lad": "normal(0, 1)"}, "must be lkj"),
    ],
)
def test_bad_priors_are_named(df, overrides, message):
    md = build_model_data("y ~ x + (1 + x | lad)", df)
    with pytest.raises(PriorError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_priors(md, overrides)


@pytest.mark.parametrize(
    ("formula", "mutate", "message"),
    [
        ("y ~ xx + (1 | lad)", None, "term 'xx' is not a column of the data; did you mean 'x'"),
        ("y ~ x + (1 | ladd)", None, "'ladd' is not a column"),
        ("yy ~ x", None, "'yy' is not a column"),
        ("y ~ x", lambda d: d.assign(y=d["y"] * 2), "must be 0/1; row"),
        ("y ~ x", lambda d: d.assign(y=1), "is 1 for every one of the"),
        ("y ~ x + w", lambda d: d.assign(w=3.0), "'w' .* takes the single value 3"),
        ("y ~ x + w", lambda d: d.assign(w=d["x"] * 2), "rank deficient"),
        ("cbind(succ, n - succ) ~ x", lambda d: d.assign(succ=d["n"] + 1), "exceed trials"),
        ("y ~ x", lambda d: d.assign(y=d["y"].astype(str).str.replace("1", "yes")), "non-numeric value"),
        ("y ~ x ~ w", None, "exactly one '~'"),
        ("y ~ x + (1 | lad", None, "unbalanced"),
    ],
)
def test_bad_formulas_and_data_get_clear_errors(df, formula, mutate, message):
    data = mutate(df) if mutate else df
    with pytest.raises(FormulaError, match=message):
        build_model_data(formula, data)


def test_missing_rows_are_counted_by_variable(df):
    d = df.copy()
    d.loc[:9, "x"] = np.nan
    d.loc[5:14, "lad"] = None
    d.loc[20, "w"] = np.inf
    md = build_model_data("y ~ x + w + (1 | lad)", d)
    assert md.drops == {
        "missing or non-finite x": 10,
        "missing or non-finite w": 1,
        "missing or non-finite lad": 5,
    }
    assert md.n_input == md.n_obs + sum(md.drops.values())
    table = md.drop_table()
    assert table["rows"].iloc[0] == len(d) and table["rows"].iloc[-1] == md.n_obs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sampler": "stan"}, "unknown sampler 'stan'"),
        ({"chains": 0}, "chains must be an integer >= 1"),
        ({"draws": 10.5}, "draws must be an integer"),
        ({"tune": -1}, "tune must be an integer >= 0"),
        ({"target_accept": 1.2}, "target_accept must be between 0 and 1"),
    ],
)
def test_invalid_sampler_settings(df, kwargs, message):
    with pytest.raises(SamplerSettingsError, match=message):
        fit("y ~ x", df, **kwargs)


def test_model_has_no_dense_dummy_matrix(df):
    md = build_model_data("y ~ x + (1 + x | lad)", df)
    model = hierarchical_logistic(md, resolve_priors(md))
    shapes = {v.name: v.get_value().shape for v in model.data_vars if hasattr(v, "get_value")}
    assert all(len(s) <= 2 and (len(s) < 2 or s[1] <= md.X.shape[1]) for s in shapes.values()), shapes
    assert isinstance(model, pm.Model)


def test_fit_takes_prebuilt_model_data_only_for_its_own_formula(df):
    md = build_model_data("y ~ x + (1 | lad)", df)
    with pytest.raises(ValueError, match="model data were built for"):
        fit("y ~ w + (1 | lad)", md)
