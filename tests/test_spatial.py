"""BYM2 spatial LA effects: graph, scaling, the formula term, the model's density, recovery
of rho and the total SD on simulated data on the real GB adjacency graph (South East and
London, 100 LAs), Moran's I and the maps (`models.spatial`, `analysis.spatial`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.formula import FormulaError, build_model_data, parse_formula
from models.spatial import (
    LA_DIR,
    gb_lad_graph,
    graph_layout,
    icar_basis,
    icar_precision,
    icar_scaling,
    make_graph,
    simulate_bym2,
    simulate_icar,
)

ISLANDS = {"E06000046", "E06000053", "S12000013", "S12000023", "S12000027", "W06000001"}
TRUE_SD, TRUE_RHO = 0.6, 0.9


# --------------------------------------------------------------------------- graph and scaling


def test_gb_graph_components_and_islands():
    joined, alone = gb_lad_graph("join"), gb_lad_graph("singleton")
    assert joined.n_nodes == alone.n_nodes == 371
    assert len(alone.edges) == 933 and len(joined.edges) == 939
    assert np.bincount(joined.components()).tolist() == [371]
    sizes = np.bincount(alone.components())
    assert sizes.tolist() == [365, 1, 1, 1, 1, 1, 1]
    single = {alone.nodes[i] for i in np.flatnonzero(sizes[alone.components()] == 1)}
    assert single == ISLANDS
    islands = pd.read_csv(LA_DIR / "lad19_adjacency_islands.csv")
    assert set(islands["lad19cd"]) == ISLANDS


def test_scaling_factor_by_hand_and_per_component():
    # two nodes: Q = [[1, -1], [-1, 1]], generalised inverse diag = 1/4 each -> s = 1/4
    pair = make_graph(("a", "b"), [(0, 1)])
    assert icar_scaling(pair) == pytest.approx([0.25, 0.25])
    # a path of 3 and a separate pair: each component scaled on its own, a singleton NaN
    g = make_graph(("a", "b", "c", "d", "e", "f"), [(0, 1), (1, 2), (3, 4)])
    s = icar_scaling(g)
    q = icar_precision(make_graph(("a", "b", "c"), [(0, 1), (1, 2)]))
    expected = np.exp(np.mean(np.log(np.diag(np.linalg.pinv(q)))))
    assert s[:3] == pytest.approx([expected] * 3) and s[3:5] == pytest.approx([0.25, 0.25])
    assert np.isnan(s[5])
    lay = graph_layout(g, np.arange(6))
    assert lay.singleton.tolist() == [0, 0, 0, 0, 0, 1] and lay.n_components == 2


def test_icar_density_is_the_quadratic_form_and_draws_have_unit_scaled_variance():
    g = gb_lad_graph().restrict(sorted(gb_lad_graph().nodes)[:120])
    q = icar_precision(g)
    rng = np.random.default_rng(3)
    labels = g.components()
    # the sampling basis: phi = B u has u'u = phi' Q phi, covariance pinv(Q) per component and
    # no part along a component's constant vector
    structured = np.flatnonzero(np.bincount(labels)[labels] >= 2)
    basis = icar_basis(g, structured)
    assert basis.shape == (len(structured), len(structured) - len(np.unique(labels[structured])))
    u = rng.standard_normal(basis.shape[1])
    phi = basis @ u
    qs = q[np.ix_(structured, structured)]
    assert phi @ qs @ phi == pytest.approx(u @ u, rel=1e-9)
    cov = basis @ basis.T
    for c in np.unique(labels[structured]):
        idx = np.flatnonzero(labels[structured] == c)
        inverse = np.linalg.pinv(qs[np.ix_(idx, idx)], rcond=1e-9, hermitian=True)
        assert np.allclose(cov[np.ix_(idx, idx)], inverse, atol=1e-9)
        assert abs(phi[idx].sum()) < 1e-9
    draws = simulate_icar(g, rng, size=3000)
    for c in np.unique(labels):  # sum to zero in every component
        assert np.abs(draws[:, labels == c].sum(axis=1)).max() < 1e-8
    # scaled by s, the geometric mean of the marginal variances is 1 (Riebler et al. 2016)
    big = labels == 0
    var = draws[:, big].var(axis=0) / icar_scaling(g)[big]
    assert np.exp(np.mean(np.log(var))) == pytest.approx(1.0, abs=0.06)
    # total BYM2 variance is sd^2 on average over nodes
    eff = simulate_bym2(g, 0.5, 0.7, rng, size=3000)["effect"]
    assert np.exp(np.mean(np.log(eff[:, big].var(axis=0)))) == pytest.approx(0.25, rel=0.08)


# --------------------------------------------------------------------------- the formula term


def test_car_term_parses_and_errors_name_the_term():
    t = parse_formula('y ~ x + car(lad, type = "bym2", islands = "singleton")')
    bar = t.bars[0]
    assert dict(bar.spatial) == {"type": "bym2", "graph": "gb", "islands": "singleton"}
    assert bar.text == 'car(lad, type = "bym2", islands = "singleton")'
    assert t.r_formula == "y ~ x + (1 | lad)" and t.group_columns == ["lad"]
    for bad, words in [
        ("y ~ car(lad)", "give the type"),
        ('y ~ x * car(lad, type = "bym2")', "must stand alone"),
        ('y ~ car(lad, type = "icar")', 'type must be one of "bym2"'),
        ('y ~ car(lad, type = "bym2", graph = "world")', "graph must be one of"),
        ('y ~ car(lad, type = "bym2", M = "W")', "unknown option 'M'"),
        ('y ~ car(lad + x, type = "bym2")', "grouping column"),
        ('y ~ x - car(lad, type = "bym2")', "cannot be subtracted"),
    ]:
        with pytest.raises(FormulaError, match=words):
            parse_formula(bad)


def test_unknown_la_code_is_refused_with_the_term_and_value():
    from models.logistic import hierarchical_logistic
    from models.priors import resolve_priors

    df = pd.DataFrame({"y": [0, 1] * 10, "lad": ["E06000001"] * 10 + ["X99999999"] * 10})
    md = build_model_data('y ~ car(lad, type = "bym2")', df)
    with pytest.raises(FormulaError, match="X99999999"):
        hierarchical_logistic(md, resolve_priors(md))


def test_sampling_form_density_equals_the_plain_model():
    from models.logistic import hierarchical_logistic
    from models.priors import resolve_priors

    rng = np.random.default_rng(0)
    g = gb_lad_graph("singleton")
    codes = rng.choice(np.array(g.nodes), 800)
    codes[:20] = "S12000027"  # Shetland: a singleton with data
    df = pd.DataFrame({"y": rng.integers(0, 2, 800), "x": rng.standard_normal(800), "lad": codes})
    md = build_model_data('y ~ x + car(lad, type = "bym2", islands = "singleton")', df)
    priors = resolve_priors(md)
    assert str(priors["rho_lad"]) == "beta(0.5, 0.5)"
    fast = hierarchical_logistic(md, priors, fast_likelihood=True)
    plain = hierarchical_logistic(md, priors)
    assert {"rho_lad", "sd_lad", "phi_lad", "phi_std_lad", "theta_lad"} <= set(fast.named_vars)
    assert len(fast.coords["lad_structured"]) == 365 and len(fast.coords["lad_node"]) == 371
    assert len(fast.coords["lad_eigen"]) == 364  # one constant mode per component of two or more
    # the gate checks phi (and r), not its standardised coordinates
    from models.convergence import is_checked

    assert is_checked("phi_lad") and not is_checked("phi_std_lad")
    point = fast.initial_point()
    for name in ("phi_std_lad", "theta_lad"):
        point[name] = rng.standard_normal(point[name].shape) * 0.3
    point["rho_lad_logodds__"] = np.array(0.4)
    a, b = fast.compile_logp()(point), plain.compile_logp()(point)
    assert a == pytest.approx(b, rel=1e-12)
    # the structure key sees the term and its graph
    from models.sampling_form import structure_key

    md2 = build_model_data("y ~ x + (1 | lad)", df)
    md3 = build_model_data('y ~ x + car(lad, type = "bym2")', df)
    keys = {structure_key(m, resolve_priors(m), centered=False, fast_likelihood=True) for m in (md, md2, md3)}
    assert len(keys) == 3


# --------------------------------------------------------------------------- recovery


def simulated_region(n: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """People in the 100 LAs of South East England and London, with BYM2 LA effects of
    known sd and rho drawn on the real adjacency among them (Isle of Wight joined to Gosport)."""
    la = pd.read_csv(LA_DIR / "la_covariates.csv", usecols=["lad19cd", "rgn19nm"])
    codes = sorted(la.loc[la["rgn19nm"].isin(["South East", "London"]), "lad19cd"])
    graph = gb_lad_graph().restrict(codes)
    rng = np.random.default_rng(seed)
    sim = simulate_bym2(graph, TRUE_SD, TRUE_RHO, rng)
    lad = rng.integers(0, graph.n_nodes, n)
    x = rng.standard_normal(n)
    eta = -0.3 + 0.5 * x + sim["effect"][lad]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "lad": np.array(graph.nodes)[lad]}), {"graph": graph, **sim}


@pytest.fixture(scope="module")
def region_fits():
    from models import fit

    df, truth = simulated_region(4000, seed=11)
    spatial = fit(
        'y ~ x + car(lad, type = "bym2", graph = "observed")', df, seed=2, chains=2, progressbar=False
    )
    return df, truth, spatial


def test_rho_and_total_sd_recovered(region_fits):
    from analysis.spatial import spatial_share

    _, truth, f = region_fits
    assert f.converged, f.headline
    share = spatial_share(f)
    lo, hi = [c for c in share.columns if c.startswith("eti95")]
    for name, true in (("rho", TRUE_RHO), ("sd", TRUE_SD)):
        assert share.loc[name, lo] <= true <= share.loc[name, hi], share
    # not just a wide prior: spillover is detected (rho credibly above a third)
    assert share.loc["rho", lo] > 0.33, share
    assert share.loc["sd", hi] - share.loc["sd", lo] < 0.5
    # the LA effects themselves: posterior means track the drawn ones
    r = f.posterior()["r_lad"].mean(("chain", "draw")).sel(lad_term="Intercept")
    true = pd.Series(truth["effect"], index=truth["graph"].nodes).loc[list(r["lad"].values)]
    assert np.corrcoef(r.values, true.values)[0, 1] > 0.8


def test_las_without_respondents_are_predicted_from_their_neighbours():
    """With the GB graph, an LA without respondents keeps a BYM2 effect: its structured part
    is sampled tied to its neighbours. Predictions for held-out LAs use it (not a draw from
    the population, whose mean is 0), and track the LAs' true effects."""
    from analysis.spatial import bym2_parts
    from models import fit

    df, truth = simulated_region(4000, seed=11)
    nodes = list(truth["graph"].nodes)
    held = list(np.random.default_rng(5).choice(nodes, 20, replace=False))
    f = fit('y ~ x + car(lad, type = "bym2")', df[~df["lad"].isin(held)], seed=3, chains=2, progressbar=False)
    assert f.converged, f.headline
    rows = pd.DataFrame({"x": 0.0, "lad": held})
    p = f.predict(rows, la="own_la", unseen="error").values  # on the graph: not unseen
    intercept = f.posterior()["Intercept"].stack(sample=("chain", "draw")).values
    effect = (np.log(p / (1 - p)) - intercept[:, None]).mean(axis=0)
    parts = bym2_parts(f).set_index("lad")
    assert np.allclose(effect, parts.loc[held, "total"].to_numpy(), atol=1e-9)
    assert (parts.loc[held, "n"] == 0).all()
    true = pd.Series(truth["effect"], index=nodes).loc[held].to_numpy()
    # better than the population's mean (0): squared error under the effects' own spread (0.60 of it)
    assert np.mean((effect - true) ** 2) < 0.8 * np.mean(true**2), (effect, true)
    assert np.corrcoef(effect, true)[0, 1] > 0.5, np.corrcoef(effect, true)[0, 1]
    # the named-LA mode accepts them too
    named = f.predict(rows.iloc[:1], la="these_las", las=held[:2]).values
    assert named.shape[1] == 2


def test_parts_morans_i_and_map(region_fits, tmp_path):
    from analysis.spatial import bym2_parts, map_parts, morans_i

    _, truth, f = region_fits
    parts = bym2_parts(f)
    assert len(parts) == 100 and (parts["n"] > 0).all()
    assert np.allclose(parts["structured"] + parts["unstructured"], parts["total"])
    graph = truth["graph"]
    # the structured part of the truth is clustered, its unstructured part is not
    assert morans_i(truth["structured"], graph)["p_value"] < 0.01
    assert morans_i(truth["unstructured"], graph, seed=1)["p_value"] > 0.01
    # the fitted structured part correlates with the true one
    fitted = parts.set_index("lad").loc[list(graph.nodes), "structured"]
    assert np.corrcoef(fitted, truth["structured"])[0, 1] > 0.7
    m = morans_i(parts.set_index("lad").loc[list(graph.nodes), "total"].to_numpy(), graph)
    assert m["I"] > 0.2 and m["p_value"] < 0.01 and m["expected"] == pytest.approx(-1 / 99)
    paths = map_parts(f, tmp_path)
    assert [p.name for p in paths] == ["bym2_structured.png", "bym2_unstructured.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


# --------------------------------------------------------------------------- synthetic truth


def test_generator_options_off_by_default_and_recorded_when_on():
    from analysis.spatial import morans_i
    from data.synthetic import THRESHOLD_FACTOR, THRESHOLD_SLOPE, simulate
    from data.truth import TRUTH

    plain = simulate(n=2000, seed=5)
    assert "spatial" not in plain.truth["life_satisfied"] and "threshold" not in plain.truth["life_satisfied"]
    assert plain.truth["life_satisfied"] == TRUTH["life_satisfied"].to_json()
    both = simulate(n=2000, seed=5, spatial_rho=0.8, spatial_sd=0.5, threshold=6.5)
    truth = both.truth["life_satisfied"]
    assert truth["spatial"]["rho"] == 0.8 and truth["spatial"]["sd"] == 0.5
    assert truth["groups"]["lad"]["sd"] == [0.5] and truth["exact"] is False
    assert truth["threshold"]["location"] == 6.5 and truth["threshold"]["factor"] == THRESHOLD_FACTOR
    # every other outcome, and every predictor, is drawn exactly as without the options
    for c in plain.latent.columns:
        if c.startswith("eta_") and c != "eta_life_satisfied":
            assert np.array_equal(plain.latent[c], both.latent[c]), c
    # life satisfaction: LA intercepts replaced by a BYM2 draw, plus the hinge
    query = "outcome == 'life_satisfied' and term == 'Intercept'"
    eff = both.la_effects.query(query).set_index("lad")["value"]
    old = plain.la_effects.query(query).set_index("lad")["value"]
    rows = plain.latent["lad"].astype(str)
    table = plain.table.set_index("pidp").loc[plain.latent["pidp"]]
    hinge = THRESHOLD_SLOPE * np.maximum(0, table[THRESHOLD_FACTOR].to_numpy() - 6.5)
    diff = both.latent["eta_life_satisfied"] - plain.latent["eta_life_satisfied"]
    expected = eff.loc[rows].to_numpy() - old.loc[rows].to_numpy() + np.nan_to_num(hinge)
    ok = np.isfinite(table[THRESHOLD_FACTOR].to_numpy())
    assert np.allclose(diff.to_numpy()[ok], expected[ok])
    graph = gb_lad_graph().restrict(sorted(eff.index))  # the generator's LAs
    assert morans_i(eff.loc[list(graph.nodes)].to_numpy(), graph)["p_value"] < 0.01
    assert morans_i(old.loc[list(graph.nodes)].to_numpy(), graph)["p_value"] > 0.01


# --------------------------------------------------------------------------- brms agreement


@pytest.mark.slow
@pytest.mark.needs_r
def test_bym2_agrees_with_brms(tmp_path):
    """Same data, graph and priors in brms car(type = "bym2") (Stan) and here: posterior means
    of rho and sd agree within tolerances several times their Monte Carlo errors (posterior
    SDs about 0.17 and 0.06; with bulk ESS >= 400 the MC error of a mean is below 0.01 and
    0.004), so a disagreement means a different model, not sampling noise."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    from installed import require_installed

    from models import fit

    rscript = shutil.which("Rscript")
    require_installed(rscript is not None, "Rscript not found")
    ok = subprocess.run([rscript, "-e", "library(brms)"], capture_output=True).returncode == 0
    require_installed(ok, "R package brms not installed")
    df, truth = simulated_region(4000, seed=11)
    graph = truth["graph"]
    df.to_csv(tmp_path / "data.csv", index=False)
    names = np.array(graph.nodes)
    pd.DataFrame({"lad19cd_a": names[graph.edges[:, 0]], "lad19cd_b": names[graph.edges[:, 1]]}).to_csv(
        tmp_path / "edges.csv", index=False
    )
    script = Path(__file__).resolve().parents[1] / "analysis" / "r" / "bym2_brms.R"
    run = subprocess.run(
        [
            rscript,
            str(script),
            str(tmp_path / "data.csv"),
            str(tmp_path / "edges.csv"),
            str(tmp_path / "out.json"),
            "4",
            "4000",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    brms = json.loads((tmp_path / "out.json").read_text())
    assert brms["rhat_compared"] < 1.01  # rho, sd and b[x]; every parameter's: rhat_max
    ours = fit('y ~ x + car(lad, type = "bym2", graph = "observed")', df, seed=3, chains=4, progressbar=False)
    assert ours.converged, ours.headline
    post = ours.posterior()
    rho = float(post["rho_lad"].mean())
    sd = float(post["sd_lad"].mean())
    bx = float(post["b"].sel(coef="x").mean())
    assert abs(rho - brms["rho"]["mean"]) < 0.06, (rho, brms["rho"])
    assert abs(sd - brms["sd"]["mean"]) < 0.02, (sd, brms["sd"])
    assert abs(bx - brms["b_x"]["mean"]) < 0.01, (bx, brms["b_x"])
