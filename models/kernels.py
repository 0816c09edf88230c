"""The sampling kernel: the logistic multilevel log-likelihood and its gradient in one pass.

For rows i with fixed design x_i (row i of ``XT``'s and ``XS``'s columns, centred at
``xm``), effects read from a flat vector ``R`` at positions ``P[i, j]`` with weights
``W[i, j]``, and outcome ``y_i`` out of ``n_i`` trials:

    eta_i = c + (x_i - xm) . b + sum_j W[i, j] R[P[i, j]]
    logp  = sum_i  y_i eta_i - n_i softplus(eta_i)

and the gradient of ``logp`` with respect to ``b``, ``c`` and ``R`` (``g_i = y_i - n_i
p_i``, summed against the design and scattered to ``R``). `models.ops.GLMMLikelihood`
wraps `glmm_logit` as a PyTensor Op; `models.logistic` builds ``R`` from the group
effects (``r_g[level, term]``, flattened) and the per-level area predictor.

Why hand-written: on 25,000 rows, ``exp`` and ``log`` per row were half of a gradient's
cost in PyTensor's (and numba's) scalar loops. Here they are written as plain
arithmetic (`exp_neg`, `log1p_unit`: range reduction and polynomials, within a few
units in the last place of the C library's) that the compiler vectorises (8 rows per
instruction with AVX-512), and the design is read once per evaluation, in blocks of
rows that stay in the L1 cache, column by column (``XT`` is the design transposed,
``k x n``, so each column is contiguous).

Compiled with ``cache=True``: the machine code is written beside this file (or to
``NUMBA_CACHE_DIR``) and later processes load it instead of compiling again.
"""

from __future__ import annotations

import numpy as np
from numba import njit

LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
SQRT2_M1 = 0.41421356237309503
BLOCK = 512
"""Rows per block: the block's eta, gradient and exponent buffers stay in L1."""

_EXACT = {"contract"}  # fused multiply-adds only: the functions' evaluation order is kept
_REDUCE = {"contract", "reassoc"}  # the kernel's sums may be reordered (and so vectorised)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_EXACT, inline="always")
def _exp_poly(r: float) -> float:
    """exp(r) for |r| <= ln2/2: Taylor series to degree 13 (truncation < 1e-17 relative)."""
    p = 1.6059043836821613e-10  # 1/13!
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r + 1.0


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_EXACT)
def exp_neg(a: np.ndarray, out: np.ndarray, scale_bits: np.ndarray) -> None:
    """``out[i] = exp(-a[i])`` for ``a[i] >= 0`` (0 below 2**-1022), vectorisable.

    ``scale_bits`` is an int64 work buffer of the same length (the powers of two).
    """
    m = a.shape[0]
    scale = scale_bits.view(np.float64)
    for i in range(m):
        t = -a[i]
        k = np.floor(t * LOG2E + 0.5)
        k = max(k, -1022.0)
        r = (t - k * LN2_HI) - k * LN2_LO
        out[i] = _exp_poly(r)
        scale_bits[i] = (np.int64(k) + 1023) << 52
    for i in range(m):
        v = out[i] * scale[i]
        out[i] = v if a[i] < 708.0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_EXACT, inline="always")
def _atanh_series(s: float) -> float:
    """2 atanh(s) = log((1 + s) / (1 - s)) for |s| <= 0.1716 (truncation < 1e-17 relative)."""
    s2 = s * s
    p = 1.0 / 23.0
    p = p * s2 + 1.0 / 21.0
    p = p * s2 + 1.0 / 19.0
    p = p * s2 + 1.0 / 17.0
    p = p * s2 + 1.0 / 15.0
    p = p * s2 + 1.0 / 13.0
    p = p * s2 + 1.0 / 11.0
    p = p * s2 + 1.0 / 9.0
    p = p * s2 + 1.0 / 7.0
    p = p * s2 + 1.0 / 5.0
    p = p * s2 + 1.0 / 3.0
    return 2.0 * s + 2.0 * s * s2 * p


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_EXACT)
def log1p_unit(e: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = log(1 + e[i])`` for ``0 <= e[i] <= 1``, branch-free (selects), vectorisable."""
    for i in range(e.shape[0]):
        ei = e[i]
        big = ei > SQRT2_M1
        t = (ei - 1.0) * 0.5 if big else ei  # 1 + e = 2 (1 + t) when big
        out[i] = _atanh_series(t / (2.0 + t)) + (LN2 if big else 0.0)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_EXACT, inline="always")
def linear_predictor_block(eta, c_eff, XT, XS, b, PT, WT, R, s, w, unit_w) -> None:
    """``eta[:w]`` of rows ``s .. s + w``: ``c_eff + x_i . b + sum_j WT[j, i] R[PT[j, i]]``
    (the float64 columns' slopes first in ``b``, then the float32 ones'; weights 1 when
    ``unit_w``). Inlined into each likelihood kernel, so its loops vectorise there."""
    k64 = XT.shape[0]
    k32 = XS.shape[0]
    for i in range(w):
        eta[i] = c_eff
    for k in range(k64):
        bk = b[k]
        xk = XT[k, s : s + w]
        for i in range(w):
            eta[i] += xk[i] * bk
    for k in range(k32):
        bk = b[k64 + k]
        xs = XS[k, s : s + w]
        for i in range(w):
            eta[i] += np.float64(xs[i]) * bk
    for j in range(PT.shape[0]):
        pj = PT[j, s : s + w]
        if unit_w:
            for i in range(w):
                eta[i] += R[pj[i]]
        else:
            wj = WT[j, s : s + w]
            for i in range(w):
                eta[i] += np.float64(wj[i]) * R[pj[i]]


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_EXACT, inline="always")
def gradient_block(g, XT, XS, PT, WT, s, w, unit_w, gb, gR) -> None:
    """Add rows ``s .. s + w``'s share of the gradient, given ``g[:w] = d logp / d eta``:
    ``gb[k] += sum_i g_i x_ik`` (float64 columns, then float32 ones) and
    ``gR[PT[j, i]] += g_i WT[j, i]``. Inlined into each likelihood kernel (its reductions
    take the kernel's floating-point flags)."""
    k64 = XT.shape[0]
    k32 = XS.shape[0]
    for k in range(k64):
        acc = 0.0
        xk = XT[k, s : s + w]
        for i in range(w):
            acc += g[i] * xk[i]
        gb[k] += acc
    for k in range(k32):
        acc = 0.0
        xs = XS[k, s : s + w]
        for i in range(w):
            acc += g[i] * np.float64(xs[i])
        gb[k64 + k] += acc
    for j in range(PT.shape[0]):
        pj = PT[j, s : s + w]
        if unit_w:
            for i in range(w):
                gR[pj[i]] += g[i]
        else:
            wj = WT[j, s : s + w]
            for i in range(w):
                gR[pj[i]] += g[i] * np.float64(wj[i])


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_REDUCE)
def glmm_logit(XT, XS, b, c, xm, R, PT, WT, y, n, binomial, unit_w, gb, gR):
    """Log-likelihood of the logistic multilevel model and its gradient, one pass.

    The fixed design is stored uncentred, in two parts: the columns whose values are exact
    in float32 (dummies, ages, counts) as float32, the rest as float64; the centring is
    applied through ``xm``: ``eta_i = c + sum_k (x_ik - xm_k) b_k + ...`` is computed as
    ``(c - xm . b) + x_i . b`` and the gradient as ``sum_i g_i x_ik - xm_k sum_i g_i``.

    Parameters
    ----------
    XT : float64[k64, m]
        Fixed design columns kept in float64, transposed (each column contiguous).
    XS : float32[k32, m]
        Fixed design columns exact in float32, transposed.
    b : float64[k64 + k32]
        Fixed slopes: those of ``XT``'s columns, then those of ``XS``'s.
    c : float
        Intercept (0 for a model without one).
    xm : float64[k64 + k32]
        Centring of each column (0: not centred).
    R : float64[q]
        Every group-level effect, flat.
    PT : int32 or int64[J, m]
        Positions in ``R`` read by each row (row j of ``PT``: the j-th effect of every row).
    WT : float32 or float64[J, m]
        Their weights (not read when ``unit_w``: every weight is 1).
    y, n : float32 or float64[m]
        Successes and trials (``n`` not read unless ``binomial``).
    binomial, unit_w : bool
    gb, gR : float64[k64 + k32], float64[q]
        Filled with the gradient with respect to ``b`` and ``R``.

    Returns
    -------
    (logp, d logp / d c, outside)
        ``outside`` is True when some ``y`` lies outside ``[0, n]`` (the caller returns
        ``-inf``).

    Notes
    -----
    float32 storage of exactly representable values changes nothing numerically: each
    value is converted to float64 before it is multiplied. It halves the bytes a gradient
    streams from memory for those columns (the cost of large cohorts is memory-bound), as
    int32 positions do.
    """
    k64 = XT.shape[0]
    k32 = XS.shape[0]
    m = y.shape[0]
    gb[:] = 0.0
    gR[:] = 0.0
    eta = np.empty(BLOCK)
    a = np.empty(BLOCK)
    e = np.empty(BLOCK)
    sp = np.empty(BLOCK)
    g = np.empty(BLOCK)
    bits = np.empty(BLOCK, dtype=np.int64)
    c_eff = c
    for k in range(k64 + k32):
        c_eff -= xm[k] * b[k]
    logp = 0.0
    gc = 0.0
    outside = False
    for s in range(0, m, BLOCK):
        w = min(BLOCK, m - s)
        # 1-d slices: the loops below then vectorise (2-d indexing checks each index's sign)
        yb = y[s : s + w]
        nb = n[s : s + w] if binomial else yb
        linear_predictor_block(eta, c_eff, XT, XS, b, PT, WT, R, s, w, unit_w)
        for i in range(w):
            a[i] = abs(eta[i])
        exp_neg(a[:w], e[:w], bits[:w])
        log1p_unit(e[:w], sp[:w])
        for i in range(w):
            x = eta[i]
            ei = e[i]
            yi = np.float64(yb[i])
            ni = np.float64(nb[i]) if binomial else 1.0
            logp += yi * x - ni * (max(x, 0.0) + sp[i])
            p = 1.0 / (1.0 + ei)  # p(|x|); p(-|x|) = e p(|x|)
            gi = yi - ni * (p if x >= 0.0 else ei * p)
            g[i] = gi
            gc += gi
            outside |= (yi < 0.0) | (yi > ni)
        gradient_block(g, XT, XS, PT, WT, s, w, unit_w, gb, gR)
    for k in range(k64 + k32):
        gb[k] -= xm[k] * gc
    return logp, gc, outside


# --------------------------------------------------------------------------- cumulative logit

BIG = 1e30
"""Stands for an infinite cutpoint (below the first category, above the last)."""


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_REDUCE)
def cumulative_logit(XT, XS, b, xm, R, PT, WT, y, n, tau, unit_w, gb, gR, gtau):
    """Log-likelihood of the cumulative-logit (proportional-odds) multilevel model and its
    gradient, one pass.

    For entry i (a row, or a cell of identical rows that share a category) with category
    ``k = y_i`` of ``K`` and count ``n_i``,

        eta_i = (x_i - xm) . b + sum_j W[i, j] R[P[i, j]]          (no intercept)
        P(Y = k) = F(tau_k - eta_i) - F(tau_{k-1} - eta_i)     (tau_{-1} = -inf, tau_{K-1} = +inf)

    with F the logistic CDF. Computed without cancellation through the identity

        F(u) - F(l) = F(u) F(-l) (1 - exp(-(u - l)))

    so ``log P = -softplus(-u) - softplus(l) + log1mexp(tau_k - tau_{k-1})``: the last term
    depends on the cutpoints only and is summed once per category, the others need one
    ``exp`` and one ``log1p`` per bound, vectorised as in `glmm_logit`. The gradient with
    respect to ``eta`` is ``n (F(l) - F(-u))``.

    Parameters
    ----------
    XT, XS, b, xm, R, PT, WT, unit_w, gb, gR
        As in `glmm_logit` (``gb``, ``gR`` filled with the gradient).
    y : float32 or float64[m]
        Category codes ``0 .. K-1`` (exact small integers).
    n : float32 or float64[m]
        Counts (1 for a row).
    tau : float64[K - 1]
        Cutpoints (the centred design's: ``tau - xm . b`` is subtracted nowhere else).
    gtau : float64[K - 1]
        Filled with the gradient with respect to ``tau``.

    Returns
    -------
    (logp, bad)
        ``bad`` is True when a code lies outside ``0 .. K-1`` or the cutpoints are not
        strictly increasing (the caller returns ``-inf``).
    """
    k64 = XT.shape[0]
    k32 = XS.shape[0]
    m = y.shape[0]
    K = tau.shape[0] + 1
    gb[:] = 0.0
    gR[:] = 0.0
    gtau[:] = 0.0
    ext = np.empty(K + 1)  # cutpoints with the infinite ends
    ext[0] = -BIG
    ext[K] = BIG
    for k in range(K - 1):
        ext[k + 1] = tau[k]
    gext = np.zeros(K + 1)
    count = np.zeros(K)
    eta = np.empty(BLOCK)
    u = np.empty(BLOCK)
    lo = np.empty(BLOCK)
    a = np.empty(BLOCK)
    eu = np.empty(BLOCK)
    el = np.empty(BLOCK)
    su = np.empty(BLOCK)
    sl = np.empty(BLOCK)
    g = np.empty(BLOCK)
    cat = np.empty(BLOCK, dtype=np.int64)
    bits = np.empty(BLOCK, dtype=np.int64)
    c_eff = 0.0
    for k in range(k64 + k32):
        c_eff -= xm[k] * b[k]
    logp = 0.0
    g_sum = 0.0
    bad = False
    for k in range(1, K - 1):
        bad |= not (tau[k] > tau[k - 1])
    for s in range(0, m, BLOCK):
        w = min(BLOCK, m - s)
        yb = y[s : s + w]
        nb = n[s : s + w]
        linear_predictor_block(eta, c_eff, XT, XS, b, PT, WT, R, s, w, unit_w)
        for i in range(w):
            yi = np.float64(yb[i])
            ki = np.int64(yi)
            if ki < 0 or ki >= K or ki != yi:
                bad = True
                ki = 0
            cat[i] = ki
            u[i] = ext[ki + 1] - eta[i]
            lo[i] = ext[ki] - eta[i]
        for i in range(w):
            a[i] = abs(u[i])
        exp_neg(a[:w], eu[:w], bits[:w])
        log1p_unit(eu[:w], su[:w])
        for i in range(w):
            a[i] = abs(lo[i])
        exp_neg(a[:w], el[:w], bits[:w])
        log1p_unit(el[:w], sl[:w])
        for i in range(w):
            ni = np.float64(nb[i])
            ui = u[i]
            li = lo[i]
            # softplus(-u) and softplus(l); F(-u) and F(l) from the same exp(-|.|)
            logp -= ni * (max(-ui, 0.0) + su[i] + max(li, 0.0) + sl[i])
            pu = 1.0 / (1.0 + eu[i])
            f_neg_u = eu[i] * pu if ui >= 0.0 else pu
            pl = 1.0 / (1.0 + el[i])
            f_l = pl if li >= 0.0 else el[i] * pl
            g[i] = ni * (f_l - f_neg_u)
            g_sum += g[i]
            gext[cat[i] + 1] += ni * f_neg_u
            gext[cat[i]] -= ni * f_l
            count[cat[i]] += ni
        gradient_block(g, XT, XS, PT, WT, s, w, unit_w, gb, gR)
    for k in range(k64 + k32):  # d eta / d b_k = x_k - xm_k: the centring's share
        gb[k] -= xm[k] * g_sum
    for k in range(K - 1):
        gtau[k] = gext[k + 1]
    # log(1 - exp(-(tau_k - tau_{k-1}))) once per middle category, with its gradient
    for k in range(1, K - 1):
        if count[k] == 0.0:
            continue
        d = tau[k] - tau[k - 1]
        if not d > 0.0:
            bad = True
            continue
        logp += count[k] * np.log(-np.expm1(-d))
        r = count[k] / np.expm1(d)
        gtau[k] += r
        gtau[k - 1] -= r
    return logp, bad
