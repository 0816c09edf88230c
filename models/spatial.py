"""Spatially structured group effects: the BYM2 model on an adjacency graph.

A term ``car(lad, type = "bym2")`` in a formula (brms's spelling) is a random intercept of
``lad`` whose levels are nodes of an adjacency graph (by default the 371 GB local
authorities of 2019 and the LAs they share a border with, ``data/la/lad19_adjacency.csv``).
For node i (Riebler et al. 2016, "An intuitive Bayesian spatial model for disease mapping
that accounts for scaling"):

    r_i     = sigma * ( sqrt(rho / s_c(i)) * phi_i + sqrt(1 - rho) * theta_i )

    phi     ~ ICAR:  log p(phi) = -1/2 sum_{i ~ j} (phi_i - phi_j)^2,  sum_{i in c} phi_i = 0
                     for each component c
    theta_i ~ Normal(0, 1)
    rho     ~ Beta(0.5, 0.5)                 (prior ``rho_<g>``)
    sigma   ~ HalfNormal(1)                  (prior ``sd_<g>``, like every group SD)

``s_c`` scales the ICAR of each connected component c so that its typical marginal
variance is 1: the geometric mean of the diagonal of the generalised inverse of the
component's ICAR precision Q_c = D_c - W_c (`icar_scaling`). Then ``sigma`` is the SD of
the total effect whatever the graph, and ``rho`` the share of its variance that is
spatially structured. A node without neighbours (a *singleton*: an island left alone, or a
level whose neighbours are not in an ``"observed"`` graph) has no ICAR part:
``r_i = sigma * theta_i``.

Islands (``islands =``): the six GB LAs without a land border (Isle of Wight, Isles of
Scilly, Na h-Eileanan Siar, Orkney, Shetland, Anglesey) are joined to their nearest
mainland LA by centroid (``"join"``, the default: one connected graph), or stay singletons
(``"singleton"``).

Graph (``graph =``): ``"gb"`` (default) keeps every LA of the graph, also those without
respondents: their ``phi`` and ``theta`` are sampled (from the prior, tied to their
neighbours), so the neighbourhood structure of the LAs with data is the real one.
``"observed"`` uses the graph among the levels present in the data only (a region, or a
non-GB graph of levels that are all on the GB graph).

Sampling ``phi``: in the ICAR's eigenbasis (`icar_basis`), ``phi = B phi_std`` with
``phi_std ~ Normal(0, I)`` and ``B = V Lambda^(-1/2)`` from the eigenvectors V and positive
eigenvalues Lambda of each component's Q_c: exactly the ICAR density with an exact
sum-to-zero constraint, as a non-centred group effect. Sampling ``phi`` itself under
``-1/2 phi' Q phi`` (and a soft sum-to-zero constraint) gives a prior whose smooth,
graph-wide modes are 30 times wider than its rough ones (eigenvalues 0.016 to 14.4 on the
GB graph); a diagonal mass matrix cannot follow that, and at 25,000 people the LAs at the
ends of the graph (Scotland, Wales) mixed so slowly that R-hat on ``phi`` stayed at 1.016
after 4 x 10,700 draws.

Posterior names (block ``g``, usually ``lad``): ``rho_<g>``, ``sd_<g>`` (dim ``<g>_term``),
``phi_<g>`` (the ICAR part, unscaled, over ``<g>_structured``: the nodes in components of
two or more; sampled as ``phi_std_<g>`` over ``<g>_eigen``), ``theta_<g>`` (over
``<g>_node``: every node), ``r_<g>`` (the total effect of the levels in the data, dims
``<g>`` x ``<g>_term``, read by the likelihood exactly like a random intercept). The
structured part of a level's effect in log-odds is ``sd * sqrt(rho / s) * phi``, the
unstructured ``sd * sqrt(1 - rho) * theta`` (`analysis.spatial.bym2_parts`).

The numpy core (graph, scaling, simulation) imports no PyMC, so the synthetic generator
can use it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from models.formula import FormulaError, GroupBlock

#: Where the packaged LA files are (``data/la`` of this project).
LA_DIR = Path(__file__).resolve().parents[1] / "data" / "la"
#: Eigenvalues of Q_c below this share of its largest are its null space (the constant).
NULL_EIGENVALUE = 1e-9
#: Default prior of the mixing proportion rho.
RHO_PRIOR = ("beta", (0.5, 0.5))


@dataclass(frozen=True)
class AdjacencyGraph:
    """An undirected graph of named nodes.

    Attributes
    ----------
    nodes : tuple of str
        Node names (LA codes), in the order of every per-node array.
    edges : numpy.ndarray
        Shape (edges, 2): positions ``i < j`` of each neighbouring pair, sorted, no duplicates.
    """

    nodes: tuple[str, ...]
    edges: np.ndarray

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def components(self) -> np.ndarray:
        """Connected-component label of every node (0, 1, ...; the largest first)."""
        n = self.n_nodes
        w = coo_matrix((np.ones(len(self.edges)), (self.edges[:, 0], self.edges[:, 1])), shape=(n, n))
        _, labels = connected_components(w, directed=False)
        sizes = np.bincount(labels)
        order = np.argsort(-sizes, kind="stable")
        return np.argsort(order)[labels]

    def adjacency(self) -> np.ndarray:
        """Dense 0/1 adjacency matrix W (symmetric)."""
        w = np.zeros((self.n_nodes, self.n_nodes))
        w[self.edges[:, 0], self.edges[:, 1]] = 1.0
        return w + w.T

    def restrict(self, keep: list[str] | tuple[str, ...]) -> AdjacencyGraph:
        """The graph among ``keep`` (in that order): edges with both ends kept."""
        pos = {c: i for i, c in enumerate(self.nodes)}
        missing = [c for c in keep if c not in pos]
        if missing:
            raise ValueError(f"not nodes of the graph: {missing[:5]}")
        new = {c: i for i, c in enumerate(keep)}
        names = np.array(self.nodes)
        ends = zip(names[self.edges[:, 0]], names[self.edges[:, 1]], strict=True)
        pairs = [(new[a], new[b]) for a, b in ends if a in new and b in new]
        return make_graph(tuple(keep), pairs)

    def fingerprint(self) -> str:
        h = hashlib.sha256("\n".join(self.nodes).encode())
        h.update(np.ascontiguousarray(self.edges, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def make_graph(nodes: tuple[str, ...], pairs) -> AdjacencyGraph:
    """An `AdjacencyGraph` from node names and (i, j) position pairs (order and duplicates free)."""
    e = np.array(list(pairs), dtype=np.int64).reshape(-1, 2)
    if len(e) and (e[:, 0] == e[:, 1]).any():
        raise ValueError("a node cannot neighbour itself")
    e = np.unique(np.sort(e, axis=1), axis=0)
    return AdjacencyGraph(tuple(nodes), e)


def read_graph(
    adjacency: str | Path, islands_file: str | Path | None = None, islands: str = "join"
) -> AdjacencyGraph:
    """Read an edge list (``lad19cd_a``, ``lad19cd_b``) and, with ``islands="join"``, add an
    edge from each island (``lad19cd``) to its ``nearest_mainland_lad19cd`` (by centroid)."""
    edges = pd.read_csv(adjacency, dtype=str)
    a, b = edges["lad19cd_a"].to_numpy(), edges["lad19cd_b"].to_numpy()
    extra_nodes: list[str] = []
    if islands_file is not None:
        isl = pd.read_csv(islands_file, dtype=str)
        extra_nodes = list(isl["lad19cd"])
        if islands == "join":
            a = np.concatenate([a, isl["lad19cd"].to_numpy()])
            b = np.concatenate([b, isl["nearest_mainland_lad19cd"].to_numpy()])
        elif islands != "singleton":
            raise ValueError(f"islands must be 'join' or 'singleton', got {islands!r}")
    nodes = tuple(sorted(set(a) | set(b) | set(extra_nodes)))
    pos = {c: i for i, c in enumerate(nodes)}
    return make_graph(nodes, zip([pos[x] for x in a], [pos[x] for x in b], strict=True))


@functools.lru_cache(maxsize=4)
def gb_lad_graph(islands: str = "join") -> AdjacencyGraph:
    """The 2019 GB LA graph (371 LAs, 933 shared borders; `LA_DIR`), islands joined to
    their nearest mainland LA by centroid (``"join"``: one component) or left alone
    (``"singleton"``: the mainland and six single islands)."""
    return read_graph(LA_DIR / "lad19_adjacency.csv", LA_DIR / "lad19_adjacency_islands.csv", islands)


def icar_precision(graph: AdjacencyGraph) -> np.ndarray:
    """The ICAR precision Q = D - W (dense; D the number of neighbours)."""
    w = graph.adjacency()
    return np.diag(w.sum(axis=1)) - w


def structured_nodes(graph: AdjacencyGraph) -> np.ndarray:
    """Positions of the nodes in components of two or more (the nodes with an ICAR part)."""
    labels = graph.components()
    return np.flatnonzero(np.bincount(labels)[labels] >= 2)


def icar_scaling(graph: AdjacencyGraph) -> np.ndarray:
    """Riebler et al.'s scaling factor of every node's component (NaN for singletons).

    For each connected component c of two or more nodes, ``s_c`` is the geometric mean of
    the marginal variances of the ICAR under its sum-to-zero constraint: the diagonal of
    the generalised (Moore-Penrose) inverse of Q_c, whose null space is the constant vector
    (``diag(B B')`` of its `icar_basis`, `component_scale`).
    """
    structured = structured_nodes(graph)
    s = np.full(graph.n_nodes, np.nan)
    s[structured] = component_scale(icar_basis(graph, structured), graph.components()[structured])
    return s


def component_scale(basis: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``s`` of each structured node: the geometric mean, over its component (``labels``), of
    the ICAR's marginal variances ``diag(B B')`` (`icar_basis`)."""
    variance = (basis**2).sum(axis=1)
    s = np.empty(len(variance))
    for c in np.unique(labels):
        member = labels == c
        s[member] = np.exp(np.mean(np.log(variance[member])))
    return s


def icar_basis(graph: AdjacencyGraph, nodes: np.ndarray) -> np.ndarray:
    """The ICAR's standardising basis on the nodes of components of two or more.

    For each such component c, with ``Q_c = V_c Lambda_c V_c'`` (`icar_precision`), the
    columns ``v_k / sqrt(lambda_k)`` of its positive eigenvalues; block-diagonal over
    components. ``phi = B u`` with ``u ~ Normal(0, I)`` is the ICAR with every component
    summing to zero, and ``u'u = phi' Q phi``.

    Parameters
    ----------
    graph : AdjacencyGraph
    nodes : numpy.ndarray
        Positions of the structured nodes, in the order of ``phi`` (`BYM2Layout.structured`).

    Returns
    -------
    numpy.ndarray
        Shape (len(nodes), len(nodes) - number of components).
    """
    labels = graph.components()[nodes]
    q = icar_precision(graph)[np.ix_(nodes, nodes)]
    columns = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        lam, vec = np.linalg.eigh(q[np.ix_(idx, idx)])
        keep = lam > NULL_EIGENVALUE * lam.max()
        block = np.zeros((len(nodes), int(keep.sum())))
        block[idx] = vec[:, keep] / np.sqrt(lam[keep])
        columns.append(block)
    return np.concatenate(columns, axis=1) if columns else np.zeros((len(nodes), 0))


@dataclass(frozen=True)
class BYM2Layout:
    """Everything the BYM2 effect of one block needs, fixed by the graph and the levels.

    Attributes
    ----------
    graph : AdjacencyGraph
        The graph used (all GB LAs, or those in the data).
    structured : numpy.ndarray
        Positions of the nodes in components of two or more (they have ``phi``).
    component : numpy.ndarray
        Component (0, 1, ...) of each structured node.
    scale : numpy.ndarray
        ``s`` of each structured node's component (`icar_scaling`).
    singleton : numpy.ndarray
        1.0 for nodes without neighbours (unstructured effect only), else 0.0.
    level_pos : numpy.ndarray
        Position in the graph of each level of the block, in the block's order.
    basis : numpy.ndarray
        `icar_basis` of the structured nodes: ``phi = basis @ phi_std``.
    """

    graph: AdjacencyGraph
    structured: np.ndarray
    component: np.ndarray
    scale: np.ndarray
    singleton: np.ndarray
    level_pos: np.ndarray
    basis: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.component.max()) + 1 if len(self.component) else 0

    def key(self) -> str:
        """What the compiled model depends on: graph, components and the levels' places."""
        h = hashlib.sha256(self.graph.fingerprint().encode())
        h.update(np.ascontiguousarray(self.level_pos, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def graph_layout(graph: AdjacencyGraph, level_pos: np.ndarray) -> BYM2Layout:
    """The `BYM2Layout` of a graph and the graph positions of a block's levels."""
    labels = graph.components()
    structured = structured_nodes(graph)
    singleton = np.ones(graph.n_nodes)
    singleton[structured] = 0.0
    _, component = np.unique(labels[structured], return_inverse=True)
    basis = icar_basis(graph, structured)
    return BYM2Layout(
        graph=graph,
        structured=structured,
        component=component.ravel(),
        scale=component_scale(basis, labels[structured]),
        singleton=singleton,
        level_pos=np.asarray(level_pos, dtype=np.int64),
        basis=basis,
    )


def bym2_layout(block: GroupBlock) -> BYM2Layout:
    """The layout of a ``car(g, type = "bym2")`` block: its graph (from the term's options)
    and where each level of the data sits on it.

    Raises
    ------
    FormulaError
        A level of the data that is not a node of the graph (e.g. an LA code that is not a
        2019 GB code), named with the term.
    """
    opts = block.spatial
    full = gb_lad_graph(opts.get("islands", "join"))
    pos = {c: i for i, c in enumerate(full.nodes)}
    unknown = [lv for lv in block.levels if lv not in pos]
    if unknown:
        raise FormulaError(
            f'car({block.factor}, type = "{opts.get("type")}"): {len(unknown)} level(s) of '
            f"{block.factor!r} are not 2019 GB LA codes on the adjacency graph (first: "
            f"{unknown[0]!r}); map the codes to 2019 LADs (data.areas) or drop those rows"
        )
    if opts.get("graph", "gb") == "observed":
        graph = full.restrict(list(block.levels))
        return graph_layout(graph, np.arange(block.n_levels))
    return graph_layout(full, np.array([pos[lv] for lv in block.levels]))


def simulate_icar(graph: AdjacencyGraph, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Exact draws of the ICAR (precision Q = D - W, sum zero in each component); 0 for
    singletons. Unscaled: divide by ``sqrt(icar_scaling(graph))`` for marginal variance ~1.

    Returns shape (nodes,), or (size, nodes) when ``size`` is given."""
    structured = structured_nodes(graph)
    basis = icar_basis(graph, structured)
    k = 1 if size is None else size
    phi = np.zeros((k, graph.n_nodes))
    phi[:, structured] = rng.standard_normal((k, basis.shape[1])) @ basis.T
    return phi[0] if size is None else phi


def simulate_bym2(
    graph: AdjacencyGraph, sd: float, rho: float, rng: np.random.Generator, size: int | None = None
) -> dict[str, np.ndarray]:
    """Draw BYM2 effects on a graph with known ``sd`` and ``rho``.

    Returns
    -------
    dict
        ``effect`` (total, per node), ``structured`` (``sd sqrt(rho/s) phi``),
        ``unstructured`` (``sd sqrt(1-rho) theta``; ``sd theta`` for singletons), ``phi``,
        ``theta``; each of shape (nodes,), or (size, nodes) when ``size`` is given.
    """
    s = icar_scaling(graph)
    phi = simulate_icar(graph, rng, size)
    theta = rng.standard_normal(phi.shape)
    single = np.isnan(s)
    structured = np.where(single, 0.0, sd * np.sqrt(rho / np.where(single, 1.0, s)) * phi)
    unstructured = sd * np.where(single, 1.0, np.sqrt(1.0 - rho)) * theta
    return {
        "effect": structured + unstructured,
        "structured": structured,
        "unstructured": unstructured,
        "phi": phi,
        "theta": theta,
    }


def bym2_node_parts(
    lay: BYM2Layout, rho: np.ndarray, sd: np.ndarray, phi: np.ndarray, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every graph node's structured and unstructured parts (log-odds), draw by draw.

    ``structured = sd sqrt(rho / s) phi`` (0 for a singleton), ``unstructured = sd sqrt(1 -
    rho) theta`` (``sd theta`` for a singleton): the same sum the model forms for the levels
    with data, here for every node, also those without respondents (their parts are the
    posterior given their neighbours).

    Parameters
    ----------
    lay : BYM2Layout
    rho, sd : numpy.ndarray
        Shape (draws,).
    phi : numpy.ndarray
        Shape (draws, structured nodes); ignored when there are none.
    theta : numpy.ndarray
        Shape (draws, nodes).

    Returns
    -------
    structured, unstructured : numpy.ndarray
        Each of shape (draws, nodes), in the order of ``lay.graph.nodes``.
    """
    rho, sd = np.asarray(rho, dtype=float), np.asarray(sd, dtype=float)
    w_theta = np.where(lay.singleton[None, :] == 1, 1.0, np.sqrt(1.0 - rho)[:, None])
    unstructured = sd[:, None] * w_theta * theta
    structured = np.zeros_like(unstructured)
    if len(lay.structured):
        structured[:, lay.structured] = sd[:, None] * np.sqrt(rho[:, None] / lay.scale[None, :]) * phi
    return structured, unstructured


# --------------------------------------------------------------------------- the PyMC term


def spatial_coords(block: GroupBlock) -> dict[str, list[str]]:
    """Coordinates of a spatial block's graph dimensions (``<g>_node``, ``<g>_structured``)."""
    lay = bym2_layout(block)
    nodes = list(lay.graph.nodes)
    return {
        f"{block.name}_node": nodes,
        f"{block.name}_structured": [nodes[i] for i in lay.structured],
        f"{block.name}_eigen": [f"mode{k + 1}" for k in range(lay.basis.shape[1])],
    }


def bym2_effects(block: GroupBlock, priors: dict):
    """The BYM2 effects ``r_<g>`` (levels x 1) of a ``car()`` block, inside a PyMC model.

    Parameters ``rho_<g>``, ``sd_<g>``, ``phi_<g>``, ``theta_<g>`` as in the module
    docstring; ``phi_<g>`` is sampled in the ICAR's eigenbasis, ``phi = B phi_std`` with
    ``phi_std_<g> ~ Normal(0, 1)`` (`icar_basis`).
    """
    import pymc as pm
    import pytensor.tensor as pt

    g = block.name
    lay = bym2_layout(block)
    rho = priors[f"rho_{g}"].dist(f"rho_{g}")
    sd = priors[f"sd_{g}"].dist(f"sd_{g}", dims=block.term_dim)
    theta = pm.Normal(f"theta_{g}", 0.0, 1.0, dims=f"{g}_node")
    mixed = pt.sqrt(1.0 - rho) * (1.0 - lay.singleton) * theta + lay.singleton * theta
    if len(lay.structured):
        phi_std = pm.Normal(f"phi_std_{g}", 0.0, 1.0, dims=f"{g}_eigen")
        phi = pm.Deterministic(f"phi_{g}", pt.dot(lay.basis, phi_std), dims=f"{g}_structured")
        structured = pt.zeros(lay.graph.n_nodes)
        structured = pt.set_subtensor(structured[lay.structured], pt.sqrt(rho / lay.scale) * phi)
        mixed = mixed + structured
    r = sd[0] * mixed[lay.level_pos]
    return pm.Deterministic(f"r_{g}", r[:, None], dims=(block.dim, block.term_dim))
