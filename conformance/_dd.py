"""Double-double arithmetic on numpy float64 arrays (about 106 bits): the reference's
tier between longdouble and mpmath, vectorised.

A `DD` holds two float64 arrays with value hi + lo, |lo| <= ulp(hi)/2 (normalised by
Fast2Sum), so hi alone is the value rounded to float64. The basic operations are the
classical error-free transforms (Knuth's TwoSum, Dekker's product with Veltkamp's
split), each with a relative error below 2**-103; `exp`, `log1p` and `log` are accurate
to about 2**-100 (docs/reference.md). Operands may overflow Veltkamp's split above
2**996 and lose relative accuracy below 2**-969: results are then NaN or inaccurate,
which the callers' error bounds (an absolute floor) turn into an escalation.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

_SPLIT = 134217729.0  # 2**27 + 1


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a, b):
    s = a + b
    return s, b - (s - a)


def _veltkamp(a):
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    p = a * b
    ah, al = _veltkamp(a)
    bh, bl = _veltkamp(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


class DD:
    """An array of double-double numbers."""

    __slots__ = ("hi", "lo")
    __array_ufunc__ = None  # numpy operands defer to DD's reflected operators

    def __init__(self, hi, lo=None):
        self.hi = np.asarray(hi, dtype=np.float64)
        self.lo = np.zeros(self.hi.shape) if lo is None else np.asarray(lo, dtype=np.float64)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.hi.shape

    def __len__(self) -> int:
        return len(self.hi)

    def __getitem__(self, idx) -> DD:
        return DD(self.hi[idx], self.lo[idx])

    def __setitem__(self, idx, value) -> None:
        v = as_dd(value)
        self.hi[idx] = v.hi
        self.lo[idx] = v.lo

    def copy(self) -> DD:
        return DD(self.hi.copy(), self.lo.copy())

    def __neg__(self) -> DD:
        return DD(-self.hi, -self.lo)

    def __abs__(self) -> DD:
        neg = (self.hi < 0) | ((self.hi == 0) & (self.lo < 0))
        return DD(np.where(neg, -self.hi, self.hi), np.where(neg, -self.lo, self.lo))

    def __add__(self, other) -> DD:
        return add(self, as_dd(other))

    __radd__ = __add__

    def __sub__(self, other) -> DD:
        return add(self, -as_dd(other))

    def __rsub__(self, other) -> DD:
        return add(as_dd(other), -self)

    def __mul__(self, other) -> DD:
        return mul(self, as_dd(other))

    __rmul__ = __mul__

    def __truediv__(self, other) -> DD:
        return div(self, as_dd(other))

    def __rtruediv__(self, other) -> DD:
        return div(as_dd(other), self)


def as_dd(v) -> DD:
    if isinstance(v, DD):
        return v
    if isinstance(v, Fraction):
        return const(v)
    return DD(np.asarray(v, dtype=np.float64))


def const(v: float | int | Fraction) -> DD:
    """A double-double scalar: floats and small ints exactly, Fractions to 2**-106."""
    if not isinstance(v, Fraction):
        return DD(np.float64(v))
    if v == 0:
        return DD(0.0)
    e = abs(v.numerator).bit_length() - v.denominator.bit_length()
    m = v / Fraction(2) ** e
    hi = float(m)
    lo = float(m - Fraction(hi))
    return DD(np.ldexp(hi, e), np.ldexp(lo, e))


def add(a: DD, b: DD) -> DD:
    s, e = _two_sum(a.hi, b.hi)
    t, f = _two_sum(a.lo, b.lo)
    s, e = _fast_two_sum(s, e + t)
    s, e = _fast_two_sum(s, e + f)
    return DD(s, e)


def mul(a: DD, b: DD) -> DD:
    p, e = _two_prod(a.hi, b.hi)
    p, e = _fast_two_sum(p, e + (a.hi * b.lo + a.lo * b.hi))
    return DD(p, e)


def div(a: DD, b: DD) -> DD:
    q1 = a.hi / b.hi
    r = a - b * DD(q1)
    q2 = r.hi / b.hi
    r = r - b * DD(q2)
    q3 = r.hi / b.hi
    q1, q2 = _fast_two_sum(q1, q2)
    return DD(q1, q2) + DD(q3)


def where(cond, a, b) -> DD:
    a, b = as_dd(a), as_dd(b)
    return DD(np.where(cond, a.hi, b.hi), np.where(cond, a.lo, b.lo))


def maximum(a, b) -> DD:
    a, b = as_dd(a), as_dd(b)
    return where((a.hi > b.hi) | ((a.hi == b.hi) & (a.lo >= b.lo)), a, b)


def full(shape: tuple[int, ...], v) -> DD:
    v = as_dd(v)
    return DD(np.full(shape, v.hi), np.full(shape, v.lo))


# ---------------------------------------------------------------- elementary functions
def _dd_consts(fn, ns) -> list[DD]:
    """DD constants fn(n) for n in ns, computed at 300 bits."""
    out = []
    with mpmath.workprec(300):
        for n in ns:
            v = fn(n)
            hi = float(v)
            out.append(DD(np.float64(hi), np.float64(float(v - hi))))
    return out


with mpmath.workprec(300):
    _LN2 = mpmath.log(2)
    _LN2_1 = float.fromhex("0x1.62e42feep-1")  # 32 bits: n * _LN2_1 is exact for |n| < 2**21
    _LN2_2 = float(_LN2 - _LN2_1)
    _LN2_3 = float(_LN2 - _LN2_1 - _LN2_2)
_LN2_DD = DD(np.float64(_LN2_1), np.float64(_LN2_2))  # ln 2 to 2**-85 (only times ints)
_TABLE = _dd_consts(lambda j: mpmath.mpf(2) ** (mpmath.mpf(j) / 64), range(64))
_T_HI = np.array([float(t.hi) for t in _TABLE])
_T_LO = np.array([float(t.lo) for t in _TABLE])
_INV_FACT = _dd_consts(lambda n: 1 / mpmath.factorial(n), range(1, 7))  # 1/1! .. 1/6!
_TAIL = [float(1 / mpmath.factorial(n)) for n in range(7, 12)]  # 1/7! .. 1/11!
_INV_ODD = _dd_consts(lambda n: mpmath.mpf(1) / (2 * n + 1), range(13))  # 1, 1/3, .., 1/25


def exp(x: DD) -> DD:
    """e**x = 2**k 2**(j/64) e**s: x = n ln2/64 + s (Cody-Waite, three-part ln2, |s| <=
    ln2/128), n = 64 k + j, 2**(j/64) from a double-double table, e**s by its Taylor
    series (degree 11; terms 7 to 11 in float64, they are below 2**-53 s)."""
    hi = x.hi
    live = np.isfinite(hi) & (hi > -746.0) & (hi < 710.0)
    h = np.where(live, hi, 0.0)
    lo = np.where(live, x.lo, 0.0)
    n = np.rint(h * (64 / float(_LN2)))
    t = h - n * (_LN2_1 / 64)  # exact
    p2, e2 = _two_prod(n, _LN2_2 / 64)
    s = (DD(t) + DD(lo)) - DD(p2, e2) - DD(n * (_LN2_3 / 64))
    sh = s.hi
    tail = _TAIL[-1]
    for c in reversed(_TAIL[:-1]):
        tail = tail * sh + c
    acc = DD(tail * sh) + _INV_FACT[-1]
    for c in reversed(_INV_FACT[:-1]):
        acc = acc * s + c
    e = acc * s + 1.0
    ni = n.astype(np.int64)
    j = ni & 63
    e = e * DD(_T_HI[j], _T_LO[j])
    k = ni >> 6
    out_hi = np.where(live, np.ldexp(e.hi, k), np.where(hi > 0, np.inf, 0.0))
    out_hi = np.where(np.isnan(hi), np.nan, out_hi)
    return DD(out_hi, np.where(live, np.ldexp(e.lo, k), 0.0))


def log1p(x: DD) -> DD:
    """log(1 + x), x > -1: for |x| < 1/16 the series 2 atanh(x / (2 + x)) (13 odd terms);
    for x > 1, log(1 + x); else one Newton step y0 - 1 + (1 + x) e**-y0 from y0, the
    float64 log1p corrected by lo / (1 + hi) (|y| < 0.7 or x near -1: the step's
    quadratic error stays below 2**-104 |y|)."""
    out = DD(np.zeros(x.shape))
    small = np.abs(x.hi) < 0.0625
    large = x.hi > 1.0
    if small.any():
        xs = x[small]
        w = xs / (xs + 2.0)
        w2 = w * w
        acc = _INV_ODD[-1]
        for c in reversed(_INV_ODD[:-1]):
            acc = acc * w2 + c
        out[small] = acc * w * 2.0
    if large.any():
        out[large] = log(x[large] + 1.0)
    mid = ~small & ~large
    if mid.any():
        xm = x[mid]
        with np.errstate(invalid="ignore", divide="ignore"):
            y0 = np.log1p(xm.hi) + xm.lo / (1.0 + xm.hi)
            val = (DD(y0) - 1.0) + (xm + 1.0) * exp(DD(-y0))
        minus_one = xm.hi == -1
        out.hi[mid] = np.where(minus_one, -np.inf, val.hi)
        out.lo[mid] = np.where(minus_one | ~np.isfinite(val.hi), 0.0, val.lo)
    return out


def log(x: DD) -> DD:
    """log x, x > 0: log1p(x - 1) on [1/2, 2) (x - 1 exact); elsewhere x = m 2**e with
    m in [1/2, 1) and log x = log1p(m - 1) + e ln 2 (|log x| >= ln 2/2: no cancellation)."""
    near = (x.hi >= 0.5) & (x.hi < 2.0)
    m, e = np.frexp(np.where(near, 1.0, x.hi))
    e = np.where(near, 0, e)
    scaled = DD(m, np.ldexp(np.where(near, 0.0, x.lo), -e))
    arg = where(near, x - 1.0, scaled - 1.0)
    e = e.astype(np.float64)
    p1, e1 = _two_prod(e, _LN2_1)
    p2, e2 = _two_prod(e, _LN2_2)
    out = log1p(arg) + (DD(p1, e1) + DD(p2, e2) + DD(e * _LN2_3))
    zero = x.hi == 0
    return DD(np.where(zero, -np.inf, out.hi), np.where(zero, 0.0, out.lo))
