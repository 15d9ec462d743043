"""Working precisions of the reference: backends, error bounds, rounding, the Ziv loop.

Four interchangeable *backends* run the same kernels (see `_reference_kernels`):

* `F64`: numpy float64, unit roundoff u = 2**-53 (tier 1, targets narrower than float64);
* `LD`: numpy longdouble where it is wider than double (x87 80-bit: u = 2**-64; tier 2);
* `DD`: double-double on float64 pairs (`_dd`, about 106 bits, u taken as 2**-102; tier 2b);
* `MP`: numpy object arrays of `mpmath` intervals at a settable precision (tier 3).

The first three also return an absolute error bound per output; `MP` results are
enclosures, refined by Ziv's method: the precision doubles until an element's interval
rounds to a single float64 at two consecutive precisions (the second guards against
mpmath's elementary functions, whose directed roundings rest on a few guard bits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import mpmath
import numpy as np
from mpmath.ctx_iv import MPIntervalContext

from conformance import _dd

WIDE_LONGDOUBLE: bool = np.finfo(np.longdouble).nmant >= 63
"""True where np.longdouble carries at least 64 significand bits (x86-64 Linux)."""

USE_LONGDOUBLE: bool = WIDE_LONGDOUBLE
"""Module switch: tier 2 runs in longdouble when True, else rows go to mpmath directly.
Tests set it to False to exercise the path taken on platforms without a wide longdouble."""

USE_DOUBLE_DOUBLE: bool = True
"""Module switch: the double-double tier runs between longdouble and mpmath."""

TIER1_TOLERANCE = 2.0**-8
"""Tier 1 (targets narrower than float64) accepts a bound of at most this many target ULPs."""
TIER2_TOLERANCE = 0.25
"""Tier 2 accepts a bound of at most this many float64 ULPs (+0.5 ULP final rounding < 1)."""
MP_START_BITS = 96
MP_MAX_BITS = 1 << 14
"""Ziv gives up refining at this precision and returns the last rounding."""

_MP = mpmath.MPContext()
_IV = MPIntervalContext()
_F64_TINY = 2.0**-1074


@dataclass(frozen=True)
class Backend:
    """One working precision: numpy arrays of `dtype`, `_dd.DD` pairs, or mpmath objects."""

    name: str
    dtype: type
    u: float
    """Unit roundoff (0 for mpmath: its results are checked by Ziv, not bounded)."""
    fn_err: float
    """Assumed error of exp/log/log1p in units of u (checked by the test suite)."""
    floor: float
    """Absolute error added to every bound: gradual underflow of intermediate results."""
    kind: str = "float"
    """'float' (numpy dtype), 'dd' (double-double) or 'mp' (mpmath intervals)."""

    @property
    def is_mp(self) -> bool:
        return self.kind == "mp"

    @property
    def exact_diff(self) -> bool:
        """`two_diff` returns the exact difference in `hi` (and 0 in `lo`)."""
        return self.kind != "float"

    def arr(self, a: np.ndarray | float):
        """Float64 values into this backend, exactly (float64 arrays are not copied)."""
        a = np.asarray(a, dtype=np.float64)
        if self.kind == "mp":
            return _to_mp(a)
        if self.kind == "dd":
            return _dd.DD(a)
        return a if self.dtype is np.float64 else a.astype(self.dtype)

    def const(self, v: float | int | Fraction):
        """A scalar of this backend (Fractions rounded; enclosed for mpmath)."""
        if self.kind == "mp":
            if isinstance(v, Fraction):
                return _IV.mpf(v.numerator) / v.denominator
            return _IV.mpf(v)
        if self.kind == "dd":
            return _dd.const(v)
        return self.dtype(float(v))

    def exp(self, a):
        return {"mp": _mp_exp, "dd": _dd.exp}.get(self.kind, np.exp)(a)

    def log(self, a):
        return {"mp": _mp_log, "dd": _dd.log}.get(self.kind, np.log)(a)

    def log1p(self, a):
        return {"mp": _mp_log1p, "dd": _dd.log1p}.get(self.kind, np.log1p)(a)

    def where(self, cond, a, b):
        return _dd.where(cond, a, b) if self.kind == "dd" else np.where(cond, a, b)

    def maximum(self, a, b):
        return _dd.maximum(a, b) if self.kind == "dd" else np.maximum(a, b)

    def full(self, shape: tuple[int, ...], v):
        if self.kind == "dd":
            return _dd.full(shape, v)
        return np.full(shape, v, dtype=object if self.kind == "mp" else self.dtype)

    def two_diff(self, a, b):
        """(hi, lo) with hi + lo = a - b exactly (Knuth's TwoSum; exact subtraction in
        mpmath; for double-double, a - b to its accuracy, exact for float64 inputs)."""
        if self.kind == "mp":
            diff = _iv_sub(a, b)
            return diff, np.full(diff.shape, _IV.mpf(0), dtype=object)
        if self.kind == "dd":
            diff = a - b
            return diff, _dd.DD(np.zeros(diff.shape))
        s = a - b
        bb = s - a
        lo = s - bb
        np.subtract(a, lo, out=lo)
        bb += b
        lo -= bb
        return s, lo

    def sum(self, a):
        """Pairwise sum over the last axis: depth ceil(log2 n), error <= depth*u*sum|a|."""
        return pairwise_sum(a)

    def depth(self, n: int) -> int:
        """Rounding steps an element of an n-term pairwise sum goes through."""
        return max(0, math.ceil(math.log2(n))) if n > 1 else 0


F64 = Backend("float64", np.float64, 2.0**-53, fn_err=4.0, floor=4 * _F64_TINY)
LD = Backend(
    "longdouble",
    np.longdouble,
    float(np.finfo(np.longdouble).eps) / 2,
    fn_err=8.0,
    floor=4 * float(np.finfo(np.longdouble).smallest_subnormal)
    if WIDE_LONGDOUBLE
    else 4 * _F64_TINY,
)
DD = Backend("double-double", np.float64, 2.0**-102, fn_err=16.0, floor=2.0**-960, kind="dd")
"""u = 2**-102 covers one double-double operation (each is within 2**-103); the floor
covers the lost relative accuracy of the low parts below 2**-969."""
MP = Backend("mpmath", object, 0.0, fn_err=0.0, floor=0.0, kind="mp")


def tier2() -> Backend | None:
    """The tier-2 backend, or None when rows go straight to mpmath."""
    return LD if (USE_LONGDOUBLE and WIDE_LONGDOUBLE) else None


def float_tiers(narrow: bool) -> list[Backend]:
    """The bounded tiers a row goes through before mpmath, in order."""
    tiers = [F64] if narrow else []
    if USE_LONGDOUBLE and WIDE_LONGDOUBLE:
        tiers.append(LD)
    if USE_DOUBLE_DOUBLE:
        tiers.append(DD)
    return tiers


def pairwise_sum(a):
    """Sum over the last axis by halving; every term meets at most ceil(log2 n) additions.

    For every backend's arrays: float, object (mpmath intervals) and `_dd.DD`."""
    n = a.shape[-1]
    if n == 0:
        if isinstance(a, _dd.DD):
            return _dd.DD(np.zeros(a.shape[:-1]))
        out = np.zeros(a.shape[:-1], dtype=a.dtype)
        if a.dtype == object:
            out[...] = _IV.mpf(0)
        return out
    if n == 1:
        return a[..., 0].copy()
    while n > 1:
        h = n // 2
        if n % 2:
            s = a[..., : h + 1].copy()
            s[..., :h] = s[..., :h] + a[..., h + 1 :]
        else:
            s = a[..., :h] + a[..., h:]
        a, n = s, s.shape[-1]
    return a[..., 0]


# ---------------------------------------------------------------- mpmath helpers
_LOG2E_LO, _LOG2E_HI = 1.4426950408889633, 1.4426950408889635


def _exp_one(v):
    """exp of an interval; far below -2**16 a cheap enclosure by powers of two (mpmath
    would raise e to a huge integer power, and the value is < 2**-94000 anyway)."""
    hi = _MP.make_mpf(v._mpi_[1])
    if hi < -65536 and _MP.isfinite(hi):
        lo = _MP.make_mpf(v._mpi_[0])
        with _MP.workprec(64):
            a = int(_MP.floor(lo * _LOG2E_HI)) - 2 if _MP.isfinite(lo) else None
            b = int(_MP.ceil(hi * _LOG2E_LO)) + 2
        top = _MP.ldexp(1, b)
        return _IV.mpf([0 if a is None else _MP.ldexp(1, a), top])
    return _IV.exp(v)


_mp_exp = np.frompyfunc(_exp_one, 1, 1)
_mp_log = np.frompyfunc(lambda v: _IV.log(v), 1, 1)
_mp_log1p = np.frompyfunc(lambda v: _IV.log1p(v), 1, 1)
_mp_from_float = np.frompyfunc(lambda v: _IV.mpf(float(v)), 1, 1)


def _sub_one(a, b):
    """a - b for intervals; of two points, the exact difference enclosed at working
    precision (x - max x can need 2000 bits; rounding it once keeps intervals tight)."""
    (a0, a1), (b0, b1) = a._mpi_, b._mpi_
    if a0 == a1 and b0 == b1:
        return _IV.mpf(_MP.fsub(_MP.make_mpf(a0), _MP.make_mpf(b0), exact=True))
    return a - b


_iv_sub = np.frompyfunc(_sub_one, 2, 1)


def _to_mp(a: np.ndarray) -> np.ndarray:
    out = _mp_from_float(a)
    return np.asarray(out, dtype=object)


def mpf(v: float | int | Fraction) -> mpmath.mpf:
    """A number in the reference's mpmath context (Fractions rounded to its precision)."""
    if isinstance(v, Fraction):
        return _MP.mpf(v.numerator) / v.denominator
    return _MP.mpf(v)


def round_mpf(v: mpmath.mpf) -> float:
    """Correctly rounded float64 of an mpmath number (subnormals and overflow included)."""
    if _MP.isnan(v):
        return math.nan
    if _MP.isinf(v):
        return math.inf if v > 0 else -math.inf
    sign, man, exp, bc = v._mpf_
    if man == 0:
        return 0.0
    if exp + bc < -1080:
        r = 0.0
    elif exp + bc > 1030:
        r = math.inf
    else:
        try:  # CPython rounds int -> float and int / int correctly, subnormals included
            r = float(man << exp) if exp >= 0 else man / (1 << -exp)
        except OverflowError:
            r = math.inf
    return -r if sign else r


def _ends(v) -> tuple[mpmath.mpf, mpmath.mpf]:
    if isinstance(v, int | float):
        return _MP.mpf(v), _MP.mpf(v)
    lo, hi = v._mpi_
    return _MP.make_mpf(lo), _MP.make_mpf(hi)


def _round_ends(v) -> tuple[float, float]:
    lo, hi = _ends(v)
    return round_mpf(lo), round_mpf(hi)


_round_ends_u = np.frompyfunc(_round_ends, 1, 2)


def interval_to_f64(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correctly rounded float64 of both ends of each interval."""
    lo, hi = _round_ends_u(np.asarray(a, dtype=object))
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


def _mid(v) -> mpmath.mpf:
    lo, hi = _ends(v)
    if lo == hi or not (_MP.isfinite(lo) and _MP.isfinite(hi)):
        return lo if lo == hi else _MP.nan
    with _MP.workprec(_IV.prec + 8):
        return (lo + hi) / 2


_mid_u = np.frompyfunc(_mid, 1, 1)
_round_u = np.frompyfunc(round_mpf, 1, 1)


def mp_to_dd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intervals as (hi, lo) float64 pairs of their midpoints: hi correctly rounded."""
    mid = np.asarray(_mid_u(np.asarray(a, dtype=object)), dtype=object)
    hi = np.asarray(_round_u(mid), dtype=np.float64)
    fin = np.isfinite(hi)
    rest = np.frompyfunc(
        lambda m, h: _MP.fsub(m, h, exact=True) if math.isfinite(h) else _MP.zero, 2, 1
    )(mid, hi)
    lo = np.where(fin, np.asarray(_round_u(rest), dtype=np.float64), 0.0)
    return hi, lo


def ld_to_dd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """longdouble values as exact (hi, lo) float64 pairs (64 bits fit in 2 x 53)."""
    a = np.asarray(a)
    hi = a.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        lo = np.where(np.isfinite(hi), (a - hi.astype(a.dtype)).astype(np.float64), 0.0)
    return hi, lo


def dd_to_ld(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    return np.asarray(hi).astype(np.longdouble) + np.asarray(lo).astype(np.longdouble)


def exact_sum(parts: np.ndarray) -> Fraction:
    """The exact sum of float64 values (finite) as a Fraction."""
    total = Fraction(0)
    for v in np.asarray(parts, dtype=np.float64).ravel().tolist():
        if v:
            total += Fraction(v)
    return total


def dd_sum(hi: np.ndarray, lo: np.ndarray) -> tuple[float, float, int]:
    """The sum of double-double values as (s1, s2, e): sum = (s1 + s2) * 2**e with
    error <= 2**-105 |sum| (plus 2**-1000 |terms| when rescaled against overflow)."""
    parts = np.concatenate([np.ravel(hi), np.ravel(lo)])
    try:
        s1 = math.fsum(parts.tolist())
        if math.isfinite(s1):
            return s1, math.fsum([*parts.tolist(), -s1]), 0
    except OverflowError:
        pass
    scaled = np.ldexp(parts, -64).tolist()
    s1 = math.fsum(scaled)
    return s1, math.fsum([*scaled, -s1]), 64


def fraction_to_dd(v: Fraction) -> tuple[float, float]:
    hi = float(v)
    if not math.isfinite(hi):
        return hi, 0.0
    return hi, float(v - Fraction(hi))


# ---------------------------------------------------------------- ULPs and tolerances
def ulp_lower(v: np.ndarray, precision: int, min_exponent: int) -> np.ndarray:
    """A conservative ULP of |v| in a binary format: that of the binade below when |v|
    sits within 2**-40 above a power of two; the subnormal spacing at and below emin."""
    a = np.abs(np.asarray(v, dtype=np.float64)) * (1 - 2.0**-40)
    with np.errstate(invalid="ignore"):
        _, e = np.frexp(np.where(np.isfinite(a), a, 0.0))
    e = np.where(a == 0, min_exponent + 1, e)
    e = np.maximum(e - 1, min_exponent)
    return np.ldexp(1.0, e - (precision - 1))


def tolerance(v: np.ndarray, target_precision: int, target_min_exponent: int) -> np.ndarray:
    """The largest accepted error bound for an approximate value v of the exact result."""
    if target_precision >= 53:
        return TIER2_TOLERANCE * ulp_lower(v, 53, -1022)
    return TIER1_TOLERANCE * ulp_lower(v, target_precision, target_min_exponent)


def accepted(
    value: np.ndarray, bound: np.ndarray, target_precision: int, target_min_exponent: int
) -> np.ndarray:
    """Element-wise: does the bound guarantee the tier's accuracy for this target?

    A cheap relative test first (every ULP is at least 2**-p |v| / 2), the exact
    conservative ULP only for the elements it does not settle."""
    if target_precision >= 53:
        rel = TIER2_TOLERANCE * 2.0**-54
    else:
        rel = TIER1_TOLERANCE * 2.0 ** -(target_precision + 1)
    with np.errstate(invalid="ignore", over="ignore"):
        cheap = np.abs(value)
        cheap *= rel
        ok = bound <= cheap
        ok &= np.isfinite(value)
        ok |= np.isinf(value) & (bound == 0)  # exact infinities (log 0 at masked entries)
        if ok.all():
            return ok
        rest = ~ok & np.isfinite(value) & np.isfinite(bound)
        if rest.any():
            v, b = value[rest], bound[rest]
            ok[rest] = b <= tolerance(v, target_precision, target_min_exponent)
    return ok


# ---------------------------------------------------------------- Ziv's loop
def ziv(
    evaluate_rows: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray,
    need: np.ndarray,
    start_bits: int = MP_START_BITS,
) -> tuple[np.ndarray, np.ndarray]:
    """Correctly rounded float64 values by Ziv's method on interval enclosures.

    `evaluate_rows(ids)` returns an object array (len(ids), n_out) of mpmath intervals
    computed at the reference's current interval precision. The elements flagged in
    `need` are re-evaluated at doubling precision until their interval rounds to one
    float64 at two consecutive precisions, the same one both times (or MP_MAX_BITS is
    reached: then the last midpoint's rounding). Returns the float64 values and the
    last intervals."""
    rows = np.asarray(rows)
    need = np.array(need, dtype=bool, copy=True)
    out_f = np.full(need.shape, np.nan)
    out_m = np.full(need.shape, _IV.mpf(0), dtype=object)
    prev = np.full(need.shape, np.nan)
    prev_ok = np.zeros(need.shape, dtype=bool)
    todo = np.flatnonzero(need.any(axis=1))
    bits = max(start_bits, 64)
    old = _IV.prec
    try:
        while todo.size:
            _IV.prec = bits
            vals = np.asarray(evaluate_rows(rows[todo]), dtype=object).reshape(
                (len(todo), need.shape[1])
            )
            lo, hi = interval_to_f64(vals)
            with np.errstate(invalid="ignore"):
                one = (lo == hi) | (np.isnan(lo) & np.isnan(hi))
                cur = np.where(one, lo, np.nan)
                same = (
                    one
                    & prev_ok[todo]
                    & ((cur == prev[todo]) | (np.isnan(cur) & np.isnan(prev[todo])))
                )
            if bits >= MP_MAX_BITS:
                cur = np.where(one, cur, mp_to_dd(vals)[0])
                same = np.ones_like(same)
            acc = need[todo] & same
            out_f[todo] = np.where(acc, cur, out_f[todo])
            out_m[todo] = np.where(acc, vals, out_m[todo])
            need[todo] &= ~acc
            prev[todo], prev_ok[todo] = cur, one
            todo = todo[need[todo].any(axis=1)]
            bits *= 2
    finally:
        _IV.prec = old
    return out_f, out_m


def mp_context() -> mpmath.ctx_mp.MPContext:
    """The reference's private mpmath context (exact steps and final roundings)."""
    return _MP


def iv_context() -> MPIntervalContext:
    """The reference's private interval context (its precision is set by `ziv`)."""
    return _IV
