"""The convergence gate: is a posterior fit to be summarised?

After sampling, every parameter is checked (raw non-centred variables and the packed
Cholesky factor are left out: they are one-to-one with the reported ``r_*``/``sd_*``/``cor_*``):

- R-hat (rank-normalised, split) <= 1.01
- bulk and tail ESS >= 400
- no divergent transitions
- E-BFMI >= 0.3 in every chain
- no transitions stopped by the maximum tree depth

A fit that fails any check is marked as failed; `Convergence.headline` is the first line of
every summary made from it unless the user accepts it explicitly.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field

import arviz as az
import numpy as np
import xarray as xr

DEFAULT_THRESHOLDS = {
    "rhat_max": 1.01,
    "ess_bulk_min": 400.0,
    "ess_tail_min": 400.0,
    "divergences_max": 0,
    "ebfmi_min": 0.3,
    "treedepth_hits_max": 0,
}

_INTERNAL_PREFIXES = ("z_", "chol_")


@dataclass
class Convergence:
    """Result of the convergence gate (stored with every fit)."""

    passed: bool
    max_rhat: float
    worst_rhat: str
    min_ess_bulk: float
    worst_ess_bulk: str
    min_ess_tail: float
    worst_ess_tail: str
    divergences: int
    n_draws: int
    ebfmi: list[float]
    treedepth_hits: int
    problems: list[str] = field(default_factory=list)
    thresholds: dict = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))

    @property
    def headline(self) -> str:
        """One line: the verdict, and what failed."""
        if self.passed:
            return (
                f"CONVERGED: max R-hat {self.max_rhat:.3f}, min bulk ESS {self.min_ess_bulk:.0f}, "
                f"min tail ESS {self.min_ess_tail:.0f}, {self.divergences} divergences"
            )
        return "NOT CONVERGED - do not interpret: " + "; ".join(self.problems)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Convergence:
        return cls(**json.loads(text))


def checked_variables(posterior: xr.Dataset) -> list[str]:
    """Posterior variables the gate checks."""
    return [v for v in posterior.data_vars if not str(v).startswith(_INTERNAL_PREFIXES)]


def _constant_masked(stat: xr.Dataset, constant: xr.Dataset, worst: float) -> xr.Dataset:
    """A diagnostic with NaN for elements constant over every draw of every chain (nothing to
    diagnose) and ``worst`` where it is not finite for an element that varies (a stuck chain:
    zero variance within it gives an infinite or undefined R-hat, which must fail the gate)."""
    out = {}
    for name, da in stat.data_vars.items():
        const = constant[name]
        out[name] = da.where(np.isfinite(da) | const, worst).where(~const)
    return xr.Dataset(out)


def _worst(ds: xr.Dataset, largest: bool) -> tuple[float, str]:
    best_val, best_name = (-np.inf if largest else np.inf), ""
    for name, da in ds.data_vars.items():
        vals = np.asarray(da.values, dtype=float)
        if np.isnan(vals).all():
            continue
        flat = np.where(np.isnan(vals), -np.inf if largest else np.inf, vals)
        i = int(np.argmax(flat) if largest else np.argmin(flat))
        v = float(flat.flat[i])
        if (largest and v > best_val) or (not largest and v < best_val):
            label = str(name)
            if da.ndim:
                pos = np.unravel_index(i, da.shape)
                parts = [
                    str(da.coords[d].values[p]) if d in da.coords else str(p)
                    for d, p in zip(da.dims, pos, strict=True)
                ]
                label += "[" + ", ".join(parts) + "]"
            best_val, best_name = v, label
    return best_val, best_name


def _ebfmi(energy: np.ndarray) -> list[float]:
    out = []
    for e in np.atleast_2d(energy):
        denom = np.var(e) * len(e)
        out.append(float(np.sum(np.diff(e) ** 2) / denom) if denom > 0 else float("nan"))
    return out


def check_convergence(idata, thresholds: dict | None = None) -> Convergence:
    """Run the gate on a fitted DataTree (posterior + sample_stats groups).

    Parameters
    ----------
    idata : xarray.DataTree
        As returned by `pymc.sample`.
    thresholds : dict, optional
        Overrides of `DEFAULT_THRESHOLDS`.

    Returns
    -------
    Convergence
    """
    th = dict(DEFAULT_THRESHOLDS)
    th.update(thresholds or {})
    post = idata["posterior"].to_dataset()
    post = post[checked_variables(post)]
    stats = idata["sample_stats"].to_dataset()
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]

    with warnings.catch_warnings():
        # constant elements (the unit diagonal of a correlation matrix) have no R-hat or ESS;
        # `_constant_masked` tells them from a chain that is stuck
        warnings.simplefilter("ignore", RuntimeWarning)
        constant = post.max(("chain", "draw")) == post.min(("chain", "draw"))
        rhat = _constant_masked(az.rhat(post), constant, worst=np.inf)
        ess_bulk = _constant_masked(az.ess(post, method="bulk"), constant, worst=0.0)
        ess_tail = _constant_masked(az.ess(post, method="tail"), constant, worst=0.0)
    max_rhat, worst_rhat = _worst(rhat, largest=True)
    min_bulk, worst_bulk = _worst(ess_bulk, largest=False)
    min_tail, worst_tail = _worst(ess_tail, largest=False)

    div_name = "diverging" if "diverging" in stats else None
    divergences = int(stats[div_name].values.sum()) if div_name else 0
    energy = stats["energy"].values if "energy" in stats else None
    ebfmi = _ebfmi(energy) if energy is not None and n_draws > 2 else []
    depth_name = next((n for n in ("maxdepth_reached", "reached_max_treedepth") if n in stats), None)
    depth_hits = int(stats[depth_name].values.sum()) if depth_name else 0

    problems = []
    if not max_rhat <= th["rhat_max"]:
        problems.append(f"R-hat {max_rhat:.3f} > {th['rhat_max']} ({worst_rhat})")
    if not min_bulk >= th["ess_bulk_min"]:
        problems.append(f"bulk ESS {min_bulk:.0f} < {th['ess_bulk_min']:.0f} ({worst_bulk})")
    if not min_tail >= th["ess_tail_min"]:
        problems.append(f"tail ESS {min_tail:.0f} < {th['ess_tail_min']:.0f} ({worst_tail})")
    if divergences > th["divergences_max"]:
        problems.append(f"{divergences} divergent transitions of {n_chains * n_draws}")
    low = [f"{v:.2f}" for v in ebfmi if not v >= th["ebfmi_min"]]
    if low:
        problems.append(f"E-BFMI below {th['ebfmi_min']} in {len(low)} chain(s): {', '.join(low)}")
    if depth_hits > th["treedepth_hits_max"]:
        problems.append(f"{depth_hits} transitions hit the maximum tree depth")
    if n_chains < 2:
        problems.append("only one chain: R-hat cannot detect non-convergence between chains")
    return Convergence(
        passed=not problems,
        max_rhat=float(max_rhat),
        worst_rhat=worst_rhat,
        min_ess_bulk=float(min_bulk),
        worst_ess_bulk=worst_bulk,
        min_ess_tail=float(min_tail),
        worst_ess_tail=worst_tail,
        divergences=divergences,
        n_draws=int(n_chains * n_draws),
        ebfmi=ebfmi,
        treedepth_hits=depth_hits,
        problems=problems,
        thresholds=th,
    )
