"""Design-adjusted intervals for weighted fits (Williams and Savitsky 2021).

A fit with survey weights (``fit(..., weights="weight_sc")``, `models.weights`) samples a
*pseudo-posterior*: the likelihood is raised to the weights. Its centre is design-consistent
(it undoes informative selection), but its spread reflects neither the clustering of the
sample in PSUs nor the stratification, nor the variability of the weights. Williams and
Savitsky (2021, "Uncertainty estimation for pseudo-Bayesian inference under complex
sampling", *International Statistical Review* 89(1)) adjust the draws so that their
covariance becomes the design-based sandwich:

    theta_adj = (theta - mean) R2^-1 R1 + mean,     R2'R2 = Sigma,   R1'R1 = Sigma J Sigma

with ``Sigma`` the pseudo-posterior covariance (the inverse Hessian H^-1 of the weighted
log-likelihood) and ``J`` the design-based variance of the weighted score: PSU totals of
each row's score ``w_i (y_i - n_i p_i) x_i``, centred within strata,
``J = sum_h n_h / (n_h - 1) sum_c (t_hc - tbar_h)(t_hc - tbar_h)'`` (``n_h`` PSUs in stratum
``h``; a stratum with one PSU is centred at the mean of all PSU totals and not scaled, as R's
``survey`` package does with ``options(survey.lonely.psu = "adjust")``). The scores are
taken at each of a set of draws and ``J`` is their average.

The adjusted draws are a **design-adjusted pseudo-posterior** of the fixed effects (the
intercept and slopes on the original scale); for a multilevel model the scores condition on
each draw's group effects, so the group effects and their SDs keep their pseudo-posterior.

>>> f = fit("life_satisfied ~ belonging + lonely + (1 | lad)", table, weights="weight_sc")  # doctest: +SKIP
>>> adj = design_adjusted(f, table)                                                       # doctest: +SKIP
>>> adj.summary()  # mean, pseudo-posterior SD, design-adjusted SD and 95% interval        # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.summaries.intervals import (
    DEFAULT_PROB,
    describe_interval,
    interval_bounds,
    interval_columns,
    interval_metadata,
)

__all__ = ["DesignAdjusted", "design_adjusted", "design_score_variance", "LABEL"]

#: How tables and reports name these draws.
LABEL = "design-adjusted pseudo-posterior (Williams & Savitsky 2021)"


@dataclass
class DesignAdjusted:
    """Design-adjusted draws of a weighted fit's fixed effects.

    Attributes
    ----------
    terms : list of str
        Parameter names (``Intercept``, then the slopes' labels).
    draws : numpy.ndarray
        Adjusted draws, (draws, terms).
    pseudo_draws : numpy.ndarray
        The pseudo-posterior draws they come from.
    sigma : numpy.ndarray
        Pseudo-posterior covariance (H^-1).
    J : numpy.ndarray
        Design-based covariance of the weighted score.
    n_psu, n_strata : int
        PSUs and strata of the rows used.
    label : str
        `LABEL`.
    """

    terms: list[str]
    draws: np.ndarray
    pseudo_draws: np.ndarray
    sigma: np.ndarray
    J: np.ndarray
    n_psu: int
    n_strata: int
    label: str = LABEL
    notes: list[str] = field(default_factory=list)

    @property
    def covariance(self) -> np.ndarray:
        """The design-based (sandwich) covariance ``Sigma J Sigma``."""
        return self.sigma @ self.J @ self.sigma

    def summary(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Per term: pseudo-posterior mean and SD, design-adjusted SD and equal-tailed interval.

        The interval columns are named by `analysis.summaries.intervals.interval_columns`; their
        labels travel in ``.attrs["interval_columns"]``, the draws' label in ``.attrs["label"]``.
        """
        lo_col, hi_col = interval_columns("eti", prob)
        lo, hi = interval_bounds(self.draws, prob, "eti")
        table = pd.DataFrame(
            {
                "mean": self.draws.mean(axis=0),
                "sd_pseudo_posterior": self.pseudo_draws.std(axis=0, ddof=1),
                "sd_design_adjusted": self.draws.std(axis=0, ddof=1),
                lo_col: lo,
                hi_col: hi,
            },
            index=pd.Index(self.terms, name="term"),
        )
        table.attrs["interval"] = f"{describe_interval('eti', prob)} of the {self.label}"
        table.attrs["interval_columns"] = interval_metadata(table)
        table.attrs["label"] = self.label
        return table

    def __str__(self) -> str:
        return (
            f"{self.label}: {self.n_psu} PSUs in {self.n_strata} strata\n"
            + "".join(f"note: {n}\n" for n in self.notes)
            + self.summary().to_string()
        )


def design_score_variance(
    scores: np.ndarray, psu: np.ndarray, strata: np.ndarray | None = None, lonely_psu: str = "adjust"
) -> np.ndarray:
    """Design-based covariance of the total of per-row scores (with-replacement PSUs in strata).

    Parameters
    ----------
    scores : numpy.ndarray
        (rows, parameters) score contributions, weights included.
    psu : numpy.ndarray
        PSU of each row (ids may repeat across strata: a PSU is a (stratum, psu) pair).
    strata : numpy.ndarray, optional
        Stratum of each row (None: one stratum).
    lonely_psu : {"adjust", "remove"}
        A stratum with one PSU: "adjust" centres its total at the mean of all PSU totals
        (scale 1), "remove" leaves it out.

    Returns
    -------
    numpy.ndarray
        ``sum_h n_h / (n_h - 1) sum_c (t_hc - tbar_h)(t_hc - tbar_h)'``.
    """
    if lonely_psu not in ("adjust", "remove"):
        raise ValueError(f"lonely_psu must be 'adjust' or 'remove', got {lonely_psu!r}")
    scores = np.asarray(scores, dtype=np.float64)
    strata = np.zeros(len(scores)) if strata is None else np.asarray(strata)
    keys = pd.MultiIndex.from_arrays([pd.Series(strata).to_numpy(), pd.Series(psu).to_numpy()])
    codes, uniq = pd.factorize(keys)
    totals = np.zeros((len(uniq), scores.shape[1]))
    np.add.at(totals, codes, scores)
    psu_stratum = np.asarray([u[0] for u in uniq])
    grand = totals.mean(axis=0)
    J = np.zeros((scores.shape[1], scores.shape[1]))
    for h in pd.unique(psu_stratum):
        t = totals[psu_stratum == h]
        n_h = len(t)
        if n_h > 1:
            d = t - t.mean(axis=0)
            J += n_h / (n_h - 1) * d.T @ d
        elif lonely_psu == "adjust":
            d = t - grand
            J += d.T @ d
    return J


def _linear_predictor(fit, theta: np.ndarray, draw: tuple[int, int]) -> np.ndarray:
    """eta of every row at one draw: fixed part from ``theta`` plus that draw's group effects."""
    md = fit.md
    eta = md.X @ theta
    post = fit.idata["posterior"]
    c, d = draw
    for block in md.blocks:
        r = np.asarray(post[f"r_{block.name}"].values)[c, d]  # (levels, terms)
        eta = eta + np.sum(block.Z * r[block.idx], axis=1)
    return eta


def design_adjusted(
    fit,
    data: pd.DataFrame,
    *,
    psu: str = "psu",
    strata: str | None = "strata",
    score_draws: int = 200,
    lonely_psu: str = "adjust",
    seed: int = 0,
) -> DesignAdjusted:
    """Adjust a weighted fit's fixed-effect draws with the PSU/strata sandwich.

    Parameters
    ----------
    fit : models.Fit
        A fit made with ``weights=`` (an unweighted fit is refused: its posterior is not a
        pseudo-posterior of a design).
    data : pandas.DataFrame
        The data frame the fit was made from (its rows are found by ``fit.md.rows``), holding
        the design columns.
    psu, strata : str
        Columns of PSU and stratum (``strata=None``: one stratum).
    score_draws : int
        Number of draws (spread over the chains) at which the scores are computed; ``J`` is
        their average.
    lonely_psu : {"adjust", "remove"}
        See `design_score_variance`.
    seed : int
        Picks the score draws.

    Returns
    -------
    DesignAdjusted
    """
    md = fit.md
    if md.weights is None:
        raise ValueError("design_adjusted needs a weighted fit (fit(..., weights='column'))")
    if md.family not in ("bernoulli", "binomial"):
        raise ValueError(f"design_adjusted supports binary and binomial models, not {md.family!r}")
    for col in (psu, strata):
        if col is not None and col not in data.columns:
            raise ValueError(f"design column {col!r} is not in the data")
    rows = md.rows if md.rows is not None else np.arange(md.n_obs)
    if len(rows) != md.n_obs or (len(data) and rows.max() >= len(data)):
        raise ValueError("data is not the frame the fit was made from (its rows do not match)")
    psu_v = data[psu].to_numpy()[rows]
    strata_v = data[strata].to_numpy()[rows] if strata is not None else None
    bad = pd.isna(psu_v) | (pd.isna(strata_v) if strata_v is not None else False)
    if np.any(bad):
        raise ValueError(f"{int(np.sum(bad))} rows used by the fit have no {psu!r} or {strata!r}")
    post = fit.idata["posterior"]
    parts = [
        post["Intercept"].values if t == "Intercept" else post["b"].sel(coef=t).values for t in md.fixed_terms
    ]
    theta = np.stack([np.asarray(a, dtype=np.float64) for a in parts], axis=-1)  # (chain, draw, p): md.X's
    n_chain, n_draw, p = theta.shape
    flat = theta.reshape(-1, p)
    sigma = np.atleast_2d(np.cov(flat, rowvar=False))
    rng = np.random.default_rng(seed)
    picks = rng.choice(n_chain * n_draw, size=min(score_draws, n_chain * n_draw), replace=False)
    y = np.asarray(md.y, dtype=np.float64)
    n = np.asarray(md.trials, dtype=np.float64) if md.family == "binomial" else np.ones(md.n_obs)
    J = np.zeros((p, p))
    for k in picks:
        c, d = divmod(int(k), n_draw)
        eta = _linear_predictor(fit, theta[c, d], (c, d))
        resid = md.weights * (y - n / (1.0 + np.exp(-eta)))
        J += design_score_variance(md.X * resid[:, None], psu_v, strata_v, lonely_psu)
    J /= len(picks)
    target = sigma @ J @ sigma
    r1 = np.linalg.cholesky(target).T
    r2 = np.linalg.cholesky(sigma).T
    centre = flat.mean(axis=0)
    adjusted = (flat - centre) @ np.linalg.solve(r2, r1) + centre
    strata_n = 1 if strata_v is None else len(pd.unique(strata_v))
    stratum_of_row = np.zeros(len(psu_v)) if strata_v is None else strata_v
    n_psu = len(pd.MultiIndex.from_arrays([stratum_of_row, psu_v]).unique())
    notes = []
    if md.blocks:
        notes.append(
            "multilevel model: the scores condition on each draw's group effects; the group effects "
            "and their SDs keep their pseudo-posterior"
        )
    return DesignAdjusted(
        terms=list(md.fixed_terms),
        draws=adjusted,
        pseudo_draws=flat,
        sigma=sigma,
        J=J,
        n_psu=int(n_psu),
        n_strata=int(strata_n),
        notes=notes,
    )


def coverage_simulation(
    replicates: int = 40,
    n: int = 3_000,
    *,
    outcome: str = "life_satisfied",
    seed: int = 1,
    chains: int = 2,
    draws: int = 1000,
    prob: float = DEFAULT_PROB,
    progress: bool = False,
) -> pd.DataFrame:
    """Coverage of the true fixed effects over repeated synthetic informative samples.

    Each replicate simulates a release with informative response (`data.synthetic.simulate`
    with ``informative=True``: response depends on the person's latent error of
    ``outcome``), fits the outcome's true fixed part as a single-level model (a) unweighted,
    (b) weighted (pseudo-posterior) and (c) weighted and design-adjusted (`design_adjusted`),
    and records whether each interval holds the true value.

    Parameters
    ----------
    replicates, n : int
        Number of simulated samples and adults per sample.
    outcome : str
        An outcome of `data.truth.TRUTH`.
    seed : int
        Replicate k uses ``seed + k`` for the data and the sampler.
    chains, draws : int
        Sampler settings of each fit (1,000 tuning steps).
    prob : float
        Interval probability.
    progress : bool
        Print one line per replicate.

    Returns
    -------
    pandas.DataFrame
        One row per replicate, term and method (``unweighted``, ``pseudo-posterior``,
        ``design-adjusted``): ``true``, ``mean``, ``low``, ``high``, ``covered``,
        ``converged``.
    """
    import warnings

    from data.synthetic import simulate
    from data.truth import TRUTH
    from models import fit

    truth = TRUTH[outcome]
    formula = f"{outcome} ~ " + " + ".join(truth.terms)
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    rows = []
    for k in range(replicates):
        table = simulate(n=n, seed=seed + k, informative=True).table
        table = table[table["weight_sc"] > 0].reset_index(drop=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            settings = {
                "seed": seed + k,
                "chains": chains,
                "draws": draws,
                "escalate": False,
                "progressbar": False,
            }
            unweighted = fit(formula, table, **settings)
            weighted = fit(formula, table, weights="weight_sc", **settings)
        adjusted = design_adjusted(weighted, table, seed=seed + k)
        terms = list(weighted.md.fixed_terms)
        true = np.array([truth.fixed[t] for t in terms])
        for method, draws_, ok in (
            ("unweighted", _fixed_draws(unweighted), unweighted.converged),
            ("pseudo-posterior", adjusted.pseudo_draws, weighted.converged),
            ("design-adjusted", adjusted.draws, weighted.converged),
        ):
            lo, hi = np.quantile(draws_, [lo_q, hi_q], axis=0)
            for j, term in enumerate(terms):
                rows.append(
                    {
                        "replicate": k,
                        "term": term,
                        "method": method,
                        "true": true[j],
                        "mean": float(draws_[:, j].mean()),
                        "low": float(lo[j]),
                        "high": float(hi[j]),
                        "covered": bool(lo[j] <= true[j] <= hi[j]),
                        "converged": bool(ok),
                    }
                )
        if progress:
            done = pd.DataFrame(rows)
            cov = done.groupby("method")["covered"].mean().round(3).to_dict()
            print(f"replicate {k + 1}/{replicates}: coverage so far {cov}", flush=True)
    return pd.DataFrame(rows)


def _fixed_draws(fit) -> np.ndarray:
    """(draws, terms) of a fit's fixed effects in ``md.fixed_terms`` order."""
    post = fit.idata["posterior"]
    parts = [
        post["Intercept"].values if t == "Intercept" else post["b"].sel(coef=t).values
        for t in fit.md.fixed_terms
    ]
    return np.stack([np.asarray(a, dtype=np.float64).reshape(-1) for a in parts], axis=-1)


if __name__ == "__main__":  # python -m analysis.survey [replicates] [n]: the coverage simulation
    import sys

    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 3_000
    result = coverage_simulation(reps, size, progress=True)
    print(result.groupby("method")["covered"].mean().round(3).to_string())
    print(result.groupby(["method", "term"])["covered"].mean().unstack(0).round(2).to_string())
    bias = result.assign(err=result["mean"] - result["true"]).groupby(["method", "term"])["err"].mean()
    print("mean error (bias) by method and term:\n" + bias.unstack(0).round(3).to_string())
