"""Spillovers in a fit with a spatial term ``car(lad, type = "bym2")`` (`models.spatial`).

- `spatial_share`: rho (the share of the LA variation that is spatially structured, i.e.
  shared with neighbouring LAs: spillover) and the total SD, with intervals;
- `bym2_parts`: each LA's effect split into its structured and unstructured parts;
- `morans_i` / `moran_table`: Moran's I of the LA effects on the adjacency graph (binary
  weights), with a permutation p-value, for fits with and without the spatial term;
- `map_parts`: choropleths of the structured and unstructured parts (`analysis.maps`).

How to read rho: with rho near 1 an LA's effect is mostly what its neighbours share (a
wellbeing spillover, or an unmeasured regional factor); near 0 LAs differ independently
of their neighbours. Moran's I of the exchangeable model's LA effects says whether the
residual LA variation is spatially clustered at all (I > 0: neighbours alike); after the
spatial term, the unstructured part should show none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.disclosure import DEFAULT_K
from analysis.summaries.draws import blocks_for, level_counts, posterior_draws
from analysis.summaries.intervals import DEFAULT_PROB, summarise_draws
from models.fitting import Fit
from models.spatial import AdjacencyGraph, bym2_layout, bym2_node_parts, gb_lad_graph

__all__ = ["bym2_parts", "map_parts", "moran_table", "morans_i", "spatial_share"]


def _spatial_block(fit: Fit, group: str | None):
    blocks = [b for b in blocks_for(fit, group) if b.spatial]
    if not blocks:
        raise ValueError(f"the model {fit.md.formula!r} has no spatial term car(..., type = ...)")
    return blocks[0]


def spatial_share(fit: Fit, group: str | None = None, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    """rho (spatial share of the LA variance) and the total SD of a BYM2 term, with intervals.

    Returns
    -------
    pandas.DataFrame
        Rows ``rho`` and ``sd``; columns of `analysis.summaries.intervals.summarise_draws`.
    """
    block = _spatial_block(fit, group)
    rho = posterior_draws(fit, f"rho_{block.name}")
    sd = posterior_draws(fit, f"sd_{block.name}").reshape(len(rho), -1)[:, 0]
    table = summarise_draws(np.column_stack([rho, sd]), ["rho", "sd"], prob=prob)
    table.attrs.update({"term": f"car({block.factor})", "headline": fit.headline})
    return table


def bym2_parts(fit: Fit, group: str | None = None) -> pd.DataFrame:
    """Posterior means of every graph node's structured and unstructured parts (log-odds).

    ``structured = sd sqrt(rho / s) phi``, ``unstructured = sd sqrt(1 - rho) theta``
    (``sd theta`` for a singleton), ``total`` their sum; ``n`` respondents (0 for LAs on
    the graph without data: their parts are predictions from the neighbours).
    """
    block = _spatial_block(fit, group)
    g = block.name
    lay = bym2_layout(block)
    rho = posterior_draws(fit, f"rho_{g}")
    sd = posterior_draws(fit, f"sd_{g}").reshape(len(rho), -1)[:, 0]
    phi = posterior_draws(fit, f"phi_{g}") if len(lay.structured) else None
    structured, unstructured = bym2_node_parts(lay, rho, sd, phi, posterior_draws(fit, f"theta_{g}"))
    n = np.zeros(lay.graph.n_nodes, dtype=int)
    n[lay.level_pos] = level_counts(fit, block.factor).to_numpy()
    return pd.DataFrame(
        {
            block.dim: list(lay.graph.nodes),
            "structured": structured.mean(axis=0),
            "unstructured": unstructured.mean(axis=0),
            "total": (structured + unstructured).mean(axis=0),
            "n": n,
        }
    )


def morans_i(
    values: np.ndarray, graph: AdjacencyGraph, permutations: int = 999, seed: int = 0
) -> dict[str, float]:
    """Moran's I of node values on a graph with binary adjacency weights.

    ``I = n / S0 * sum_ij w_ij z_i z_j / sum_i z_i^2``, z the centred values, S0 the sum of
    the weights (twice the edges). Expected value under no spatial association
    ``-1 / (n - 1)``; the p-value (one-sided, I larger than by chance) from random
    permutations of the values over the nodes.

    Returns
    -------
    dict
        ``I``, ``expected``, ``p_value``, ``n``.
    """
    x = np.asarray(values, dtype=float)
    if x.shape != (graph.n_nodes,):
        raise ValueError(f"values must have one value per node ({graph.n_nodes}), got shape {x.shape}")
    i, j = graph.edges[:, 0], graph.edges[:, 1]
    s0 = 2.0 * len(i)
    n = len(x)
    if s0 == 0:
        raise ValueError("the graph has no edges: Moran's I is undefined")

    def stat(v: np.ndarray) -> np.ndarray:  # v: (..., n)
        z = v - v.mean(axis=-1, keepdims=True)
        return n / s0 * 2.0 * (z[..., i] * z[..., j]).sum(axis=-1) / (z**2).sum(axis=-1)

    observed = float(stat(x))
    rng = np.random.default_rng(seed)
    perms = np.array([rng.permutation(x) for _ in range(permutations)])
    p = (1 + int((stat(perms) >= observed).sum())) / (permutations + 1)
    return {"I": observed, "expected": -1.0 / (n - 1), "p_value": p, "n": n}


def moran_table(fits: dict[str, Fit], group: str = "lad", islands: str = "join") -> pd.DataFrame:
    """Moran's I of the posterior-mean LA effects of each fit, on the GB graph among its LAs.

    For a fit with a spatial term: the total effect and its unstructured part (what is
    left once the spillover is modelled); for an exchangeable fit: its ``r_<group>``.

    Parameters
    ----------
    fits : dict
        Label -> `Fit` (e.g. ``{"exchangeable": f0, "BYM2": f1}``).
    group : str
        The grouping factor.
    islands : {"join", "singleton"}
        Island links of the graph (`models.spatial.gb_lad_graph`).
    """
    rows = []
    for label, fit in fits.items():
        block = blocks_for(fit, group)[0]
        graph = gb_lad_graph(islands).restrict(list(block.levels))
        if block.spatial:
            parts = bym2_parts(fit, group).set_index(block.dim).loc[list(block.levels)]
            values = {"total": parts["total"].to_numpy(), "unstructured": parts["unstructured"].to_numpy()}
        else:
            r = posterior_draws(fit, f"r_{block.name}")[:, :, 0].mean(axis=0)
            values = {"total": r}
        for what, v in values.items():
            rows.append({"model": label, "effect": what, **morans_i(v, graph)})
    return pd.DataFrame(rows)


def map_parts(
    fit: Fit,
    folder: str | Path,
    group: str | None = None,
    *,
    synthetic: bool = True,
    k: int = DEFAULT_K,
) -> list[Path]:
    """Choropleths of each LA's structured and unstructured part, as odds ratios
    (``<folder>/bym2_structured.png``, ``bym2_unstructured.png``; `analysis.maps.choropleth`).

    With real data (``synthetic=False``) LAs with fewer than ``k`` respondents are hatched
    (the disclosure rule), LAs without respondents included.
    """
    from analysis.maps import choropleth, suppressed_codes

    parts = bym2_parts(fit, group)
    code = parts.columns[0]
    counts = dict(zip(parts[code], parts["n"], strict=True))
    hidden = suppressed_codes(list(parts[code]), counts, k, synthetic)
    out = []
    for col, words in (
        ("structured", "structured part (shared with neighbouring LAs)"),
        ("unstructured", "unstructured part (the LA's own)"),
    ):
        values = pd.DataFrame({"lad": parts[code], col: np.exp(parts[col])})
        path, _ = choropleth(
            values,
            col,
            Path(folder) / f"bym2_{col}.png",
            title=f"LA effect, {words}: posterior mean odds ratio",
            units="odds ratio (posterior mean)",
            synthetic=synthetic,
            suppressed=hidden,
            k=k,
            kind="odds_ratio",
        )
        out.append(path)
    return out
