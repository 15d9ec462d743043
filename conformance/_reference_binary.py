"""Element-wise binary losses of the reference: sigmoid cross-entropy (from logits) and
binary cross-entropy (from probabilities), their special values and gradients.

With z' = (1 - eps) z + eps/2 =: a and 1 - z' = (1 - eps)(1 - z) + eps/2 =: b,

    sigmoid CE  l = a softplus(-x) + b softplus(x),  softplus(x) = max(x, 0) + log1p(e^-|x|)
    binary CE   l = a (-log p) + b (-log1p(-p))

(non-negative terms for labels in [0, 1]); an int `axis` averages l over that axis.
Gradients: b sigmoid(x) - a sigmoid(-x), and (p - a) / (p (1 - p)).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from conformance import _precision as P
from conformance import _reference_kernels as K
from conformance._reference_core import Exact, Undefined, first_code, tiered
from conformance._reference_kernels import Rows, f64
from conformance._reference_losses import reduce, reduction_factor, smoothed_zero_sign
from conformance._reference_rows import RowView, exact_f64, normalize_axes
from conformance.dtypes import FloatFormat
from conformance.ops import Op, Reduction

U = Undefined


def _ab(B: P.Backend, R: Rows):
    """a = z', b = 1 - z' in the backend, and their absolute error bounds."""
    eps = float(R.c.get("eps", 0.0))
    z = B.arr(R["z"])
    one = B.const(1)
    h, lo = B.two_diff(B.full(R["z"].shape, one), z)
    omz = h + lo
    if eps:
        e = B.const(eps)
        a, b = z * (one - e) + e / 2, omz * (one - e) + e / 2
    else:
        a, b = z, omz
    if B.is_mp:
        return a, b, None, None
    zf = np.abs(R["z"])
    da = 3 * B.u * (abs(1 - eps) * zf + eps / 2) if eps else np.zeros(zf.shape)
    db = 3 * B.u * (abs(1 - eps) * (1 + zf) + eps / 2) if eps else np.zeros(zf.shape)
    db = db + B.u * f64(B, omz) * (f64(B, lo) != 0)
    return a, b, da, db


def sigmoid_ce(B: P.Backend, R: Rows):
    a, b, da, db = _ab(B, R)
    x = B.arr(R["x"])
    s = B.log1p(B.exp(-abs(x)))
    zero = B.const(0)
    spp = B.maximum(x, zero) + s
    spm = B.maximum(-x, zero) + s
    n = R["x"].shape[-1]
    l_ = B.where(R["drop"], zero, a * spm + b * spp)
    v = B.sum(l_) / n
    if B.is_mp:
        return v[:, None], None
    u, f = B.u, B.fn_err * B.u
    es = 2 * f + 3 * u
    fp, fm = f64(B, spp), f64(B, spm)
    err = f64(B, a) * fm * es + da * fm
    err += f64(B, b) * fp * es + db * fp
    err = np.where(R["drop"], 0.0, err + f64(B, l_) * (2 * u))
    tot = (err.sum(-1) + f64(B, l_).sum(-1) * ((B.depth(n) + 1) * u)) / n + f64(B, v) * u
    return v[:, None], (K._SAFETY * tot + B.floor)[:, None]


def binary_ce(B: P.Backend, R: Rows):
    a, b, da, db = _ab(B, R)
    p = B.arr(R["p"])
    lp, l1p = B.log(p), B.log1p(-p)
    zero = B.const(0)
    n = R["p"].shape[-1]
    l_ = B.where(R["drop"], zero, a * (-lp) + b * (-l1p))
    v = B.sum(l_) / n
    if B.is_mp:
        return v[:, None], None
    u, f = B.u, B.fn_err * B.u
    f1, f2 = f64(B, lp), f64(B, l1p)
    err = f64(B, a) * f1 * (f + 2 * u) + da * f1
    err += f64(B, b) * f2 * (f + 2 * u) + db * f2
    err = np.where(R["drop"], 0.0, err + f64(B, l_) * (2 * u))
    tot = (err.sum(-1) + f64(B, l_).sum(-1) * ((B.depth(n) + 1) * u)) / n + f64(B, v) * u
    return v[:, None], (K._SAFETY * tot + B.floor)[:, None]


def sigmoid_vjp(B: P.Backend, R: Rows):
    """g (sigmoid(x) - z'), per element the better of two exact rewritings:
    A = b sigmoid(x) - a sigmoid(-x) (for large |x|) and B = tanh(x/2)/2 + (1/2 - a)
    (for small |x|, where A's terms are both near 1/2), whichever has the smaller bound;
    exact at x = 0 and x = +-inf. (Double-double and mpmath: A, whose cancellation
    their precision absorbs.)"""
    a, b, da, db = _ab(B, R)
    gs, eg = K.factor(B, R)
    x = B.arr(R["x"])
    E = B.exp(-abs(x))
    sp_, sm_ = 1 / (1 + E), E / (1 + E)
    pos = R["x"] >= 0
    sx, smx = B.where(pos, sp_, sm_), B.where(pos, sm_, sp_)
    va = b * sx - a * smx
    if B.is_mp:  # intervals: Ziv's precision absorbs A's cancellation
        return va * gs[:, None], None
    u = B.u
    es = np.where((R["x"] == 0) | np.isinf(R["x"]), 0.0, (B.fn_err + 3) * u)
    fsx, fsm = f64(B, sx), f64(B, smx)
    erra = f64(B, b) * fsx * (es + u) + db * fsx + f64(B, a) * fsm * (es + u) + da * fsm
    if B.kind == "float":
        th = np.tanh(x / 2)
        h_ = B.dtype(0.5) - a  # exact for a in [1/4, 1] (Sterbenz), else one rounding
        vb = th / 2 + h_
        errb = f64(B, th) / 2 * (B.fn_err + 2) * u + da + f64(B, h_) * u
        use_b = errb + f64(B, vb) * u < erra + f64(B, va) * u
        va, erra = np.where(use_b, vb, va), np.where(use_b, errb, erra)
    v = va * gs[:, None]
    err = f64(B, gs)[:, None] * erra + f64(B, v) * (eg + 2 * u)
    return v, K._SAFETY * err + B.floor


def binary_vjp(B: P.Backend, R: Rows):
    """g (p - a) / (p (1 - p)); b / (1 - p) where a = 0; -a / p where b = 0."""
    a, b, da, db = _ab(B, R)
    gs, eg = K.factor(B, R)
    p = B.arr(R["p"])
    one = B.const(1)
    nh, nl = B.two_diff(p, a)
    qh, ql = B.two_diff(B.full(R["p"].shape, one), p)
    q = qh + ql
    mode = R["mode"]
    half = B.const(0.5)
    p0, q0 = B.where(mode == 0, p, half), B.where(mode == 0, q, half)
    q1, p2 = B.where(mode == 1, q, one), B.where(mode == 2, p, one)
    val = B.where(mode == 1, b / q1, B.where(mode == 2, -a / p2, (nh + nl) / (p0 * q0)))
    v = val * gs[:, None]
    if B.is_mp:
        return v, None
    u = B.u
    pf, qf = np.abs(R["p"]), f64(B, q)
    num = np.where(
        mode == 1, db / qf, np.where(mode == 2, da / pf, (da + u * f64(B, nh)) / (pf * qf))
    )
    err = f64(B, gs)[:, None] * num + f64(B, v) * (eg + 5 * u)
    return v, K._SAFETY * err + B.floor


def _zero_tests(op: Op):
    def test(R: Rows) -> np.ndarray:
        eps = Fraction(float(R.c.get("eps", 0.0)))
        z = R["z"]
        out = np.zeros(z.shape, dtype=bool)
        for i in zip(*np.nonzero(np.abs(z - 0.5) < 0.5 + 1e-9), strict=True):
            a = (1 - eps) * Fraction(float(z[i])) + eps / 2
            if op is Op.SIGMOID_CROSS_ENTROPY:
                out[i] = R["x"][i] == 0 and a == Fraction(1, 2)
            else:
                out[i] = R["mode"][i] == 0 and Fraction(float(R["p"][i])) == a
        return out

    return test


def binary(
    op: Op,
    x: np.ndarray,
    labels: object,
    fmt: FloatFormat,
    cot: np.ndarray | None,
    opts: dict[str, object],
) -> Exact:
    if labels is None:
        raise ValueError(f"{op} needs labels")
    axes = () if opts["axis"] is None else normalize_axes(opts["axis"], x.ndim)
    if len(axes) > 1:
        raise ValueError(f"{op} averages over at most one axis")
    view = RowView(x.shape, axes)
    xr, z = view.rows(x), view.rows(exact_f64(labels, "labels"))
    R, n = xr.shape
    eps = float(opts["label_smoothing"])
    red = Reduction(opts["reduction"])
    az, asg = smoothed_zero_sign(z, eps, Fraction(eps) / 2)
    bz, bsg = smoothed_zero_sign(z, eps, Fraction(eps) / 2, shift=True)
    codes = np.zeros(R, dtype=np.uint8)

    def mark(mask: np.ndarray, code: Undefined) -> None:
        codes[(codes == 0) & mask] = code

    mark((np.isnan(xr) | np.isnan(z)).any(axis=1), U.NAN_INPUT)
    sig = op is Op.SIGMOID_CROSS_ENTROPY
    lo_end, hi_end = (-np.inf, np.inf) if sig else (0.0, 1.0)
    if not sig:
        mark(((xr < 0) | (xr > 1)).any(axis=1), U.INVALID_PROBABILITY)
    # x = +inf (p = 1): l = b * inf; x = -inf (p = 0): l = a * inf (0 when the factor is 0)
    at_hi, at_lo = xr == hi_end, xr == lo_end
    el_pos = (at_hi & ~bz & (bsg > 0)) | (at_lo & ~az & (asg > 0))
    el_neg = (at_hi & ~bz & (bsg < 0)) | (at_lo & ~az & (asg < 0))
    drop = (at_hi & bz) | (at_lo & az)
    pos, neg = el_pos.any(axis=1), el_neg.any(axis=1)
    mark(np.isinf(z).any(axis=1) | (pos & neg), U.INDETERMINATE_INF)
    mark(np.full(R, n == 0), U.NO_WEIGHT)
    pos &= codes == 0
    neg &= codes == 0
    safe = np.where(at_hi | at_lo, 0.0 if sig else 0.5, xr)
    zs = np.where(np.isfinite(z), z, 0.0)
    consts = {"eps": eps}
    if cot is None:
        reg = (codes == 0) & ~pos & ~neg
        key = "x" if sig else "p"
        rows = Rows({key: safe[reg], "z": zs[reg], "drop": drop[reg]}, consts)
        kern = sigmoid_ce if sig else binary_ce
        hi_r, lo_r, b_r = tiered(kern, rows, 1, fmt)
        hi, lo, bnd = np.zeros(R), np.zeros(R), np.zeros(R)
        hi[reg], lo[reg], bnd[reg] = hi_r[:, 0], lo_r[:, 0], b_r[:, 0]
        hi[pos], hi[neg] = np.inf, -np.inf
        hi[codes != 0] = np.nan
        hi += 0.0  # a loss of -0.0 (0 * -log 1) is reported as +0.0
        if red is Reduction.NONE:
            return Exact(hi.reshape(view.batch_shape), codes.reshape(view.batch_shape))
        if R == 0 and red is not Reduction.SUM:
            return Exact(np.array(np.nan), np.array(U.NO_WEIGHT, dtype=np.uint8))

        def mp_total():
            with np.errstate(all="ignore"):
                v = kern(P.MP, rows)[0]
            return P.pairwise_sum(v[:, 0])

        den = None if red is Reduction.SUM else Fraction(R)
        return reduce(red, hi, lo, bnd, codes, den, fmt, mp_total, special=pos | neg)
    g = exact_f64(cot, "cotangent")
    gcodes = codes.copy()
    if red is Reduction.NONE:
        g_row = view.batch(g)
        fac = Fraction(1, max(n, 1))
    else:
        if g.shape != ():
            raise ValueError("a reduced loss takes a 0-d cotangent")
        g_row = np.full(R, float(g))
        rf = reduction_factor(red, R, Fraction(R))
        fac = None if rf is None else rf / max(n, 1)
        if codes.any():
            gcodes[:] = first_code(codes)
        elif fac is None:
            gcodes[:] = U.NO_WEIGHT
        elif pos.any() and neg.any():
            gcodes[:] = U.INDETERMINATE_INF
    gcodes[(gcodes == 0) & np.isnan(g_row)] = U.NAN_INPUT
    gcodes[(gcodes == 0) & np.isinf(g_row)] = U.INDETERMINATE_INF
    reg = gcodes == 0
    arrays = {"z": zs[reg], "g_row": g_row[reg]}
    if sig:
        arrays["x"] = xr[reg]
        kern = sigmoid_vjp
        infs = np.zeros((R, n), dtype=bool)
    else:
        mode = np.where(az, 1, np.where(bz, 2, 0))
        infs = ((at_lo & ~az) | (at_hi & ~bz)) & reg[:, None] & (g_row != 0)[:, None]
        arrays["p"] = np.where(infs, 0.5, xr)[reg]
        arrays["mode"] = np.where((at_lo | at_hi) & ~infs, np.where(at_lo, 1, 2), mode)[reg]
        kern = binary_vjp
    rows = Rows(arrays, {**consts, "factor": fac if fac is not None else Fraction(1)})
    hi_r, _, _ = tiered(kern, rows, n, fmt, _zero_tests(op))
    out = np.zeros((R, n))
    out[reg] = hi_r
    if not sig:  # d/dp of a (-log p) at p = 0 is -inf; of b (-log1p(-p)) at p = 1, +inf
        sgn = np.where(at_lo, -asg, bsg) * np.sign(g_row)[:, None]
        out[infs] = np.copysign(np.inf, sgn)[infs]
    out[gcodes != 0] = np.nan
    full = np.broadcast_to(gcodes[:, None], out.shape).astype(np.uint8)
    return Exact(view.unrows(out), view.unrows(full))
