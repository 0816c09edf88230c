"""What to do when a fit fails the convergence gate: the escalation policy, as pure functions.

`models.fitting.fit` samples, runs the gate (`models.convergence`), and while the gate
fails and the budget allows, asks `next_attempt` for the settings of the next attempt:

* **divergences** (or low E-BFMI): first switch the parameterisation of the blocks that
  show the funnel (`funnel_blocks`: a centred block whose divergent transitions sit at
  small values of its SD, or, with low E-BFMI and no divergences to locate it, whose data
  do not pin its effects, goes non-centred; a non-centred block whose data are informative,
  `information_ratio` >= `FLIP_ABOVE`, goes centred), each block at most once; otherwise
  raise ``target_accept`` one step along `TARGET_ACCEPT_STEPS` (0.9, 0.95, 0.99); then
  double the tuning, up to `MAX_TUNE` (drawing for the ESS as below at the same time);
* **low ESS or high R-hat without divergences**: draw more, as many as the observed ESS
  per draw says the target needs (`draws_for_ess`), times `SAFETY`;
* **transitions stopped by the maximum tree depth**: raise nutpie's ``maxdepth`` one step
  along `MAX_DEPTH_STEPS` (10, 12), alongside whatever else the attempt changes (a high
  ``target_accept`` shrinks the step size, so the trajectories that explore a long,
  correlated posterior -- nested factors -- need more steps); at the last step: stop.
* nothing left to try: stop.

nutpie cannot continue chains: the number of draws is fixed when its sampler is created
(its background sampler can pause, resume, inspect and abort, not extend), and a new
sampler cannot be given the adapted mass matrix and step size (``init_mean`` only sets
the starting point). So "more draws" is a new run with tuning, with a seed derived from
the fit's seed (`attempt_seed`), so a fit is repeatable.

**Centred or non-centred, per grouping factor, from the data** (`choose_centring`). For a
level j of block g the Fisher information of its effect from the data is
``I_j = sum_i z_i^2 p_j (1 - p_j)`` (Bernoulli rows; binomial rows weigh by their trials;
``p_j`` the level's outcome rate shrunk towards the overall rate by two pseudo-rows), and
the prior puts the effects at the scale ``s_g`` of the block's SD prior (halfnormal /
half-t scale, 1 / rate of an exponential). The information ratio
``kappa_g = median_j(min_t I_jt) * s_g^2`` is the data's precision for one level relative
to the prior's: when it is large the likelihood pins each effect and the non-centred
``r = sd * z`` makes ``z`` and ``sd`` a funnel, so the block is centred; when it is small
the centred ``r ~ Normal(0, sd)`` is the funnel, so the block is non-centred. Centred
iff ``kappa_g >= CENTRE_ABOVE`` (20) -- about 80 rows per level at an outcome rate of 0.5,
or 220 at 0.1, with the default ``halfnormal(1)`` prior -- and the factor is not nested
with another block's factor (`nested_factors`: states within regions, age x education
cells within age groups). A nested factor's effects are not pinned by its own data: the
data pin the sum of the coarse and the fine effects, and how it splits is left to the
priors, so centring them makes a ridge between the two blocks.

Measured on the 1988 polls (4 chains x 1000 draws, seeds 1 and 2, nutpie): with
``(1 | state)`` alone (49 states, median 168 people, kappa 39: centred) the bulk ESS of
``sd_state`` was 2388 / 2844 centred against 586 / 698 non-centred, same sampling time;
with the five factors (every kappa >= 39, all nested) divergences were 69 / 51 all
non-centred (the rule's choice), 45 / 75 all centred, 153 / 63 with state and age x
education centred.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from models.convergence import Convergence
from models.formula import ModelData
from models.priors import Prior

#: Centre a block when its information ratio reaches this.
CENTRE_ABOVE = 20.0
#: On divergences, a non-centred block this informative is switched to the centred form.
FLIP_ABOVE = CENTRE_ABOVE / 4
#: target_accept is raised along these steps on divergences.
TARGET_ACCEPT_STEPS = (0.9, 0.95, 0.99)
#: On transitions stopped at the maximum tree depth, the depth is raised along these steps
#: (nutpie's and Stan's default is 10: at most 2**10 leapfrog steps per draw).
MAX_DEPTH_STEPS = (10, 12)
DEFAULT_MAX_DEPTH = MAX_DEPTH_STEPS[0]
#: On divergences at the last target_accept, tuning is doubled up to this many steps.
MAX_TUNE = 4000
#: Extra draws on top of what the observed ESS per draw says (the ESS estimate is noisy).
SAFETY = 1.25
#: A centred block whose divergences sit this many SDs of log(sd) below its mean shows the funnel.
FUNNEL_SHIFT = 0.3
#: Default budget: total iterations (tuning included, all chains, all attempts), seconds.
#: 120,000: the five-factor 1988 polls model needed 9 attempts on seed 3 (converged in 177 s);
#: at 60,000 it stopped at attempt 7 with R-hat 1.013.
DEFAULT_BUDGET = {"draws": 120_000, "seconds": None}
#: The first ESS-driven run draws this many times the ESS asked for (over all chains).
FIRST_RUN_FACTOR = 5.0
#: ... and a run that stops when the gate passes (`models.stopping`) draws at most this many times.
CEILING_FACTOR = 10.0
MIN_DRAWS = 100


class BudgetError(ValueError):
    """An invalid budget."""


# --------------------------------------------------------------------------- centring rule


def prior_scale(prior: Prior) -> float:
    """Typical size of a group SD under its prior (the scale the rule compares with).

    halfnormal(s) and halfstudent_t(nu, s): ``s``; exponential(rate): ``1 / rate``.
    """
    if prior.family == "exponential":
        return 1.0 / prior.params[0]
    return float(prior.params[-1])


def level_information(md: ModelData) -> dict[str, np.ndarray]:
    """Fisher information of each group effect from the data, by block: levels x terms.

    ``I_jt = sum_{i in j} n_i z_it^2 p_j (1 - p_j)``, with ``n_i`` the trials (1 for
    Bernoulli rows) and ``p_j = (successes_j + 2 p) / (trials_j + 2)`` the level's rate
    shrunk towards the overall rate ``p``. For an ordinal response ``p_j (1 - p_j)`` is
    ``(1 - sum_k p_jk^3) / 3`` with ``p_jk`` the level's category shares, shrunk the same
    way (the information about a shift of the logistic latent scale; ``p (1 - p)`` for K = 2).
    """
    n = np.asarray(md.trials, dtype=float) if md.family == "binomial" else np.ones(md.n_obs)
    y = np.asarray(md.y, dtype=float)
    p_all = y.sum() / max(n.sum(), 1.0)
    out = {}
    K = len(md.response_levels)
    for block in md.blocks:
        succ = np.bincount(block.idx, weights=y, minlength=block.n_levels)
        trials = np.bincount(block.idx, weights=n, minlength=block.n_levels)
        p = (succ + 2 * p_all) / (trials + 2)
        w = p * (1 - p)
        if md.family == "cumulative":  # ordinal: (1 - sum_k p_k^3) / 3 per row (Whitehead 1993)
            shares = np.bincount(md.y, minlength=K) / md.n_obs
            cells = np.bincount(block.idx * K + md.y, minlength=block.n_levels * K).reshape(-1, K)
            pk = (cells + 2 * shares) / (trials[:, None] + 2)
            w = (1 - np.sum(pk**3, axis=1)) / 3
        info = np.column_stack(
            [
                np.bincount(block.idx, weights=n * block.Z[:, t] ** 2, minlength=block.n_levels)
                for t in range(len(block.terms))
            ]
        )
        out[block.name] = info * w[:, None]
    return out


def information_ratio(md: ModelData, priors: Mapping[str, Prior]) -> dict[str, float]:
    """``kappa_g = median_j(min_t I_jt) * s_g^2`` for every block (see the module notes)."""
    info = level_information(md)
    return {
        b.name: float(np.median(info[b.name].min(axis=1)) * prior_scale(priors[f"sd_{b.name}"]) ** 2)
        for b in md.blocks
    }


def nested_factors(md: ModelData) -> dict[str, list[str]]:
    """For each block, the other blocks whose grouping factor nests in its factor or its
    factor in theirs (every level of the finer factor inside one level of the coarser:
    states in regions, age x education cells in age groups). Blocks of the same factor
    (``(1 | g) + (0 + x | g)``) are not counted."""
    out: dict[str, list[str]] = {b.name: [] for b in md.blocks}
    for a in md.blocks:
        for b in md.blocks:
            if a is b or a.factor == b.factor:
                continue
            pairs = np.unique(np.stack([a.idx, b.idx]), axis=1).shape[1]
            if pairs == max(a.n_levels, b.n_levels):  # one partition refines the other
                out[a.name].append(b.name)
    return out


def choose_centring(md: ModelData, priors: Mapping[str, Prior]) -> dict[str, bool]:
    """Centred (True) or non-centred per block: centred iff ``kappa_g >= CENTRE_ABOVE`` and
    no other block's factor is nested with its factor (`nested_factors`)."""
    nested = nested_factors(md)
    return {name: k >= CENTRE_ABOVE and not nested[name] for name, k in information_ratio(md, priors).items()}


# --------------------------------------------------------------------------- budget, seeds


@dataclass(frozen=True)
class Budget:
    """A cap on the work of one fit, over all its attempts.

    Attributes
    ----------
    draws : int or None
        Total sampler iterations, tuning included, summed over chains and attempts.
    seconds : float or None
        Wall time of sampling (compilation included) over all attempts.

    The first attempt always runs; a later one runs only if it fits in what is left
    (its iterations exactly, its time estimated from the previous attempt's time per
    iteration), with fewer draws if that is still more than the previous attempt drew.
    """

    draws: int | None = DEFAULT_BUDGET["draws"]
    seconds: float | None = DEFAULT_BUDGET["seconds"]

    @classmethod
    def parse(cls, budget: Mapping | Budget | None) -> Budget:
        """A budget from ``{"draws": ..., "seconds": ...}`` (keys left out keep their
        defaults, `DEFAULT_BUDGET`; None for no cap), a `Budget`, or None (the default).

        Raises
        ------
        BudgetError
            Unknown keys, or values that are not positive numbers or None.
        """
        if budget is None:
            return cls()
        if isinstance(budget, Budget):
            return budget
        if not isinstance(budget, Mapping):
            raise BudgetError(
                f"budget must be a dict like {{'draws': 20000, 'seconds': 600}}, got {budget!r}"
            )
        unknown = set(budget) - {"draws", "seconds"}
        if unknown:
            raise BudgetError(f"unknown budget key(s) {sorted(unknown)}; use 'draws' and/or 'seconds'")
        merged = {**DEFAULT_BUDGET, **budget}
        for k, v in merged.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v <= 0):
                raise BudgetError(f"budget[{k!r}] must be a positive number or None, got {v!r}")
        return cls(
            draws=None if merged["draws"] is None else int(merged["draws"]),
            seconds=None if merged["seconds"] is None else float(merged["seconds"]),
        )

    def to_dict(self) -> dict:
        """``{"draws": ..., "seconds": ...}``, as saved in the fit's settings."""
        return {"draws": self.draws, "seconds": self.seconds}


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed of attempt ``attempt`` (0-based) of a fit with seed ``seed``: the fit's own
    seed for the first, then a fixed function of both (`numpy.random.SeedSequence`)."""
    if attempt == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(attempt)]).generate_state(1)[0])


def first_draws(ess: float, chains: int, *, ceiling: bool = False) -> int:
    """Draws per chain of an ESS-driven first run: ``FIRST_RUN_FACTOR * ess`` over all chains
    (enough for an easy model: nutpie's bulk ESS per draw is often near 1, tail ESS 0.5-0.9).

    ``ceiling=True``: the most draws of a run that stops when the gate passes
    (`models.stopping`), ``CEILING_FACTOR * ess`` over all chains: an easy model stops long
    before it, a hard one gets the draws it needs without a second warm-up.
    """
    factor = CEILING_FACTOR if ceiling else FIRST_RUN_FACTOR
    return max(MIN_DRAWS, round_up(factor * ess / chains))


def draws_for_ess(draws: int, ess_seen: float, ess_target: float) -> int:
    """Draws per chain that reach ``ess_target`` at the ESS per draw seen (times `SAFETY`)."""
    if not ess_seen > 0 or not math.isfinite(ess_seen):
        return 4 * draws
    return round_up(draws * SAFETY * ess_target / ess_seen)


def round_up(x: float, step: int = 50) -> int:
    """``x`` rounded up to a multiple of ``step``."""
    return int(math.ceil(x / step) * step)


# --------------------------------------------------------------------------- diagnosis


def funnel_blocks(idata: xr.DataTree, centred: Mapping[str, bool]) -> dict[str, float]:
    """Where each block's divergences sit: ``(mean log sd at divergent draws - mean log sd)
    / sd(log sd)``, per block (NaN without divergences). Strongly negative for a centred
    block: the divergences are in the neck of its funnel (small SD)."""
    post = idata["posterior"].to_dataset()
    div = idata["sample_stats"]["diverging"].values.astype(bool)
    out = {}
    for name in centred:
        var = f"sd_{name}"
        if var not in post or not div.any():
            out[name] = float("nan")
            continue
        da = post[var]
        log_sd = np.log(np.asarray(da.values, dtype=float).reshape(*div.shape, -1).mean(axis=-1))
        spread = log_sd.std()
        out[name] = float((log_sd[div].mean() - log_sd.mean()) / spread) if spread > 0 else float("nan")
    return out


def next_attempt(
    conv: Convergence,
    settings: Mapping,
    *,
    info: Mapping[str, float],
    funnel: Mapping[str, float],
    ess_target: float,
    flipped: frozenset[str] | set[str] = frozenset(),
    nested: Mapping[str, list[str]] | None = None,
) -> tuple[dict | None, str]:
    """The settings of the next attempt after a failed gate, or None and why not.

    Parameters
    ----------
    conv : Convergence
        The verdict of the attempt just made.
    settings : mapping
        Its settings: ``draws``, ``tune``, ``target_accept``, ``centered`` (dict by block),
        and ``max_depth`` (`DEFAULT_MAX_DEPTH` when absent).
    info : mapping
        `information_ratio` by block.
    funnel : mapping
        `funnel_blocks` of the attempt just made.
    ess_target : float
        The ESS asked for (bulk and tail).
    flipped : set
        Blocks whose parameterisation escalation has already switched (not switched again).
    nested : mapping, optional
        `nested_factors`: a non-centred block nested with another is not switched to the
        centred form (its data do not pin its effects: they share them with the other).

    Returns
    -------
    settings : dict or None
        The next attempt's settings (the budget is applied by the caller, `fit_to_budget`).
    reason : str
        Why: e.g. ``"12 divergences: centred state"`` or ``"bulk ESS 353: 300 -> 1450 draws"``.
    """
    if conv.passed:
        return None, "converged"
    new, reason = _geometry_or_draws(conv, settings, info, funnel, ess_target, flipped, nested)
    depth = int(settings.get("max_depth", DEFAULT_MAX_DEPTH))
    if conv.treedepth_hits > conv.thresholds["treedepth_hits_max"]:
        deeper = [d for d in MAX_DEPTH_STEPS if d > depth]
        what = f"{conv.treedepth_hits} transitions at the maximum tree depth"
        if deeper:
            new = dict(settings) if new is None else new
            new["max_depth"] = deeper[0]
            step = f"maxdepth {depth} -> {deeper[0]}"
            reason = f"{what}: {step}" if reason.startswith("nothing in the policy") else f"{reason}; {step}"
        elif new is None:
            reason = f"{what} at maxdepth {depth}, the last step"
    return new, reason


def _geometry_or_draws(
    conv: Convergence,
    settings: Mapping,
    info: Mapping[str, float],
    funnel: Mapping[str, float],
    ess_target: float,
    flipped: frozenset[str] | set[str],
    nested: Mapping[str, list[str]] | None,
) -> tuple[dict | None, str]:
    """`next_attempt`'s rules for divergences / E-BFMI, then ESS and R-hat."""
    new = dict(settings)
    centred = dict(settings["centered"])
    th = conv.thresholds
    bad_geometry = conv.divergences > th["divergences_max"] or any(
        not v >= th["ebfmi_min"] for v in conv.ebfmi
    )
    if bad_geometry:
        what = f"{conv.divergences} divergences" if conv.divergences > th["divergences_max"] else "low E-BFMI"
        flips = {}
        for name, is_centred in centred.items():
            if name in flipped:
                continue
            shift = funnel.get(name, float("nan"))
            if is_centred and (
                shift < -FUNNEL_SHIFT or (math.isnan(shift) and info.get(name, 0.0) < CENTRE_ABOVE)
            ):
                # divergences in the neck of its funnel, or low E-BFMI in a block the data do not pin
                flips[name] = False
            elif not is_centred and info.get(name, 0.0) >= FLIP_ABOVE and not (nested or {}).get(name):
                flips[name] = True
        if flips:
            centred.update(flips)
            new["centered"] = centred
            parts = [f"{'centred' if v else 'non-centred'} {k}" for k, v in flips.items()]
            return new, f"{what}: " + ", ".join(parts)
        higher = [t for t in TARGET_ACCEPT_STEPS if t > settings["target_accept"] + 1e-9]
        if higher:
            new["target_accept"] = higher[0]
            return new, f"{what}: target_accept {settings['target_accept']:g} -> {higher[0]:g}"
        if settings["tune"] < MAX_TUNE:
            # a longer warm-up adapts step size and mass matrix better; draw for the ESS too
            new["tune"] = min(MAX_TUNE, 2 * settings["tune"])
            worst = min(conv.min_ess_bulk, conv.min_ess_tail)
            if worst < ess_target:
                new["draws"] = max(settings["draws"], draws_for_ess(settings["draws"], worst, ess_target))
            return new, (
                f"{what} at target_accept {settings['target_accept']:g}: tune {settings['tune']} -> "
                f"{new['tune']}, {new['draws']} draws"
            )
        return None, f"{what} at target_accept {settings['target_accept']:g} with nothing left to switch"
    ess_short = min(conv.min_ess_bulk / ess_target, conv.min_ess_tail / ess_target)
    if ess_short < 1.0 or not conv.max_rhat <= th["rhat_max"]:
        worst = min(conv.min_ess_bulk, conv.min_ess_tail)
        kind = "bulk" if conv.min_ess_bulk <= conv.min_ess_tail else "tail"
        if ess_short < 1.0:
            draws = draws_for_ess(settings["draws"], worst, ess_target)
            why = f"{kind} ESS {worst:.0f} < {ess_target:.0f}"
        else:
            draws = round_up(2 * settings["draws"])
            why = f"R-hat {conv.max_rhat:.3f}"
        draws = max(draws, round_up(1.5 * settings["draws"]))
        new["draws"] = draws
        return new, f"{why}: {settings['draws']} -> {draws} draws per chain"
    return None, "nothing in the policy helps: " + "; ".join(conv.problems)


def fit_to_budget(
    proposed: Mapping,
    previous: Mapping,
    *,
    chains: int,
    budget: Budget,
    spent_draws: int,
    spent_seconds: float,
    seconds_per_draw: float,
) -> tuple[dict | None, str]:
    """The proposed attempt, cut to what is left of the budget, or None and why.

    Draws are cut so the attempt fits; an attempt cut to no more draws than the previous
    one had (with no other change) is not worth making.
    """
    out = dict(proposed)
    room = []
    if budget.draws is not None:
        room.append((budget.draws - spent_draws) / chains - out["tune"])
    if budget.seconds is not None and seconds_per_draw > 0:
        room.append((budget.seconds - spent_seconds) / (seconds_per_draw * chains) - out["tune"])
    if room:
        cap = int(min(room) // 50 * 50)
        if cap < out["draws"]:
            only_draws = all(out[k] == previous[k] for k in out if k != "draws")
            if cap < MIN_DRAWS or (only_draws and cap <= previous["draws"]):
                return None, f"budget spent ({_spent(budget, spent_draws, spent_seconds)})"
            out["draws"] = cap
    return out, ""


def _spent(budget: Budget, draws: int, seconds: float) -> str:
    parts = []
    if budget.draws is not None:
        parts.append(f"{draws} of {budget.draws} draws")
    if budget.seconds is not None:
        parts.append(f"{seconds:.0f} of {budget.seconds:.0f} s")
    return ", ".join(parts)


def describe_attempt(a: Mapping) -> str:
    """One line for an attempt record (as `models.fitting.Fit.attempts` holds them)."""
    centred = [k for k, v in a["centered"].items() if v]
    form = "centred: " + ", ".join(centred) if centred else "all non-centred"
    why = f" [{a['reason']}]" if a.get("reason") else ""
    max_depth = a.get("max_depth", DEFAULT_MAX_DEPTH)  # fits saved before it was a setting: 10
    depth = f", maxdepth {max_depth}" if max_depth != DEFAULT_MAX_DEPTH else ""
    stopped = f" [{a['stopped']}]" if a.get("stopped") else ""  # a run stopped by the gate (models.stopping)
    return (
        f"attempt {a['attempt']}{why}: {a['chains']} x ({a['tune']} tune + {a['draws']} draws){stopped}, "
        f"target_accept {a['target_accept']:g}, {form}{depth}, seed {a['seed']}; "
        f"{a['seconds']:.1f} s -> {a['verdict']}"
    )
