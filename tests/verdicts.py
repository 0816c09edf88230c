"""A gate verdict made by hand, for tests of what follows a verdict (escalation, stopping)."""

from __future__ import annotations

from models.convergence import DEFAULT_THRESHOLDS, Convergence


def made_verdict(
    *,
    divergences: int = 0,
    rhat: float = 1.0,
    bulk: float = 1000.0,
    tail: float = 1000.0,
    ebfmi: float = 1.0,
    ess: float = 400.0,
    depth_hits: int = 0,
) -> Convergence:
    """A `Convergence` with these values, failing exactly the checks they fail."""
    th = {**DEFAULT_THRESHOLDS, "ess_bulk_min": ess, "ess_tail_min": ess}
    problems = []
    if rhat > th["rhat_max"]:
        problems.append("R-hat")
    if bulk < th["ess_bulk_min"]:
        problems.append("bulk ESS")
    if tail < th["ess_tail_min"]:
        problems.append("tail ESS")
    if divergences:
        problems.append("divergences")
    if ebfmi < th["ebfmi_min"]:
        problems.append("E-BFMI")
    if depth_hits:
        problems.append("tree depth")
    return Convergence(
        passed=not problems,
        max_rhat=rhat,
        worst_rhat="Intercept",
        min_ess_bulk=bulk,
        worst_ess_bulk="Intercept",
        min_ess_tail=tail,
        worst_ess_tail="Intercept",
        divergences=divergences,
        n_draws=2000,
        ebfmi=[ebfmi] * 4,
        treedepth_hits=depth_hits,
        problems=problems,
        thresholds=th,
    )
