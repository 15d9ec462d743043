"""The reference's result types and its tiered (Ziv-style) evaluation of row kernels."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from conformance import _precision as P
from conformance._reference_kernels import Rows
from conformance.dtypes import FloatFormat


class Undefined(enum.IntEnum):
    """Why the reference gives no number (its value is NaN there), per output element."""

    DEFINED = 0
    NAN_INPUT = 1
    """A NaN among the inputs the element depends on."""
    FULLY_MASKED = 2
    """Every entry of the row is -inf or masked out, so the value is 0/0 or -inf - -inf."""
    INDETERMINATE_INF = 3
    """Two or more +inf logits in a row (inf/inf), or a +inf next to a -inf label term."""
    INVALID_LABEL = 4
    """An integer label outside [0, K) that is not the ignore index."""
    INVALID_PROBABILITY = 5
    """A probability outside [0, 1] where its logarithm is needed."""
    NO_WEIGHT = 6
    """A weighted mean over zero total weight (every example ignored or weighted 0),
    or a mean over no element at all."""


PRIORITY: tuple[Undefined, ...] = (
    Undefined.NAN_INPUT,
    Undefined.INVALID_LABEL,
    Undefined.INVALID_PROBABILITY,
    Undefined.INDETERMINATE_INF,
    Undefined.FULLY_MASKED,
    Undefined.NO_WEIGHT,
)
"""When several reasons apply, the first one in this order is reported."""


@dataclass(frozen=True)
class Exact:
    """A reference result: float64 values and, per element, why a value is missing."""

    value: np.ndarray
    """float64; NaN exactly where `undefined` is not DEFINED."""
    undefined: np.ndarray
    """uint8 codes of `Undefined`, the shape of `value`."""


def first_code(codes: np.ndarray) -> int:
    """The most relevant code among `codes` (DEFINED when all are)."""
    present = set(np.unique(codes).tolist())
    for c in PRIORITY:
        if int(c) in present:
            return int(c)
    return 0


def merge_codes(*codes: np.ndarray) -> np.ndarray:
    """Element-wise: the most relevant of several code arrays."""
    out = np.zeros(np.broadcast(*codes).shape, dtype=np.uint8)
    for c in reversed(PRIORITY):
        for arr in codes:
            out = np.where(arr == int(c), np.uint8(c), out)
    return out


_OVERFLOW = np.ldexp(np.longdouble(2**54 - 1), 970)  # float64 max + ulp/2: rounds to inf
Kernel = Callable[[P.Backend, Rows], tuple[np.ndarray, np.ndarray | None]]
ZeroTest = Callable[[Rows], np.ndarray]


def _split(B: P.Backend, v) -> tuple[np.ndarray, np.ndarray | None]:
    if B.is_mp:
        return P.mp_to_dd(v)
    if B.kind == "dd":
        return v.hi, v.lo
    if B.dtype is np.float64:
        return np.asarray(v, dtype=np.float64), None
    return P.ld_to_dd(v)


def tiered(
    kernel: Kernel, R: Rows, n_out: int, fmt: FloatFormat, zero_test: ZeroTest | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate `kernel` on every row, escalating rows whose bound misses the tolerance;
    an escalated row keeps the elements an earlier tier settled (each element's bound is
    its own guarantee), so a wide-range row that longdouble settles but for a few tied
    maxima does not lose its underflowing elements to double-double's narrower range.

    Returns (hi, lo, bound): hi is the float64 result, hi + lo the working-precision
    value and `bound` an absolute error bound of hi + lo (2**-100 |hi| after Ziv)."""
    n = R.n
    if n == 0 or n_out == 0:
        return np.zeros((n, n_out)), np.zeros((n, n_out)), np.zeros((n, n_out))
    prec, emin = fmt.precision, fmt.min_exponent
    tiers = P.float_tiers(prec < 53)
    hi = lo = bound = done = None
    pending = np.arange(n)
    for B in tiers:
        if not pending.size:
            break
        sub = R if hi is None else R.take(pending)
        with np.errstate(all="ignore"):
            v, b = kernel(B, sub)
            vh, vl = _split(B, v)
        ok = P.accepted(vh, b, prec, emin)
        if B.kind == "float" and np.isinf(vh).any():  # overflow: inf when even |v| - bound rounds
            with np.errstate(all="ignore"):  # up (4 b: bounds use clipped magnitudes)
                ok |= np.isinf(vh) & (np.abs(v) - 4 * b.astype(B.dtype) >= _OVERFLOW)
        if hi is None:  # the first tier sees every row: its arrays become the result
            hi, lo, bound, done = vh, vl, b, ok
        else:  # a later tier replaces only the elements no earlier tier settled
            if lo is None:
                lo = np.zeros((n, n_out))
            kept = done[pending]
            hi[pending] = np.where(kept, hi[pending], vh)
            bound[pending] = np.where(kept, bound[pending], b)
            lo[pending] = np.where(kept, lo[pending], 0.0 if vl is None else vl)
            done[pending] = kept | ok
        pending = pending[~done[pending].all(axis=1)]
    if hi is None:
        hi, bound = np.full((n, n_out), np.nan), np.full((n, n_out), np.inf)
    if lo is None:
        lo = np.zeros((n, n_out))
    if not pending.size:
        return hi, lo, bound
    need = ~P.accepted(hi[pending], bound[pending], prec, emin)
    if zero_test is not None:
        zero = zero_test(R.take(pending)) & need
        hi[pending] = np.where(zero, 0.0, hi[pending])
        lo[pending] = np.where(zero, 0.0, lo[pending])
        bound[pending] = np.where(zero, 0.0, bound[pending])
        need &= ~zero

    def run(ids: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return kernel(P.MP, R.take(ids))[0]

    vf, vm = P.ziv(run, pending, need)
    _, ml = P.mp_to_dd(np.where(need, vm, P.MP.const(0)))
    hi[pending] = np.where(need, vf, hi[pending])
    lo[pending] = np.where(need, ml, lo[pending])
    bound[pending] = np.where(need, np.abs(vf) * 2.0**-100, bound[pending])
    return hi, lo, bound
