"""Survey weights: the reader's weight and design columns, the synthetic informative design,
and the weighted (pseudo-likelihood) model: its log density and gradient, sampling form
against the plain model, and the scalings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import build_model_data, resolve_priors
from models.formula import FormulaError
from models.logistic import hierarchical_logistic
from models.sampling_form import data_values, structure_key
from models.weights import attach_weights, scale_weights

RTOL = 1e-10

FORMULAS = {
    "bernoulli": "y ~ x + area + (1 + x | lad) + (1 | school)",
    "binomial": "cbind(succ, n - succ) ~ x + area + (1 | lad)",
    "pooled": "y ~ female + age50 + area + (1 | lad)",
    "single_level": "y ~ x + female + area",
    "uncorrelated": "y ~ x + (1 + x || lad)",
}


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 300
    lad = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    eta = -0.2 + 0.5 * x + rng.normal(0, 0.5, 12)[lad]
    return pd.DataFrame(
        {
            "y": rng.binomial(1, 1 / (1 + np.exp(-eta))),
            "x": x,
            "area": rng.normal(size=12)[lad],
            "female": rng.integers(0, 2, n),
            "age50": rng.integers(0, 2, n),
            "lad": [f"E0{k:02d}" for k in lad],
            "school": rng.choice([f"s{k}" for k in range(5)], n),
            "succ": rng.binomial(6, 1 / (1 + np.exp(-eta))),
            "n": np.full(n, 6),
            "w": rng.gamma(2.0, 0.5, n) + 0.05,
            "la_w": rng.gamma(3.0, 1.0, 12)[lad] + 0.1,
        }
    )


def _points(model, k: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    ip = model.initial_point()
    return [{name: v + rng.normal(0, 0.7, np.shape(v)) for name, v in ip.items()} for _ in range(k)]


def _weighted(formula: str, df: pd.DataFrame, scaling: str = "size", group: bool = False):
    md = build_model_data(formula, df)
    gw = {"lad": df["la_w"].to_numpy()[md.rows]} if group else None
    attach_weights(md, df["w"].to_numpy()[md.rows], scaling, gw)
    return md


@pytest.mark.parametrize(
    ("formula", "centered", "group"),
    [
        ("bernoulli", False, False),
        ("binomial", True, False),
        ("single_level", False, False),
        ("pooled", False, True),
        ("uncorrelated", True, True),
    ],
)
def test_weighted_sampling_form_equals_the_plain_weighted_model(df, formula, centered, group):
    md = _weighted(FORMULAS[formula], df, group=group)
    priors = resolve_priors(md)
    plain = hierarchical_logistic(md, priors, centered=centered)
    fast = hierarchical_logistic(md, priors, centered=centered, fast_likelihood=True)
    assert [v.name for v in plain.value_vars] == [v.name for v in fast.value_vars]
    lp0, dlp0 = plain.compile_logp(), plain.compile_dlogp()
    lp1, dlp1 = fast.compile_logp(), fast.compile_dlogp()
    for p in _points(plain, 3, seed=2):
        np.testing.assert_allclose(lp1(p), lp0(p), rtol=RTOL)
        g0 = np.asarray(dlp0(p))
        np.testing.assert_allclose(np.asarray(dlp1(p)), g0, rtol=RTOL, atol=RTOL * np.abs(g0).max())


def test_weighted_log_likelihood_is_the_weighted_sum(df):
    """The model's log density minus its prior is sum_i w_i log p(y_i | eta_i), computed by hand."""
    md = _weighted(FORMULAS["single_level"], df, scaling="none")
    model = hierarchical_logistic(md, resolve_priors(md))
    point = _points(model, 1, seed=4)[0]
    b = point["b"]
    ic = point["Intercept_c"]
    X = md.X[:, 1:]
    eta = ic + (X - X.mean(axis=0)) @ b
    by_hand = np.sum(df["w"].to_numpy() * (md.y * eta - np.log1p(np.exp(eta))))
    obs = model.compile_fn(model.observedlogp)
    assert float(obs(point)) == pytest.approx(by_hand, rel=1e-12)
    unweighted = build_model_data(FORMULAS["single_level"], df)
    lp_w = float(model.compile_logp()(point))
    lp_u = float(hierarchical_logistic(unweighted, resolve_priors(unweighted)).compile_logp()(point))
    assert abs(lp_w - lp_u) > 1.0  # the weights change the density


def test_scalings_sum_to_size_or_effective_size():
    rng = np.random.default_rng(1)
    w = rng.gamma(2.0, 3.0, 50)
    g = rng.integers(0, 4, 50)
    size = scale_weights(w, g, "size")
    eff = scale_weights(w, g, "effective")
    for j in range(4):
        m = g == j
        assert size[m].sum() == pytest.approx(m.sum())
        assert eff[m].sum() == pytest.approx(w[m].sum() ** 2 / (w[m] ** 2).sum())
        assert np.allclose(size[m] / w[m], size[m][0] / w[m][0])  # proportional within the group
    assert np.array_equal(scale_weights(w, g, "none"), w)
    assert scale_weights(w, None, "size").sum() == pytest.approx(50)


def test_structure_key_sees_weights_and_data_values_carry_them(df):
    plain = build_model_data(FORMULAS["pooled"], df)
    md = _weighted(FORMULAS["pooled"], df)
    pr = resolve_priors(md)
    for fast in (False, True):
        assert structure_key(md, pr, centered=False, fast_likelihood=fast) != structure_key(
            plain, pr, centered=False, fast_likelihood=fast
        )
    vals = data_values(md, pr, fast_likelihood=True)
    assert vals["n_lik"].sum() == pytest.approx(md.n_obs)  # "size": weights sum to the rows per LA
    assert vals["y_lik"].sum() == pytest.approx(np.sum(md.weights * md.y))
    assert np.array_equal(data_values(md, pr)["lik_weights"], md.weights)


def test_bad_weights_are_refused(df):
    md = build_model_data(FORMULAS["pooled"], df)
    with pytest.raises(FormulaError, match="positive"):
        attach_weights(md, np.zeros(md.n_obs))
    with pytest.raises(FormulaError, match="weight_scaling"):
        attach_weights(md, np.ones(md.n_obs), "sum")
    with pytest.raises(FormulaError, match="no grouping factor 'school'"):
        attach_weights(md, np.ones(md.n_obs), group_weights={"school": np.ones(md.n_obs)})
    md2 = build_model_data(FORMULAS["bernoulli"], df)
    with pytest.raises(FormulaError, match="correlated"):
        attach_weights(md2, None, group_weights={"lad": np.ones(md2.n_obs)})
    with pytest.raises(FormulaError, match="differ within a level"):
        attach_weights(md, None, group_weights={"lad": df["w"].to_numpy()})


# --------------------------------------------------------------------------- data layer


def _irls(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted logistic regression (Newton), for checks without a sampler."""
    b = np.zeros(X.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-X @ b))
        step = np.linalg.solve((X * (w * p * (1 - p))[:, None]).T @ X, X.T @ (w * (y - p)))
        b += step
        if np.abs(step).max() < 1e-10:
            break
    return b


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from data.synthetic import generate_release

    return generate_release(tmp_path_factory.mktemp("w") / "rel", n=1_500, seed=9, return_frame=True)


def test_reader_takes_weights_and_design_and_audits_zero_weights(release):
    from data.ukhls import WEIGHT_ZERO, read_release

    path, sim = release
    table, audit = read_release(path)
    f = pd.read_csv(path / "ukhls_w6" / "f_indresp.tab", sep="\t").set_index("pidp")
    g = pd.read_csv(path / "ukhls_w7" / "g_indresp.tab", sep="\t").set_index("pidp")
    for col, var, src in (
        ("weight_sc", "f_indscui_xw", f),
        ("weight_main", "f_indinui_xw", f),
        ("psu", "f_psu", f),
        ("strata", "f_strata", f),
        ("weight_sc_w7", "g_indscui_xw", g),
    ):
        expected = src[var].reindex(table["pidp"]).to_numpy(dtype=float)
        np.testing.assert_array_equal(table[col].to_numpy(), expected, err_msg=col)
    zero = audit.zero_weights()
    assert zero["weight_sc"] == int((table["weight_sc"] == 0).sum()) > 0
    assert zero["weight_main"] == 0
    proxy_or_phone = f["f_ivfio"].eq(2) | f["f_indmode"].eq(2)
    assert zero["weight_sc"] == int(proxy_or_phone.reindex(table["pidp"]).sum())
    assert WEIGHT_ZERO in str(audit) and "weight_sc" in audit.to_dict()["weights"][0]["column"]
    assert table.groupby("strata")["psu"].nunique().min() >= 2  # PSUs nested in strata
    assert (table.groupby("psu")["strata"].nunique() == 1).all()
    assert table["area_gdhi_raw"].between(12_000, 63_000).all()
    assert table["area_turnover_raw"].between(4, 41).all()


def test_reader_without_design_columns_says_so(release):
    from data.synthetic import simulate
    from data.ukhls import WEIGHT_ABSENT, build_table

    sim = simulate(n=1_000, seed=2)
    sources = dict(sim.sources)
    f = sources["indresp_f"]
    keep = [c for c in f.data.columns if c not in ("f_indscui_xw", "f_indinui_xw", "f_psu", "f_strata")]
    sources["indresp_f"] = type(f)(f.role, f.wave, f.name, f.data[keep], header=keep)
    table, audit = build_table(sources, extra_area_frames={"area_simulated.csv": sim.area_simulated})
    assert table["weight_sc"].isna().all() and table["psu"].isna().all()
    assert table["weight_sc_w7"].notna().any()  # the wave-7 file still has its weight
    absent = audit.weights[audit.weights["status"] == WEIGHT_ABSENT]["column"].tolist()
    assert absent == ["weight_sc", "weight_main", "psu", "strata"]
    assert any("f_indscui_xw" in n for n in audit.notes)


def test_informative_design_biases_unweighted_estimates_and_weights_undo_it():
    from data.synthetic import simulate
    from data.truth import TRUTH, design_matrix

    t = TRUTH["life_satisfied"]
    true = np.array([t.fixed["Intercept"], *(t.fixed[k] for k in t.terms)])
    out = {}
    for informative in (False, True):
        tb = simulate(n=25_000, seed=4, informative=informative).table
        X = design_matrix(tb, t.terms)
        y, w = tb["life_satisfied"].to_numpy(), tb["weight_sc"].to_numpy()
        ok = ~np.isnan(X).any(axis=1) & ~np.isnan(y) & (w > 0)
        X1 = np.column_stack([np.ones(ok.sum()), X[ok]])
        out[informative] = (_irls(X1, y[ok], np.ones(ok.sum())) - true, _irls(X1, y[ok], w[ok]) - true)
    # default design: selection by LA, age and sex only -> unweighted estimates on target
    assert np.abs(out[False][0]).max() < 0.15
    # informative response: the intercept is biased by about +0.8 and the slopes move away from 0
    # (by about 20% of their size); weighted, the errors are noise of either sign (compare the
    # average signed error: single coefficients are off by up to 0.1)
    unweighted, weighted = out[True]
    away = np.sign(true[1:])
    assert unweighted[0] > 0.6 and np.mean(unweighted[1:] * away) > 0.045
    assert abs(weighted[0]) < 0.2 and abs(np.mean(weighted[1:] * away)) < 0.03


def test_householders_age_follows_the_la_population():
    from data.areas import LA_DIR
    from data.synthetic import simulate

    tb = simulate(n=20_000, seed=5).table
    pop = pd.read_csv(LA_DIR / "population_mid2019_lad19_sex_age.csv")
    pop = pop[pop["age_band"] != "0-15"]
    older = pop["age_band"].isin(["65-74", "75+"]) * pop["population"]
    ons = older.groupby(pop["lad19cd"]).sum() / pop.groupby("lad19cd")["population"].sum()
    tb = tb.assign(old=(tb["age"] >= 65) * tb["weight_main"])
    sample = tb.groupby("lad")["old"].sum() / tb.groupby("lad")["weight_main"].sum()
    common = sample.index.intersection(ons.index)
    assert np.corrcoef(sample[common], ons[common])[0, 1] > 0.35


def test_weighted_fit_counts_dropped_rows_saves_and_says_it_is_weighted(df, tmp_path):
    from models import fit
    from models.fitting import load_fit

    data = df.assign(w=df["w"].where(df.index % 50 != 0, 0.0))  # 6 people outside the population
    data.loc[3, "w"] = np.nan
    f = fit(
        "y ~ x + (1 | lad)",
        data,
        weights="w",
        weight_scaling="effective",
        chains=2,
        draws=200,
        tune=300,
        seed=1,
        escalate=False,
        progressbar=False,
    )
    assert f.md.drops["zero weight w (outside the weight's population)"] == 6
    assert f.md.drops["missing weight w"] == 1 and f.md.n_obs == len(df) - 7
    np.testing.assert_array_equal(f.md.rows, np.flatnonzero(data["w"].fillna(0).to_numpy() > 0))
    expected = scale_weights(data["w"].to_numpy()[f.md.rows], f.md.blocks[0].idx, "effective")
    np.testing.assert_allclose(f.md.weights, expected)
    text = str(f)
    assert "weights: w (scaled within groups to their effective sample size)" in text
    assert "PSEUDO-POSTERIOR" in text
    g = load_fit(f.save(tmp_path / "w.nc"))
    assert g.attrs["weights"] == "w" and g.attrs["weight_scaling"] == "effective"
    np.testing.assert_allclose(g.md.weights, f.md.weights)
    assert "PSEUDO-POSTERIOR" in str(g)
    with pytest.raises(FormulaError, match="no column 'nope'"):
        fit("y ~ x", data, weights="nope", progressbar=False)
