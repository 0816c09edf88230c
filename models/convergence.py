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
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import xarray as xr
from arviz_stats.base import array_stats
from arviz_stats.validate import validate_ci_prob
from scipy import stats
from scipy.fft import irfft, next_fast_len, rfft

DEFAULT_THRESHOLDS = {
    "rhat_max": 1.01,
    "ess_bulk_min": 400.0,
    "ess_tail_min": 400.0,
    "divergences_max": 0,
    "ebfmi_min": 0.3,
    "treedepth_hits_max": 0,
}

_INTERNAL_PREFIXES = ("z_", "chol_", "m_", "phi_std_")


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


#: Names of the statistic "this transition hit the maximum tree depth" (nutpie's, PyMC's).
DEPTH_STATS = ("maxdepth_reached", "reached_max_treedepth")
#: The sample statistics the gate reads (divergences, E-BFMI, tree-depth hits).
GATE_STATS = ("diverging", "energy", *DEPTH_STATS)


def is_checked(name: str) -> bool:
    """Whether the gate checks the posterior variable ``name`` (not a sampler-internal
    ``z_``, ``chol_``, ``m_`` or ``phi_std_`` variable, whose recorded transforms it checks
    instead: ``r_``, ``sd_``/``cor_``, ``phi_``)."""
    return not str(name).startswith(_INTERNAL_PREFIXES)


def checked_variables(posterior: xr.Dataset) -> list[str]:
    """Posterior variables the gate checks."""
    return [v for v in posterior.data_vars if is_checked(v)]


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


# --------------------------------------------------------------------------- diagnostics
# ArviZ's rank-normalised split R-hat, bulk ESS and tail ESS (Vehtari et al. 2021), computed
# for every parameter at once. ArviZ computes them one parameter at a time in a Python loop
# (about 1 s for 400 parameters x 4,000 draws); the gate runs at every checkpoint of a run
# that stops when it passes (`models.stopping`), so it is vectorised here. The values equal
# ArviZ's to rounding (tests/test_convergence_diagnostics.py); elements where a shortcut does
# not apply (values that are not finite, a constant indicator) are handed to ArviZ itself.

_BLOM = 3 / 8


def _split_chains(x: np.ndarray) -> np.ndarray:
    """``(k, chains, draws)`` -> ``(k, 2 chains, draws // 2)``: first and last halves."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half :]], axis=1)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalise each row of ``(k, chains, draws)`` over all its draws (average ranks
    for ties, Blom's offset), as ArviZ's ``_z_scale``."""
    k, m, n = x.shape
    size = m * n
    flat = x.reshape(k, size)
    order = np.argsort(flat, axis=1)
    ordered = np.take_along_axis(flat, order, axis=1)
    # twice the average rank is an integer, so every score is one entry of a table of the
    # half-integer ranks; without ties the sorted scores are the same for every row
    ranks = np.arange(2 * size + 3) / 2
    table = stats.norm.ppf((ranks - _BLOM) / (size - 2 * _BLOM + 1))
    z_sorted = np.broadcast_to(table[2 : 2 * size + 2 : 2], (k, size)).copy()
    row, pos = np.nonzero(ordered[:, 1:] == ordered[:, :-1])  # value at pos + 1 equals the one at pos
    if row.size:
        pos = pos + 1
        # runs of equal values: a tie whose left neighbour is not a tie (same row) opens one
        opens = np.ones(row.size, dtype=bool)
        opens[1:] = (row[1:] != row[:-1]) | (pos[1:] != pos[:-1] + 1)
        run = np.cumsum(opens) - 1
        first = pos[opens] - 1
        closes = np.ones(row.size, dtype=bool)
        closes[:-1] = opens[1:]
        last = pos[closes]
        twice = first[run] + last[run] + 2  # 2 x ((first + last) / 2 + 1), ranks from 1
        z_sorted[row, pos] = table[twice]
        z_sorted[row[opens], first] = table[first + last + 2]
    z = np.empty_like(flat)
    np.put_along_axis(z, order, z_sorted, axis=1)
    return z.reshape(k, m, n)


def _rhat(x: np.ndarray) -> np.ndarray:
    n = x.shape[2]
    between = n * x.mean(axis=2).var(axis=1, ddof=1)
    within = x.var(axis=2, ddof=1).mean(axis=1)
    return np.sqrt((between / within + n - 1) / n)


def _ess(x: np.ndarray) -> np.ndarray:
    """ESS of each row of ``(k, chains, draws)``: autocovariances by FFT, Geyer's initial
    positive then monotone sequence, as ArviZ's ``_ess``; NaN where ArviZ must decide."""
    k, m, n = x.shape
    fft_len = next_fast_len(2 * n)
    f = rfft(x - x.mean(axis=2, keepdims=True), n=fft_len, axis=2)
    acov = irfft(f * np.conjugate(f), n=fft_len, axis=2)[:, :, :n] / n
    mean_var = acov[:, :, 0].mean(axis=1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + x.mean(axis=2).var(axis=1, ddof=1)
    rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]
    rho[:, 0] = 1.0
    kmax = math.ceil((n - 2) / 2) - 1  # pairs (rho[2j], rho[2j + 1]) the sequence may use
    if kmax < 1:
        return np.full(k, np.nan)
    pairs = rho[:, : 2 * kmax + 2].reshape(k, kmax + 1, 2)
    sums = pairs.sum(axis=2)
    stop = sums[:, 1:] <= 0  # the initial positive sequence ends at the first pair <= 0
    last = np.where(stop.any(axis=1), stop.argmax(axis=1) + 1, kmax)
    monotone = np.minimum.accumulate(sums, axis=1)
    head = np.where(np.arange(kmax + 1) < last[:, None], monotone, 0.0).sum(axis=1)
    rows = np.arange(k)
    even = pairs[rows, last, 0]
    tail = np.where((sums[rows, last] >= 0) | (even > 0), even, 0.0)
    size = m * n
    tau = np.maximum(-1.0 + 2.0 * head + tail, 1 / np.log10(size))
    spread = x.max(axis=(1, 2)) - x.min(axis=(1, 2))
    ok = (sums[:, 0] > 0) & np.isfinite(rho).all(axis=1) & (spread >= np.finfo(float).resolution)
    return np.where(ok, size / tau, np.nan)


#: Values (draws x parameters) handled together by `rank_diagnostics`.
_CHUNK_VALUES = 1 << 17
#: Most threads `rank_diagnostics` runs its chunks on.
_MAX_THREADS = 4


def _rank_diagnostics_fast(xs: np.ndarray, prob: float) -> dict[str, np.ndarray]:
    """`rank_diagnostics` of finite rows of ``(k, chains, draws)``, NaN where ArviZ must decide."""
    m = xs.shape[1]
    out = {"rhat": np.full(xs.shape[0], np.nan)}
    split = _split_chains(xs)
    z = _z_scale(split)
    median = np.median(split.reshape(split.shape[0], -1), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if m >= 2:
            folded = _z_scale(np.abs(split - median[:, None, None]))
            out["rhat"] = np.maximum(_rhat(z), _rhat(folded))
        out["ess_bulk"] = _ess(z)
        flat = xs.reshape(xs.shape[0], -1)
        tails = [
            _ess(_split_chains((xs <= np.quantile(flat, p, axis=1)[:, None, None]).astype(float)))
            for p in sorted((prob, 1 - prob))
        ]
        out["ess_tail"] = np.minimum(*tails)
    return out


def rank_diagnostics(draws: np.ndarray, tail_prob: float | None = None) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat, bulk ESS and tail ESS of every column, as ArviZ's
    ``rhat(method="rank")`` and ``ess(method="bulk" / "tail")``.

    Parameters
    ----------
    draws : numpy.ndarray
        ``(chain, draw, k)``.
    tail_prob : float, optional
        The tail ESS is the smaller ESS of the indicators ``x <= q(min(p, 1 - p))`` and
        ``x <= q(max(p, 1 - p))``; default ArviZ's ``stats.ci_prob`` (0.89), as
        ``az.ess(method="tail")``.

    Returns
    -------
    dict
        ``rhat``, ``ess_bulk``, ``ess_tail``: arrays of length k.
    """
    prob = validate_ci_prob(tail_prob)
    x = np.ascontiguousarray(np.moveaxis(np.asarray(draws, dtype=float), 2, 0))
    k, m, n = x.shape
    finite = np.isfinite(x).all(axis=(1, 2))
    out = {key: np.full(k, np.nan) for key in ("rhat", "ess_bulk", "ess_tail")}
    cols = np.flatnonzero(finite & (n >= 8))
    # a few columns at a time: small temporaries stay in cache and in the allocator's heap
    # (whole-posterior temporaries of tens of MB are fresh pages each time, which measured
    # up to twice as slow on this virtual machine)
    step = max(1, _CHUNK_VALUES // (m * n))
    chunks = [cols[start : start + step] for start in range(0, cols.size, step)]

    def run(idx: np.ndarray) -> None:
        for key, values in _rank_diagnostics_fast(x[idx], prob).items():
            out[key][idx] = values  # chunks are disjoint: no two threads write one element

    # numpy's sorts and element-wise loops and scipy's FFT release the GIL: the chunks run
    # side by side on the machine's cores (the sampler is paused while the gate runs)
    workers = min(len(chunks), os.cpu_count() or 1, _MAX_THREADS)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, chunks))
    else:
        for idx in chunks:
            run(idx)
    # whatever the shortcut left undecided: ArviZ, one element at a time
    for key, method in (("rhat", "rank"), ("ess_bulk", "bulk"), ("ess_tail", "tail")):
        todo = np.isnan(out[key])
        if key == "rhat" and m < 2:
            continue
        if todo.any():
            kwargs = {"prob": prob} if method == "tail" else {}
            fn = array_stats.rhat if key == "rhat" else array_stats.ess
            out[key][todo] = fn(x[todo], chain_axis=1, draw_axis=2, method=method, **kwargs)
    return out


def posterior_diagnostics(post: xr.Dataset, tail_prob: float | None = None) -> dict[str, xr.Dataset]:
    """`rank_diagnostics` of every element of every variable of a posterior, as Datasets
    shaped like ``az.rhat(post)`` (``rhat``, ``ess_bulk``, ``ess_tail``)."""
    names = list(post.data_vars)
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    blocks, shapes = [], []
    for name in names:
        da = post[name].transpose("chain", "draw", ...)
        shapes.append(da.shape[2:])
        blocks.append(np.asarray(da.values, dtype=float).reshape(n_chain, n_draw, -1))
    if not blocks:
        return {key: xr.Dataset() for key in ("rhat", "ess_bulk", "ess_tail")}
    values = rank_diagnostics(np.concatenate(blocks, axis=2), tail_prob)
    out = {}
    for key, flat in values.items():
        start, data = 0, {}
        for name, shape in zip(names, shapes, strict=True):
            size = int(np.prod(shape, dtype=int))
            da = post[name].transpose("chain", "draw", ...)
            dims = da.dims[2:]
            coords = {d: da.coords[d] for d in dims if d in da.coords}
            data[name] = xr.DataArray(flat[start : start + size].reshape(shape), dims=dims, coords=coords)
            start += size
        out[key] = xr.Dataset(data)
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
        raw = posterior_diagnostics(post)
        rhat = _constant_masked(raw["rhat"], constant, worst=np.inf)
        ess_bulk = _constant_masked(raw["ess_bulk"], constant, worst=0.0)
        ess_tail = _constant_masked(raw["ess_tail"], constant, worst=0.0)
    max_rhat, worst_rhat = _worst(rhat, largest=True)
    min_bulk, worst_bulk = _worst(ess_bulk, largest=False)
    min_tail, worst_tail = _worst(ess_tail, largest=False)

    div_name = "diverging" if "diverging" in stats else None
    divergences = int(stats[div_name].values.sum()) if div_name else 0
    energy = stats["energy"].values if "energy" in stats else None
    ebfmi = _ebfmi(energy) if energy is not None and n_draws > 2 else []
    depth_name = next((n for n in DEPTH_STATS if n in stats), None)
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
