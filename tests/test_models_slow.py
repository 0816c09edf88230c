"""Slow statistical validation of the model core: interval coverage and SBC.

Two checks that the hierarchical logistic model of `models` (formula parsing, default
priors, non-centred LKJ-correlated varying slopes, nutpie sampling) gives calibrated
inferences, not merely runnable code:

``test_interval_coverage_over_replicates``
    Frequentist coverage of the 95% equal-tailed posterior intervals over replicated data
    sets simulated with fixed true hyperparameters: a correlated varying intercept and
    slope and a cross-level interaction, ``y ~ x * w + (1 + x | g)``.
``test_simulation_based_calibration``
    Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari and Gelman 2018,
    arXiv:1804.06788): parameters drawn from exactly the model's default priors, outcomes
    from the prior predictive, and the rank of each true value among thinned posterior
    draws, which is uniform when the sampler and model are correct.

Both run through the grid runner (`analysis.calibration.run_replicates`, built on
`analysis.grid.run_tasks`): each replicate is one task, fitted by `models.fit` (compiled
models from the structure-keyed cache, so each worker compiles the model once) on a local
Dask cluster of 2 one-thread process workers by default, or on a running cluster with
``--scheduler tcp://host:8786`` (``--scheduler serial``: one after another in this process).
A replicate's result depends only on its own seed and data, not on the worker.
Per-replicate tables and the SBC rank histogram are written to ``benchmarks/sbc/``.

Run with ``.venv/bin/python -m pytest -m slow tests/test_models_slow.py`` (they are excluded
from the default run). Seeds are fixed, so the results are reproducible on one machine.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import stats

import models
from analysis.calibration import (
    CalibrationStudy,
    Replicate,
    coverage_replicate,
    quantity_draws,
    run_replicates,
    sbc_replicate,
)

nutpie = pytest.importorskip("nutpie")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "sbc"

# significance level of every calibration test in this file
ALPHA = 0.01

# ---------------------------------------------------------------------------- coverage set-up
COV_FORMULA = "y ~ x * w + (1 + x | g)"
COV_GROUPS = 50
COV_ROWS_PER_GROUP = 40  # 2,000 rows
COV_REPLICATES = 50
COV_CHAINS, COV_TUNE, COV_DRAWS = 2, 500, 500
COV_SEED = 20250611
COV_TRUTH = {
    "Intercept": -0.4,
    "b[x]": 0.7,
    "b[w]": 0.5,
    "b[x:w]": -0.35,
    "sd_g[Intercept]": 0.6,
    "sd_g[x]": 0.4,
    "cor_g[Intercept,x]": -0.5,
}

# ---------------------------------------------------------------------------- SBC set-up
SBC_FORMULA = "y ~ x + (1 + x | g)"
SBC_GROUPS, SBC_ROWS_PER_GROUP = 20, 15
SBC_REPLICATES = 200
SBC_CHAINS, SBC_TUNE, SBC_DRAWS = 2, 500, 1000
SBC_KEEP = 99  # posterior draws kept per replicate: ranks take 100 values, 10 per bin
SBC_BINS = 10
SBC_SEED = 20250612

# Posterior quantities as (variable, selection); the same selections work on prior draws.
PARAMETERS = {
    "Intercept": ("Intercept", {}),
    "b[x]": ("b", {"coef": "x"}),
    "b[w]": ("b", {"coef": "w"}),
    "b[x:w]": ("b", {"coef": "x:w"}),
    "sd_g[Intercept]": ("sd_g", {"g_term": "Intercept"}),
    "sd_g[x]": ("sd_g", {"g_term": "x"}),
    "cor_g[Intercept,x]": ("cor_g", {"g_term": "Intercept", "g_term2": "x"}),
}
SBC_PARAMETERS = ["Intercept", "b[x]", "sd_g[Intercept]", "sd_g[x]", "cor_g[Intercept,x]"]


# ---------------------------------------------------------------------------- helpers


@pytest.fixture
def scheduler(request: pytest.FixtureRequest) -> str:
    """Where the replicates run: pytest's ``--scheduler`` (default ``local``, a 2-worker
    LocalCluster; ``serial``; or a scheduler address)."""
    return str(request.config.getoption("--scheduler"))


def _standardise(v: np.ndarray) -> np.ndarray:
    """Shift and scale to mean 0 and (population) standard deviation 1 exactly.

    Parameters
    ----------
    v : numpy.ndarray
        Values to standardise.

    Returns
    -------
    numpy.ndarray
        ``(v - mean(v)) / std(v)``.
    """
    return (v - v.mean()) / v.std()


def _simulate_coverage_data(rng: np.random.Generator) -> pd.DataFrame:
    """One replicate of the coverage study: new predictors, group effects and outcomes.

    The predictors are exactly standardised so that the design's column means are 0 and
    standard deviations 1 in every replicate: ``x`` is standardised within each group
    (group-mean centred), ``w`` is a group-level covariate standardised over the balanced
    groups, hence ``x:w`` also has mean 0 and standard deviation 1. The model that `models`
    builds for any replicate is therefore identical (same centring constants, same default
    priors ``normal(0, 2.5)``), and one compiled model serves every replicate.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    pandas.DataFrame
        Columns ``g`` (group label), ``x``, ``w`` and the 0/1 outcome ``y``.
    """
    G, n = COV_GROUPS, COV_ROWS_PER_GROUP
    t = COV_TRUTH
    g = np.repeat(np.arange(G), n)
    x = np.concatenate([_standardise(rng.standard_normal(n)) for _ in range(G)])
    w_group = _standardise(rng.standard_normal(G))
    w = w_group[g]
    sd = np.array([t["sd_g[Intercept]"], t["sd_g[x]"]])
    cor = np.array([[1.0, t["cor_g[Intercept,x]"]], [t["cor_g[Intercept,x]"], 1.0]])
    r = rng.multivariate_normal(np.zeros(2), sd[:, None] * cor * sd[None, :], size=G)
    eta = t["Intercept"] + t["b[x]"] * x + t["b[w]"] * w + t["b[x:w]"] * x * w + r[g, 0] + r[g, 1] * x
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    return pd.DataFrame({"g": [f"g{j:02d}" for j in g], "x": x, "w": w, "y": y})


def _binomial_band(n: int, p: float, level: float) -> tuple[int, int]:
    """Central binomial interval of counts ``[lo, hi]`` with probability at least ``level``.

    Parameters
    ----------
    n : int
        Number of trials.
    p : float
        Success probability.
    level : float
        Probability of the band, e.g. 0.99.

    Returns
    -------
    tuple of int
        Quantiles ``(1 - level) / 2`` and ``(1 + level) / 2`` of Binomial(n, p).
    """
    lo, hi = stats.binom.ppf([(1 - level) / 2, (1 + level) / 2], n, p)
    return int(lo), int(hi)


def _report(name: str, text: str) -> None:
    """Print a result block and keep the latest copy as ``benchmarks/sbc/<name>.txt``.

    Parameters
    ----------
    name : str
        File stem, e.g. ``"coverage_summary"``.
    text : str
        Plain-text result block.
    """
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.txt").write_text(text + "\n")
    print(text)


# ---------------------------------------------------------------------------- coverage


@pytest.mark.slow
def test_interval_coverage_over_replicates(scheduler: str) -> None:
    """95% equal-tailed intervals cover the true values in ~95% of replicated data sets.

    Each of the ``COV_REPLICATES`` replicates has new predictors, new true group effects and
    new outcomes; the hyperparameters (`COV_TRUTH`) are fixed. For every parameter the number
    of replicates whose interval covers the truth is tested against Binomial(n, 0.95) with a
    two-sided exact binomial test, failing when p <= ``ALPHA`` (0.01). Coverage of Bayesian
    intervals at one fixed truth need not be exactly nominal (the priors pull estimates), so
    this is a check for gross miscalibration (e.g. wrong sign conventions, a mis-scaled prior,
    an intercept on the wrong scale, a broken correlation parameterisation).
    """
    start = time.perf_counter()
    rng = np.random.default_rng(COV_SEED)
    replicates = [_simulate_coverage_data(rng) for _ in range(COV_REPLICATES)]

    # every replicate gets the same model: same default priors (standardised predictors)
    template_md = models.build_model_data(COV_FORMULA, replicates[0])
    priors = models.resolve_priors(template_md)
    assert template_md.fixed_terms == ["Intercept", "x", "w", "x:w"]
    assert all(str(p) == "normal(0, 2.5)" for k, p in priors.items() if k.startswith("b[")), priors
    for i in (1, COV_REPLICATES - 1):
        assert models.resolve_priors(models.build_model_data(COV_FORMULA, replicates[i])) == priors

    study = CalibrationStudy(
        formula=COV_FORMULA,
        quantities=PARAMETERS,
        chains=COV_CHAINS,
        tune=COV_TUNE,
        draws=COV_DRAWS,
        target_accept=0.9,
        centered=False,
    )
    tasks = [
        Replicate(index=i, seed=COV_SEED + i, data=df, truth=COV_TRUTH, study="coverage")
        for i, df in enumerate(replicates)
    ]
    table = run_replicates(coverage_replicate, study, tasks, scheduler=scheduler, log=print)

    # the package's own summary (the `Fit` path) gives the same intervals as the replicate's row
    first = models.fit(
        COV_FORMULA,
        replicates[0],
        centered=False,
        chains=COV_CHAINS,
        tune=COV_TUNE,
        draws=COV_DRAWS,
        seed=COV_SEED,
        target_accept=0.9,
        escalate=False,
        progressbar=False,
        accept_failed=True,
    )
    summary = first.summary(prob=0.95)
    for name in COV_TRUTH:
        label = name.replace("cor_g[Intercept,x]", "cor_g[Intercept, x]")
        assert summary.loc[label, "eti95_lb"] == pytest.approx(table.loc[0, f"{name}_lo"], abs=0.02)
        assert summary.loc[label, "eti95_ub"] == pytest.approx(table.loc[0, f"{name}_hi"], abs=0.02)

    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / "coverage.csv", index=False)

    n = len(table)
    lo_band, hi_band = _binomial_band(n, 0.95, 1 - ALPHA)
    lines = [
        f"Coverage of 95% equal-tailed intervals, {n} replicates of {COV_FORMULA} "
        f"({COV_GROUPS} groups x {COV_ROWS_PER_GROUP} rows; nutpie {COV_CHAINS} chains x "
        f"{COV_TUNE} tune + {COV_DRAWS} draws)",
        f"99% binomial band for the count covered: [{lo_band}, {hi_band}] of {n}",
        f"{'parameter':<22}{'truth':>8}{'covered':>9}{'coverage':>10}{'binom p':>10}",
    ]
    failures = []
    for name, truth in COV_TRUTH.items():
        k = int(table[f"{name}_covered"].sum())
        p = stats.binomtest(k, n, 0.95).pvalue
        lines.append(f"{name:<22}{truth:>8.2f}{k:>9d}{k / n:>10.3f}{p:>10.3g}")
        if not p > ALPHA:
            failures.append(f"{name}: {k}/{n} covered, exact binomial p = {p:.3g}")
    covered = table[[f"{name}_covered" for name in COV_TRUTH]].to_numpy()
    lines.append(
        f"pooled coverage {covered.mean():.3f} ({int(covered.sum())}/{covered.size}; parameters of "
        "one replicate are dependent, so this is descriptive only)"
    )
    lines.append(
        f"divergences: {int(table['divergences'].sum())} in total, in "
        f"{int((table['divergences'] > 0).sum())} of {n} replicates (all replicates kept)"
    )
    lines.append(
        f"min bulk ESS of the 7 parameters: median {table['min_ess_bulk'].median():.0f}, "
        f"lowest {table['min_ess_bulk'].min():.0f}"
    )
    lines.append(
        f"runtime {time.perf_counter() - start:.0f} s (scheduler {scheduler}; "
        f"{table['pid'].nunique()} worker processes)"
    )
    _report("coverage_summary", "\n".join(lines))
    assert not failures, "coverage inconsistent with 0.95: " + "; ".join(failures)


# ---------------------------------------------------------------------------- SBC


def _sbc_design() -> pd.DataFrame:
    """Fixed design of the SBC study: ``SBC_GROUPS`` groups of ``SBC_ROWS_PER_GROUP`` rows.

    Returns
    -------
    pandas.DataFrame
        Columns ``g``, ``x`` (standard normal) and a placeholder 0/1 outcome ``y`` (replaced
        by prior predictive draws; it only has to be non-constant for the formula parser).
    """
    rng = np.random.default_rng(SBC_SEED)
    n = SBC_GROUPS * SBC_ROWS_PER_GROUP
    return pd.DataFrame(
        {
            "g": np.repeat([f"g{j:02d}" for j in range(SBC_GROUPS)], SBC_ROWS_PER_GROUP),
            "x": rng.standard_normal(n),
            "y": np.arange(n) % 2,
        }
    )


def _plot_ranks(ranks: pd.DataFrame, pvalues: dict[str, float], path: Path) -> None:
    """Rank histograms with the 99% band of a bin count under uniformity.

    Parameters
    ----------
    ranks : pandas.DataFrame
        One column per parameter, one row per replicate.
    pvalues : dict of str to float
        Chi-square p-value per parameter, shown in the titles.
    path : pathlib.Path
        PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(ranks)
    lo, hi = _binomial_band(n, 1 / SBC_BINS, 1 - ALPHA)
    fig, axes = plt.subplots(1, len(SBC_PARAMETERS), figsize=(4 * len(SBC_PARAMETERS), 3.4), sharey=True)
    edges = np.linspace(0, SBC_KEEP + 1, SBC_BINS + 1)
    for ax, name in zip(axes, SBC_PARAMETERS, strict=True):
        ax.axhspan(lo, hi, color="0.85", label="99% band (uniform)")
        ax.axhline(n / SBC_BINS, color="0.4", lw=1)
        ax.hist(ranks[name], bins=edges, color="C0", edgecolor="white")
        ax.set_title(f"{name}\nchi-square p = {pvalues[name]:.3f}", fontsize=10)
        ax.set_xlabel(f"rank among {SBC_KEEP} draws")
    axes[0].set_ylabel(f"replicates (of {n})")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"SBC, {SBC_FORMULA}, {SBC_GROUPS} groups x {SBC_ROWS_PER_GROUP} rows, default priors")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@pytest.mark.slow
def test_simulation_based_calibration(scheduler: str) -> None:
    """SBC ranks of Intercept, b[x], the two group SDs and their correlation are uniform.

    Parameters and outcomes are drawn jointly with ``pm.sample_prior_predictive`` from the
    model `models.hierarchical_logistic` builds with the default priors, so the simulation
    prior is the inference prior by construction. Every replicate is one task of the grid
    runner, fitted by `models.fit` (non-centred, as simulated; the compiled model comes from
    the cache); 2 chains x 1000 draws are thinned to
    ``SBC_KEEP`` = 99 evenly spaced draws (every 20th) and the rank of the true value is taken.
    So that the kept draws are roughly independent, a replicate whose smallest bulk ESS of the
    ranked quantities is below 99 is sampled again four times longer (Talts et al., algorithm
    2; the ESS before and after is in the CSV). Uniformity over 10 bins of 10 rank values is
    tested with Pearson's chi-square test (9 degrees of freedom), failing when p <= 0.01 for
    any parameter. With five parameters
    tested, the chance of at least one false alarm for a calibrated model is about
    1 - 0.99^5 ~ 5%. Replicates with divergent transitions are kept and counted.
    """
    start = time.perf_counter()
    df = _sbc_design()
    md = models.build_model_data(SBC_FORMULA, df)
    model = models.hierarchical_logistic(md, models.resolve_priors(md))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prior = pm.sample_prior_predictive(draws=SBC_REPLICATES, model=model, random_seed=SBC_SEED)
    prior_params = prior["prior"].to_dataset()
    y_sim = prior["prior_predictive"]["y"].transpose("chain", "draw", "obs_id").values[0]
    truths = {name: quantity_draws(prior_params, PARAMETERS[name]) for name in SBC_PARAMETERS}

    study = CalibrationStudy(
        formula=SBC_FORMULA,
        quantities={name: PARAMETERS[name] for name in SBC_PARAMETERS},
        chains=SBC_CHAINS,
        tune=SBC_TUNE,
        draws=SBC_DRAWS,
        target_accept=0.9,
        centered=False,
        keep=SBC_KEEP,
        refit_factor=4,
    )
    tasks = [
        Replicate(
            index=i,
            seed=SBC_SEED + i,
            data=df.assign(y=y_sim[i]),
            truth={name: float(truths[name][i]) for name in SBC_PARAMETERS},
            study="sbc",
        )
        for i in range(SBC_REPLICATES)
    ]
    ranks = run_replicates(sbc_replicate, study, tasks, scheduler=scheduler, log=print)
    OUT.mkdir(parents=True, exist_ok=True)
    ranks.to_csv(OUT / "sbc_ranks.csv", index=False)

    n = len(ranks)
    pvalues, failures = {}, []
    lines = [
        f"SBC, {n} replicates of {SBC_FORMULA} ({SBC_GROUPS} groups x {SBC_ROWS_PER_GROUP} rows, "
        f"default priors; nutpie {SBC_CHAINS} chains x {SBC_TUNE} tune + {SBC_DRAWS} draws, "
        f"thinned to {SBC_KEEP})",
        f"chi-square test of uniform ranks over {SBC_BINS} bins ({SBC_BINS - 1} df), fail if p <= {ALPHA}",
        f"{'parameter':<22}{'chi2':>8}{'p':>8}   bin counts",
    ]
    for name in SBC_PARAMETERS:
        counts = np.bincount(ranks[name].to_numpy() * SBC_BINS // (SBC_KEEP + 1), minlength=SBC_BINS)
        chi2, p = stats.chisquare(counts)
        pvalues[name] = float(p)
        lines.append(f"{name:<22}{chi2:>8.2f}{p:>8.3f}   {' '.join(f'{c:2d}' for c in counts)}")
        if not p > ALPHA:
            failures.append(f"{name}: chi-square p = {p:.3g}, bin counts {counts.tolist()}")
    n_div = ranks["divergences"]
    lines.append(
        f"divergences: {int(n_div.sum())} in total, in {int((n_div > 0).sum())} of {n} replicates "
        "(all replicates kept)"
    )
    low_ess = int((ranks["min_ess_bulk"] < SBC_KEEP).sum())
    lines.append(
        f"min bulk ESS over the ranked parameters (of {SBC_CHAINS * SBC_DRAWS} draws): median "
        f"{ranks['first_min_ess_bulk'].median():.0f}, lowest {ranks['first_min_ess_bulk'].min():.0f}; "
        f"{int(ranks['refit'].sum())} replicates below {SBC_KEEP} refitted 4x longer, after which "
        f"{low_ess} remain below {SBC_KEEP} (lowest {ranks['min_ess_bulk'].min():.0f})"
    )
    lines.append(
        f"runtime {time.perf_counter() - start:.0f} s (scheduler {scheduler}; "
        f"{ranks['pid'].nunique()} worker processes)"
    )
    _plot_ranks(ranks, pvalues, OUT / "sbc_ranks.png")
    _report("sbc_summary", "\n".join(lines))
    assert not failures, "SBC ranks not uniform: " + "; ".join(failures)
