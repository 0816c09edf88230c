"""MrP: recovery of known LA population shares from respondents simulated on the real ONS
population cells, the disclosure rule for small LAs, subgroups, LA modes and the command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from test_analysis_support import fake_fit

from analysis.mrp import (
    ADULT_BANDS,
    MrpError,
    add_cell_columns,
    load_population,
    mrp,
    true_population_shares,
)

BAND_EFFECT = dict(zip(ADULT_BANDS, [0.0, 0.35, 0.8, 1.2, 0.9], strict=True))
TRUE = {"Intercept": -0.6, "female": 0.3, "female_old": -0.4, "area": 0.5, "sd_lad": 0.45}


def _simulate(n_las: int = 60, n_empty: int = 5, seed: int = 11):
    """Respondents drawn from the real population cells of ``n_las`` LAs, sampled
    non-representatively (people aged 50+ three times as likely to respond), with a known
    logistic model; ``n_empty`` LAs have no respondents at all."""
    rng = np.random.default_rng(seed)
    pop = load_population()
    las = sorted(rng.choice(pop["lad"].unique(), n_las, replace=False))
    pop = pop[pop["lad"].isin(las)].reset_index(drop=True)
    area = pd.Series(rng.normal(size=n_las), index=las)
    u = pd.Series(rng.normal(0, TRUE["sd_lad"], n_las), index=las)
    female = (pop["sex"] == "female").to_numpy(float)
    old = pop["age_band"].isin(["50-64", "65-74", "75+"]).to_numpy(float)
    eta = (
        TRUE["Intercept"]
        + pop["age_band"].map(BAND_EFFECT).to_numpy()
        + TRUE["female"] * female
        + TRUE["female_old"] * female * old
        + TRUE["area"] * area.reindex(pop["lad"]).to_numpy()
        + u.reindex(pop["lad"]).to_numpy()
    )
    p = expit(eta)
    truth = true_population_shares(pop, p, by=["age50"])
    sizes = rng.integers(6, 70, n_las)
    sizes[:n_empty] = 0
    rows = []
    for j, code in enumerate(las):
        cell = pop.index[pop["lad"] == code]
        sel = pop.loc[cell, "population"].to_numpy(float) * (1 + 2 * old[cell])
        pick = rng.choice(cell, sizes[j], p=sel / sel.sum())
        rows.append(pop.loc[pick, ["lad", "sex", "age_band"]].assign(y=rng.binomial(1, p[pick])))
    resp = pd.concat(rows, ignore_index=True)
    resp["female"] = (resp["sex"] == "female").astype(float)
    resp["age_band"] = pd.Categorical(resp["age_band"], categories=list(ADULT_BANDS))
    resp["area"] = area.reindex(resp["lad"]).to_numpy()
    empty = las[:n_empty]
    return pop, resp, truth, area, empty


@pytest.fixture(scope="module")
def recovery():
    from models import fit

    pop, resp, truth, area, empty = _simulate()
    f = fit(
        "y ~ age_band * female + area + (1 | lad)",
        resp,
        chains=2,
        draws=1500,
        tune=700,
        seed=3,
        progressbar=False,
    )
    assert f.converged, f.headline
    return pop, resp, truth, area, empty, f


def test_mrp_covers_the_true_la_shares_and_beats_the_direct_estimates(recovery):
    pop, resp, truth, area, empty, f = recovery
    # the LAs without respondents need their area values: give them in the respondents' table
    # form (one stand-in row per LA is not allowed: they would count as respondents), so pass
    # them through the population frame's LAs with an area table
    res = mrp(f, pop, table=resp, by=["age50"], weight=None, max_draws=400, area=area.to_frame("area"))
    est = res[res.lad != "GB"].merge(truth, on=["lad", "subgroup", "level"], validate="one_to_one")
    assert len(est[est.subgroup == "all"]) == len(pop.lad.unique())
    everyone = est[est.subgroup == "all"]
    covered = (everyone.mrp_eti95_low <= everyone.true_share) & (
        everyone.true_share <= everyone.mrp_eti95_high
    )
    assert covered.mean() >= 0.8, covered.mean()
    seen = everyone[everyone.n > 0]
    mse_mrp = float(((seen.mrp_mean - seen.true_share) ** 2).mean())
    mse_direct = float(((seen.direct - seen.true_share) ** 2).mean())
    assert mse_mrp < 0.6 * mse_direct, (mse_mrp, mse_direct)
    # LAs without respondents: model-based, from area values and a new-LA draw, still covered mostly
    none = everyone[everyone.lad.isin(empty)]
    assert set(none.la_effect) == {"new-LA draw (no respondents)"} and none.direct.isna().all()
    assert (none.n == 0).all()
    # subgroups: age 50+ rows exist for every LA and are covered about as often
    old = est[(est.subgroup == "age50") & (est.level == "50 and over")]
    cov_old = ((old.mrp_eti95_low <= old.true_share) & (old.true_share <= old.mrp_eti95_high)).mean()
    assert len(old) == len(everyone) and cov_old >= 0.8
    print(
        f"MrP recovery: coverage {covered.mean():.3f} (50+: {cov_old:.3f}) over {len(everyone)} LAs, "
        f"MSE MrP {mse_mrp:.5f} vs direct {mse_direct:.5f}"
    )


def test_mrp_la_modes_and_the_gb_row(recovery):
    pop, resp, truth, area, empty, f = recovery
    kw = dict(table=resp, weight=None, max_draws=200, area=area.to_frame("area"))
    own = mrp(f, pop, **kw)
    avg = mrp(f, pop, la="average_la", **kw)
    marg = mrp(f, pop, la="marginal", **kw)
    assert set(avg.la_mode) == {"average_la"} and avg.attrs["la_mode"].startswith("average LA")
    # marginal GB share is higher-variance-aware: differs from average_la, and close to own_la's GB share
    gb = {t.la_mode.iloc[0]: t[t.lad == "GB"].mrp_mean.item() for t in (own, avg, marg)}
    assert abs(gb["marginal"] - gb["own_la"]) < 0.02
    assert gb["marginal"] != pytest.approx(gb["average_la"], abs=1e-4)
    code = resp.lad.iloc[0]
    named = mrp(f, pop, la=[code], **kw)
    assert set(named.lad) == {"GB", code}
    row = named[named.lad == code].iloc[0]
    assert row.mrp_mean == pytest.approx(own[own.lad == code].mrp_mean.item(), abs=0.02)
    with pytest.raises(MrpError, match="fitted LAs"):
        mrp(f, pop, la=[empty[0]], **kw)


def test_mrp_disclosure_rule_on_real_data(recovery):
    pop, resp, truth, area, empty, f = recovery
    k = 25
    res = mrp(
        f,
        pop,
        table=resp,
        by=["sex"],
        weight=None,
        max_draws=200,
        synthetic=False,
        k=k,
        area=area.to_frame("area"),
    )
    n_true = resp.groupby("lad").size()
    las = res[(res.lad != "GB") & (res.subgroup == "all")]
    small = las[las.lad.map(lambda c: n_true.get(c, 0) < k)]
    big = las[las.lad.map(lambda c: n_true.get(c, 0) >= k)]
    assert len(small) and len(big)
    # below k: interval only, never a point, a direct estimate or a count
    assert small[["mrp_mean", "mrp_median", "mrp_sd", "direct", "n", "p_above_gb"]].isna().all().all()
    assert small.mrp_eti95_low.notna().all() and small.mrp_eti95_high.notna().all()
    assert (small.published == f"interval only (fewer than {k} respondents)").all()
    seen_small = small[small.lad.map(lambda c: n_true.get(c, 0) > 0)]
    assert len(seen_small) >= 3 and len(small) == len(seen_small) + 5  # plus the 5 LAs without respondents
    assert seen_small.la_effect.str.contains("own effect not used").all()
    # at or above k: everything, with the exact count
    assert big[["mrp_mean", "direct", "n"]].notna().all().all()
    assert (big.n.astype(int) == big.lad.map(n_true)).all()
    # subgroup rows follow the same rule on their own counts
    sub = res[(res.subgroup == "sex") & (res.lad != "GB")]
    assert (sub.n.isna() == sub.direct.isna()).all() and (sub.n.dropna() >= k).all()
    assert sub.loc[sub.n.isna(), "mrp_mean"].isna().all()


def test_mrp_refuses_what_it_cannot_do():
    from test_analysis_support import simulate

    df, _ = simulate(small_la=False)
    f = fake_fit(df, "y ~ x + (1 | lad)")
    with pytest.raises(MrpError, match="lack 'age_band'"):
        mrp(f, load_population().head(30))
    with pytest.raises(MrpError, match="not a grouping factor"):
        mrp(f, load_population().head(30), group="region")
    one_la = load_population()[lambda p: p.lad == "E08000001"]
    with pytest.raises(MrpError, match="no respondent of age band 16-29 and sex female to stand in for x"):
        mrp(f, one_la, table=df.assign(age=40, female=0))
    tab = df.assign(age=20 + 15 * (df.index % 5), female=(df.index // 5) % 2)
    with pytest.raises(MrpError, match="unknown subgroup"):
        mrp(f, one_la, table=tab, by=["nope"])
    ok = mrp(f, one_la, table=tab, by=["sex"], weight=None, max_draws=50)
    assert ok.attrs["stand_ins"] == ["x"] and "unweighted" in ok.attrs["direct"]
    assert ok.attrs["not_estimable"] == {} and len(ok[ok.lad == "E08000001"]) == 3


def test_cell_columns_and_population_file():
    pop = load_population()
    assert set(pop.age_band) == set(ADULT_BANDS) and pop.lad.nunique() == 371
    assert pop.population.sum() > 50e6
    t = add_cell_columns(pd.DataFrame({"age": [16, 29, 30, 64, 75, 90, 15], "female": [1, 0, 1, 0, 1, 0, 1]}))
    assert list(t.age_band.iloc[:6]) == ["16-29", "16-29", "30-49", "50-64", "75+", "75+"]
    assert pd.isna(t.age_band.iloc[6]) and list(t.sex[:2]) == ["female", "male"]


def test_mrp_command_writes_a_tidy_csv(tmp_path, recovery):
    from analysis.cli import main

    pop, resp, truth, area, empty, f = recovery
    run = tmp_path / "run"
    (run / "fits").mkdir(parents=True)
    f.save(run / "fits" / "demo.nc")
    resp.assign(
        age=resp.age_band.map({"16-29": 20, "30-49": 40, "50-64": 55, "65-74": 70, "75+": 80})
    ).to_csv(run / "table.csv", index=False)
    pop.to_csv(run / "population.csv", index=False)
    (run / "manifest.json").write_text(json.dumps({"settings": {"release": None}, "synthetic": True}))
    out = tmp_path / "mrp.csv"
    rc = main(
        [
            "mrp",
            str(run),
            "--table",
            str(run / "table.csv"),
            "--population",
            str(run / "population.csv"),
            "--by",
            "age50",
            "--out",
            str(out),
            "--draws",
            "100",
        ]
    )
    assert rc == 0
    got = pd.read_csv(out)
    assert {
        "lad",
        "subgroup",
        "level",
        "mrp_mean",
        "mrp_eti95_low",
        "mrp_eti95_high",
        "direct",
        "n",
        "la_mode",
    } <= set(got.columns)
    assert set(got.subgroup) == {"all", "age50"} and (got.la_mode == "own_la").all()
    assert main(["mrp", str(run), "--outcome", "nothing", "--table", str(run / "table.csv")]) == 2


def test_mrp_splits_cells_by_the_la_urban_share_as_the_hand_computation():
    from test_analysis_support import simulate

    from analysis import summaries as S

    df, _ = simulate(small_la=False)
    df = df.assign(urban=(df.x > 0).astype(float), age=20 + 15 * (df.index % 5), female=(df.index // 5) % 2)
    f = fake_fit(df, "y ~ urban + (1 | lad)")
    code = f.md.blocks[0].levels[2]
    cells = pd.DataFrame(
        [
            (code, s, b, 1000 + 10 * i)
            for i, (s, b) in enumerate((s, b) for s in ("female", "male") for b in ADULT_BANDS)
        ],
        columns=["lad", "sex", "age_band", "population"],
    )
    res = mrp(
        f, cells, table=df, by=["urban"], weight=None, max_draws=None, urban_share=pd.Series({code: 0.3})
    )
    a, b = S.posterior_draws(f, "Intercept"), S.posterior_draws(f, "b")[:, 0]
    r = S.posterior_draws(f, "r_lad")[:, 2, 0]
    share = 0.3 * expit(a + b + r) + 0.7 * expit(a + r)
    row = res[(res.lad == code) & (res.subgroup == "all")].iloc[0]
    assert row.mrp_mean == pytest.approx(share.mean(), rel=1e-10)
    assert row.mrp_eti95_high == pytest.approx(np.quantile(share, 0.975), rel=1e-10)
    urb = res[(res.lad == code) & (res.subgroup == "urban")].set_index("level")
    assert urb.loc["urban", "mrp_mean"] == pytest.approx(expit(a + b + r).mean(), rel=1e-10)
    assert urb.loc["rural", "population"] == pytest.approx(0.7 * cells.population.sum())
    assert "split by the LA's urban population share in 1 of 1 LAs" in res.attrs["urban"]


@pytest.mark.slow
def test_mrp_coverage_over_replicates():
    """Eight simulated surveys of 60 real LAs each: pooled 95% coverage of the true LA shares
    near nominal, and MrP beats the direct estimates in MSE in every replicate."""
    from models import fit

    hits, total, ratios = 0, 0, []
    for seed in range(21, 29):
        pop, resp, truth, area, empty = _simulate(seed=seed)
        f = fit(
            "y ~ age_band * female + area + (1 | lad)",
            resp,
            chains=2,
            draws=1500,
            tune=700,
            seed=seed,
            progressbar=False,
        )
        res = mrp(f, pop, table=resp, weight=None, max_draws=400, area=area.to_frame("area"))
        e = res[res.lad != "GB"].merge(truth, on=["lad", "subgroup", "level"])
        hits += int(((e.mrp_eti95_low <= e.true_share) & (e.true_share <= e.mrp_eti95_high)).sum())
        total += len(e)
        seen = e[e.n > 0]
        ratios.append(
            ((seen.mrp_mean - seen.true_share) ** 2).mean() / ((seen.direct - seen.true_share) ** 2).mean()
        )
    coverage = hits / total
    print(
        f"MrP coverage over 8 replicates: {hits}/{total} = {coverage:.3f}; "
        f"MSE ratio MrP/direct {np.round(ratios, 2)}"
    )
    assert 0.90 <= coverage <= 0.99
    assert max(ratios) < 0.8


def test_interval_only_rule_blanks_points_and_counts_below_k():
    from analysis.disclosure import interval_only_below_k

    t = pd.DataFrame(
        {
            "lad": ["GB", "A", "B"],
            "n": [3, 9, 10],
            "est": [0.5, 0.4, 0.3],
            "lo": [0.1, 0.2, 0.2],
            "hi": [0.9, 0.6, 0.4],
        }
    )
    out = interval_only_below_k(t, ["est", "missing_column"], k=10, exempt=t.lad == "GB")
    assert out.est.isna().tolist() == [False, True, False] and out.n.isna().tolist() == [False, True, False]
    assert out.lo.notna().all() and out.hi.notna().all()
    assert out.published[1] == "interval only (fewer than 10 respondents)"
    with pytest.raises(KeyError, match="no 'count' column"):
        interval_only_below_k(t, ["est"], n_col="count")
