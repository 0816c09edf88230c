"""Shared builders for the analysis tests: simulated data and *fake fits*.

A fake fit is a real `models.Fit` whose posterior is drawn by hand (no sampling): the model
data come from `models.build_model_data`, the posterior variables have the names and
dimensions the model family gives (checked below against the PyMC model itself), and the
draws are known, so summaries can be checked against hand calculations in milliseconds.

The other ``test_analysis_*`` modules import from here (``from test_analysis_support
import ...``); the tests in this module check that the fakes stay faithful to `models`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import xarray as xr

from analysis.lme4 import GlmerResult
from models import Convergence, build_model_data, hierarchical_logistic, resolve_priors
from models.fitting import Fit
from models.logistic import model_coords

SIM_FORMULA = "y ~ age50 * area_soc + x + (1 + age50 | lad)"


def simulate(
    n_la: int = 25, n: int = 900, seed: int = 5, small_la: bool = True, sd0: float = 0.5, sd1: float = 0.3
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Respondents in LAs with a varying intercept and a varying age50 slope.

    With ``small_la`` the first 5 rows form an extra LA ``E09000099`` ("Tiny Borough") of 5
    respondents: the disclosure-control case.
    """
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_la, n)
    codes = [f"E0800{k:04d}" for k in range(n_la)]
    names = {c: f"Borough {k}" for k, c in enumerate(codes)}
    if small_la:
        codes.append("E09000099")
        names["E09000099"] = "Tiny Borough"
        g[:5] = n_la
    n_groups = len(codes)
    area = rng.normal(size=n_groups)
    age50 = rng.integers(0, 2, n)
    x = rng.normal(size=n)
    u0, u1 = rng.normal(0, sd0, n_groups), rng.normal(0, sd1, n_groups)
    eta = -0.2 + 0.5 * age50 + 0.3 * area[g] + 0.3 * age50 * area[g] + 0.4 * x + u0[g] + u1[g] * age50
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    df = pd.DataFrame({"y": y, "age50": age50, "area_soc": area[g], "x": x, "lad": [codes[k] for k in g]})
    return df, names


def passed_convergence(n_draws: int) -> Convergence:
    return Convergence(
        passed=True,
        max_rhat=1.001,
        worst_rhat="Intercept",
        min_ess_bulk=1500.0,
        worst_ess_bulk="Intercept",
        min_ess_tail=1400.0,
        worst_ess_tail="Intercept",
        divergences=0,
        n_draws=n_draws,
        ebfmi=[1.0, 1.0],
        treedepth_hits=0,
    )


def failed_convergence(n_draws: int) -> Convergence:
    conv = passed_convergence(n_draws)
    return dataclasses.replace(
        conv,
        passed=False,
        max_rhat=1.2,
        worst_rhat="sd_lad[age50]",
        problems=["R-hat 1.200 > 1.01 (sd_lad[age50])"],
    )


def fake_fit(
    df: pd.DataFrame,
    formula: str = SIM_FORMULA,
    *,
    centers: dict[str, float] | None = None,
    sd: dict[str, float] | None = None,
    sd_spread: float = 0.05,
    chains: int = 2,
    draws: int = 300,
    seed: int = 0,
    converged: bool = True,
) -> Fit:
    """A `Fit` with a hand-drawn posterior.

    Fixed coefficients are Normal(centers[term], 0.1); each group SD is
    |Normal(sd[term], sd_spread)| (sd_spread=0 gives a constant SD); correlations are
    Uniform(-0.6, 0.6) / (k - 1); level effects r ~ Normal(0, sd) per draw.
    """
    md = build_model_data(formula, df)
    priors = resolve_priors(md, None)
    rng = np.random.default_rng(seed)
    centers = centers or {}
    sd = sd or {}
    shape = (chains, draws)
    coords = model_coords(md)
    data: dict[str, xr.DataArray] = {}
    slope_terms = coords["coef"]
    if md.has_intercept:
        data["Intercept"] = xr.DataArray(
            rng.normal(centers.get("Intercept", -0.2), 0.1, shape), dims=("chain", "draw")
        )
    if slope_terms:
        b = np.stack([rng.normal(centers.get(t, 0.3), 0.1, shape) for t in slope_terms], axis=-1)
        data["b"] = xr.DataArray(b, dims=("chain", "draw", "coef"))
    for block in md.blocks:
        k = len(block.terms)
        s = np.stack([np.abs(rng.normal(sd.get(t, 0.4), sd_spread, shape)) for t in block.terms], axis=-1)
        data[f"sd_{block.name}"] = xr.DataArray(s, dims=("chain", "draw", block.term_dim))
        cor = np.broadcast_to(np.eye(k), (*shape, k, k)).copy()
        if block.correlated:
            for i in range(k):
                for j in range(i + 1, k):
                    rho = rng.uniform(-0.6, 0.6, shape) / (k - 1)  # diagonally dominant: positive definite
                    cor[..., i, j] = cor[..., j, i] = rho
            data[f"cor_{block.name}"] = xr.DataArray(
                cor, dims=("chain", "draw", block.term_dim, f"{block.name}_term2")
            )
        z = rng.standard_normal((*shape, block.n_levels, k))
        chol = np.linalg.cholesky(cor + 1e-12 * np.eye(k))
        r = np.einsum("cdkl,cdnl->cdnk", chol, z) * s[:, :, None, :]
        data[f"r_{block.name}"] = xr.DataArray(r, dims=("chain", "draw", block.dim, block.term_dim))
    used = {d for da in data.values() for d in da.dims} - {"chain", "draw"}
    ds = xr.Dataset(
        data,
        coords={
            "chain": np.arange(chains),
            "draw": np.arange(draws),
            **{k: v for k, v in coords.items() if k in used},
        },
    )
    conv = passed_convergence(chains * draws) if converged else failed_convergence(chains * draws)
    settings = {
        "sampler": "fake",
        "chains": chains,
        "draws": draws,
        "tune": 0,
        "seed": seed,
        "target_accept": 0.9,
        "centered": False,
    }
    return Fit(
        idata=xr.DataTree.from_dict({"posterior": ds}),
        md=md,
        priors=priors,
        convergence=conv,
        settings=settings,
    )


def fake_glmer(
    fixed: dict[str, tuple[float, float]],
    sds: dict[tuple[str, str], float],
    cors: dict[tuple[str, str, str], float] | None = None,
    *,
    singular: bool = False,
    converged: bool = True,
    messages: list[str] | None = None,
    ranef: pd.DataFrame | None = None,
) -> GlmerResult:
    """A `GlmerResult` with given estimates: fixed {term: (estimate, se)}, sds {(group, term): sd}."""
    z975 = 1.959963984540054
    fx = pd.DataFrame(
        {
            "estimate": [v[0] for v in fixed.values()],
            "se": [v[1] for v in fixed.values()],
        },
        index=pd.Index(list(fixed), name="term"),
    )
    fx["z"] = fx.estimate / fx.se
    fx["p"] = 0.5
    fx["ci_low"] = fx.estimate - z975 * fx.se
    fx["ci_high"] = fx.estimate + z975 * fx.se
    fx["r_term"] = list(fixed)
    group_sd = pd.DataFrame([(g, t, v) for (g, t), v in sds.items()], columns=["group", "term", "sd"])
    group_corr = pd.DataFrame(
        [(g, a, b, v) for (g, a, b), v in (cors or {}).items()], columns=["group", "term1", "term2", "corr"]
    )
    if ranef is None:
        ranef = pd.DataFrame(columns=["group", "level", "term", "mode", "condsd"])
    return GlmerResult(
        fixed=fx,
        group_sd=group_sd,
        group_corr=group_corr,
        ranef=ranef,
        n_obs=100,
        n_groups={},
        loglik=-1.0,
        aic=2.0,
        nAGQ=1,
        singular=singular,
        messages=messages or [],
        converged=converged,
        elapsed_s=0.1,
        r_version="4.2.2",
        lme4_version="1.1.31",
    )


# --------------------------------------------------------------------------- the fakes are faithful


def test_fake_posterior_has_the_models_names_and_dims():
    df, _ = simulate()
    fit = fake_fit(df)
    model = hierarchical_logistic(fit.md, fit.priors)
    post = fit.posterior()
    for name in ("Intercept", "b", "sd_lad", "cor_lad", "r_lad"):
        assert name in model.named_vars, name
        assert post[name].dims[2:] == tuple(model.named_vars_to_dims.get(name, ())), name
    assert list(post["coef"].values) == fit.md.fixed_terms[1:]
    assert list(post["lad"].values) == fit.md.blocks[0].levels


def test_fake_fit_predicts_like_a_fit():
    df, _ = simulate()
    fit = fake_fit(df)
    p = fit.predict(df.head(7))
    assert p.dims == ("sample", "row") and p.shape == (600, 7)
    assert float(p.min()) > 0 and float(p.max()) < 1
