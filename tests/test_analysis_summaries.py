"""Posterior summaries checked against hand calculations from the draws (fake fits: no sampling)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from arviz_stats.base import array_stats
from scipy.stats import norm
from test_analysis_support import fake_fit, simulate

from analysis import summaries as S
from models import ConvergenceWarning


@pytest.fixture(scope="module")
def data():
    return simulate()


@pytest.fixture(scope="module")
def fit(data):
    return fake_fit(
        data[0], centers={"Intercept": -0.2, "age50": 0.5, "area_soc": 0.3, "age50:area_soc": 0.3, "x": 0.4}
    )


def _draws(fit, name):
    return S.posterior_draws(fit, name)


# --------------------------------------------------------------------------- fixed effects


def test_fixed_effects_odds_ratios_are_exp_of_the_log_odds_draws(fit):
    fe = S.fixed_effects(fit).set_index("term")
    b = _draws(fit, "b")
    terms = list(fit.posterior()["coef"].values)
    for j, term in enumerate(terms):
        x = b[:, j]
        row = fe.loc[term]
        assert row.log_odds_mean == pytest.approx(x.mean())
        assert row.log_odds_median == pytest.approx(np.median(x))
        assert row.log_odds_sd == pytest.approx(x.std(ddof=1))
        lo, hi = np.quantile(x, [0.025, 0.975])
        assert (row.log_odds_eti95_low, row.log_odds_eti95_high) == pytest.approx((lo, hi))
        assert (row.or_eti95_low, row.or_eti95_high) == pytest.approx((math.exp(lo), math.exp(hi)))
        assert row.or_median == pytest.approx(math.exp(np.median(x)))
        assert row.or_mean == pytest.approx(np.exp(x).mean())
        h = array_stats.hdi(x, 0.95)
        assert (row.log_odds_hdi95_low, row.log_odds_hdi95_high) == pytest.approx(tuple(h))
        assert (row.or_hdi95_low, row.or_hdi95_high) == pytest.approx(tuple(np.exp(h)))
        assert row.p_or_gt_1 == pytest.approx((x > 0).mean())
    icpt = _draws(fit, "Intercept")
    assert fe.loc["Intercept", "or_median"] == pytest.approx(math.exp(np.median(icpt)))


def test_intervals_are_labelled_with_kind_and_probability(fit):
    fe = S.fixed_effects(fit, prob=0.9)
    for col in ("log_odds_eti90_low", "log_odds_hdi90_high", "or_eti90_high", "or_hdi90_low"):
        assert col in fe
    assert not any("95" in c for c in fe.columns)
    assert "90% equal-tailed interval" in fe.attrs["interval"]
    assert "90% highest-density interval" in fe.attrs["interval"]
    # the 90% ETI is narrower than the 95% one; the HDI holds at least 95% of the draws
    fe95 = S.fixed_effects(fit, prob=0.95)
    assert (fe.or_eti90_high - fe.or_eti90_low < fe95.or_eti95_high - fe95.or_eti95_low).all()
    x = _draws(fit, "b")[:, 0]
    row = fe95.set_index("term").loc["age50"]
    assert ((x >= row.log_odds_hdi95_low) & (x <= row.log_odds_hdi95_high)).mean() >= 0.95
    assert S.interval_columns("hdi", 0.975) == ("hdi97.5_low", "hdi97.5_high")
    with pytest.raises(ValueError):
        S.interval_columns("eti", 95)


def test_every_table_says_which_interval(fit):
    tables = [
        S.fixed_effects(fit),
        S.group_effects(fit),
        S.variance_partition(fit),
        S.varying_slopes(fit).sd,
        S.varying_slopes(fit).slopes,
        S.conditional_effects(fit, "area_soc", "age50", n_points=3),
        S.prob_greater(fit, "age50", "x"),
    ]
    for t in tables:
        assert "95%" in t.attrs["interval"]
        assert any(c.endswith(("eti95_low", "hdi95_low")) for c in t.columns), list(t.columns)


def test_summaries_of_a_failed_fit_warn_and_carry_the_headline(data):
    bad = fake_fit(data[0], converged=False)
    with pytest.warns(ConvergenceWarning, match="NOT CONVERGED"):
        fe = S.fixed_effects(bad)
    assert fe.attrs["headline"].startswith("NOT CONVERGED")
    assert fe.attrs["converged"] is False


# --------------------------------------------------------------------------- variance partition


def test_vpc_and_mor_match_the_formulas_for_a_known_sd(data):
    # constant SD 0.5 in every draw: VPC = 0.25/(0.25 + pi^2/3), MOR = exp(sqrt(2) * 0.5 * 0.6745)
    fit = fake_fit(data[0], "y ~ x + area_soc + (1 | lad)", sd={"Intercept": 0.5}, sd_spread=0.0)
    vp = S.variance_partition(fit).set_index("quantity")
    assert vp.loc["VPC / ICC (latent scale)", "mean"] == pytest.approx(0.25 / (0.25 + math.pi**2 / 3))
    assert vp.loc["VPC / ICC (latent scale)", "mean"] == pytest.approx(0.07063, abs=1e-5)
    assert vp.loc["MOR", "mean"] == pytest.approx(math.exp(math.sqrt(2) * 0.5 * 0.6744897501960817))
    assert vp.loc["MOR", "mean"] == pytest.approx(1.6111, abs=1e-4)
    assert "At " not in vp.loc["MOR", "note"]  # no varying slopes: no "at x = 0" caveat


def test_variance_partition_is_computed_per_draw(fit):
    sd = _draws(fit, "sd_lad")[:, 0]
    b = _draws(fit, "b")[:, list(fit.posterior()["coef"].values).index("area_soc")]
    vp = S.variance_partition(fit)
    got = vp.set_index(["quantity", "term"])
    vpc = sd**2 / (sd**2 + math.pi**2 / 3)
    mor = np.exp(math.sqrt(2) * sd * norm.ppf(0.75))
    assert got.loc[("VPC / ICC (latent scale)", "Intercept"), "mean"] == pytest.approx(vpc.mean())
    assert got.loc[("VPC / ICC (latent scale)", "Intercept"), "eti95_low"] == pytest.approx(
        np.quantile(vpc, 0.025)
    )
    assert got.loc[("MOR", "Intercept"), "median"] == pytest.approx(np.median(mor))
    assert got.loc[("MOR", "Intercept"), "eti95_high"] == pytest.approx(np.quantile(mor, 0.975))
    lo = np.exp(b + np.sqrt(2 * sd**2) * norm.ppf(0.10))
    hi = np.exp(b + np.sqrt(2 * sd**2) * norm.ppf(0.90))
    assert got.loc[("IOR-80 lower", "area_soc"), "mean"] == pytest.approx(lo.mean())
    assert got.loc[("IOR-80 upper", "area_soc"), "eti95_low"] == pytest.approx(np.quantile(hi, 0.025))
    # area-level predictors are detected (constant within every LA); individual ones are not
    assert set(vp.term) == {"Intercept", "area_soc"}
    # varying slopes: the intercept SD is the SD at age50 = 0, and the table says so
    assert all("age50 = 0" in note for note in vp.note)
    assert all("Main effect: at age50 = 0 (interaction)" in n for n in vp[vp.term == "area_soc"].note)


def test_area_level_and_cross_level_detection(fit):
    assert S.area_level_terms(fit) == ["area_soc"]
    assert S.cross_level_interactions(fit) == [("age50:area_soc", "area_soc", "age50")]


def test_explicit_area_predictors_are_checked(fit):
    vp = S.variance_partition(fit, area_predictors=["area_soc"])
    assert (vp.term == "area_soc").sum() == 2
    with pytest.raises(ValueError, match="not a fixed term"):
        S.variance_partition(fit, area_predictors=["nope"])


# --------------------------------------------------------------------------- group effects and slopes


def test_group_effects_levels_counts_names_and_odds_ratios(fit, data):
    df, names = data
    ge = S.group_effects(fit, "lad", names=names)
    assert len(ge) == df.lad.nunique()
    counts = df.lad.value_counts()
    assert (ge.set_index("level").n == counts.reindex(ge.level)).all()
    assert ge.set_index("level").loc["E09000099", "n"] == 5
    assert ge.set_index("level").loc["E09000099", "name"] == "Tiny Borough"
    r = _draws(fit, "r_lad")[:, :, 0]
    assert ge.log_odds_mean.to_numpy() == pytest.approx(r.mean(axis=0))
    assert ge.or_eti95_low.to_numpy() == pytest.approx(np.exp(np.quantile(r, 0.025, axis=0)))
    assert ge.or_median.to_numpy() == pytest.approx(np.exp(np.median(r, axis=0)))
    assert sorted(ge["rank"]) == list(range(1, len(ge) + 1))
    assert ge.loc[ge["rank"] == 1, "log_odds_mean"].item() == ge.log_odds_mean.max()
    # the slope term, and the level's own value with the fixed effect added
    gs = S.group_effects(fit, "lad", term="age50", add_fixed=True)
    b_age = _draws(fit, "b")[:, 0]
    assert gs.log_odds_mean.to_numpy() == pytest.approx(
        (_draws(fit, "r_lad")[:, :, 1] + b_age[:, None]).mean(axis=0)
    )
    with pytest.raises(ValueError, match="no group"):
        S.group_effects(fit, "region")


def test_varying_slopes_total_slope_and_upper_triangle(fit, data):
    df, _ = data
    vs = S.varying_slopes(fit)
    assert list(vs.sd.term) == ["Intercept", "age50"]
    assert len(vs.cor) == 1 and tuple(vs.cor.iloc[0][["term1", "term2"]]) == ("Intercept", "age50")
    c = _draws(fit, "cor_lad")[:, 0, 1]
    assert vs.cor.iloc[0]["mean"] == pytest.approx(c.mean())
    # total slope of age50 in LA j = b_age50 + b_age50:area_soc * area_soc_j + r_j
    coefs = list(fit.posterior()["coef"].values)
    b = _draws(fit, "b")
    r = _draws(fit, "r_lad")[:, :, 1]
    levels = fit.md.blocks[0].levels
    w = df.groupby("lad").area_soc.first().reindex(levels).to_numpy()
    total = b[:, [coefs.index("age50")]] + b[:, [coefs.index("age50:area_soc")]] * w[None, :] + r
    assert vs.slopes["mean"].to_numpy() == pytest.approx(total.mean(axis=0))
    assert "b[age50:area_soc] * area_soc" in vs.slopes.includes.iloc[0]


def test_three_varying_terms_give_three_correlations(data):
    fit = fake_fit(data[0], "y ~ age50 + x + (1 + age50 + x | lad)")
    cor = S.varying_slopes(fit).cor
    assert [tuple(r) for r in cor[["term1", "term2"]].to_numpy()] == [
        ("Intercept", "age50"),
        ("Intercept", "x"),
        ("age50", "x"),
    ]


def test_no_varying_slopes_is_an_error(data):
    fit = fake_fit(data[0], "y ~ x + (1 | lad)")
    with pytest.raises(ValueError, match="no varying slopes"):
        S.varying_slopes(fit)


# --------------------------------------------------------------------------- predictions


def _logistic(v):
    return 1 / (1 + np.exp(-v))


def test_predicted_probabilities_population_level(data):
    fit = fake_fit(data[0], "y ~ x + (1 | lad)")
    grid = pd.DataFrame({"x": [-1.0, 0.0, 2.0]})
    pp = S.predicted_probabilities(fit, grid, max_draws=None)
    a, b = _draws(fit, "Intercept"), _draws(fit, "b")[:, 0]
    for i, x in enumerate(grid.x):
        p = _logistic(a + b * x)
        assert pp.p_mean.iloc[i] == pytest.approx(p.mean())
        assert pp.p_eti95_high.iloc[i] == pytest.approx(np.quantile(p, 0.975))


def test_average_marginal_effect_binary_matches_hand_calculation(data):
    df = data[0]
    fit = fake_fit(df, "y ~ age50 + x + (1 | lad)")
    ame = S.average_marginal_effect(fit, "age50", max_draws=None)
    a, b = _draws(fit, "Intercept"), _draws(fit, "b")
    r = _draws(fit, "r_lad")[:, :, 0]
    idx = fit.md.blocks[0].idx
    base = a[:, None] + b[:, [1]] * df.x.to_numpy()[None, :] + r[:, idx]
    diff = (_logistic(base + b[:, [0]]) - _logistic(base)).mean(axis=1)
    assert ame.contrast.item() == "1 vs 0"
    assert ame.ame_mean.item() == pytest.approx(diff.mean())
    assert ame.ame_eti95_low.item() == pytest.approx(np.quantile(diff, 0.025))
    # continuous: average derivative = mean p(1-p) b_x
    d = S.average_marginal_effect(fit, "x", max_draws=None, chunk_rows=250)
    eta = base + b[:, [0]] * df.age50.to_numpy()[None, :]
    deriv = (_logistic(eta) * (1 - _logistic(eta)) * b[:, [1]]).mean(axis=1)
    assert d.ame_mean.item() == pytest.approx(deriv.mean(), rel=1e-4)
    with pytest.raises(ValueError, match="not a predictor"):
        S.average_marginal_effect(fit, "lad")


def test_conditional_effects_range_and_values(fit, data):
    df = data[0]
    ce = S.conditional_effects(fit, "area_soc", "age50", n_points=5, max_draws=None)
    per_la = df.groupby("lad").area_soc.first()
    lo, hi = np.percentile(per_la, [5, 95])
    assert ce.area_soc.min() == pytest.approx(lo) and ce.area_soc.max() == pytest.approx(hi)
    assert sorted(ce.age50.unique()) == [0, 1] and len(ce) == 10
    assert "over levels of lad" in ce.attrs["range"]
    assert ce.attrs["held"] == {"x": pytest.approx(df.x.mean())}
    # hand calculation at one point: groups at zero, x at its mean
    coefs = list(fit.posterior()["coef"].values)
    a, b = _draws(fit, "Intercept"), _draws(fit, "b")
    row = ce.iloc[-1]
    vals = {
        "age50": row.age50,
        "area_soc": row.area_soc,
        "age50:area_soc": row.age50 * row.area_soc,
        "x": df.x.mean(),
    }
    eta = a + sum(b[:, coefs.index(t)] * v for t, v in vals.items())
    assert row.p_mean == pytest.approx(_logistic(eta).mean())
    with pytest.raises(ValueError, match="not a predictor"):
        S.conditional_effects(fit, "area_nope", "age50")


# --------------------------------------------------------------------------- probability statements


def test_prob_greater_abs_terms(fit):
    b = _draws(fit, "b")
    coefs = list(fit.posterior()["coef"].values)
    a, c = b[:, coefs.index("age50")], b[:, coefs.index("x")]
    t = S.prob_greater(fit, "abs(age50)", "abs(x)")
    assert t.probability.item() == pytest.approx((np.abs(a) > np.abs(c)).mean())
    assert t.diff_mean.item() == pytest.approx((np.abs(a) - np.abs(c)).mean())
    assert t.statement.item() == "|b[age50]| > |b[x]|"
    many = S.probability_statements(fit, ["abs(age50) > abs(x)", "x < age50", ("x", 0)])
    assert many.probability.iloc[1] == pytest.approx((a > c).mean())
    assert many.probability.iloc[2] == pytest.approx((c > 0).mean())


@pytest.mark.parametrize("bad", ["__import__('os').system('true')", "age50 + x", "abs(nope)", "exp(x)"])
def test_prob_greater_refuses_anything_but_terms(fit, bad):
    with pytest.raises(ValueError):
        S.prob_greater(fit, bad, "x")


# --------------------------------------------------------------------------- recovery and calibration


def test_recovery_table_coverage(fit):
    b = _draws(fit, "b")[:, 0]
    lo, hi = np.quantile(b, [0.025, 0.975])
    truth = {
        "age50": float(np.median(b)),
        "x": 99.0,
        "area_soc:age50": 0.3,
        "sd_lad[age50]": 0.4,
        "nope": 1.0,
    }
    rec = S.recovery(fit, truth).set_index("parameter")
    assert rec.loc["age50", "covered"] == "yes" and rec.loc["x", "covered"] == "no"
    assert rec.loc["age50", "eti95_low"] == pytest.approx(lo) and rec.loc[
        "age50", "eti95_high"
    ] == pytest.approx(hi)
    assert rec.loc["area_soc:age50", "covered"] in ("yes", "no")  # reordered interaction is found
    assert rec.loc["nope", "covered"] == "not in model"
    nested = {
        "fixed": {"age50": 0.3},
        "groups": {"lad": {"terms": ["Intercept", "age50"], "sd": [0.4, 0.4], "corr": [[1, 0.0], [0.0, 1]]}},
    }
    rec2 = S.recovery(fit, nested)
    assert list(rec2.parameter) == ["age50", "sd_lad[Intercept]", "sd_lad[age50]", "cor_lad[Intercept,age50]"]
    assert (rec2.covered != "not in model").all()


def test_calibration_is_isotonic_and_banded(data):
    fit = fake_fit(data[0], "y ~ x + (1 | lad)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        cal = S.calibration(fit, n_draws=50, figure=True)
    c = cal.curve
    assert len(c) == fit.md.n_obs
    assert (np.diff(c.predicted) >= 0).all() and (np.diff(c.cep) >= -1e-12).all()
    assert ((c.band_low <= c.band_high) & (c.band_low >= 0) & (c.band_high <= 1)).all()
    assert cal.table.n.sum() == fit.md.n_obs and len(cal.table) == 10
    assert cal.table.attrs["observed_rate"] == pytest.approx(data[0].y.mean())
    assert "consistency band" in cal.table.attrs["interval"]
    assert cal.figure is not None and cal.figure.axes


def test_compare_models_refuses_different_data(data):
    df = data[0]
    a = fake_fit(df, "y ~ x + (1 | lad)")
    b = fake_fit(df.iloc[:-10], "y ~ x + (1 | lad)")
    with pytest.raises(ValueError, match="not fitted to the same data"):
        S.compare_models({"a": a, "b": b})


def test_interval_kind_and_probability_travel_as_data():
    """Interval columns carry what they hold (kind, probability, end) in the table's attrs,
    and the report writes headers from that data, never by reading the name back."""
    from analysis.report import pretty_column
    from analysis.summaries import IntervalLabel, interval_columns, interval_metadata, summarise_draws

    t = summarise_draws(np.random.default_rng(0).normal(size=(400, 2)), ["a", "b"], prob=0.9, hdi=True)
    meta = t.attrs["interval_columns"]
    assert meta["eti90_low"] == IntervalLabel("eti", 0.9, "low", "")
    assert meta["hdi90_high"] == IntervalLabel("hdi", 0.9, "high", "")
    lo, hi = interval_columns("eti", 0.8, "or_")
    assert pretty_column(lo) == "OR 80% ETI low"
    # a renamed column keeps its meaning through the attrs, not its name
    t2 = t.rename(columns={"eti90_low": "lower"})
    t2.attrs["interval_columns"] = {"lower": meta["eti90_low"]}
    assert interval_metadata(t2)["lower"].prob == 0.9
    assert pretty_column("lower", interval_metadata(t2)["lower"]) == "90% ETI low"
    assert pretty_column("area_soc") == "area_soc"
