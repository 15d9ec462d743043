"""Row kernels of the softmax family: stable formulas, run in any `_precision` backend.

Every kernel takes a backend `B` and `Rows` (the class axis last, one row per example)
and returns `(value, bound)`: the value as a backend array and, for float backends, an
absolute error bound per element (None for mpmath, whose results Ziv's loop checks).

Rows reaching a kernel are *regular*: at least one finite logit, no NaN, no +inf; -inf
(or masked-out) entries are flagged by `fin == False`. The normaliser of a row is

    m = max x,  k = an argmax,  x_j - m = hi_j + lo_j exactly (TwoSum),
    e_j = exp(hi_j)(1 + lo_j),  S' = sum_{j != k} e_j,  L = log1p(S') = lse - m,

so every output is formed without cancellation except where the mathematics itself
cancels (logsumexp near 0, soft labels of mixed sign, the gradients); there the bound
grows with the condition number and the caller escalates. Error analysis: docs/reference.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from conformance._precision import Backend

_SAFETY = 1.01  # covers the second-order terms dropped from the first-order bounds


@dataclass
class Rows:
    """Per-row arrays (leading dimension = rows) and constants of one kernel call."""

    a: dict[str, np.ndarray]
    c: dict[str, object] = field(default_factory=dict)

    def __getitem__(self, key: str):
        return self.a[key] if key in self.a else self.c[key]

    def get(self, key: str, default=None):
        return self.a.get(key, self.c.get(key, default))

    def take(self, idx: np.ndarray) -> Rows:
        return Rows({k: v[idx] for k, v in self.a.items()}, self.c)

    @property
    def n(self) -> int:
        return len(next(iter(self.a.values())))


def f64(B: Backend, a: np.ndarray) -> np.ndarray:
    """A float backend's array as float64 magnitudes for bound arithmetic (longdouble
    magnitudes beyond float64's range are clipped to its max: such values round to an
    infinity, which `tiered` accepts only with a margin that covers the clipping)."""
    if B.kind == "dd":
        return np.abs(a.hi)
    out = np.abs(np.asarray(a)).astype(np.float64)
    if B.dtype is not np.float64:
        np.minimum(out, np.finfo(np.float64).max, out=out)
    return out


def zero(B: Backend):
    return B.const(0)


def factor(B: Backend, R: Rows) -> tuple[np.ndarray, float]:
    """Per-row cotangent times the reduction's factor (1, 1/N or 1/W) and its relative error."""
    g = R["g_row"]
    fac: Fraction = R.c.get("factor", Fraction(1))
    if fac == 1:
        return B.arr(g), 0.0
    if B.is_mp:
        return B.arr(g) * B.const(fac), 0.0
    if B.kind == "dd":
        return B.arr(g) * B.const(fac), 3 * B.u + float(R.c.get("factor_err", 0.0))
    e = fac.numerator.bit_length() - fac.denominator.bit_length()  # fac = m 2**e, m ~ 1
    m = fac / Fraction(2) ** e
    hi = float(m)
    fv = np.ldexp(B.dtype(hi) + B.dtype(float(m - Fraction(hi))), e)  # inf past the range
    return B.arr(g) * fv, 3 * B.u + float(R.c.get("factor_err", 0.0))


class Norm:
    """The normaliser of each row (see the module docstring) and its relative errors.

    `fin` may be absent from the rows: every entry finite (the fast path)."""

    def __init__(self, B: Backend, R: Rows):
        x, m, k = R["x"], R["m"], R["k"]
        fin = R.get("fin")
        self.B, self.R = B, R
        self.rows = np.arange(x.shape[0])
        self.k = k
        self.n = x.shape[-1]
        self.allfin = fin is None or bool(fin.all())
        self.fin = fin
        xs = x if self.allfin else np.where(fin, x, m[:, None])
        X, M = B.arr(xs), B.arr(m)[:, None]
        hi, lo = B.two_diff(X, M)
        e = B.exp(hi)
        if not B.exact_diff:
            one_lo = lo + 1
            e *= one_lo
            del one_lo
        if not self.allfin:
            e = B.where(fin, e, zero(B))
            hi = B.where(fin, hi, zero(B))
            lo = B.where(fin, lo, zero(B))
        self.hi, self.lo, self.e, self.M = hi, lo, e, M
        e[self.rows, k] = 0  # S' leaves out exactly one argmax; e_k = exp(0) = 1
        self.Sp = B.sum(e)
        e[self.rows, k] = 1
        self.S = 1 + self.Sp
        self.L = B.log1p(self.Sp)
        if not B.is_mp:
            u, f = B.u, B.fn_err * B.u
            self.h = B.depth(self.n)
            self.eps_e = _SAFETY * (f + 3 * u)
            self.eps_S = _SAFETY * (self.eps_e + self.h * u)
            self.eps_L = _SAFETY * (self.eps_S + f + u)
            self.eps_p = _SAFETY * (self.eps_e + self.eps_S + 3 * u)
            self.eps_q = _SAFETY * 2 * (self.eps_S + self.eps_e + 3 * u)

    def p(self) -> np.ndarray:
        return self.e / self.S[:, None]

    def q(self) -> np.ndarray:
        """1 - p_j without cancellation: S'/S at the argmax, (1 + (S' - e_j))/S elsewhere."""
        num = 1 + (self.Sp[:, None] - self.e)
        num[self.rows, self.k] = self.Sp
        return num / self.S[:, None]


def _abs_bound(B: Backend, v: np.ndarray, rel: float) -> np.ndarray:
    """|v| rel + floor as a new float64 array."""
    out = f64(B, v)
    out *= rel
    out += B.floor
    return out


def softmax(B: Backend, R: Rows):
    N = Norm(B, R)
    p = N.e
    p /= N.S[:, None]
    return p, None if B.is_mp else _abs_bound(B, p, N.eps_p)


def log_softmax(B: Backend, R: Rows):
    N = Norm(B, R)
    v = N.hi
    v -= N.L[:, None]
    v += N.lo
    bound = None if B.is_mp else _abs_bound(B, v, _SAFETY * (N.eps_L + 4 * B.u))
    if not N.allfin:
        v = B.where(N.fin, v, B.const(-np.inf))
        if bound is not None:
            bound = np.where(N.fin, bound, 0.0)
    return v, bound


def logsumexp(B: Backend, R: Rows):
    N = Norm(B, R)
    v = N.M[:, 0] + N.L
    bound = None
    if not B.is_mp:
        bound = f64(B, N.L) * N.eps_L + f64(B, v) * B.u + B.floor
    return v[:, None], None if bound is None else bound[:, None]


def logsumexp_scaled(B: Backend, R: Rows):
    """log sum_j b_j exp(x_j), b >= 0: m + log1p(T), T = (b_k - 1) + sum_{j != k} b_j e_j."""
    N = Norm(B, R)
    b = B.arr(R["b"])
    bk = b[N.rows, N.k]
    t1, t1lo = B.two_diff(bk, B.full(bk.shape, B.const(1)))
    be = b * N.e
    be[N.rows, N.k] = 0
    Sb = B.sum(be)
    T = (t1 + Sb) + t1lo
    v = N.M[:, 0] + B.log1p(T)
    if B.is_mp:
        return v[:, None], None
    u, f = B.u, B.fn_err * B.u
    eT = f64(B, Sb) * _SAFETY * (N.eps_e + (N.h + 2) * u) + f64(B, t1) * (2 * u)
    T64 = T.hi.copy() if B.kind == "dd" else np.asarray(T).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lerr = eT / (1 + T64) + np.abs(np.log1p(T64)) * (f + u)
        lerr = np.where(1 + T64 > 4 * eT, lerr, np.inf)  # too close to log(0): escalate
    bound = _SAFETY * lerr + f64(B, v) * B.u + B.floor
    return v[:, None], bound[:, None]


def coefficients(B: Backend, R: Rows) -> tuple[np.ndarray, np.ndarray | None]:
    """c_j = w_j ((1 - eps) t_j + eps/K) over participating classes, and its error bound."""
    t = R["t"]
    eps = float(R.c.get("eps", 0.0))
    K = int(R.c.get("ncls", t.shape[-1]))
    w = R.c.get("w")
    part = R.get("part")
    c = B.arr(t)
    eps = eps if K else 0.0  # no class (an empty axis): no term, nothing to smooth
    if eps:
        c = c * (B.const(1) - B.const(eps)) + B.const(eps) / B.const(K)
    if w is not None:
        c = c * B.arr(w)
    if part is not None:
        c = B.where(part, c, zero(B))
    if B.is_mp:
        return c, None
    ops = (3 if eps else 0) + (1 if w is not None else 0)
    if not ops:
        return c, np.zeros(t.shape)
    mag = np.abs(t) * abs(1 - eps) + (abs(eps) / K if K else 0.0)
    if w is not None:
        mag = mag * np.abs(w)
    dc = _SAFETY * ops * B.u * mag
    return c, dc if part is None else np.where(part, dc, 0.0)


def cross_entropy(B: Backend, R: Rows):
    """-sum_j c_j log p_j = C L - sum_j c_j (hi_j + lo_j); both parts >= 0 when c >= 0."""
    N = Norm(B, R)
    c, dc = coefficients(B, R)
    C = B.sum(c)
    A = B.sum(c * (-N.hi))
    Alo = B.sum(c * (-N.lo))
    v = (C * N.L + A) + Alo
    if B.is_mp:
        return v[:, None], None
    u, h = B.u, N.h
    ac, L, hi = f64(B, c), f64(B, N.L), f64(B, N.hi)
    sc = ac.sum(-1)
    err = (
        sc * L * (N.eps_L + (h + 2) * u)
        + (ac * hi).sum(-1) * ((h + 2) * u)
        + (dc * (hi + L[:, None])).sum(-1)
        + f64(B, Alo)
        + f64(B, v) * (3 * u)
    )
    return v[:, None], (_SAFETY * err + B.floor)[:, None]


# ---------------------------------------------------------------- gradients
def softmax_vjp(B: Backend, R: Rows):
    """p_i (d_i - D) with d = g - g_k and D = sum_j d_j p_j (exact 0 for constant g)."""
    N = Norm(B, R)
    G = B.arr(R["g"])
    d = G - G[N.rows, N.k][:, None]
    Dn = B.sum(d * N.e)
    D = Dn / N.S
    p = N.p()
    v = p * (d - D[:, None])
    if B.is_mp:
        return v, None
    u, h = B.u, N.h
    ad, e = f64(B, d), f64(B, N.e)
    S = f64(B, N.S)
    eD = (ad * e).sum(-1) / S * (N.eps_e + N.eps_S + (h + 3) * u)
    diff = f64(B, d - D[:, None])
    err = f64(B, p) * (diff * (N.eps_p + 2 * u) + ad * u + eD[:, None])
    return v, _SAFETY * err + B.floor


def log_softmax_vjp(B: Backend, R: Rows):
    """g_i - p_i G for i != k; q_k G - sum_{j != k} g_j at the argmax (q = 1 - p)."""
    N = Norm(B, R)
    g = B.arr(R["g"])
    G = B.sum(g)
    gx = g.copy()
    gx[N.rows, N.k] = 0
    Gk = B.sum(gx)
    p, q = N.p(), N.q()
    v = g - p * G[:, None]
    qk = q[N.rows, N.k]
    v[N.rows, N.k] = qk * G - Gk
    if B.is_mp:
        return v, None
    u, h = B.u, N.h
    ag = np.abs(R["g"])
    sg = ag.sum(-1)
    eG = sg * ((h + 1) * u)
    pf, Gf = f64(B, p), f64(B, G)
    err = pf * (Gf * (N.eps_p + 2 * u) + eG)[:, None]
    ek = f64(B, qk) * (Gf * (N.eps_q + 2 * u) + eG) + (sg - ag[N.rows, N.k]) * ((h + 1) * u)
    err[N.rows, N.k] = ek
    err = err + f64(B, v) * (2 * u)
    return v, _SAFETY * err + B.floor


def logsumexp_vjp(B: Backend, R: Rows):
    """g p_i (or g b_i e_i / sum_j b_j e_j with scale factors): no cancellation."""
    N = Norm(B, R)
    g, eg = factor(B, R)
    if "b" in R.a:
        b = B.arr(R["b"])
        be = b * N.e
        v = be * (g / B.sum(be))[:, None]
        eps = 0.0 if B.is_mp else N.eps_e * 2 + (N.h + 4) * B.u
    else:
        v = N.p() * g[:, None]
        eps = 0.0 if B.is_mp else N.eps_p + 2 * B.u
    if B.is_mp:
        return v, None
    return v, f64(B, v) * _SAFETY * (eps + eg) + B.floor


def cross_entropy_vjp(B: Backend, R: Rows):
    """g (p_j C - c_j) = g (p_j C_{-j} - c_j q_j), C_{-j} = sum_{l != j} c_l summed apart
    for the (at most one) class holding more than half of C."""
    N = Norm(B, R)
    c, dc = coefficients(B, R)
    gs, eg = factor(B, R)
    C = B.sum(c)
    Cm = C[:, None] - c
    cf = np.asarray(R["t"])  # only to locate the heavy class; c itself decides below
    heavy = np.argmax(np.abs(cf), axis=-1) if B.is_mp else np.argmax(f64(B, c), axis=-1)
    cx = c.copy()
    cx[N.rows, heavy] = 0
    Cm[N.rows, heavy] = B.sum(cx)
    p, q = N.p(), N.q()
    v = (p * Cm - c * q) * gs[:, None]
    if B.is_mp:
        return v, None
    u, h = B.u, N.h
    ac = f64(B, c)
    sc, sdc = ac.sum(-1), dc.sum(-1)
    # C_{-j}'s error: the summation, and the label roundings of the other classes (the
    # rounding of c_j itself cancels in C - c_j and is absent from the separate sum)
    eC = (h + 1) * u * sc[:, None] + (sdc[:, None] - dc)
    eC[N.rows, heavy] = (h + 1) * u * (sc - ac[N.rows, heavy]) + sdc - dc[N.rows, heavy]
    pf, qf, agf = f64(B, p), f64(B, q), f64(B, gs)[:, None]
    err = agf * (pf * (f64(B, Cm) * (N.eps_p + 2 * u) + eC) + (ac * (N.eps_q + 2 * u) + dc) * qf)
    err = err + f64(B, v) * (eg + 2 * u)
    return v, _SAFETY * err + B.floor


# ---------------------------------------------------------------- exact zeros
# By Lindemann-Weierstrass, sum_v A_v exp(v) over distinct rationals v vanishes only if
# every A_v does. The gradients' numerators have that form (v: the distinct finite logits
# of the row), so their exact zeros are decided by rational arithmetic, which spares
# Ziv's loop the hopeless task of resolving an exact 0 digit by digit.
def _exact_groups(R: Rows, r: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Indices of row r's finite entries, their group ids (by value) and the group count."""
    x, fin = R["x"][r], R.get("fin")
    idx = np.flatnonzero(np.ones(x.shape, dtype=bool) if fin is None else fin[r])
    _, gid = np.unique(x[idx], return_inverse=True)
    return idx, gid, int(gid.max()) + 1 if idx.size else 0


def exact_coefficients(R: Rows, r: int) -> list[Fraction]:
    """c_j = w_j ((1 - eps) t_j + eps/K) of row r, exactly (0 where not participating)."""
    t = R["t"][r]
    eps = Fraction(float(R.c.get("eps", 0.0)))
    K = int(R.c.get("ncls", t.shape[-1]))
    w = R.c.get("w")
    part = R.get("part")
    out = []
    for j, tj in enumerate(t.tolist()):
        if part is not None and not part[r, j]:
            out.append(Fraction(0))
            continue
        c = (1 - eps) * Fraction(tj) + eps / K
        out.append(c * Fraction(float(w[j])) if w is not None else c)
    return out


def softmax_vjp_zero(R: Rows) -> np.ndarray:
    """p_i (g_i - sum_j g_j p_j) = 0 iff every group of tied logits has mean cotangent g_i."""
    out = np.zeros(R["x"].shape, dtype=bool)
    for r in range(R.n):
        idx, gid, ng = _exact_groups(R, r)
        g = [Fraction(v) for v in R["g"][r][idx].tolist()]
        sums, counts = [Fraction(0)] * ng, [0] * ng
        for gi, gr in zip(g, gid.tolist(), strict=True):
            sums[gr] += gi
            counts[gr] += 1
        means = {s / n for s, n in zip(sums, counts, strict=True)}
        if len(means) == 1:
            mu = means.pop()
            out[r, idx] = [gi == mu for gi in g]
    return out


def log_softmax_vjp_zero(R: Rows) -> np.ndarray:
    """g_i - p_i G = 0 iff (g_i = 0 and G = 0) or (one group of n ties and n g_i = G)."""
    out = np.zeros(R["x"].shape, dtype=bool)
    for r in range(R.n):
        idx, _, ng = _exact_groups(R, r)
        G = sum((Fraction(v) for v in R["g"][r].tolist()), Fraction(0))
        for i in idx.tolist():
            gi = Fraction(float(R["g"][r, i]))
            out[r, i] = (gi == 0 and G == 0) or (ng == 1 and idx.size * gi == G)
    return out


def cross_entropy_vjp_zero(R: Rows) -> np.ndarray:
    """p_i C - c_i = 0 iff (c_i = 0 and C = 0) or (one group of n ties and C = n c_i)."""
    out = np.zeros(R["x"].shape, dtype=bool)
    for r in range(R.n):
        idx, _, ng = _exact_groups(R, r)
        c = exact_coefficients(R, r)
        C = sum(c, Fraction(0))
        for i in idx.tolist():
            out[r, i] = (c[i] == 0 and C == 0) or (ng == 1 and C == idx.size * c[i])
    return out
