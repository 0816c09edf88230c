"""Design-adjusted pseudo-posterior (Williams & Savitsky 2021) against R's survey::svyglm on
the same rows of the synthetic informative design, the design variance by hand, and (slow)
the coverage of the adjusted intervals over repeated samples."""

from __future__ import annotations

import subprocess
import warnings

import numpy as np
import pytest
from installed import require_installed

from analysis.lme4 import fit_svyglm, glmer_term_names
from analysis.survey import design_adjusted, design_score_variance
from data.synthetic import simulate
from models import fit

FORMULA = "life_satisfied ~ belonging + lonely + unemployed + illness + married + unsafe + area_turnout"


def test_design_score_variance_by_hand():
    scores = np.array([[1.0], [2.0], [-1.0], [4.0], [0.5], [-2.0]])
    psu = np.array([1, 1, 2, 3, 4, 4])
    strata = np.array(["a", "a", "a", "b", "b", "b"])
    # stratum a: PSU totals 3, -1 (mean 1): 2/1 * (4 + 4) = 16; b: totals 4, -1.5 (mean 1.25):
    # 2 * (2.75^2 + 2.75^2) = 30.25
    assert design_score_variance(scores, psu, strata)[0, 0] == pytest.approx(16 + 30.25)
    # one PSU in a stratum: centred at the mean of all PSU totals (3, -1, 4 -> 2), scale 1
    lonely = design_score_variance(scores[:4], psu[:4], np.array(["a", "a", "a", "b"]))
    assert lonely[0, 0] == pytest.approx(16 + (4 - 2.0) ** 2)
    assert design_score_variance(scores[:4], psu[:4], np.array(["a", "a", "a", "b"]), "remove")[0, 0] == 16


def _r_survey_ok() -> tuple[bool, str]:
    try:
        proc = subprocess.run(
            ["Rscript", "--vanilla", "-e", "library(survey); library(jsonlite)"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"R not usable: {exc}"
    return proc.returncode == 0, "R with the survey package (Debian r-cran-survey)"


@pytest.fixture(scope="module")
def informative():
    table = simulate(n=3_000, seed=21, informative=True).table
    return table[table["weight_sc"] > 0].reset_index(drop=True)


@pytest.mark.needs_r
def test_single_level_weighted_fit_agrees_with_svyglm(informative):
    require_installed(*_r_survey_ok())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = fit(FORMULA, informative, weights="weight_sc", seed=3, chains=4, draws=1000, progressbar=False)
    assert f.converged
    adj = design_adjusted(f, informative, psu="psu", strata="strata")
    rows = informative.iloc[f.md.rows]
    r = fit_svyglm(
        FORMULA,
        rows,
        weights="weight_sc",
        psu="psu",
        strata="strata",
        term_names=glmer_term_names(f.md),
    )
    assert r.n == f.md.n_obs and r.n_psu == adj.n_psu and r.n_strata == adj.n_strata
    ours = adj.summary().loc[r.terms]
    # point estimates: posterior mean within 0.1 SE of svyglm's (weighted MLE; the prior and Monte
    # Carlo error of 4,000 draws are each below 0.05 SE on 2,000 rows)
    np.testing.assert_array_less(np.abs(ours["mean"].to_numpy() - r.coef), 0.1 * r.se)
    # spread: design-adjusted SD within 10% of the linearisation SE (Monte Carlo error of an SD
    # from 4,000 draws is about 2%; J is averaged over draws instead of taken at the MLE)
    ratio = ours["sd_design_adjusted"].to_numpy() / r.se
    assert np.all(np.abs(ratio - 1) < 0.10), dict(zip(r.terms, ratio.round(3), strict=True))
    # the unadjusted pseudo-posterior is too narrow for the clustered design on some terms
    naive = ours["sd_pseudo_posterior"].to_numpy() / r.se
    assert naive.min() < 0.97


@pytest.mark.slow
def test_design_adjusted_intervals_cover_under_informative_sampling():
    """40 synthetic informative samples of 3,000 adults: the design-adjusted 95% intervals of
    the 13 fixed effects of life satisfaction cover the truth at 93-97%; the unweighted fit,
    biased by the informative response, and the unadjusted pseudo-posterior, too narrow for
    the variable weights and the PSUs, fall short (`python -m analysis.survey 40 3000`)."""
    from analysis.survey import coverage_simulation

    result = coverage_simulation(replicates=40, n=3_000, seed=1)
    assert result["converged"].all()
    coverage = result.groupby("method")["covered"].mean()
    assert 0.93 <= coverage["design-adjusted"] <= 0.97, coverage.to_dict()
    assert coverage["pseudo-posterior"] < coverage["design-adjusted"] - 0.05, coverage.to_dict()
    assert coverage["unweighted"] < 0.85, coverage.to_dict()
    # the unweighted intercept misses the truth in (nearly) every replicate
    intercept = result[(result["term"] == "Intercept") & (result["method"] == "unweighted")]
    assert intercept["covered"].mean() < 0.1
