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

Both compile the PyMC model once with nutpie and reuse it for every replicate through
``CompiledModel.with_data`` (compiling takes ~15 s; sampling one replicate takes seconds).
Per-replicate tables and the SBC rank histogram are written to ``benchmarks/sbc/``.

Run with ``.venv/bin/python -m pytest -m slow tests/test_models_slow.py`` (they are excluded
from the default run). Seeds are fixed, so the results are reproducible on one machine.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from scipy import stats

import models

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
SBC_REPLICATES = 120
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


def _model_inputs(md: models.ModelData) -> dict[str, np.ndarray]:
    """Values of the model's ``pm.Data`` containers for a `ModelData`.

    Mirrors `models.logistic.hierarchical_logistic`: the slope columns of the fixed design
    centred at their means, the group index, the non-constant slope-design columns and the
    outcome.

    Parameters
    ----------
    md : models.ModelData
        Model data of one replicate.

    Returns
    -------
    dict of str to numpy.ndarray
        Keyword arguments for ``CompiledModel.with_data`` or ``pymc.set_data``.
    """
    slope_cols = [j for j, term in enumerate(md.fixed_terms) if term != "Intercept"]
    X = md.X[:, slope_cols]
    out = {"X_centred": X - X.mean(axis=0), "y_obs": md.y}
    for block in md.blocks:
        out[f"idx_{block.name}"] = block.idx
        for t in range(block.Z.shape[1]):
            if not np.all(block.Z[:, t] == 1.0):
                out[f"Z_{block.name}_{t}"] = block.Z[:, t]
    return out


def _sample(compiled, seed: int, chains: int, tune: int, draws: int) -> xr.DataTree:
    """Sample a compiled nutpie model with the sampler settings of `models.fit`.

    Parameters
    ----------
    compiled : nutpie.compiled_pyfunc or CompiledPyMCModel
        Model compiled by ``nutpie.compile_pymc_model`` (possibly with new data).
    seed : int
        Sampler seed.
    chains, tune, draws : int
        Chains, tuning steps and kept draws per chain.

    Returns
    -------
    xarray.DataTree
        With ``posterior`` (including deterministics) and ``sample_stats`` groups.
    """
    return nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=chains,
        seed=seed,
        target_accept=0.9,
        progress_bar=False,
    )


def _draws(ds: xr.Dataset, name: str) -> np.ndarray:
    """Flattened draws (chains concatenated, in order) of one scalar quantity.

    Parameters
    ----------
    ds : xarray.Dataset
        Posterior or prior group with ``chain`` and ``draw`` dimensions.
    name : str
        Key of `PARAMETERS`, e.g. ``"sd_g[x]"``.

    Returns
    -------
    numpy.ndarray
        Shape ``(chain * draw,)``.
    """
    var, sel = PARAMETERS[name]
    da = ds[var].sel(sel) if sel else ds[var]
    return np.asarray(da.transpose("chain", "draw").values, dtype=float).reshape(-1)


def _n_divergent(trace: xr.DataTree) -> int:
    """Number of divergent post-warm-up transitions of a nutpie trace."""
    return int(trace["sample_stats"]["diverging"].values.sum())


def _min_ess(post: xr.Dataset) -> float:
    """Smallest bulk ESS among the reported parameters ranked or checked in this file.

    Parameters
    ----------
    post : xarray.Dataset
        Posterior draws.

    Returns
    -------
    float
        Minimum over the scalar quantities of `PARAMETERS` present in ``post`` (the unit
        diagonal of the correlation matrix, which has no ESS, is never selected).
    """
    ess = az.ess(post[["Intercept", "b", "sd_g", "cor_g"]], method="bulk")
    out = np.inf
    for var, sel in PARAMETERS.values():
        coord_ok = all(v in post[var].coords[d].values for d, v in sel.items())
        if coord_ok:
            out = min(out, float(ess[var].sel(sel) if sel else ess[var]))
    return out


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
def test_interval_coverage_over_replicates() -> None:
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

    template_md = models.build_model_data(COV_FORMULA, replicates[0])
    priors = models.resolve_priors(template_md)
    assert template_md.fixed_terms == ["Intercept", "x", "w", "x:w"]
    assert all(str(p) == "normal(0, 2.5)" for k, p in priors.items() if k.startswith("b[")), priors
    model = models.hierarchical_logistic(template_md, priors)

    # Reusing the compiled model is only valid if the model built for a replicate equals the
    # template with new data: same priors, same centring constants (the x means, baked into
    # the Intercept deterministic), and the same log density after pm.set_data.
    md1 = models.build_model_data(COV_FORMULA, replicates[1])
    fresh = models.hierarchical_logistic(md1, models.resolve_priors(md1))
    point = fresh.initial_point(random_seed=1)
    point = {k: v + 0.3 for k, v in point.items()}
    logp_fresh = fresh.compile_logp()(point)
    with model:
        pm.set_data(_model_inputs(md1))
    logp_template = model.compile_logp()(point)
    np.testing.assert_allclose(logp_template, logp_fresh, rtol=1e-10)
    with model:
        pm.set_data(_model_inputs(template_md))

    compiled = nutpie.compile_pymc_model(model)
    rows = []
    for i, df in enumerate(replicates):
        md = models.build_model_data(COV_FORMULA, df)
        assert models.resolve_priors(md) == priors, f"replicate {i}: priors differ from the template's"
        inputs = _model_inputs(md)
        assert np.allclose(md.X[:, 1:].mean(axis=0), 0.0, atol=1e-12)
        assert md.blocks[0].levels == template_md.blocks[0].levels
        t0 = time.perf_counter()
        trace = _sample(compiled.with_data(**inputs), COV_SEED + i, COV_CHAINS, COV_TUNE, COV_DRAWS)
        seconds = time.perf_counter() - t0
        post = trace["posterior"].to_dataset()
        row = {"replicate": i, "divergences": _n_divergent(trace), "mean_y": float(md.y.mean())}
        row["sampling_s"] = seconds
        for name, truth in COV_TRUTH.items():
            d = _draws(post, name)
            lo, hi = np.quantile(d, [0.025, 0.975])
            row[f"{name}_lo"], row[f"{name}_hi"] = lo, hi
            row[f"{name}_mean"] = d.mean()
            row[f"{name}_covered"] = bool(lo <= truth <= hi)
        row["min_ess_bulk"] = _min_ess(post)
        rows.append(row)

        if i == 0:
            # the package's own summary (the `Fit` path) gives the same intervals
            fit = models.Fit(
                idata=trace,
                md=md,
                priors=priors,
                convergence=models.check_convergence(trace),
                settings={"sampler": "nutpie", "chains": COV_CHAINS, "draws": COV_DRAWS},
                accept_failed=True,
            )
            summary = fit.summary(prob=0.95)
            for name in COV_TRUTH:
                label = name.replace("cor_g[Intercept,x]", "cor_g[Intercept, x]")
                assert summary.loc[label, "eti95_lb"] == pytest.approx(row[f"{name}_lo"], abs=0.02)
                assert summary.loc[label, "eti95_ub"] == pytest.approx(row[f"{name}_hi"], abs=0.02)

    table = pd.DataFrame(rows)
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
    lines.append(f"runtime {time.perf_counter() - start:.0f} s")
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


def _rank(draws: np.ndarray, truth: float, rng: np.random.Generator) -> int:
    """SBC rank statistic: number of draws below the true value (ties split at random).

    Parameters
    ----------
    draws : numpy.ndarray
        Thinned posterior draws, length L.
    truth : float
        The value the data were simulated from.
    rng : numpy.random.Generator
        For breaking ties.

    Returns
    -------
    int
        In ``0 .. L``; uniform over these values for a calibrated posterior.
    """
    below = int(np.sum(draws < truth))
    ties = int(np.sum(draws == truth))
    return below + (int(rng.integers(0, ties + 1)) if ties else 0)


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
def test_simulation_based_calibration() -> None:
    """SBC ranks of Intercept, b[x], the two group SDs and their correlation are uniform.

    Parameters and outcomes are drawn jointly with ``pm.sample_prior_predictive`` from the
    model `models.hierarchical_logistic` builds with the default priors, so the simulation
    prior is the inference prior by construction. Every replicate is fitted with the same
    compiled nutpie model (``with_data(y_obs=...)``); 2 chains x 1000 draws are thinned to
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
    truths = {name: _draws(prior_params, name) for name in SBC_PARAMETERS}

    compiled = nutpie.compile_pymc_model(model)
    rng = np.random.default_rng(SBC_SEED + 1)
    rows = []
    for i in range(SBC_REPLICATES):
        data = compiled.with_data(y_obs=y_sim[i])
        t0 = time.perf_counter()
        trace = _sample(data, SBC_SEED + i, SBC_CHAINS, SBC_TUNE, SBC_DRAWS)
        min_ess = _min_ess(trace["posterior"].to_dataset())
        row = {"replicate": i, "mean_y": float(y_sim[i].mean()), "first_min_ess_bulk": min_ess}
        row["first_divergences"] = _n_divergent(trace)
        row["refit"] = min_ess < SBC_KEEP
        if row["refit"]:
            # Talts et al. (2018, algorithm 2): too few effective draws to thin to SBC_KEEP
            # nearly independent ones; sample this replicate again, four times longer.
            trace = _sample(data, SBC_SEED + 10_000 + i, SBC_CHAINS, SBC_TUNE, 4 * SBC_DRAWS)
        row["sampling_s"] = time.perf_counter() - t0
        post = trace["posterior"].to_dataset()
        total = post.sizes["chain"] * post.sizes["draw"]
        keep = np.arange(0, total, total // (SBC_KEEP + 1))[:SBC_KEEP]
        row["divergences"] = _n_divergent(trace)
        row["min_ess_bulk"] = _min_ess(post)
        for name in SBC_PARAMETERS:
            row[name] = _rank(_draws(post, name)[keep], truths[name][i], rng)
            row[f"{name}_true"] = truths[name][i]
        rows.append(row)
    ranks = pd.DataFrame(rows)
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
    lines.append(f"runtime {time.perf_counter() - start:.0f} s")
    _plot_ranks(ranks, pvalues, OUT / "sbc_ranks.png")
    _report("sbc_summary", "\n".join(lines))
    assert not failures, "SBC ranks not uniform: " + "; ".join(failures)
