"""Escalation when a fit fails the convergence gate (`models.escalation`), and the choice of
centred or non-centred effects per grouping factor.

The policy is tested as pure functions on made-up verdicts; a few small fits (one data set
of 80 rows, two compiled structures) check that `fit` follows it: a centred funnel that
needs the non-centred form, an ESS target that needs more draws, a budget too small to
converge, and the attempts surviving save and load.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from verdicts import made_verdict

from models import build_model_data, fit, load_fit, resolve_priors
from models.escalation import (
    CENTRE_ABOVE,
    DEFAULT_BUDGET,
    Budget,
    BudgetError,
    attempt_seed,
    choose_centring,
    describe_attempt,
    draws_for_ess,
    fit_to_budget,
    information_ratio,
    nested_factors,
    next_attempt,
)
from models.fitting import SamplerSettingsError

SETTINGS = {"draws": 500, "tune": 1000, "target_accept": 0.8, "centered": {"state": False, "age": True}}


# ----------------------------------------------------------------------------- policy (no sampling)


def test_converged_fit_is_not_tried_again():
    assert next_attempt(made_verdict(), SETTINGS, info={}, funnel={}, ess_target=400)[0] is None


def test_divergences_switch_the_blocks_that_show_the_funnel():
    # state: non-centred but its data are informative -> centred; age: centred, divergences at small sd
    new, why = next_attempt(
        made_verdict(divergences=12),
        SETTINGS,
        info={"state": 40.0, "age": 0.5},
        funnel={"state": float("nan"), "age": -1.2},
        ess_target=400,
    )
    assert new["centered"] == {"state": True, "age": False}
    assert new["target_accept"] == 0.8 and new["draws"] == 500
    assert "12 divergences" in why and "centred state" in why and "non-centred age" in why
    assert SETTINGS["centered"] == {"state": False, "age": True}  # not changed in place


def test_divergences_raise_target_accept_when_nothing_is_left_to_switch():
    seen = []
    settings = dict(SETTINGS)
    # uninformative non-centred state, centred age whose divergences are not at small sd
    kw = {"info": {"state": 1.0, "age": 0.5}, "funnel": {"age": 0.4}, "ess_target": 400}
    while True:
        new, why = next_attempt(made_verdict(divergences=3), settings, **kw)
        if new is None:
            break
        seen.append((new["target_accept"], new["tune"]))
        settings = new
    # then a longer warm-up, doubled up to MAX_TUNE
    assert seen == [(0.9, 1000), (0.95, 1000), (0.99, 1000), (0.99, 2000), (0.99, 4000)]
    # ... which also draws for the ESS when that is short
    new, why_tune = next_attempt(
        made_verdict(divergences=1, bulk=200.0), {**SETTINGS, "target_accept": 0.99}, **kw
    )
    assert (new["tune"], new["draws"]) == (2000, 1250) and "tune 1000 -> 2000" in why_tune
    assert "nothing left to switch" in why
    # a block already switched once is not switched back
    new, _ = next_attempt(
        made_verdict(divergences=3),
        {**SETTINGS, "centered": {"state": True, "age": True}},
        info={"state": 40.0, "age": 0.5},
        funnel={"state": -2.0, "age": 0.0},
        ess_target=400,
        flipped={"state"},
    )
    assert new["centered"] == {"state": True, "age": True} and new["target_accept"] == 0.9


def test_low_ebfmi_is_treated_as_bad_geometry():
    new, why = next_attempt(
        made_verdict(ebfmi=0.1), SETTINGS, info={"state": 10.0}, funnel={}, ess_target=400
    )
    assert new["centered"]["state"] is True and "E-BFMI" in why
    # a factor nested with another is not centred by escalation either
    nested = {"state": ["region"], "age": []}
    new, why = next_attempt(
        made_verdict(ebfmi=0.1),
        SETTINGS,
        info={"state": 10.0, "age": 50.0},
        funnel={},
        ess_target=400,
        nested=nested,
    )
    assert new["centered"]["state"] is False and new["target_accept"] == 0.9


def test_low_ess_draws_what_the_ess_per_draw_says():
    new, why = next_attempt(
        made_verdict(bulk=200.0, tail=300.0), SETTINGS, info={}, funnel={}, ess_target=400
    )
    # 500 draws gave 200: 400 needs 1000, times the safety margin 1.25 -> 1250
    assert new["draws"] == draws_for_ess(500, 200.0, 400) == 1250
    assert new["target_accept"] == 0.8 and new["centered"] == SETTINGS["centered"]
    assert why.startswith("bulk ESS 200 < 400") and "500 -> 1250" in why
    # a nearly sufficient ESS still adds at least half the draws
    new, _ = next_attempt(made_verdict(tail=390.0), SETTINGS, info={}, funnel={}, ess_target=400)
    assert new["draws"] == 750
    # R-hat alone: twice the draws
    new, why = next_attempt(made_verdict(rhat=1.02), SETTINGS, info={}, funnel={}, ess_target=400)
    assert new["draws"] == 1000 and why.startswith("R-hat 1.020")
    # an ESS target above the gate's
    new, _ = next_attempt(made_verdict(bulk=1000.0, ess=4000), SETTINGS, info={}, funnel={}, ess_target=4000)
    assert new["draws"] == 2500


def test_tree_depth_hits_raise_the_maximum_depth_once():
    kw = {"info": {}, "funnel": {}, "ess_target": 400}
    # alone: only the depth changes
    new, why = next_attempt(made_verdict(depth_hits=1), SETTINGS, **kw)
    assert new == {**SETTINGS, "max_depth": 12}
    assert why == "1 transitions at the maximum tree depth: maxdepth 10 -> 12"
    # with divergences: the geometry step and the depth together
    new, why = next_attempt(made_verdict(divergences=2, depth_hits=3), SETTINGS, **kw)
    assert new["centered"]["age"] is False and new["max_depth"] == 12  # age: centred, not pinned
    assert why.startswith("2 divergences") and why.endswith("maxdepth 10 -> 12")
    # with short ESS: more draws and the depth
    new, why = next_attempt(made_verdict(bulk=200.0, depth_hits=3), SETTINGS, **kw)
    assert (new["draws"], new["max_depth"]) == (1250, 12)
    # at the last step: nothing more for the depth; stop when nothing else helps
    new, why = next_attempt(made_verdict(depth_hits=1), {**SETTINGS, "max_depth": 12}, **kw)
    assert new is None and why == "1 transitions at the maximum tree depth at maxdepth 12, the last step"
    # ... but other problems are still worked on, at the raised depth
    new, _ = next_attempt(made_verdict(bulk=200.0, depth_hits=1), {**SETTINGS, "max_depth": 12}, **kw)
    assert (new["draws"], new["max_depth"]) == (1250, 12)
    line = describe_attempt(
        {
            **SETTINGS,
            **new,
            "attempt": 2,
            "reason": "",
            "chains": 4,
            "seed": 1,
            "seconds": 1.0,
            "verdict": "CONVERGED",
        }
    )
    assert "maxdepth 12" in line
    assert "maxdepth" not in describe_attempt(
        {
            **SETTINGS,
            "attempt": 1,
            "reason": "",
            "chains": 4,
            "seed": 1,
            "seconds": 1.0,
            "verdict": "CONVERGED",
        }
    )


def test_budget_cuts_or_stops_the_next_attempt():
    prev, proposed = SETTINGS, {**SETTINGS, "draws": 5000}
    kw = {"chains": 4, "spent_seconds": 10.0, "seconds_per_draw": 0.001}
    # 6000 iterations spent of 20000: 14000 / 4 chains - 1000 tune = 2500 draws left per chain
    out, _ = fit_to_budget(proposed, prev, budget=Budget(draws=20_000), spent_draws=6000, **kw)
    assert out["draws"] == 2500
    out, why = fit_to_budget(proposed, prev, budget=Budget(draws=8_000), spent_draws=6000, **kw)
    assert out is None and why == "budget spent (6000 of 8000 draws)"
    # seconds: 10 s spent of 30, 0.001 s per iteration: 20 / 0.004 - 1000 = 4000 draws
    out, _ = fit_to_budget(proposed, prev, budget=Budget(draws=None, seconds=30), spent_draws=0, **kw)
    assert out["draws"] == 4000
    # more draws than the last attempt had is worth it; no more draws with nothing else changed is not
    out, _ = fit_to_budget(proposed, prev, budget=Budget(draws=12_000), spent_draws=6000, **kw)
    assert out is None
    changed = {**proposed, "target_accept": 0.9, "draws": 500}
    out, _ = fit_to_budget(changed, prev, budget=Budget(draws=12_000), spent_draws=6000, **kw)
    assert out == changed


def test_budget_and_seed_rules():
    assert Budget.parse({"seconds": 60}) == Budget(draws=DEFAULT_BUDGET["draws"], seconds=60.0)
    assert Budget.parse(None).to_dict() == {"draws": 120_000, "seconds": None}  # the documented default
    for bad in ({"draws": -1}, {"minutes": 3}, {"draws": True}, 5):
        with pytest.raises(BudgetError):
            Budget.parse(bad)
    seeds = [attempt_seed(7, k) for k in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4 and seeds == [attempt_seed(7, k) for k in range(4)]
    assert attempt_seed(8, 1) != seeds[1]


# ----------------------------------------------------------------------------- centring rule


def _groups(
    rng, n_levels: int, per_level: int, rate: float, sd: float, name: str
) -> tuple[np.ndarray, np.ndarray]:
    idx = np.repeat(np.arange(n_levels), per_level)
    logit = np.log(rate / (1 - rate)) + rng.normal(0, sd, n_levels)[idx]
    return idx, logit


def test_centring_rule_follows_the_information_per_level():
    rng = np.random.default_rng(3)
    # rich: 40 states x 300 people at a rate near 0.5 (kappa ~ 75); sparse: 600 groups of 20 (kappa ~ 5)
    rich, eta = _groups(rng, 40, 300, 0.5, 0.3, "rich")
    sparse = rng.permutation(np.repeat(np.arange(600), 20))
    rare = rng.permutation(np.repeat(np.arange(40), 300))  # as many rows as `rich`, but rate 0.01
    df = pd.DataFrame(
        {
            "y": rng.binomial(1, 1 / (1 + np.exp(-eta))),
            "y_rare": rng.binomial(1, 0.01, eta.size),
            "rich": rich.astype(str),
            "sparse": sparse.astype(str),
            "rare": rare.astype(str),
        }
    )
    md = build_model_data("y ~ 1 + (1 | rich) + (1 | sparse)", df)
    pri = resolve_priors(md)
    kappa = information_ratio(md, pri)
    assert kappa["rich"] > 3 * CENTRE_ABOVE and kappa["sparse"] < CENTRE_ABOVE / 3, kappa
    assert choose_centring(md, pri) == {"rich": True, "sparse": False}
    # outcomes near 0 carry little information: the same 300 people per level stay non-centred
    md_rare = build_model_data("y_rare ~ 1 + (1 | rare)", df)
    assert choose_centring(md_rare, resolve_priors(md_rare)) == {"rare": False}
    # relative to the prior: a prior expecting effects 4x smaller makes kappa 16x smaller
    tight = resolve_priors(md, {"sd_rich": "halfnormal(0.25)"})
    assert information_ratio(md, tight)["rich"] == pytest.approx(kappa["rich"] / 16)
    # nested factors (levels of `rich` within regions): neither is centred, whatever kappa says
    md_nest = build_model_data("y ~ 1 + (1 | rich) + (1 | region)", df.assign(region=(rich // 8).astype(str)))
    assert nested_factors(md_nest) == {"rich": ["region"], "region": ["rich"]}
    assert min(information_ratio(md_nest, resolve_priors(md_nest)).values()) > CENTRE_ABOVE
    assert choose_centring(md_nest, resolve_priors(md_nest)) == {"rich": False, "region": False}
    assert nested_factors(md) == {"rich": [], "sparse": []}  # crossed, not nested
    # slopes: the information of the least-informed term counts
    md_slope = build_model_data("y ~ x + (1 + x | rich)", df.assign(x=rng.normal(0, 0.1, len(df))))
    assert choose_centring(md_slope, resolve_priors(md_slope)) == {"rich": False}


# ----------------------------------------------------------------------------- fits (sampling)


@pytest.fixture(scope="module")
def sparse() -> pd.DataFrame:
    """20 groups of 4 rows with a small group SD: the centred form is a funnel."""
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(20), 4)
    eta = 0.3 + rng.normal(0, 0.3, 20)[g]
    return pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "g": [f"g{k}" for k in g]})


def _fit(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit("y ~ 1 + (1 | g)", df, progressbar=False, tune=300, **kw)


def test_centred_funnel_escalates_to_the_non_centred_form(sparse):
    md = build_model_data("y ~ 1 + (1 | g)", sparse)
    assert choose_centring(md, resolve_priors(md)) == {"g": False}  # 4 rows per group
    f = _fit(sparse, centered=True, seed=3)
    first, last = f.attempts[0], f.attempts[-1]
    assert first["centered"] == {"g": True} and (
        "divergent" in first["verdict"] or "E-BFMI" in first["verdict"]
    )
    assert f.attempts[1]["centered"] == {"g": False} and "non-centred g" in f.attempts[1]["reason"]
    assert f.converged and last["passed"] and f.settings["centered"] == {"g": False}
    assert f.headline == last["verdict"]
    lines = str(f).splitlines()
    assert lines[0].startswith("CONVERGED") and lines[2] == f"attempts ({len(f.attempts)}):"
    # with escalation off the funnel is reported as it is
    once = _fit(sparse, centered=True, seed=3, escalate=False, draws=500)
    assert not once.converged and len(once.attempts) == 1


def test_ess_target_draws_more(sparse):
    f = _fit(sparse, seed=5, draws=200, ess=2500)
    assert [a["draws"] for a in f.attempts][0] == 200 and len(f.attempts) >= 2
    assert f.attempts[1]["draws"] > 200 and "ESS" in f.attempts[1]["reason"]
    assert f.converged and min(f.convergence.min_ess_bulk, f.convergence.min_ess_tail) >= 2500
    assert f.convergence.thresholds["ess_bulk_min"] == 2500
    assert [a["seed"] for a in f.attempts] == [attempt_seed(5, k) for k in range(len(f.attempts))]


def test_tiny_budget_reports_not_converged_with_its_attempts(sparse, tmp_path):
    f = _fit(sparse, seed=6, draws=200, ess=20_000, budget={"draws": 6000})
    # 4 x (300 + 200) = 2000 iterations; then (6000 - 2000) / 4 - 300 = 700 draws; then nothing left
    assert [a["draws"] for a in f.attempts] == [200, 700]
    assert not f.converged and f.headline.startswith("NOT CONVERGED")
    assert f.settings["escalation_stopped"] == "budget spent (6000 of 6000 draws)"
    text = str(f)
    assert text.splitlines()[0].startswith("NOT CONVERGED")
    assert "attempt 1: 4 x (300 tune + 200 draws)" in text and "attempt 2 [" in text
    assert "stopped: budget spent" in text
    back = load_fit(f.save(tmp_path / "f.nc"))
    assert (
        back.attempts == f.attempts
        and back.settings["escalation_stopped"] == f.settings["escalation_stopped"]
    )
    assert back.attempts_text() == f.attempts_text()


def test_bad_escalation_settings_are_refused(sparse):
    with pytest.raises(SamplerSettingsError, match="budget"):
        _fit(sparse, budget={"hours": 1})
    with pytest.raises(SamplerSettingsError, match="ess"):
        _fit(sparse, ess=0)
    with pytest.raises(SamplerSettingsError, match="no group block 'lad'"):
        _fit(sparse, centered={"lad": True})
