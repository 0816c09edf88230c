"""The sampling form's likelihood as a PyTensor Op: `glmm_loglik`.

``glmm_loglik(XT, b, c, R, PT, WT, y, n, const, family=..., unit_w=...)`` is the summed
Bernoulli/binomial log-likelihood of

    eta_i = c + x_i . b + sum_j WT[j, i] R[PT[j, i]]

(``XT`` the fixed design transposed, ``R`` every group-level effect in one flat vector,
``PT``/``WT`` the positions and weights each row reads), plus the constant ``const`` (the
binomial coefficients). Its value and its gradient with respect to ``b``, ``c`` and ``R``
come from one call of `models.kernels.glmm_logit`: the gradient reuses the Op's other
outputs, so a log-density-and-gradient evaluation reads the design once.

The Op has a numpy ``perform`` (PyTensor's Python/C backends) and a numba implementation
registered with PyTensor's numba dispatch, which nutpie compiles. ``unit_w=True`` means
every weight is 1 (random intercepts only) and ``WT`` is not read. Positions must lie in
``[0, len(R))``: `models.logistic` builds them; nothing checks them inside the loop.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key

from models.kernels import glmm_logit

__all__ = ["GLMMLikelihood", "glmm_loglik"]

_INPUT_NAMES = ("XT", "b", "c", "R", "PT", "WT", "y", "n", "const")


class GLMMLikelihood(Op):
    """Logistic multilevel log-likelihood and its gradients (outputs: logp, d/db, d/dc, d/dR)."""

    __props__ = ("family", "unit_w")

    def __init__(self, family: str = "bernoulli", unit_w: bool = True):
        if family not in ("bernoulli", "binomial"):
            raise ValueError(f"family must be 'bernoulli' or 'binomial', got {family!r}")
        self.family = family
        self.unit_w = bool(unit_w)

    def make_node(self, XT, b, c, R, PT, WT, y, n, const):
        inputs = [pt.as_tensor_variable(v) for v in (XT, b, c, R, PT, WT, y, n, const)]
        ndims = (2, 1, 0, 1, 2, 2, 1, 1, 0)
        for name, v, nd in zip(_INPUT_NAMES, inputs, ndims, strict=True):
            if v.type.ndim != nd:
                raise TypeError(f"glmm_loglik: {name} must have {nd} dimensions, got {v.type}")
        inputs = [
            pt.cast(v, "int64") if name == "PT" else pt.cast(v, "float64")
            for name, v in zip(_INPUT_NAMES, inputs, strict=True)
        ]
        outputs = [pt.dscalar(), pt.dvector(), pt.dscalar(), pt.dvector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        XT, b, c, R, PT, WT, y, n, const = inputs
        if self.family == "bernoulli":
            n = np.ones_like(y)
        eta = float(c) + XT.T @ b
        for j in range(PT.shape[0]):
            eta = eta + (1.0 if self.unit_w else WT[j]) * R[PT[j]]
        e = np.exp(-np.abs(eta))
        softplus = np.maximum(eta, 0.0) + np.log1p(e)
        p = np.where(eta >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        g = y - n * p
        logp = float(np.sum(y * eta - n * softplus)) + float(const)
        if np.any((y < 0) | (y > n)):
            logp = -np.inf
        gR = np.zeros_like(R)
        for j in range(PT.shape[0]):
            np.add.at(gR, PT[j], g * (1.0 if self.unit_w else WT[j]))
        output_storage[0][0] = np.asarray(logp)
        output_storage[1][0] = XT @ g
        output_storage[2][0] = np.asarray(float(np.sum(g)))
        output_storage[3][0] = gR

    def infer_shape(self, fgraph, node, input_shapes):
        return [(), input_shapes[1], (), input_shapes[3]]

    def connection_pattern(self, node):
        wrt = {1, 2, 3}  # b, c, R
        return [[k in wrt] * 4 for k in range(len(node.inputs))]

    def pullback(self, inputs, outputs, cotangents):
        g_logp = cotangents[0]
        data = {k: disconnected_type() for k in (0, 4, 5, 6, 7, 8)}
        if any(not isinstance(c.type, DisconnectedType) for c in cotangents[1:]):
            msg = "second derivatives of the log-likelihood"
            return [
                grad_not_implemented(self, k, inputs[k], msg) if k not in data else data[k] for k in range(9)
            ]
        if isinstance(g_logp.type, DisconnectedType):
            return [disconnected_type() for _ in inputs]
        grads = {1: g_logp * outputs[1], 2: g_logp * outputs[2], 3: g_logp * outputs[3]}
        return [grads.get(k, data.get(k)) for k in range(9)]


def glmm_loglik(XT, b, c, R, PT, WT, y, n, const, *, family: str = "bernoulli", unit_w: bool = True):
    """Summed logistic multilevel log-likelihood (see the module docstring).

    Parameters
    ----------
    XT : matrix (k x m)
        Fixed design, transposed.
    b : vector (k), c : scalar
        Fixed slopes and intercept.
    R : vector
        Every group-level effect, flat.
    PT : integer matrix (J x m); WT : matrix (J x m)
        Positions in ``R`` read by each row and their weights.
    y, n : vectors (m)
        Successes and trials (``n`` unused for Bernoulli).
    const : scalar
        Added to the sum (the binomial coefficients ``sum log C(n, y)``; 0 for Bernoulli).
    family : {"bernoulli", "binomial"}
    unit_w : bool
        Every weight is 1 (``WT`` not read).

    Returns
    -------
    TensorVariable
        Scalar log-likelihood; ``-inf`` if some ``y`` lies outside ``[0, n]``.
    """
    return GLMMLikelihood(family, unit_w)(XT, b, c, R, PT, WT, y, n, const)[0]


@register_funcify_default_op_cache_key(GLMMLikelihood)
def _numba_funcify_glmm_likelihood(op, node, **kwargs):
    binomial = op.family == "binomial"
    unit_w = op.unit_w

    @numba_njit
    def glmm_likelihood(XT, b, c, R, PT, WT, y, n, const):
        if XT.shape[1] != y.shape[0] or PT.shape[1] != y.shape[0] or (binomial and n.shape[0] != y.shape[0]):
            raise ValueError("glmm_loglik: design, positions and outcome differ in rows")
        gb = np.empty(b.shape[0])
        gR = np.empty(R.shape[0])
        logp, gc, outside = glmm_logit(
            np.ascontiguousarray(XT),
            b,
            c.item(),
            R,
            np.ascontiguousarray(PT),
            WT,
            y,
            n,
            binomial,
            unit_w,
            gb,
            gR,
        )
        total = -np.inf if outside else logp + const.item()
        return np.asarray(total), gb, np.asarray(gc), gR

    return glmm_likelihood
