"""An independent oracle for the reference: textbook formulas in interval arithmetic.

Written apart from `conformance.reference` and sharing none of its code: every value is
the plain formula (exp(x_i) / sum_j exp(x_j), x_i - log sum_j exp(x_j), -sum_j t_j log p_j,
...) evaluated in `mpmath.iv` interval arithmetic, starting at 200 bits (60 decimal
digits) and doubling the precision until every output interval rounds to a single
float64, confirmed by a second evaluation 64 bits finer. Intervals expose cancellation;
the confirmation covers mpmath's elementary functions, whose directed roundings rest on
a few guard bits and can miss by far more than an ULP at an exact zero.

Logarithms of sums use the log-sum-exp trick with exact differences x_j - max x (a tie
of x_i - max x with a float64 midpoint is then decided by the sign of the tiny log term,
which a plain log(sum exp) at any affordable precision cannot see).

Each function takes one row (1-D float64 arrays, the class axis) and returns a list of
`mpmath.mpf` values (the interval midpoints at the final precision); `to_f64` rounds
them. Masked entries (where=False) and -inf logits are handled by the textbook
conventions (probability 0, log -inf); other special values are not the oracle's job.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import mpmath
import numpy as np
from mpmath import iv, mp

START_BITS = 200  # > 60 significant decimal digits
MAX_BITS = 1 << 15
NINF = mp.mpf("-inf")


def to_f64(v: mpmath.mpf) -> float:
    """The float64 nearest to v (ties to even), subnormals and overflow included."""
    if not isinstance(v, mpmath.mpf):
        v = mp.mpf(v)
    if mp.isnan(v):
        return math.nan
    if mp.isinf(v):
        return math.inf if v > 0 else -math.inf
    if v == 0:
        return 0.0
    if mp.mag(v) < -1100:
        return math.copysign(0.0, v)
    if mp.mag(v) > 1100:
        return math.copysign(math.inf, v)
    sign, man, exp, _ = v._mpf_
    exact = Fraction(-man if sign else man) * (Fraction(2) ** exp)
    try:
        return float(exact)  # Fraction.__float__ is correctly rounded
    except OverflowError:
        return math.copysign(math.inf, v)


def _zero(v) -> bool:
    """Is the interval exactly the point 0?"""
    return all(e == 0 for e in _ends(v))


def _ends(v) -> tuple[mpmath.mpf, mpmath.mpf]:
    """The exact endpoints of an interval."""
    lo, hi = v._mpi_
    return mp.make_mpf(lo), mp.make_mpf(hi)


def _round_interval(v) -> float | None:
    if isinstance(v, float):
        return v
    a, b = (to_f64(e) for e in _ends(v))
    return a if a == b else None


class Undecided(type(mp.mpf(0))):
    """An output the oracle could not round: its interval at MAX_BITS still holds a
    float64 rounding boundary (a value within 2**-MAX_BITS of a midpoint between two
    floats, such as a tie broken only by a term like e^-(2^1023)). Its value is the
    interval's midpoint; `lo` and `hi` are the roundings of its ends, both acceptable."""

    lo: float
    hi: float


def _undecided(v) -> Undecided:
    a, b = _ends(v)
    out = Undecided(sum((a, b)) / 2)
    out.lo, out.hi = to_f64(a), to_f64(b)
    return out


def _solve(f: Callable[[], Sequence]) -> list[mpmath.mpf]:
    """Evaluate f's intervals at rising precision until each rounds to one float64, and a
    second evaluation 64 bits finer rounds the same way (mpmath's interval functions
    keep only ~14 guard bits, so a lone interval is not proof near an exact zero).
    Outputs still unrounded at MAX_BITS come back `Undecided`."""
    bits, prev = START_BITS, None
    while True:
        iv.prec = bits
        outs = list(f())
        rounded = [_round_interval(o) for o in outs]
        if all(r is not None for r in rounded) or bits >= MAX_BITS:
            if prev == rounded or bits >= MAX_BITS:
                with mp.workprec(bits + 8):
                    return [
                        mp.mpf(o)
                        if isinstance(o, float)
                        else (sum(_ends(o)) / 2 if r is not None else _undecided(o))
                        for o, r in zip(outs, rounded, strict=True)
                    ]
            prev, bits = rounded, bits + 64
        else:
            prev, bits = None, bits * 2


def _I(v: float):
    return iv.mpf(float(v))


def _alive(x: np.ndarray, where: np.ndarray | None) -> np.ndarray:
    w = np.ones(len(x), dtype=bool) if where is None else np.asarray(where, dtype=bool)
    return w & (np.asarray(x) > -np.inf)


def _diff(a: float, b: float):
    """The exact a - b (floats can need 2000 bits) enclosed at working precision."""
    return iv.mpf(mp.fsub(mp.mpf(float(a)), mp.mpf(float(b)), exact=True))


def _log_normaliser(x, alive):
    """(m, L) with log sum_j exp(x_j) = m + L: the log-sum-exp trick, L = log(1 + sum of
    exp(x_j - m) over all but one maximal entry), so that a tiny L keeps its digits."""
    idx = [j for j in range(len(x)) if alive[j]]
    k = max(idx, key=lambda j: x[j])
    rest = _sum(iv.exp(_diff(x[j], x[k])) for j in idx if j != k)
    return float(x[k]), iv.log1p(rest)


def _sum(terms):
    total = iv.mpf(0)
    for t in terms:
        total = total + t
    return total


def softmax(x, where=None) -> list[mpmath.mpf]:
    alive = _alive(x, where)

    m = max(float(v) for v, a in zip(x, alive, strict=True) if a)

    def f():
        ex = [iv.exp(_diff(v, m)) if a else None for v, a in zip(x, alive, strict=True)]
        s = _sum(e for e in ex if e is not None)
        return [e / s if e is not None else 0.0 for e in ex]

    return _solve(f)


def log_softmax(x, where=None) -> list[mpmath.mpf]:
    alive = _alive(x, where)

    def f():
        m, L = _log_normaliser(x, alive)
        return [_diff(v, m) - L if a else -math.inf for v, a in zip(x, alive, strict=True)]

    return _solve(f)


def logsumexp(x, where=None, b=None) -> mpmath.mpf:
    alive = _alive(x, where)
    bb = np.ones(len(x)) if b is None else np.asarray(b, dtype=np.float64)
    alive &= bb != 0
    if not alive.any():
        return NINF

    if b is None:

        def f():
            m, L = _log_normaliser(x, alive)
            return [_I(m) + L]
    else:

        def f():
            m = max(float(v) for v, a in zip(x, alive, strict=True) if a)
            s = _sum(_I(c) * iv.exp(_diff(v, m)) for v, c, a in zip(x, bb, alive, strict=True) if a)
            return [_I(m) + iv.log(s)]

    return _solve(f)[0]


def _coef(t, w, eps, k):
    """Interval c_j = w_j ((1 - eps) t_j + eps / k)."""
    out = []
    for j, tj in enumerate(t):
        c = (1 - _I(eps)) * _I(tj) + _I(eps) / k
        out.append(c * _I(w[j]) if w is not None else c)
    return out


def cross_entropy(x, t, w=None, eps=0.0, where=None) -> mpmath.mpf:
    """-sum_j c_j log softmax(x)_j over unmasked classes (masked terms dropped)."""
    alive = _alive(x, where)
    keep = np.ones(len(x), dtype=bool) if where is None else np.asarray(where, dtype=bool)

    def f():
        c = _coef(t, w, eps, len(x))
        m, L = _log_normaliser(x, alive)
        return [
            -_sum(c[j] * (_diff(x[j], m) - L) for j in range(len(x)) if keep[j] and not _zero(c[j]))
        ]

    return _solve(f)[0]


def one_hot(y: int, k: int) -> np.ndarray:
    t = np.zeros(k)
    t[y] = 1.0
    return t


def probability_cross_entropy(p, t, w=None, eps=0.0) -> mpmath.mpf:
    def f():
        c = _coef(t, w, eps, len(p))
        return [-_sum(c[j] * iv.log(_I(p[j])) for j in range(len(p)) if not _zero(c[j]))]

    return _solve(f)[0]


def _sig(x):
    return 1 / (1 + iv.exp(-x))


def _sig_minus(x, zs):
    """sigmoid(x) - zs as ((1 - 2 zs) - zs E) / (2 + E), E = expm1(-x): for zs = 1/2 and
    tiny x, 1 / (1 + exp(-x)) - 1/2 cancels every bit mpmath's exp keeps, and an interval
    of it once rounded to the wrong side of a float64 tie (x = 0x1.586bd19992e56p-1022)."""
    e = iv.expm1(-x)
    return ((1 - 2 * zs) - zs * e) / (2 + e)


def sigmoid_cross_entropy(x, z, eps=0.0) -> list[mpmath.mpf]:
    """Element-wise -(z' log sigmoid(x) + (1 - z') log sigmoid(-x))."""

    def f():
        out = []
        for xv, zv in zip(x, z, strict=True):
            zs = (1 - _I(eps)) * _I(zv) + _I(eps) / 2
            out.append(-(zs * iv.log(_sig(_I(xv))) + (1 - zs) * iv.log(_sig(-_I(xv)))))
        return out

    return _solve(f)


def binary_cross_entropy(p, z, eps=0.0) -> list[mpmath.mpf]:
    """Element-wise -(z' log p + (1 - z') log(1 - p)), zero-weight terms dropped."""

    def f():
        out = []
        for pv, zv in zip(p, z, strict=True):
            zs = (1 - _I(eps)) * _I(zv) + _I(eps) / 2
            a = zs * iv.log(_I(pv)) if not _zero(zs) else iv.mpf(0)
            b = (1 - zs) * iv.log(1 - _I(pv)) if not _zero(1 - zs) else iv.mpf(0)
            out.append(-(a + b))
        return out

    return _solve(f)


# ---------------------------------------------------------------- gradients
def _probs(x, alive):
    m = max(float(v) for v, a in zip(x, alive, strict=True) if a)
    ex = [iv.exp(_diff(v, m)) if a else iv.mpf(0) for v, a in zip(x, alive, strict=True)]
    s = _sum(ex)
    return [e / s for e in ex]


def softmax_vjp(x, g, where=None) -> list[mpmath.mpf]:
    """p_i (g_i - sum_j g_j p_j)."""
    alive = _alive(x, where)

    def f():
        p = _probs(x, alive)
        mean = _sum(_I(g[j]) * p[j] for j in range(len(x)) if alive[j])
        return [p[i] * (_I(g[i]) - mean) if alive[i] else 0.0 for i in range(len(x))]

    return _solve(f)


def log_softmax_vjp(x, g, where=None) -> list[mpmath.mpf]:
    """g_i - p_i sum_j g_j (masked entries take no part and get 0)."""
    alive = _alive(x, where)
    keep = np.ones(len(x), dtype=bool) if where is None else np.asarray(where, dtype=bool)

    def f():
        p = _probs(x, alive)
        gsum = _sum(_I(g[j]) for j in range(len(x)) if keep[j])
        return [_I(g[i]) - p[i] * gsum if keep[i] else 0.0 for i in range(len(x))]

    return _solve(f)


def logsumexp_vjp(x, g, where=None, b=None) -> list[mpmath.mpf]:
    """g b_i exp(x_i) / sum_j b_j exp(x_j)."""
    alive = _alive(x, where)
    bb = np.ones(len(x)) if b is None else np.asarray(b, dtype=np.float64)
    alive &= bb != 0

    m = max(float(v) for v, a in zip(x, alive, strict=True) if a)

    def f():
        t = [
            _I(c) * iv.exp(_diff(v, m)) if a else iv.mpf(0)
            for v, c, a in zip(x, bb, alive, strict=True)
        ]
        s = _sum(t)
        return [_I(g) * ti / s for ti in t]

    return _solve(f)


def cross_entropy_vjp(x, t, g, w=None, eps=0.0, where=None, factor=1) -> list[mpmath.mpf]:
    """g factor (p_i sum_j c_j - c_i) over unmasked classes (0 at masked ones)."""
    alive = _alive(x, where)
    keep = np.ones(len(x), dtype=bool) if where is None else np.asarray(where, dtype=bool)

    def f():
        c = [ci if keep[j] else iv.mpf(0) for j, ci in enumerate(_coef(t, w, eps, len(x)))]
        p = _probs(x, alive)
        C = _sum(c)
        fac = (
            _I(g) * iv.mpf(factor)
            if not isinstance(factor, tuple)
            else (_I(g) * iv.mpf(factor[0]) / iv.mpf(factor[1]))
        )
        return [fac * (p[i] * C - c[i]) if keep[i] else 0.0 for i in range(len(x))]

    return _solve(f)


def probability_cross_entropy_vjp(p, t, g, w=None, eps=0.0) -> list[mpmath.mpf]:
    def f():
        c = _coef(t, w, eps, len(p))
        return [-_I(g) * c[j] / _I(p[j]) if not _zero(c[j]) else 0.0 for j in range(len(p))]

    return _solve(f)


def sigmoid_cross_entropy_vjp(x, z, g, eps=0.0) -> list[mpmath.mpf]:
    """g (sigmoid(x) - z')."""

    def f():
        return [
            _I(gv) * _sig_minus(_I(xv), (1 - _I(eps)) * _I(zv) + _I(eps) / 2)
            for xv, zv, gv in zip(x, z, g, strict=True)
        ]

    return _solve(f)


def binary_cross_entropy_vjp(p, z, g, eps=0.0) -> list[mpmath.mpf]:
    """g (-z'/p + (1 - z')/(1 - p))."""

    def f():
        out = []
        for pv, zv, gv in zip(p, z, g, strict=True):
            zs = (1 - _I(eps)) * _I(zv) + _I(eps) / 2
            a = -zs / _I(pv) if not _zero(zs) else iv.mpf(0)
            b = (1 - zs) / (1 - _I(pv)) if not _zero(1 - zs) else iv.mpf(0)
            out.append(_I(gv) * (a + b))
        return out

    return _solve(f)


# ---------------------------------------------------------------- comparing with the oracle
STATS: dict[str, int] = {}
"""Largest float64 ULP distance seen per key (written to $REFERENCE_ERROR_STATS at exit)."""


def ulp_distance(a: float, b: float) -> int:
    """Float64 values strictly between a and b, plus one (0 when equal; +-0 are equal)."""
    a, b = float(a), float(b)
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0
    if math.isnan(a) or math.isnan(b):
        return 1 << 64

    def key(v: float) -> int:
        i = int(np.array(v, dtype=np.float64).view(np.int64))
        return i if i >= 0 else -(i & 0x7FFFFFFFFFFFFFFF)

    return abs(key(a) - key(b))


def ulp_error(ref_value: float, exact: mpmath.mpf) -> int:
    """ULP distance of a float64 from the correct rounding of `exact`; for an `Undecided`
    value, from the nearer end of the floats its interval rounds to (0 inside)."""
    if not isinstance(exact, Undecided):
        return ulp_distance(ref_value, to_f64(exact))
    lo, hi = sorted((exact.lo, exact.hi))
    if lo <= float(ref_value) <= hi:
        return 0
    return min(ulp_distance(ref_value, lo), ulp_distance(ref_value, hi))


def target_ulp(v: mpmath.mpf, dtype) -> mpmath.mpf:
    """The spacing of `dtype` around the exact value v (its subnormal spacing near 0)."""
    import ml_dtypes

    dt = np.dtype(dtype)
    info = ml_dtypes.finfo(dt) if dt.name == "bfloat16" else np.finfo(dt)
    p, emin = int(info.nmant) + 1, int(info.minexp)
    e = emin if v == 0 else max(int(mp.floor(mp.log(abs(v), 2))), emin)
    return mp.mpf(2) ** (e - p + 1)


def check(ref_value: float, exact: mpmath.mpf, dtype, key: str) -> int:
    """Assert the reference's accuracy contract for `dtype` and record the ULP distance.

    float64 targets: within 1 float64 ULP of the exact value's correct rounding.
    Narrower targets: within 2**-8 ULP of the target format."""
    want = to_f64(exact)
    dist = ulp_error(ref_value, exact)
    narrow = np.dtype(dtype).name != "float64"
    tag = f"{key}/{'tier1' if narrow else 'float64'}"
    STATS[tag] = max(STATS.get(tag, 0), dist)
    if not math.isfinite(want) or not math.isfinite(float(ref_value)):
        assert dist == 0, f"{key}: reference {ref_value!r}, exact {want!r}"
        return dist
    if not narrow:
        assert dist <= 1, f"{key}: reference {ref_value!r} is {dist} ULP from {want!r}"
    else:
        with mp.workprec(300):
            err = abs(mp.mpf(float(ref_value)) - exact)
            tol = target_ulp(exact, dtype) * mp.mpf(2) ** -8
        assert err <= tol, f"{key}: {ref_value!r} vs {want!r}: error {err} > {tol} ({dtype})"
    return dist


def _dump_stats() -> None:
    import json
    import os

    path = os.environ.get("REFERENCE_ERROR_STATS")
    if path and STATS:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(STATS, sort_keys=True) + "\n")


import atexit  # noqa: E402

atexit.register(_dump_stats)
