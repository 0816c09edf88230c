"""SBC and coverage replicates through the grid runner (`analysis.calibration` on
`analysis.grid.run_tasks`), kept small: a 2-worker LocalCluster gives the ranks and intervals
of the same replicates fitted one by one in this process. The full studies (200 SBC
replicates, 50 coverage replicates) are the slow tests of tests/test_models_slow.py."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import (
    CalibrationStudy,
    Replicate,
    coverage_replicate,
    quantity_draws,
    run_replicates,
    sbc_replicate,
)

FORMULA = "y ~ x + (1 | g)"
QUANTITIES = {
    "Intercept": ("Intercept", {}),
    "b[x]": ("b", {"coef": "x"}),
    "sd_g[Intercept]": ("sd_g", {"g_term": "Intercept"}),
}
REPLICATES = 6
STUDY = CalibrationStudy(
    formula=FORMULA, quantities=QUANTITIES, chains=2, tune=200, draws=200, keep=19, refit_factor=2
)


@pytest.fixture(scope="module")
def replicates() -> list[Replicate]:
    """Parameters and outcomes drawn from the model's own default priors (as in SBC)."""
    import pymc as pm

    import models

    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        {
            "g": np.repeat([f"g{j:02d}" for j in range(12)], 15),
            "x": rng.standard_normal(180),
            "y": np.arange(180) % 2,
        }
    )
    md = models.build_model_data(FORMULA, df)
    model = models.hierarchical_logistic(md, models.resolve_priors(md))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = pm.sample_prior_predictive(draws=REPLICATES, model=model, random_seed=4)
    params = prior["prior"].to_dataset()
    y = prior["prior_predictive"]["y"].transpose("chain", "draw", "obs_id").values[0]
    truth = {name: quantity_draws(params, q) for name, q in QUANTITIES.items()}
    return [
        Replicate(i, 100 + i, df.assign(y=y[i]), {k: float(v[i]) for k, v in truth.items()}, "sbc")
        for i in range(REPLICATES)
    ]


def test_calibration_replicates_on_a_local_cluster_equal_serial(
    tmp_path: Path, replicates: list[Replicate]
) -> None:
    from distributed import Client

    from analysis.grid import local_cluster

    with local_cluster(2, tmp_path / "workers") as cluster, Client(cluster) as client:
        ranks = run_replicates(sbc_replicate, STUDY, replicates, client=client, log=lambda m: None)
        cover = run_replicates(coverage_replicate, STUDY, replicates[:3], client=client, log=lambda m: None)
    serial = run_replicates(sbc_replicate, STUDY, replicates, scheduler="serial", log=lambda m: None)
    assert list(ranks.replicate) == list(range(REPLICATES))
    same = [c for c in ranks.columns if c not in ("pid", "sampling_s")]
    pd.testing.assert_frame_equal(ranks[same], serial[same])
    for name in QUANTITIES:
        assert ranks[name].between(0, STUDY.keep).all()
        np.testing.assert_array_equal(ranks[f"{name}_true"], [r.truth[name] for r in replicates])
    # coverage rows: equal-tailed intervals around the posterior mean, covered = truth inside
    for name in QUANTITIES:
        lo, hi, mean = cover[f"{name}_lo"], cover[f"{name}_hi"], cover[f"{name}_mean"]
        assert ((lo < mean) & (mean < hi)).all()
        truth = np.array([r.truth[name] for r in replicates[:3]])
        np.testing.assert_array_equal(cover[f"{name}_covered"], (lo <= truth) & (truth <= hi))


def test_a_failed_replicate_is_named() -> None:
    bad = Replicate(0, 1, pd.DataFrame({"g": ["a", "b"], "x": [0.0, 1.0], "y": [0, 1]}), {}, "broken")
    study = CalibrationStudy(formula="y ~ nope + (1 | g)", quantities=QUANTITIES)
    with pytest.raises(RuntimeError, match="broken-r000"):
        run_replicates(sbc_replicate, study, [bad], scheduler="serial", log=lambda m: None)
