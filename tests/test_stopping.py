"""Draw until the gate passes (`models.stopping`): the checkpoint rule on constructed verdicts,
the loop on a scripted sampler, and real fits that stop early, repeatably, with the same
draws as a fixed-length run of that length."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from verdicts import made_verdict

from models import fit
from models.compiled import compiled_model
from models.convergence import GATE_STATS, check_convergence, checked_variables
from models.formula import build_model_data
from models.priors import resolve_priors
from models.stopping import (
    GROWTH,
    LOOK_SAFETY,
    MAX_GROWTH,
    drawn_per_chain,
    first_checkpoint,
    gate_trace,
    next_checkpoint,
    sample_until,
    truncated,
)


def _conv(*, rhat=1.0, bulk=5000.0, tail=5000.0, div=0, depth=0, ess_target=400.0):
    return made_verdict(rhat=rhat, bulk=bulk, tail=tail, divergences=div, depth_hits=depth, ess=ess_target)


# ----------------------------------------------------------------------------- the rule


def test_first_checkpoint_is_two_and_a_half_times_the_ess_over_chains_at_least_100():
    assert first_checkpoint(400, 4) == 250
    assert first_checkpoint(1000, 4) == 625
    assert first_checkpoint(50, 4) == 100


def test_next_checkpoint_follows_the_ess_per_draw_within_its_bounds():
    # ESS 300 of 400 at 200 draws: 200 * 1.1 * 400 / 300 = 293.3 -> 300 (multiple of 25)
    assert next_checkpoint(200, _conv(bulk=300), 400, 5000) == 300
    assert 200 * LOOK_SAFETY * 400 / 300 <= 300
    # nearly there: at least GROWTH x
    assert next_checkpoint(200, _conv(bulk=399), 400, 5000) == int(GROWTH * 200)
    # far off: at most MAX_GROWTH x
    assert next_checkpoint(200, _conv(bulk=10), 400, 5000) == int(MAX_GROWTH * 200)
    # ESS enough, R-hat not: R-hat - 1 shrinks as 1 / draws; 400 * 1.1 * 0.014 / 0.01 = 616 -> 625
    assert next_checkpoint(400, _conv(rhat=1.014), 400, 5000) == 625
    assert next_checkpoint(400, _conv(rhat=1.0101), 400, 5000) == 500  # at least GROWTH x
    # both short: the larger need
    assert next_checkpoint(400, _conv(rhat=1.014, bulk=200), 400, 5000) == 900
    # never past the ceiling, and none at it
    assert next_checkpoint(200, _conv(bulk=10), 400, 450) == 450
    assert next_checkpoint(450, _conv(bulk=10), 400, 450) is None


def test_divergences_and_tree_depth_stop_at_once():
    assert next_checkpoint(200, _conv(div=3), 400, 5000) is None
    assert next_checkpoint(200, _conv(depth=1), 400, 5000) is None


# ----------------------------------------------------------------------------- the loop


class ScriptedSampler:
    """A background sampler that releases pre-made draws in steps of ``step`` per chain, one
    step per progress report, padding the chains that are behind with NaN, like nutpie."""

    def __init__(self, post: np.ndarray, diverging: np.ndarray, tune: int, step: int, lag: np.ndarray):
        self.post, self.div, self.tune, self.step, self.lag = post, diverging, tune, step, lag
        self.made = np.zeros(post.shape[0], dtype=int)
        self.paused = False
        self.aborted = False
        self.callback = None

    def advance(self) -> None:
        if self.paused or self.aborted:
            return
        full = self.post.shape[1]
        self.made = np.minimum(full, self.made + self.step + self.lag)
        reports = [type("R", (), {"finished_draws": self.tune + int(m)})() for m in self.made]
        self.callback(reports)

    def _tree(self) -> xr.DataTree:
        chains, full = self.post.shape[:2]
        n = int(self.made.max())
        post = np.full((chains, n, self.post.shape[2]), np.nan)
        div = np.zeros((chains, n), bool)
        energy = np.full((chains, n), np.nan)
        rng = np.random.default_rng(0)
        e_all = rng.normal(size=(chains, full))
        for c in range(chains):
            post[c, : self.made[c]] = self.post[c, : self.made[c]]
            div[c, : self.made[c]] = self.div[c, : self.made[c]]
            energy[c, : self.made[c]] = e_all[c, : self.made[c]]
        return xr.DataTree.from_dict(
            {
                "posterior": xr.Dataset({"theta": (("chain", "draw", "k"), post)}),
                "sample_stats": xr.Dataset(
                    {"diverging": (("chain", "draw"), div), "energy": (("chain", "draw"), energy)}
                ),
                "warmup_posterior": xr.Dataset({"theta": (("chain", "draw", "k"), np.zeros((chains, 5, 2)))}),
            }
        )

    @property
    def is_finished(self) -> bool:
        return bool((self.made >= self.post.shape[1]).all())

    def inspect(self):
        return self._tree()

    def wait(self):
        return self._tree()

    def pause(self):
        self.paused = True

    def resume(self):
        self.paused = False

    def abort(self):
        self.aborted = True
        return self._tree()


def _run(post, diverging, *, ceiling, ess_target=400.0, step=25, lag=None):
    chains = post.shape[0]
    sampler = ScriptedSampler(
        post, diverging, tune=50, step=step, lag=np.zeros(chains, int) if lag is None else lag
    )

    def start(callback):
        sampler.callback = callback
        return sampler

    tree, conv, record = sample_until(
        start,
        tune=50,
        ceiling=ceiling,
        ess_target=ess_target,
        chains=chains,
        sleep=lambda _: sampler.advance(),
    )
    return sampler, tree, conv, record


def test_the_loop_stops_at_the_first_passing_checkpoint_with_exactly_those_draws():
    rng = np.random.default_rng(1)
    post = rng.normal(size=(4, 2000, 2))  # independent draws: ESS about 1 per draw
    lag = np.array([0, 3, 7, 11])  # chains run at different speeds
    sampler, tree, conv, record = _run(post, np.zeros((4, 2000), bool), ceiling=2000, lag=lag)
    assert conv.passed and record.reason.startswith("gate passed at")
    assert record.looks[0] == first_checkpoint(400, 4) and record.length == record.looks[-1]
    assert record.length < 2000 and sampler.aborted
    assert tree["posterior"].sizes["draw"] == record.length
    np.testing.assert_array_equal(tree["posterior"]["theta"].values, post[:, : record.length])
    assert record.drawn >= 4 * record.length  # chains that ran ahead are counted
    assert tree["warmup_posterior"].sizes["draw"] == 5  # warm-up kept whole


def test_the_loop_stops_on_divergences_and_runs_autocorrelated_chains_to_the_ceiling():
    rng = np.random.default_rng(2)
    post = rng.normal(size=(4, 1000, 2))
    div = np.zeros((4, 1000), bool)
    div[2, 150] = True
    _, tree, conv, record = _run(post, div, ceiling=1000)
    assert not conv.passed and conv.divergences == 1 and record.length == 250
    assert record.reason == "1 divergences in the first 250 draws"
    # a random walk never reaches the ESS asked for: the ceiling ends it
    walk = np.cumsum(rng.normal(size=(4, 600, 2)), axis=1)
    _, tree, conv, record = _run(walk, np.zeros((4, 600), bool), ceiling=600)
    assert not conv.passed and record.length == 600 and record.reason == "ceiling of 600 draws reached"
    assert record.looks == sorted(record.looks) and record.looks[-1] == 600


def test_padding_counts_and_truncation():
    post = np.full((3, 10, 1), np.nan)
    post[0, :10], post[1, :4], post[2, :7] = 1.0, 2.0, 3.0
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"a": (("chain", "draw", "k"), post)})})
    assert list(drawn_per_chain(tree)) == [10, 4, 7]
    assert truncated(tree, 4)["posterior"].sizes["draw"] == 4


# ----------------------------------------------------------------------------- real fits


@pytest.fixture(scope="module")
def easy() -> pd.DataFrame:
    """3,000 people in 30 groups of 100 with a slope: the gate passes well before the ceiling."""
    rng = np.random.default_rng(0)
    g = rng.integers(0, 30, 3000)
    df = pd.DataFrame({"x": rng.normal(size=3000), "g": [f"g{k}" for k in g]})
    df["y"] = rng.binomial(1, 1 / (1 + np.exp(-(0.3 * df.x + rng.normal(0, 0.5, 30)[g]))))
    return df


def _fit(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit("y ~ x + (1 | g)", df, progressbar=False, **kw)


def test_a_default_fit_stops_early_repeatably_with_the_draws_of_a_fixed_run(easy):
    f = _fit(easy, seed=8)  # centred by the data (100 people per group): hierarchical centring
    a = f.attempts[-1]
    assert f.converged and f.settings["draws_until_gate"]
    assert a["stopped"].startswith("gate passed") and a["draws"] < a["max_draws"] == 1000
    assert f.posterior().sizes["draw"] == a["draws"] == f.settings["draws"]
    assert f.settings["tune"] == 300  # nutpie's default tuning
    again = _fit(easy, seed=8)
    assert again.attempts == [
        {**x, "seconds": y["seconds"]} for x, y in zip(f.attempts, again.attempts, strict=True)
    ]
    assert np.array_equal(again.posterior()["b"].values, f.posterior()["b"].values)
    # the same seed and length without stopping: the same draws (stopping only shortens)
    assert len(f.attempts) == 1
    fixed = _fit(easy, seed=8, draws=a["draws"], escalate=False)
    assert np.array_equal(fixed.posterior()["b"].values, f.posterior()["b"].values)
    text = str(f)
    assert "stopped: gate passed" in text or "gate passed at" in text


def test_given_draws_are_drawn_in_full(easy):
    f = _fit(easy, seed=8, centered=False, draws=300)
    assert f.attempts[0]["draws"] == 300 and "looks" not in f.attempts[0]
    assert not f.settings["draws_until_gate"]


@pytest.mark.parametrize(
    ("formula", "reported"),
    [
        ("y ~ x + (1 | g)", {"r_g", "sd_g", "b", "Intercept"}),  # sd_g sampled on the log scale
        ("y ~ x + (1 + x | g)", {"r_g", "sd_g", "cor_g", "b", "Intercept"}),
    ],
)
def test_the_gate_reads_a_running_sampler_as_nutpie_does(easy, formula, reported):
    """`gate_trace` (the Arrow trace read directly) equals nutpie's own reading of the same
    paused sampler: the checked variables (not the transformed ones nutpie also stores), the
    gate's statistics, and the gate's verdict."""
    import time

    import nutpie

    md = build_model_data(formula, easy)
    compiled, _ = compiled_model(md, resolve_priors(md, None), centered=False)
    handle = nutpie.sample(
        compiled,
        draws=2000,
        tune=100,
        chains=3,
        cores=3,
        seed=3,
        blocking=False,
        progress_bar=False,
        save_warmup=False,
    )
    try:
        time.sleep(1.5)
        handle.pause()
        light, full = gate_trace(handle), handle.inspect()
    finally:
        handle.abort()
    post, ref = light["posterior"].to_dataset(), full["posterior"].to_dataset()
    assert sorted(post.data_vars) == sorted(checked_variables(ref))
    assert reported <= set(post.data_vars) and not any(str(v).endswith("__") for v in post.data_vars)
    assert post.sizes["draw"] > 50  # some draws past tuning, chains padded alike
    for name in post.data_vars:
        assert post[name].dims == ref[name].dims
        np.testing.assert_array_equal(post[name].values, ref[name].values)
    assert list(post["r_g"].coords["g"].values) == list(ref["r_g"].coords["g"].values)
    stats = light["sample_stats"].to_dataset()
    assert set(stats.data_vars) == set(GATE_STATS) & set(full["sample_stats"].data_vars)
    for name in stats.data_vars:
        np.testing.assert_array_equal(stats[name].values, full["sample_stats"][name].values)
    n = int(drawn_per_chain(light).min())
    assert np.array_equal(drawn_per_chain(light), drawn_per_chain(full))
    a, b = check_convergence(truncated(light, n)), check_convergence(truncated(full, n))
    assert (a.max_rhat, a.min_ess_bulk, a.min_ess_tail, a.worst_rhat, a.worst_ess_bulk) == (
        b.max_rhat,
        b.min_ess_bulk,
        b.min_ess_tail,
        b.worst_rhat,
        b.worst_ess_bulk,
    )
