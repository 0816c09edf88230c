"""Draw until the gate passes: one sampling run that stops as soon as its draws are enough.

With ``draws=None`` (the default) a nutpie attempt does not draw a fixed number. It runs its
chains side by side (one thread per chain) up to a ceiling, the attempt's ``draws``, and
at checkpoints -- each chain's first ``L`` draws, the same ``L`` for every chain -- runs the
convergence gate (`models.convergence.check_convergence`) on those draws:

* the gate passes: sampling stops, and the fit keeps exactly the first ``L`` draws of each
  chain (draws made past ``L`` by a chain that ran ahead are dropped, and counted);
* divergent transitions or transitions at the maximum tree depth above the gate's
  thresholds: sampling stops (more draws cannot remove them; escalation changes the
  geometry instead, `models.escalation.next_attempt`);
* otherwise the next checkpoint is what the ESS per draw seen says the target needs, and
  what R-hat says (a chance excess of R-hat - 1 shrinks about as 1 / draws: ``L (R-hat - 1)
  / 0.01``), the larger, times `LOOK_SAFETY` (`next_checkpoint`), at least `GROWTH` times
  and at most `MAX_GROWTH` times ``L``. At the ceiling the attempt ends with the gate's
  verdict on all its draws.

The first checkpoint is `first_checkpoint` draws per chain: `FIRST_LOOK` (2.5) times the
ESS asked for over all chains, at least `models.escalation.MIN_DRAWS`. With many parameters, R-hat rather than
ESS often sets the length: the largest of 400 split R-hats from 4 chains of 500 draws is
about 1.014 by chance alone (the 25,000-person random-intercept model), of 750 draws 1.009.

Every decision is taken on the chains' first ``L`` draws only, at checkpoints fixed by those
draws, so a seeded fit stops at the same ``L`` with the same draws however fast each
chain ran. This is what "continue the chains" means for nutpie, which cannot extend a
finished run: the run is started long, and stopped early. Because the gate is looked at a
few times (checkpoints at least `GROWTH` apart: 2 or 3 looks in the runs measured), the
R-hat threshold is met a little more easily than at one fixed length; the ESS threshold
is the same at every look.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from models.convergence import GATE_STATS, Convergence, check_convergence, is_checked
from models.escalation import MIN_DRAWS, round_up

#: The first look is at this many draws per unit of ESS asked for (over all chains).
FIRST_LOOK = 2.5
#: Margin on the draws the ESS per draw seen says the target needs (the next look is cheap,
#: so smaller than a new run's `models.escalation.SAFETY`).
LOOK_SAFETY = 1.1
#: The next checkpoint is at least this many times the last.
GROWTH = 1.25
#: ... and at most this many times.
MAX_GROWTH = 3.0
#: Checkpoints are multiples of this many draws per chain.
STEP = 25
#: Seconds between looks at the sampler's progress reports (nutpie sends them every 50 ms).
POLL = 0.05
PROGRESS_MS = 50


def first_checkpoint(ess_target: float, chains: int) -> int:
    """Draws per chain of the first look: `FIRST_LOOK` times the ESS asked for over all chains
    (nutpie's worst parameter gives 0.3-1 bulk ESS per draw), at least
    `models.escalation.MIN_DRAWS`."""
    return max(MIN_DRAWS, round_up(FIRST_LOOK * ess_target / max(chains, 1), STEP))


def next_checkpoint(length: int, conv: Convergence, ess_target: float, ceiling: int) -> int | None:
    """Draws per chain of the next look after a failed gate at ``length``, or None to stop.

    Parameters
    ----------
    length : int
        Draws per chain the gate was run on.
    conv : Convergence
        Its verdict.
    ess_target : float
        Bulk and tail ESS asked for.
    ceiling : int
        The attempt's most draws per chain.

    Returns
    -------
    int or None
        None when more draws cannot pass the gate (divergences or tree-depth hits above the
        thresholds) or ``length`` is already the ceiling.
    """
    th = conv.thresholds
    if conv.divergences > th["divergences_max"] or conv.treedepth_hits > th["treedepth_hits_max"]:
        return None
    if length >= ceiling:
        return None
    need = GROWTH * length  # E-BFMI alone: a little more
    worst = min(conv.min_ess_bulk, conv.min_ess_tail)
    if worst < ess_target:  # ESS grows about in proportion to the draws
        ok = worst > 0 and math.isfinite(worst)
        need = max(need, length * LOOK_SAFETY * ess_target / worst if ok else MAX_GROWTH * length)
    excess, allowed = conv.max_rhat - 1.0, th["rhat_max"] - 1.0
    if not excess <= allowed:  # a chance excess of R-hat - 1 shrinks about as 1 / draws
        ok = math.isfinite(excess) and allowed > 0
        need = max(need, length * LOOK_SAFETY * excess / allowed if ok else MAX_GROWTH * length)
    need = min(max(need, GROWTH * length), MAX_GROWTH * length)
    return int(min(ceiling, round_up(need, STEP)))


def stop_reason(conv: Convergence, length: int, ceiling: int) -> str:
    """Why the run stopped at ``length`` draws per chain."""
    th = conv.thresholds
    if conv.passed:
        return f"gate passed at {length} of at most {ceiling} draws"
    if conv.divergences > th["divergences_max"]:
        return f"{conv.divergences} divergences in the first {length} draws"
    if conv.treedepth_hits > th["treedepth_hits_max"]:
        return f"{conv.treedepth_hits} transitions at the maximum tree depth in the first {length} draws"
    return f"ceiling of {ceiling} draws reached"


def drawn_per_chain(tree: xr.DataTree) -> np.ndarray:
    """Retained draws each chain has made so far (a running sampler pads the chains that are
    behind with NaN)."""
    post = tree["posterior"].to_dataset() if "posterior" in tree.children else None
    if post is None or "draw" not in post.sizes or post.sizes["draw"] == 0:
        n_chains = post.sizes.get("chain", 0) if post is not None else 0
        return np.zeros(n_chains, dtype=int)
    var = next(v for v in post.data_vars.values() if np.issubdtype(v.dtype, np.floating))
    first = var.values.reshape(var.sizes["chain"], var.sizes["draw"], -1)[:, :, 0]
    return (~np.isnan(first)).sum(axis=1)


def gate_trace(handle) -> xr.DataTree:
    """What the gate reads of a running nutpie sampler, straight from its Arrow trace.

    The checked posterior variables (`models.convergence.is_checked`) and the statistics
    in `models.convergence.GATE_STATS`, retained draws only, each chain padded with NaN
    (False, 0) to the longest as nutpie pads them: the same values as in
    ``handle.inspect()``, without building the whole trace (every internal variable and
    statistic, the warm-up) as ArviZ data at each look. A handle that is not nutpie's
    background sampler, or a trace that is not held as Arrow, is read with
    ``handle.inspect()``.
    """
    import pyarrow as pa

    sampler, compiled = getattr(handle, "_sampler", None), getattr(handle, "_compiled_model", None)
    if sampler is None or compiled is None:
        return handle.inspect()
    results = sampler.inspect()
    if not results.is_arrow():
        return handle.inspect()
    draw_batches, stat_batches = results.get_arrow_trace()
    tuned = [int(pa.array(s.column("tuning")).to_numpy(zero_copy_only=False).sum()) for s in stat_batches]
    kept = [d.num_rows - t for d, t in zip(draw_batches, tuned, strict=True)]
    longest = max(kept, default=0)
    coords = {name: list(values) for name, values in compiled.coords.items()}
    # nutpie also stores the transformed values of reparameterised variables (``sd_g_log__``),
    # and leaves them out of its posterior
    transformed = set(getattr(compiled, "reparameterized_names", ()) or ())

    def group(batches, wanted) -> xr.Dataset:
        arrays, dims = {}, {}
        for chain, (batch, start) in enumerate(zip(batches, tuned, strict=True)):
            for name in batch.column_names:
                if not wanted(name):
                    continue
                col = batch.column(name)
                meta = col.field.metadata
                shape = [int(v) for v in meta[b"shape"].decode().split(",")] if meta.get(b"shape") else []
                names = meta[b"dims"].decode().split(",") if meta.get(b"dims") else []
                values = pa.array(col)
                if values.null_count:
                    raise ValueError(f"missing values in {name!r}")
                if hasattr(values, "flatten"):
                    values = values.flatten()
                values = values.to_numpy(zero_copy_only=False).reshape(-1, *shape)[start:]
                if name not in arrays:
                    fill = np.nan if values.dtype.kind == "f" else 0
                    arrays[name] = np.full((len(batches), longest, *shape), fill, dtype=values.dtype)
                    dims[name] = ("chain", "draw", *(names or [f"{name}_dim_{i}" for i in range(len(shape))]))
                arrays[name][chain, : values.shape[0]] = values
        used = {d for ds in dims.values() for d in ds}
        return xr.Dataset(
            {name: (dims[name], arr) for name, arr in arrays.items()},
            coords={d: coords[d] for d in used if d in coords},
        )

    try:
        posterior = group(draw_batches, lambda name: is_checked(name) and name not in transformed)
        stats = group(stat_batches, lambda name: name in GATE_STATS)
    except ValueError:  # null entries: leave them to nutpie's own reading
        return handle.inspect()
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})


def truncated(tree: xr.DataTree, length: int) -> xr.DataTree:
    """The tree with the first ``length`` retained draws of each chain (warm-up groups whole)."""
    groups = {}
    for name, node in tree.children.items():
        ds = node.to_dataset()
        if not name.startswith("warmup") and "draw" in ds.dims:
            ds = ds.isel(draw=slice(0, length))
        groups[name] = ds
    out = xr.DataTree.from_dict({f"/{k}": v for k, v in groups.items()})
    out.attrs = dict(tree.attrs)
    return out


@dataclass
class StopRecord:
    """What a stopping run did: the draws kept, the looks, and why it stopped."""

    length: int
    ceiling: int
    reason: str
    looks: list[int] = field(default_factory=list)
    drawn: int = 0  # retained draws made over all chains, including those past ``length``

    def as_attempt(self) -> dict:
        """Keys added to the attempt's record (`models.fitting.Fit.attempts`)."""
        return {"max_draws": self.ceiling, "looks": list(self.looks), "stopped": self.reason}


def sample_until(
    start: Callable[[Callable[[list], None]], object],
    *,
    tune: int,
    ceiling: int,
    ess_target: float,
    chains: int,
    thresholds: Mapping | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[xr.DataTree, Convergence, StopRecord]:
    """Run a background sampler until the gate passes at a checkpoint, or it must stop.

    Parameters
    ----------
    start : callable
        ``start(progress)`` starts the sampler and returns its background handle
        (``nutpie.sample(..., blocking=False, progress_callback=progress)``: ``inspect``,
        ``pause``, ``resume``, ``abort``, ``wait``, ``is_finished``). The sampler calls
        ``progress`` with one record per chain (``finished_draws``, tuning included).
    tune, ceiling : int
        Tuning steps and retained draws per chain the sampler was started with.
    ess_target : float
        Bulk and tail ESS asked for.
    chains : int
        Number of chains.
    thresholds : mapping, optional
        The gate's thresholds (`models.convergence.DEFAULT_THRESHOLDS` overrides).
    sleep : callable
        Wait between looks at the progress (replaceable in tests).

    Returns
    -------
    tree : xarray.DataTree
        The first ``L`` draws of each chain (warm-up whole).
    conv : Convergence
        The gate's verdict on exactly those draws.
    record : StopRecord

    Notes
    -----
    The sampler is paused while the gate runs on a checkpoint. Letting the chains go on
    meanwhile was slower in every measured run (25,000 people, 4 chains on 2 cores: 10.1
    and 11.4 s against 8.3 and 8.8 s paused): the gate, run from Python among four busy
    sampler threads, took several times as long.
    """
    done = [0]  # retained draws of the slowest chain, from nutpie's progress reports

    def progress(reports: list) -> None:
        done[0] = min(max(0, int(r.finished_draws) - tune) for r in reports) if reports else 0

    handle = start(progress)
    looks: list[int] = []
    target = min(first_checkpoint(ess_target, chains), ceiling)
    gate = dict(thresholds or {})
    while True:
        finished = _finished(handle)
        if not finished and done[0] < target:
            sleep(POLL)
            continue
        if not finished:
            handle.pause()
        tree = handle.wait() if finished else gate_trace(handle)
        counts = drawn_per_chain(tree)
        common = int(counts.min()) if counts.size else 0
        while common >= target:
            conv = check_convergence(truncated(tree, target), gate)
            looks.append(target)
            nxt = None if conv.passed else next_checkpoint(target, conv, ess_target, ceiling)
            if nxt is None:
                if not finished:
                    tree = handle.abort()
                    counts = drawn_per_chain(tree)
                why = stop_reason(conv, target, ceiling)
                return (
                    truncated(tree, target),
                    conv,
                    StopRecord(target, ceiling, why, looks, int(counts.sum())),
                )
            target = nxt
        if finished:  # cannot happen (the ceiling is always a checkpoint); the gate on what there is
            conv = check_convergence(truncated(tree, common), gate)
            why = stop_reason(conv, common, ceiling)
            return truncated(tree, common), conv, StopRecord(common, ceiling, why, looks, int(counts.sum()))
        handle.resume()


def _finished(handle) -> bool:
    """Whether the sampler has finished (nutpie's check times out while it is busy: not yet)."""
    try:
        return bool(handle.is_finished)
    except TimeoutError:
        return False
