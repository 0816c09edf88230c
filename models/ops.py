"""Small PyTensor Ops with numba implementations for the hierarchical logistic model.

``logit_likelihood(eta, y, trials=None)``
    The summed Bernoulli/binomial log-likelihood on the logit scale and, as a second output
    that its gradient reuses, ``y - trials * p``: one loop with one ``exp`` and one ``log``
    per row. PyMC's ``Bernoulli(logit_p=eta)`` graph evaluates ``softplus`` twice (both
    branches of a switch), a sigmoid for the gradient and another for its ``0 <= p <= 1``
    check; on 25,000 rows that loop was about two thirds of a gradient's cost. nutpie
    samples the model with this likelihood (`models.logistic`, ``fast_likelihood``).
``gather(x, idx)`` and ``segment_sum(v, idx, n)``
    ``x[idx]`` for a vector ``x`` and an integer vector ``idx``, with gradient
    ``segment_sum(g, idx, len(x))``, a weighted ``np.bincount``; and the reverse. Plain
    loops, for the group effects ``r_g[idx_g, t]``. PyTensor 3.3's numba backend already
    fuses the straightforward ``r[idx, t]`` and its scatter-add into the elementwise
    likelihood loop, so on the 25k benchmark model they gained nothing (1.00x random
    intercept, 1.04x varying slope, benchmarks/grad_bench.py) and are off by default
    (``fast_gather``).

Each Op has a numpy ``perform`` (PyTensor's Python/C backends: log-likelihoods, the PyMC
sampler) and a numba implementation registered with PyTensor's numba dispatch (nutpie).
There is no JAX implementation. Group indices must lie in ``[0, len(x))`` (checked; an
index out of range raises ``IndexError``).
"""

from __future__ import annotations

import math

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key
from pytensor.tensor.exceptions import NotScalarConstantError
from pytensor.tensor.type import integer_dtypes
from scipy.special import gammaln

__all__ = ["Gather", "LogitLikelihood", "SegmentSum", "gather", "logit_likelihood", "segment_sum"]


class Gather(Op):
    """``x[idx]`` for a vector ``x`` and an integer index vector ``idx``."""

    __props__ = ()

    def make_node(self, x, idx):
        x = pt.as_tensor_variable(x)
        idx = pt.as_tensor_variable(idx)
        if x.type.ndim != 1:
            raise TypeError(f"gather: x must be a vector, got {x.type}")
        if idx.type.ndim != 1 or idx.type.dtype not in integer_dtypes:
            raise TypeError(f"gather: idx must be an integer vector, got {idx.type}")
        out = pt.tensor(dtype=x.type.dtype, shape=idx.type.shape)
        return Apply(self, [x, idx], [out])

    def perform(self, node, inputs, output_storage):
        x, idx = inputs
        _check_range(idx, x.shape[0])
        output_storage[0][0] = np.asarray(x[idx], dtype=node.outputs[0].type.dtype)

    def infer_shape(self, fgraph, node, input_shapes):
        return [input_shapes[1]]

    def pullback(self, inputs, outputs, cotangents):
        x, idx = inputs
        (g,) = cotangents
        return [segment_sum(g, idx, x.shape[0]), disconnected_type()]

    def connection_pattern(self, node):
        return [[True], [False]]

    def pushforward(self, inputs, outputs, tangents):
        if isinstance(tangents[0].type, DisconnectedType):
            return [disconnected_type()]
        return [self(tangents[0], inputs[1])]


class SegmentSum(Op):
    """``out[j] = sum(v[idx == j])`` for ``j < n``: a weighted ``np.bincount``."""

    __props__ = ()

    def make_node(self, v, idx, n):
        v = pt.as_tensor_variable(v)
        idx = pt.as_tensor_variable(idx)
        n = pt.as_tensor_variable(n)
        if v.type.ndim != 1:
            raise TypeError(f"segment_sum: v must be a vector, got {v.type}")
        if idx.type.ndim != 1 or idx.type.dtype not in integer_dtypes:
            raise TypeError(f"segment_sum: idx must be an integer vector, got {idx.type}")
        if n.type.ndim != 0 or n.type.dtype not in integer_dtypes:
            raise TypeError(f"segment_sum: n must be an integer scalar, got {n.type}")
        n = pt.cast(n, "int64")
        static_n = None
        try:
            static_n = int(pt.get_underlying_scalar_constant_value(n))
        except NotScalarConstantError:
            pass
        out = pt.tensor(dtype=v.type.dtype, shape=(static_n,))
        return Apply(self, [v, idx, n], [out])

    def perform(self, node, inputs, output_storage):
        v, idx, n = inputs
        if v.shape[0] != idx.shape[0]:
            raise ValueError(f"segment_sum: {v.shape[0]} values but {idx.shape[0]} indices")
        _check_range(idx, int(n))
        out = np.bincount(idx, weights=v, minlength=int(n)) if idx.size else np.zeros(int(n))
        output_storage[0][0] = np.asarray(out, dtype=node.outputs[0].type.dtype)

    def infer_shape(self, fgraph, node, input_shapes):
        return [(node.inputs[2],)]

    def pullback(self, inputs, outputs, cotangents):
        v, idx, n = inputs
        (g,) = cotangents
        return [gather(g, idx), disconnected_type(), disconnected_type()]

    def connection_pattern(self, node):
        return [[True], [False], [False]]

    def pushforward(self, inputs, outputs, tangents):
        if isinstance(tangents[0].type, DisconnectedType):
            return [disconnected_type()]
        return [self(tangents[0], inputs[1], inputs[2])]


def _check_range(idx: np.ndarray, n: int) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"group index out of range [0, {n}): min {idx.min()}, max {idx.max()}")


_gather = Gather()
_segment_sum = SegmentSum()


def gather(x, idx):
    """``x[idx]`` (vector ``x``, integer vector ``idx``), with a segment-sum gradient.

    Parameters
    ----------
    x : tensor-like, 1-d
        Values per group.
    idx : tensor-like, 1-d integer
        Group of each row, in ``[0, len(x))``.

    Returns
    -------
    TensorVariable
        One value per row.
    """
    return _gather(x, idx)


def segment_sum(v, idx, n):
    """Sum of ``v`` per group: ``out[j] = sum(v[idx == j])`` for ``j < n``.

    Parameters
    ----------
    v : tensor-like, 1-d
        Values per row.
    idx : tensor-like, 1-d integer
        Group of each row, in ``[0, n)``.
    n : int or integer scalar tensor
        Number of groups (length of the result).

    Returns
    -------
    TensorVariable
        One sum per group (zero for groups without rows).
    """
    return _segment_sum(v, idx, n)


# --------------------------------------------------------------------------- numba


@register_funcify_default_op_cache_key(Gather)
def _numba_funcify_gather(op, node, **kwargs):
    @numba_njit
    def gather_impl(x, idx):
        n_x = x.shape[0]
        out = np.empty(idx.shape[0], dtype=x.dtype)
        for i in range(idx.shape[0]):
            j = idx[i]
            if j < 0 or j >= n_x:
                raise IndexError("gather: group index out of range")
            out[i] = x[j]
        return out

    return gather_impl


@register_funcify_default_op_cache_key(SegmentSum)
def _numba_funcify_segment_sum(op, node, **kwargs):
    @numba_njit
    def segment_sum_impl(v, idx, n):
        n_out = n.item()
        if v.shape[0] != idx.shape[0]:
            raise ValueError("segment_sum: values and indices differ in length")
        out = np.zeros(n_out, dtype=v.dtype)
        for i in range(idx.shape[0]):
            j = idx[i]
            if j < 0 or j >= n_out:
                raise IndexError("segment_sum: group index out of range")
            out[j] += v[i]
        return out

    return segment_sum_impl


# --------------------------------------------------------------------------- likelihood


class LogitLikelihood(Op):
    """Bernoulli or binomial log-likelihood with logit link, summed, and its gradient in one pass.

    Inputs ``eta`` (log-odds per row), ``y`` (successes) and, for ``family="binomial"``,
    ``trials``. Outputs the sum over rows of

        y log(p) + (n - y) log(1 - p) + log C(n, y),   p = logit^-1(eta)

    (``n = 1`` for Bernoulli; ``-inf`` if any ``y`` lies outside ``[0, n]``), and the vector of
    its derivatives with respect to ``eta``, ``y - n p``. The pullback reuses that second
    output, so one log-density-and-gradient evaluation reads ``eta`` once and calls one ``exp``
    and one ``log`` per row, where PyMC's Bernoulli graph evaluates both branches of
    ``switch(y == 1, -softplus(-eta), -softplus(eta))``, a sigmoid for the gradient and another
    for its ``0 <= p <= 1`` check.
    """

    __props__ = ("family",)

    def __init__(self, family: str = "bernoulli"):
        if family not in ("bernoulli", "binomial"):
            raise ValueError(f"family must be 'bernoulli' or 'binomial', got {family!r}")
        self.family = family

    def make_node(self, eta, y, *trials):
        if len(trials) != (self.family == "binomial"):
            raise TypeError(f"logit_likelihood: trials {'needed' if trials == () else 'not used'} here")
        eta = pt.as_tensor_variable(eta)
        if eta.type.dtype != "float64":
            eta = pt.cast(eta, "float64")
        inputs = [eta, pt.as_tensor_variable(y), *(pt.as_tensor_variable(t) for t in trials)]
        for v in inputs:
            if v.type.ndim != 1:
                raise TypeError(f"logit_likelihood: inputs must be vectors, got {v.type}")
        return Apply(self, inputs, [pt.dscalar(), pt.dvector()])

    def perform(self, node, inputs, output_storage):
        eta, y, *rest = (np.asarray(v, dtype=np.float64) for v in inputs)
        n = rest[0] if rest else np.ones_like(eta)
        if not eta.shape == y.shape == n.shape:
            raise ValueError(f"logit_likelihood: shapes differ {eta.shape}, {y.shape}, {n.shape}")
        e = np.exp(-np.abs(eta))
        softplus = np.maximum(eta, 0.0) + np.log1p(e)
        p = np.where(eta >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        logp = float(np.sum(y * eta - n * softplus))
        if rest:
            logp += float(np.sum(gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)))
        if np.any((y < 0) | (y > n)):
            logp = -np.inf
        output_storage[0][0] = np.asarray(logp)
        output_storage[1][0] = y - n * p

    def infer_shape(self, fgraph, node, input_shapes):
        return [(), input_shapes[0]]

    def connection_pattern(self, node):
        return [[True, True]] + [[False, False]] * (len(node.inputs) - 1)

    def pullback(self, inputs, outputs, cotangents):
        g_logp, g_grad = cotangents
        rest = [disconnected_type() for _ in inputs[1:]]
        if not isinstance(g_grad.type, DisconnectedType):
            msg = "second derivative of the log-likelihood"
            return [grad_not_implemented(self, 0, inputs[0], msg), *rest]
        if isinstance(g_logp.type, DisconnectedType):
            return [disconnected_type(), *rest]
        return [g_logp * outputs[1], *rest]


def logit_likelihood(eta, y, trials=None):
    """Summed Bernoulli (``trials=None``) or binomial log-likelihood on the logit scale.

    Parameters
    ----------
    eta : tensor-like, 1-d
        Log-odds per row.
    y : tensor-like, 1-d
        Successes per row (0/1 for Bernoulli).
    trials : tensor-like, 1-d, optional
        Trials per row; None for Bernoulli rows.

    Returns
    -------
    TensorVariable
        Scalar log-likelihood, equal to the sum of `pymc.Bernoulli` (or `pymc.Binomial`,
        with its ``log C(trials, y)``) log-probabilities; its gradient with respect to
        ``eta`` is ``y - trials * p``.
    """
    if trials is None:
        return LogitLikelihood("bernoulli")(eta, y)[0]
    return LogitLikelihood("binomial")(eta, y, trials)[0]


@register_funcify_default_op_cache_key(LogitLikelihood)
def _numba_funcify_logit_likelihood(op, node, **kwargs):
    @numba_njit
    def _loop(eta, y, n, binomial):
        m = eta.shape[0]
        grad = np.empty(m, dtype=np.float64)
        logp = 0.0
        coef = 0.0
        outside = False
        for i in range(m):
            x = eta[i]
            yi = float(y[i])
            ni = float(n[i]) if binomial else 1.0
            e = math.exp(-abs(x))
            u = 1.0 + e
            # log1p(e) by Goldberg's formula (within 2 ulp; numba's log1p is ~2x a log)
            log1p_e = e if u == 1.0 else math.log(u) * (e / (u - 1.0))
            logp += yi * x - ni * (max(x, 0.0) + log1p_e)
            p = 1.0 / u
            grad[i] = yi - ni * (p if x >= 0 else e * p)
            if yi < 0 or yi > ni:
                outside = True
            if binomial:
                coef += math.lgamma(ni + 1.0) - math.lgamma(yi + 1.0) - math.lgamma(ni - yi + 1.0)
        total = -np.inf if outside else logp + coef
        return np.array(total, dtype=np.float64), grad

    if op.family == "binomial":

        @numba_njit
        def logit_likelihood_binomial(eta, y, n):
            if y.shape[0] != eta.shape[0] or n.shape[0] != eta.shape[0]:
                raise ValueError("logit_likelihood: eta, y and trials differ in length")
            return _loop(eta, y, n, True)

        return logit_likelihood_binomial

    @numba_njit
    def logit_likelihood_bernoulli(eta, y):
        if y.shape[0] != eta.shape[0]:
            raise ValueError("logit_likelihood: eta and y differ in length")
        return _loop(eta, y, y, False)

    return logit_likelihood_bernoulli
