"""Simulation-based calibration of the cumulative-logit family (slow): data drawn from the
prior predictive of `y ~ x + (1 | lad)` with 4 categories, fitted back; the rank of each
true cutpoint and of the true LA SD among the posterior draws must be uniform (chi-square
test over the replicates, 5 bins).

The prior on the centred cutpoints is ``normal(0, 2.5)`` restricted to increasing values,
which is the distribution of 3 sorted independent normal(0, 2.5) draws; the reported
cutpoints add ``mean(x) * b``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chisquare

from models import fit

pytestmark = pytest.mark.slow

REPLICATES = 100
BINS = 5


def _replicate(seed: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    n, n_lad = 300, 12
    lad = rng.integers(0, n_lad, n)
    x = rng.normal(0.5, 1.0, n)
    b = rng.normal(0, 2.5 / np.std(x))
    sd = abs(rng.normal(0, 1.0))
    tau_c = np.sort(rng.normal(0, 2.5, 3))
    r = rng.normal(0, sd, n_lad)
    eta = b * (x - x.mean()) + r[lad]
    y = np.searchsorted(tau_c, eta + rng.logistic(size=n))
    levels = ["a", "b", "c", "d"]
    frame = pd.DataFrame(
        {
            "y": pd.Categorical([levels[k] for k in y], categories=levels, ordered=True),
            "x": x,
            "lad": [f"L{k}" for k in lad],
        }
    )
    return frame, {"cutpoints": tau_c + x.mean() * b, "sd": np.array([sd])}


def test_cutpoints_and_la_sd_are_calibrated():
    ranks: dict[str, list[int]] = {"cut1": [], "cut2": [], "cut3": [], "sd_lad": []}
    for rep in range(REPLICATES):
        frame, truth = _replicate(1000 + rep)
        if frame["y"].value_counts().min() == 0:  # an empty category is dropped: not this model
            continue
        f = fit(
            "y ~ x + (1 | lad)",
            frame,
            seed=rep,
            chains=2,
            draws=250,
            tune=500,
            escalate=False,
            accept_failed=True,
            progressbar=False,
        )
        post = f.posterior()
        cut = post["cutpoints"].stack(s=("chain", "draw")).values[:, ::5]  # thinned: 100 draws
        sd = post["sd_lad"].stack(s=("chain", "draw")).values[0, ::5]
        for k in range(3):
            ranks[f"cut{k + 1}"].append(int((cut[k] < truth["cutpoints"][k]).sum()))
        ranks["sd_lad"].append(int((sd < truth["sd"][0]).sum()))
    n_draws = 100
    for name, r in ranks.items():
        assert len(r) >= 0.8 * REPLICATES
        counts = np.bincount(np.minimum(np.asarray(r) * BINS // (n_draws + 1), BINS - 1), minlength=BINS)
        p = chisquare(counts).pvalue
        print(f"SBC {name}: rank counts {counts.tolist()}, chi-square p = {p:.3f}")
        assert p > 0.001, (name, counts)
