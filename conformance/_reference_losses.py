"""Cross-entropy losses of the reference (dense, sparse, from logits or probabilities),
their special values, gradients and reductions. Binary losses: `_reference_binary`."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from conformance import _precision as P
from conformance import _reference_kernels as K
from conformance._reference_core import Exact, Undefined, first_code, tiered
from conformance._reference_kernels import Rows, f64
from conformance._reference_rows import RowView, canonical_rows, exact_f64, normalize_axes
from conformance.dtypes import FloatFormat
from conformance.ops import LabelKind, Op, Reduction, spec

U = Undefined


# ---------------------------------------------------------------- probability kernels
def probability_ce(B: P.Backend, R: Rows):
    """sum_j c_j (-log p_j): non-negative terms for valid inputs."""
    c, dc = K.coefficients(B, R)
    lp = B.log(B.arr(R["p"]))
    v = B.sum(c * (-lp))
    if B.is_mp:
        return v[:, None], None
    u, f, h = B.u, B.fn_err * B.u, B.depth(c.shape[-1])
    alp = f64(B, lp)
    ac = f64(B, c)
    err = (ac * alp).sum(-1) * (f + (h + 2) * u) + (dc * alp).sum(-1) + f64(B, v) * (3 * u)
    return v[:, None], (K._SAFETY * err + B.floor)[:, None]


def probability_ce_vjp(B: P.Backend, R: Rows):
    """-g c_j / p_j (p_j = 0 with c_j != 0 is patched to an infinity by the caller)."""
    c, dc = K.coefficients(B, R)
    gs, eg = K.factor(B, R)
    p = B.arr(R["p"])
    v = -(c / p) * gs[:, None]
    if B.is_mp:
        return v, None
    err = f64(B, v) * (eg + 3 * B.u) + f64(B, gs)[:, None] * dc / np.abs(R["p"])
    return v, K._SAFETY * err + B.floor


# ---------------------------------------------------------------- labels
def smoothed_zero_sign(
    t: np.ndarray, eps: float, extra: Fraction, shift: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact zero mask and sign of (1 - eps) s + extra, s = t (or 1 - t when `shift`)."""
    s = 1 - t if shift else t
    with np.errstate(invalid="ignore", over="ignore"):
        tp = (1 - eps) * s + float(extra)
        mag = abs(1 - eps) * (np.abs(t) + shift) + abs(float(extra))
    if eps == 0 and extra == 0:
        # fl(1 - t) is 0 only when t == 1 and has the sign of the exact difference
        return s == 0, np.sign(s)
    sign = np.sign(tp)
    cand = np.isfinite(tp) & (np.abs(tp) <= 8 * 2.0**-53 * mag)
    zero = np.zeros(t.shape, dtype=bool)
    fe = Fraction(eps)
    for i in zip(*np.nonzero(cand), strict=True):
        ft = Fraction(float(t[i]))
        exact = (1 - fe) * ((1 - ft) if shift else ft) + extra
        zero[i] = exact == 0
        sign[i] = (exact > 0) - (exact < 0)
    return zero, sign


def label_terms(
    t: np.ndarray, w: np.ndarray | None, eps: float, ncls: int, part: np.ndarray
) -> dict[str, np.ndarray]:
    """Where c = w ((1 - eps) t + eps/K) is zero, its sign, infinities and NaNs."""
    tz, ts = smoothed_zero_sign(t, eps, Fraction(eps) / ncls if ncls else Fraction(0))
    wv = np.ones(t.shape[-1]) if w is None else w
    nan = part & (np.isnan(t) | np.isnan(wv))
    czero = ~part | tz | (wv == 0)
    cinf = part & ~czero & (np.isinf(t) | np.isinf(wv))
    cnan = part & ((np.isinf(t) & (wv == 0)) | (np.isinf(wv) & tz))
    return {"zero": czero, "sign": ts * np.sign(wv), "inf": cinf, "nan": nan, "ind": cnan}


def _weights_denominator(
    sparse: bool,
    w: np.ndarray | None,
    t: np.ndarray,
    part: np.ndarray,
    use: np.ndarray,
    y: np.ndarray | None,
) -> Fraction:
    """sum_i w_{y_i} (sparse, examples in `use`) or sum_i sum_j w_j t_ij (dense), to
    2**-105 relative accuracy (exact zero decided exactly)."""
    if sparse:
        wy = np.ones(int(use.sum())) if w is None else w[y[use]]
        return P.exact_sum(wy)
    tt = np.where(part & use[:, None], t, 0.0)
    if w is None:
        hi, lo, e2 = P.dd_sum(tt, np.zeros(0))
        return (Fraction(hi) + Fraction(lo)) * 2**e2
    a, b = tt, np.broadcast_to(w, tt.shape)
    p = a * b
    sa, sb = 134217729.0 * a, 134217729.0 * b
    ah, bh = sa - (sa - a), sb - (sb - b)
    al, bl = a - ah, b - bh
    err = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    hi, lo, e2 = P.dd_sum(p, err)
    return (Fraction(hi) + Fraction(lo)) * 2**e2


# ---------------------------------------------------------------- reductions
def reduce(
    red: Reduction,
    hi: np.ndarray,
    lo: np.ndarray,
    bnd: np.ndarray,
    codes: np.ndarray,
    den: Fraction | None,
    fmt: FloatFormat,
    mp_total,
    special: np.ndarray | None = None,
) -> Exact:
    """Sum / mean / weighted mean of per-example losses (hi + lo, error <= bnd).

    `special`: rows whose loss is exactly infinite (others with an infinite hi merely
    overflowed float64: their sum is then taken in mpmath)."""
    if codes.any():
        return Exact(np.array(np.nan), np.array(first_code(codes), dtype=np.uint8))
    if den is not None and den == 0:
        return Exact(np.array(np.nan), np.array(U.NO_WEIGHT, dtype=np.uint8))
    den = Fraction(1) if den is None else den
    special = np.isinf(hi) if special is None else special
    pos, neg = (special & (hi > 0)).any(), (special & (hi < 0)).any()
    overflow = bool((np.isinf(hi) & ~special).any())
    if pos and neg:
        return Exact(np.array(np.nan), np.array(U.INDETERMINATE_INF, dtype=np.uint8))
    if pos or neg:
        return Exact(
            np.array(math.copysign(math.inf, (1 if pos else -1) * den)), np.array(0, dtype=np.uint8)
        )
    s1, s2, e2 = P.dd_sum(np.where(np.isfinite(hi), hi, 0.0), lo)
    ctx = P.mp_context()
    with ctx.workprec(200):
        d = P.mpf(den)
        total = ctx.ldexp(ctx.mpf(s1) + ctx.mpf(s2), e2) / d
        # the (hi, lo) float64 pairs lose up to 2**-1074 of each per-example value
        err = (
            ctx.ldexp(math.fsum(np.ldexp(bnd, -e2).tolist()) + abs(s1) * 2.0**-104, e2)
            + ctx.ldexp(len(hi), -1074)
        ) / abs(d)
        value = P.round_mpf(total)
        if math.isfinite(value):
            ok = err <= ctx.mpf(
                float(P.tolerance(np.array([value]), fmt.precision, fmt.min_exponent)[0])
            )
        else:  # beyond the overflow threshold even after the error: rounds to infinity
            ok = abs(total) - err >= ctx.ldexp(2**53 - 1, 971)
    if not ok or overflow:

        def total_fn(_ids: np.ndarray) -> np.ndarray:
            return np.array([[mp_total() / P.MP.const(den)]], dtype=object)

        vf, _ = P.ziv(total_fn, np.array([0]), np.array([[True]]))
        value = float(vf[0, 0])
    return Exact(np.array(value + 0.0), np.array(0, dtype=np.uint8))


def reduction_factor(red: Reduction, count: int, den: Fraction) -> Fraction | None:
    """The gradient's factor of each per-example loss (None: no finite factor)."""
    if red is Reduction.SUM:
        return Fraction(1)
    if red is Reduction.WEIGHTED_MEAN:
        return None if den == 0 else 1 / den
    return None if count == 0 else Fraction(1, count)


# ---------------------------------------------------------------- categorical losses
def loss(
    op: Op,
    x: np.ndarray,
    labels: object,
    fmt: FloatFormat,
    cot: np.ndarray | None,
    opts: dict[str, object],
) -> Exact:
    sp = spec(op)
    if labels is None:
        raise ValueError(f"{op} needs labels")
    axes = normalize_axes(opts["axis"], x.ndim)
    if len(axes) != 1:
        raise ValueError(f"{op} takes a single class axis")
    view = RowView(x.shape, axes)
    xr = view.rows(x)
    R, Kc = xr.shape
    eps = float(opts["label_smoothing"])
    red = Reduction(opts["reduction"])
    w = (
        None
        if opts["class_weights"] is None
        else np.broadcast_to(exact_f64(opts["class_weights"], "class_weights"), (Kc,))
    )
    sparse = sp.labels is LabelKind.INTEGER
    ignored = np.zeros(R, dtype=bool)
    bad = np.zeros(R, dtype=bool)
    y = None
    if sparse:
        yl = np.asarray(labels)
        if yl.dtype.kind not in "iu":
            raise TypeError(f"{op} needs integer labels, got {yl.dtype}")
        y = np.broadcast_to(yl, view.batch_shape).reshape(R).astype(np.int64)
        if opts["ignore_index"] is not None:
            ignored = y == int(opts["ignore_index"])
        bad = ~ignored & ((y < 0) | (y >= Kc))
        t = np.zeros((R, Kc))
        ok = ~ignored & ~bad
        t[np.flatnonzero(ok), y[ok]] = 1.0
    else:
        t = view.rows(exact_f64(labels, "labels"))
    part = (
        np.ones((R, Kc), dtype=bool)
        if opts["where"] is None
        else view.rows(np.asarray(opts["where"], dtype=bool))
    )
    lt = label_terms(t, w, eps, Kc, part)
    codes = np.zeros(R, dtype=np.uint8)

    def mark(mask: np.ndarray, code: Undefined) -> None:
        codes[(codes == 0) & mask] = code

    if sp.input_is_probability:
        p = xr
        mark(np.isnan(p).any(axis=1) | lt["nan"].any(axis=1), U.NAN_INPUT)
        mark(bad, U.INVALID_LABEL)
        mark((((p < 0) | (p > 1)) & ~lt["zero"]).any(axis=1), U.INVALID_PROBABILITY)
        nu_zero, nu_inf = p == 1, p == 0
        regular_extra = np.ones(R, dtype=bool)
    else:
        cr = canonical_rows(np.where(part, xr, -np.inf))
        mark(cr["nan"] | lt["nan"].any(axis=1), U.NAN_INPUT)
        mark(bad, U.INVALID_LABEL)
        mark(cr["pinf"] >= 2, U.INDETERMINATE_INF)
        nu_zero = cr["fin"] & (cr["nfin"] == 1)[:, None]
        nu_inf = part & ~cr["fin"]
        mark((part.sum(axis=1) > 0) & (cr["nfin"] == 0), U.FULLY_MASKED)
        regular_extra = cr["nfin"] > 0
    nz = ~lt["zero"]
    tinf = nz & (nu_inf | lt["inf"])
    pos = (tinf & (lt["sign"] > 0)).any(axis=1) & ~ignored
    neg = (tinf & (lt["sign"] < 0)).any(axis=1) & ~ignored
    mark((lt["ind"] | (lt["inf"] & nu_zero)).any(axis=1) | (pos & neg), U.INDETERMINATE_INF)
    codes[ignored] = 0
    pos &= codes == 0
    neg &= codes == 0
    consts = {"eps": eps, "ncls": Kc, "w": w}
    if sp.input_is_probability:
        base = {"t": t, "part": nz & ~nu_inf, "p": np.where(nz & ~nu_inf, xr, 1.0)}
    else:
        base = {"t": t, "part": part, "x": cr["x"], "fin": cr["fin"], "m": cr["m"], "k": cr["k"]}
    use = ~ignored & ~bad
    den = None
    if red is Reduction.WEIGHTED_MEAN:
        den = _weights_denominator(sparse, w, t, part, use & (codes == 0), y)
    elif red in (Reduction.MEAN, Reduction.SUM_OVER_BATCH_SIZE):
        den = Fraction(R)
    if cot is None:
        reg = (codes == 0) & ~ignored & ~pos & ~neg & regular_extra
        rows = Rows({k: v[reg] for k, v in base.items()}, consts)
        kern = probability_ce if sp.input_is_probability else K.cross_entropy
        hi_r, lo_r, b_r = tiered(kern, rows, 1, fmt)
        hi, lo, bnd = np.zeros(R), np.zeros(R), np.zeros(R)
        hi[reg], lo[reg], bnd[reg] = hi_r[:, 0], lo_r[:, 0], b_r[:, 0]
        hi[pos] = np.inf
        hi[neg] = -np.inf
        hi[codes != 0] = np.nan
        hi += 0.0  # a loss of -0.0 (0 * -log 1) is reported as +0.0
        if red is Reduction.NONE:
            return Exact(hi.reshape(view.batch_shape), codes.reshape(view.batch_shape))

        def mp_total():
            with np.errstate(all="ignore"):
                v = kern(P.MP, rows)[0]
            return P.pairwise_sum(v[:, 0])

        if R == 0 and red is not Reduction.SUM:
            return Exact(np.array(np.nan), np.array(U.NO_WEIGHT, dtype=np.uint8))
        return reduce(
            red,
            hi,
            lo,
            bnd,
            codes,
            den if red is not Reduction.SUM else None,
            fmt,
            mp_total,
            special=pos | neg,
        )
    # gradient
    g = exact_f64(cot, "cotangent")
    gcodes = codes.copy()
    gcodes[(gcodes == 0) & lt["inf"].any(axis=1) & ~ignored] = U.INDETERMINATE_INF
    if red is Reduction.NONE:
        g_row = view.batch(g)
        fac = Fraction(1)
    else:
        if g.shape != ():
            raise ValueError("a reduced loss takes a 0-d cotangent")
        g_row = np.full(R, float(g))
        fac = reduction_factor(red, R, den if den is not None else Fraction(1))
        fwd_bad = codes.any() or (pos.any() and neg.any()) or fac is None
        if fwd_bad:
            code = (
                first_code(codes)
                if codes.any()
                else (U.NO_WEIGHT if fac is None else U.INDETERMINATE_INF)
            )
            gcodes[:] = code
    gcodes[(gcodes == 0) & np.isnan(g_row)] = U.NAN_INPUT
    gcodes[(gcodes == 0) & np.isinf(g_row)] = U.INDETERMINATE_INF
    gcodes[ignored & (gcodes == 0)] = 0
    reg = (gcodes == 0) & ~ignored & regular_extra
    rows = Rows(
        {k: v[reg] for k, v in base.items()},
        {**consts, "factor": fac if fac is not None else Fraction(1)},
    )
    rows.a["g_row"] = g_row[reg]
    if sp.input_is_probability:
        hi_r, _, _ = tiered(probability_ce_vjp, rows, Kc, fmt)
    else:
        hi_r, _, _ = tiered(K.cross_entropy_vjp, rows, Kc, fmt, K.cross_entropy_vjp_zero)
    out = np.zeros((R, Kc))
    out[reg] = hi_r
    if sp.input_is_probability:  # p_j = 0 under c_j != 0: an infinite slope
        infs = reg[:, None] & nz & nu_inf & (g_row != 0)[:, None]
        sgn = -lt["sign"] * np.sign(g_row)[:, None]
        out[infs] = np.copysign(np.inf, sgn)[infs]
    out[gcodes != 0] = np.nan
    full = np.broadcast_to(gcodes[:, None], out.shape).astype(np.uint8)
    return Exact(view.unrows(out), view.unrows(full))
