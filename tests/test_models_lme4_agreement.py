"""Agreement with lme4 `glmer` (adaptive quadrature) on real data where both should agree.

- cbpp (lme4's contagious bovine pleuropneumonia data, 56 herd-periods in 15 herds):
  ``cbind(incidence, size - incidence) ~ period + (1 | herd)``.
- 1988 CBS polls (Gelman & Hill ch. 14; 11,566 people in 49 states):
  ``y ~ black + female + (1 | state)``.

Fixed effects: |posterior mean - glmer estimate| <= 1 posterior SD.

Group SD: the posterior mean of a group SD is expected to sit above glmer's maximum
likelihood estimate, because the ML estimate of a variance component is biased low with
few groups and the posterior averages over the SD's right-skewed uncertainty. With 49
states the SD is well identified, so we require the ratio posterior mean / glmer to lie
within [0.9, 1.25]; with only 15 herds the posterior of the SD is wide (its 95% interval
spans a factor of ~3), so we require the ratio within [0.85, 1.6] and glmer's estimate to
lie inside the 95% posterior interval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.lme4 import fit_glmer, glmer_data
from models import fit

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.needs_r  # skipped with R's install message when R is missing (conftest.py)


def _compare(bayes, glmer, group: str, sd_band: tuple[float, float]) -> dict:
    post = bayes.posterior()
    out = {}
    for term, row in glmer.fixed.iterrows():
        da = post["Intercept"] if term == "Intercept" else post["b"].sel(coef=term)
        m, s = float(da.mean()), float(da.std())
        out[term] = (m, s, row["estimate"])
        assert abs(m - row["estimate"]) <= s, (
            f"{term}: posterior {m:.3f} (sd {s:.3f}) vs glmer {row['estimate']:.3f}"
        )
    sd = post[f"sd_{group}"].sel({f"{group}_term": "Intercept"}).values.ravel()
    g_sd = glmer.sd(group)
    ratio = sd.mean() / g_sd
    lo, hi = np.quantile(sd, [0.025, 0.975])
    assert sd_band[0] <= ratio <= sd_band[1], f"sd ratio {ratio:.2f}"
    assert lo <= g_sd <= hi
    out["sd"] = (sd.mean(), sd.std(), g_sd)
    return out


def test_cbpp_agrees_with_glmer_agq():
    cbpp = glmer_data("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    g = fit_glmer(formula, cbpp)
    assert g.nAGQ == 25
    b = fit(formula, cbpp, chains=4, draws=1000, tune=1000, seed=20, progressbar=False)
    assert b.converged, b.convergence.problems
    _compare(b, g, "herd", (0.85, 1.6))


def test_polls88_agrees_with_glmer_agq():
    polls = pd.read_csv(ROOT / "data" / "validation" / "polls88.csv")
    polls["state"] = polls["state"].astype(str)
    formula = "y ~ black + female + (1 | state)"
    g = fit_glmer(formula, polls)
    assert g.nAGQ == 25 and g.n_obs == 11566 and g.n_groups["state"] == 49
    # ~240 people per state: the intercept and the mean state effect are strongly
    # correlated a posteriori, which the low-rank mass matrix learns
    b = fit(formula, polls, chains=4, draws=1000, tune=500, seed=21, progressbar=False, adaptation="low_rank")
    assert b.converged, b.convergence.problems
    _compare(b, g, "state", (0.9, 1.25))
    # state effects: posterior means track glmer's conditional modes closely
    modes = g.ranef.query("group == 'state'").set_index("level")["mode"]
    means = b.posterior()["r_state"].sel(state_term="Intercept").mean(("chain", "draw")).to_series()
    assert np.corrcoef(modes.loc[means.index], means)[0, 1] > 0.99
