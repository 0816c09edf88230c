"""The sampling form's likelihood as a PyTensor Op: `glmm_loglik`.

``glmm_loglik(XT, b, c, R, PT, WT, y, n, const, family=..., unit_w=..., XS=..., xm=...)``
is the summed Bernoulli/binomial log-likelihood of

    eta_i = c + (x_i - xm) . b + sum_j WT[j, i] R[PT[j, i]]

(``x_i`` the fixed design's row: ``XT``'s float64 columns then ``XS``'s float32 ones, both
transposed; ``xm`` their centring, 0 by default; ``R`` every group-level effect in one
flat vector, ``PT``/``WT`` the positions and weights each row reads), plus the constant
``const`` (the binomial coefficients). Data keep their storage type: float32 or float64
for ``WT``, ``y``, ``n``; int32 or int64 positions; nothing is converted per call. Its
value and its gradient with respect to ``b``, ``c`` and ``R`` come from one call of
`models.kernels.glmm_logit`: the gradient reuses the Op's other outputs, so a
log-density-and-gradient evaluation reads the design once.

The Op has a numpy ``perform`` (PyTensor's Python/C backends) and a numba implementation
registered with PyTensor's numba dispatch, which nutpie compiles.

``cumulative_loglik(XT, b, R, PT, WT, y, n, tau, ...)`` is the same for the cumulative-logit
(ordinal) family: no intercept, category codes ``y``, counts ``n`` and increasing cutpoints
``tau``, with gradients with respect to ``b``, ``R`` and ``tau`` (`models.kernels.cumulative_logit`).

``unit_w=True`` means
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

from models.kernels import BIG, cumulative_logit, glmm_logit

__all__ = ["CumulativeLikelihood", "GLMMLikelihood", "cumulative_loglik", "glmm_loglik"]

_INPUT_NAMES = ("XT", "XS", "b", "c", "xm", "R", "PT", "WT", "y", "n", "const")
_NDIMS = (2, 2, 1, 0, 1, 1, 2, 2, 1, 1, 0)
_WRT = (2, 3, 5)  # b, c, R
_STORED = {"WT", "y", "n"}  # float32 or float64, as given


class GLMMLikelihood(Op):
    """Logistic multilevel log-likelihood and its gradients (outputs: logp, d/db, d/dc, d/dR)."""

    __props__ = ("family", "unit_w")

    def __init__(self, family: str = "bernoulli", unit_w: bool = True):
        if family not in ("bernoulli", "binomial"):
            raise ValueError(f"family must be 'bernoulli' or 'binomial', got {family!r}")
        self.family = family
        self.unit_w = bool(unit_w)

    def make_node(self, XT, XS, b, c, xm, R, PT, WT, y, n, const):
        inputs = [pt.as_tensor_variable(v) for v in (XT, XS, b, c, xm, R, PT, WT, y, n, const)]
        for name, v, nd in zip(_INPUT_NAMES, inputs, _NDIMS, strict=True):
            if v.type.ndim != nd:
                raise TypeError(f"glmm_loglik: {name} must have {nd} dimensions, got {v.type}")
        inputs = [_storage(name, v) for name, v in zip(_INPUT_NAMES, inputs, strict=True)]
        outputs = [pt.dscalar(), pt.dvector(), pt.dscalar(), pt.dvector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        XT, XS, b, c, xm, R, PT, WT, y, n, const = inputs
        y = y.astype(np.float64)
        n = np.ones_like(y) if self.family == "bernoulli" else n.astype(np.float64)
        X = np.concatenate([XT, XS.astype(np.float64)]) if XS.shape[0] else XT
        eta = (float(c) - float(xm @ b)) + X.T @ b
        for j in range(PT.shape[0]):
            eta = eta + (1.0 if self.unit_w else WT[j].astype(np.float64)) * R[PT[j]]
        e = np.exp(-np.abs(eta))
        softplus = np.maximum(eta, 0.0) + np.log1p(e)
        p = np.where(eta >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        g = y - n * p
        logp = float(np.sum(y * eta - n * softplus)) + float(const)
        if np.any((y < 0) | (y > n)):
            logp = -np.inf
        gR = np.zeros_like(R)
        for j in range(PT.shape[0]):
            np.add.at(gR, PT[j], g * (1.0 if self.unit_w else WT[j].astype(np.float64)))
        gc = float(np.sum(g))
        output_storage[0][0] = np.asarray(logp)
        output_storage[1][0] = X @ g - xm * gc
        output_storage[2][0] = np.asarray(gc)
        output_storage[3][0] = gR

    def infer_shape(self, fgraph, node, input_shapes):
        return [(), input_shapes[2], (), input_shapes[5]]

    def connection_pattern(self, node):
        return _connection_pattern(node, _WRT)

    def pullback(self, inputs, outputs, cotangents):
        return _pullback(self, inputs, outputs, cotangents, _WRT)


def _connection_pattern(node, wrt) -> list[list[bool]]:
    """Each of the four outputs (log density and its gradients) depends on the inputs in ``wrt``."""
    return [[k in wrt] * 4 for k in range(len(node.inputs))]


def _pullback(op, inputs, outputs, cotangents, wrt) -> list:
    """Pullback of a log-likelihood Op whose outputs are (logp, d logp / d input for input in
    ``wrt``): the gradient of logp is the stored gradient times the cotangent; data inputs are
    disconnected; a second derivative (a cotangent on a gradient output) is not implemented."""
    g_logp = cotangents[0]
    n_in = len(inputs)
    data = {k: disconnected_type() for k in range(n_in) if k not in wrt}
    if any(not isinstance(c.type, DisconnectedType) for c in cotangents[1:]):
        msg = "second derivatives of the log-likelihood"
        return [
            grad_not_implemented(op, k, inputs[k], msg) if k not in data else data[k] for k in range(n_in)
        ]
    if isinstance(g_logp.type, DisconnectedType):
        return [disconnected_type() for _ in inputs]
    grads = {k: g_logp * outputs[i + 1] for i, k in enumerate(wrt)}
    return [grads.get(k, data.get(k)) for k in range(n_in)]


def _storage(name: str, v):
    """Inputs as the kernel reads them: positions int32/int64, ``XS`` float32, ``WT``/``y``/``n``
    float32 or float64 as stored, the rest float64 (no conversion of data already so stored)."""
    if name == "PT":
        return v if v.type.dtype in ("int32", "int64") else pt.cast(v, "int64")
    if name == "XS":
        return pt.cast(v, "float32")
    if name in _STORED and v.type.dtype in ("float32", "float64"):
        return v
    return pt.cast(v, "float64")


def glmm_loglik(
    XT,
    b,
    c,
    R,
    PT,
    WT,
    y,
    n,
    const,
    *,
    family: str = "bernoulli",
    unit_w: bool = True,
    XS=None,
    xm=None,
):
    """Summed logistic multilevel log-likelihood (see the module docstring).

    Parameters
    ----------
    XT : matrix (k64 x m)
        Fixed design columns stored in float64, transposed.
    b : vector (k64 + k32), c : scalar
        Fixed slopes (``XT``'s columns, then ``XS``'s) and intercept.
    R : vector
        Every group-level effect, flat.
    PT : integer matrix (J x m); WT : matrix (J x m)
        Positions in ``R`` read by each row (int32 or int64) and their weights.
    y, n : vectors (m)
        Successes and trials (``n`` unused for Bernoulli); float32 or float64.
    const : scalar
        Added to the sum (the binomial coefficients ``sum log C(n, y)``; 0 for Bernoulli).
    family : {"bernoulli", "binomial"}
    unit_w : bool
        Every weight is 1 (``WT`` not read).
    XS : matrix (k32 x m), optional
        Fixed design columns whose values are exact in float32, transposed (default none).
    xm : vector (k64 + k32), optional
        Centring of the design's columns: ``x - xm`` enters the linear predictor (default 0).

    Returns
    -------
    TensorVariable
        Scalar log-likelihood; ``-inf`` if some ``y`` lies outside ``[0, n]``.
    """
    y = pt.as_tensor_variable(y)
    if XS is None:
        XS = pt.zeros((0, y.shape[0]), dtype="float32")
    if xm is None:
        xm = pt.zeros_like(pt.as_tensor_variable(b), dtype="float64")
    return GLMMLikelihood(family, unit_w)(XT, XS, b, c, xm, R, PT, WT, y, n, const)[0]


@register_funcify_default_op_cache_key(GLMMLikelihood)
def _numba_funcify_glmm_likelihood(op, node, **kwargs):
    binomial = op.family == "binomial"
    unit_w = op.unit_w

    @numba_njit
    def glmm_likelihood(XT, XS, b, c, xm, R, PT, WT, y, n, const):
        m = y.shape[0]
        if (
            (XT.shape[0] > 0 and XT.shape[1] != m)
            or (XS.shape[0] > 0 and XS.shape[1] != m)
            or PT.shape[1] != m
            or (binomial and n.shape[0] != m)
        ):
            raise ValueError("glmm_loglik: design, positions and outcome differ in rows")
        if XT.shape[0] + XS.shape[0] != b.shape[0] or xm.shape[0] != b.shape[0]:
            raise ValueError("glmm_loglik: design columns, slopes and centring differ in number")
        gb = np.empty(b.shape[0])
        gR = np.empty(R.shape[0])
        logp, gc, outside = glmm_logit(
            np.ascontiguousarray(XT),
            np.ascontiguousarray(XS),
            b,
            c.item(),
            xm,
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


# --------------------------------------------------------------------------- cumulative logit
_CUM_INPUTS = ("XT", "XS", "b", "xm", "R", "PT", "WT", "y", "n", "tau")
_CUM_NDIMS = (2, 2, 1, 1, 1, 2, 2, 1, 1, 1)
_CUM_WRT = (2, 4, 9)  # b, R, tau


class CumulativeLikelihood(Op):
    """Cumulative-logit multilevel log-likelihood and its gradients (outputs: logp, d/db, d/dR,
    d/dtau); the kernel is `models.kernels.cumulative_logit`."""

    __props__ = ("unit_w",)

    def __init__(self, unit_w: bool = True):
        self.unit_w = bool(unit_w)

    def make_node(self, XT, XS, b, xm, R, PT, WT, y, n, tau):
        inputs = [pt.as_tensor_variable(v) for v in (XT, XS, b, xm, R, PT, WT, y, n, tau)]
        for name, v, nd in zip(_CUM_INPUTS, inputs, _CUM_NDIMS, strict=True):
            if v.type.ndim != nd:
                raise TypeError(f"cumulative_loglik: {name} must have {nd} dimensions, got {v.type}")
        inputs = [_storage(name, v) for name, v in zip(_CUM_INPUTS, inputs, strict=True)]
        outputs = [pt.dscalar(), pt.dvector(), pt.dvector(), pt.dvector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        XT, XS, b, xm, R, PT, WT, y, n, tau = inputs
        y = y.astype(np.float64)
        n = n.astype(np.float64)
        K = tau.shape[0] + 1
        X = np.concatenate([XT, XS.astype(np.float64)]) if XS.shape[0] else XT
        eta = X.T @ b - float(xm @ b)
        for j in range(PT.shape[0]):
            eta = eta + (1.0 if self.unit_w else WT[j].astype(np.float64)) * R[PT[j]]
        bad = bool(np.any((y < 0) | (y >= K) | (y != np.round(y)))) or bool(np.any(np.diff(tau) <= 0))
        k = np.clip(y, 0, K - 1).astype(np.int64)
        ext = np.concatenate([[-BIG], tau, [BIG]])
        u, lo = ext[k + 1] - eta, ext[k] - eta
        # log(F(u) - F(l)) = -softplus(-u) - softplus(l) + log1mexp(u - l)
        d = np.where((k > 0) & (k < K - 1), ext[k + 1] - ext[k], np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            log1mexp = np.where(np.isinf(d), 0.0, np.log(-np.expm1(-d)))
            r = np.where(np.isinf(d), 0.0, 1.0 / np.expm1(d))
        logp = float(np.sum(n * (-np.logaddexp(0.0, -u) - np.logaddexp(0.0, lo) + log1mexp)))
        f_neg_u, f_l = _sigmoid(-u), _sigmoid(lo)
        g = n * (f_l - f_neg_u)
        gext = np.zeros(K + 1)
        np.add.at(gext, k + 1, n * (f_neg_u + r))
        np.add.at(gext, k, -n * (f_l + r))
        gR = np.zeros_like(R)
        for j in range(PT.shape[0]):
            np.add.at(gR, PT[j], g * (1.0 if self.unit_w else WT[j].astype(np.float64)))
        output_storage[0][0] = np.asarray(-np.inf if bad else logp)
        output_storage[1][0] = X @ g - xm * g.sum()
        output_storage[2][0] = gR
        output_storage[3][0] = gext[1:K]

    def infer_shape(self, fgraph, node, input_shapes):
        return [(), input_shapes[2], input_shapes[4], input_shapes[9]]

    def connection_pattern(self, node):
        return _connection_pattern(node, _CUM_WRT)

    def pullback(self, inputs, outputs, cotangents):
        return _pullback(self, inputs, outputs, cotangents, _CUM_WRT)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def cumulative_loglik(XT, b, R, PT, WT, y, n, tau, *, unit_w: bool = True, XS=None, xm=None):
    """Summed cumulative-logit multilevel log-likelihood (`models.kernels.cumulative_logit`).

    Parameters
    ----------
    XT, b, R, PT, WT, unit_w, XS, xm
        As in `glmm_loglik` (no intercept: the cutpoints take its place).
    y : vector (m)
        Category codes ``0 .. K-1``, float32 or float64.
    n : vector (m)
        Count of each entry (1 for a row; a cell's rows that share a category).
    tau : vector (K - 1)
        Increasing cutpoints; ``P(Y <= k) = logistic(tau_k - eta)``.

    Returns
    -------
    TensorVariable
        Scalar log-likelihood; ``-inf`` when a code lies outside ``0 .. K-1`` or the
        cutpoints are not increasing.
    """
    y = pt.as_tensor_variable(y)
    if XS is None:
        XS = pt.zeros((0, y.shape[0]), dtype="float32")
    if xm is None:
        xm = pt.zeros_like(pt.as_tensor_variable(b), dtype="float64")
    return CumulativeLikelihood(unit_w)(XT, XS, b, xm, R, PT, WT, y, n, tau)[0]


@register_funcify_default_op_cache_key(CumulativeLikelihood)
def _numba_funcify_cumulative_likelihood(op, node, **kwargs):
    unit_w = op.unit_w

    @numba_njit
    def cumulative_likelihood(XT, XS, b, xm, R, PT, WT, y, n, tau):
        m = y.shape[0]
        if (
            (XT.shape[0] > 0 and XT.shape[1] != m)
            or (XS.shape[0] > 0 and XS.shape[1] != m)
            or PT.shape[1] != m
            or n.shape[0] != m
        ):
            raise ValueError("cumulative_loglik: design, positions and outcome differ in rows")
        if XT.shape[0] + XS.shape[0] != b.shape[0] or xm.shape[0] != b.shape[0]:
            raise ValueError("cumulative_loglik: design columns, slopes and centring differ in number")
        gb = np.empty(b.shape[0])
        gR = np.empty(R.shape[0])
        gtau = np.empty(tau.shape[0])
        logp, bad = cumulative_logit(
            np.ascontiguousarray(XT),
            np.ascontiguousarray(XS),
            b,
            xm,
            R,
            np.ascontiguousarray(PT),
            WT,
            y,
            n,
            tau,
            unit_w,
            gb,
            gR,
            gtau,
        )
        total = -np.inf if bad else logp
        return np.asarray(total), gb, gR, gtau

    return cumulative_likelihood
