"""Measuring error: distances in ULPs of the dtype under test.

Two views of the same error, both kept (docs/error-model.md):

* strict ULP: how many representable numbers of the target dtype lie between the
  computed value and the correctly rounded exact value (an integer; 0 means correctly
  rounded);
* ULP error: |computed - exact| / ulp(exact), the fractional distance in units of the
  spacing of the target format at the exact value (Goldberg's ulp of a real number).

Both treat +0 and -0 as equal, count subnormals with the subnormal spacing, and
compare infinities and NaNs as values: equal specials are distance 0, any other
mismatch is infinitely far.
"""

from __future__ import annotations

import numpy as np

from conformance.dtypes import as_dtype, float_format

_UINT_FOR_SIZE = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def round_to(exact: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """The float64 values `exact` correctly rounded (to nearest, ties to even) to `dtype`.

    numpy rounds float64 to float32 and float16 directly; ml_dtypes rounds float64 to
    bfloat16 through float32, a double rounding (1 + 2**-8 + 2**-30 becomes 1, not
    1 + 2**-7). For bfloat16 we round to float32 *to odd* first, which has enough
    extra bits that the second rounding is correct (Boldo and Melquiond, 2008).
    """
    dt = as_dtype(dtype)
    x = np.asarray(exact, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if dt.name != "bfloat16":
            return x.astype(dt)
        return _float32_round_to_odd(x).astype(dt)


def _float32_round_to_odd(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 rounding toward zero, then the last bit set if that was inexact."""
    nearest = x.astype(np.float32)
    overshot = np.abs(nearest.astype(np.float64)) > np.abs(x)
    toward_zero = np.where(overshot, np.nextafter(nearest, np.float32(0)), nearest)
    inexact = np.isfinite(x) & (toward_zero.astype(np.float64) != x)
    bits = np.ascontiguousarray(toward_zero, dtype=np.float32).view(np.uint32)
    odd = np.where(inexact.reshape(bits.shape), bits | np.uint32(1), bits).astype(np.uint32)
    return odd.view(np.float32).reshape(x.shape)  # ascontiguousarray made 0-d arrays 1-d


def ulp(exact: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """ulp of each real value in `dtype`'s format: 2**(max(e, emin) - p + 1), e = floor(log2|x|).

    Zero has the smallest subnormal spacing; values beyond the largest finite number
    keep the spacing of the top binade; infinities and NaN give NaN.
    """
    fmt = float_format(dtype)
    x = np.abs(np.asarray(exact, dtype=np.float64))
    _, exponent = np.frexp(x)  # x = mantissa * 2**exponent, mantissa in [0.5, 1)
    e = np.where(x == 0, fmt.min_exponent, exponent.astype(np.int64) - 1)
    e = np.maximum(e, fmt.min_exponent)
    max_exponent = int(np.frexp(fmt.max)[1]) - 1
    e = np.minimum(e, max_exponent)
    spacing = np.ldexp(1.0, e - fmt.precision + 1)
    return np.where(np.isfinite(x), spacing, np.nan)


def _ordinal(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Map floats of `dtype` to integers whose order and differences count representable
    numbers (the sign-magnitude to two's-complement fold; -0 and +0 map to 0)."""
    values = np.asarray(values, dtype=dtype)
    bits = np.ascontiguousarray(values).view(_UINT_FOR_SIZE[dtype.itemsize]).reshape(values.shape)
    unsigned = bits.dtype.type  # shift and mask in the bits' own type: NumPy 1 promotes
    magnitude_bits = 8 * dtype.itemsize - 1  # a 0-d uint64 with a Python int to float64
    sign = (bits >> unsigned(magnitude_bits)).astype(bool)
    magnitude = (bits & unsigned((1 << magnitude_bits) - 1)).astype(np.int64)
    return np.where(sign, -magnitude, magnitude)


def _specials(computed: np.ndarray, exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(special, agree): where either side is not finite, and whether both are the same special."""
    c = np.asarray(computed, dtype=np.float64)
    special = ~np.isfinite(c) | ~np.isfinite(exact)
    agree = (np.isnan(c) & np.isnan(exact)) | (np.isinf(c) & (c == exact))
    return special, agree


def strict_ulp(computed: np.ndarray, exact: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """Representable numbers between `computed` and the correctly rounded `exact` (float64).

    `computed` holds values of `dtype` (any array convertible to it exactly); `exact`
    is the reference. Returns float64: integers, 0 where equal, inf on special mismatch.
    An exact value that rounds to infinity in `dtype` matches an infinite result.
    """
    dt = as_dtype(dtype)
    exact = np.asarray(exact, dtype=np.float64)
    rounded = round_to(exact, dt)
    with np.errstate(over="ignore"):  # a wider output cast to the dtype may overflow: inf
        comp = np.asarray(computed).astype(dt)
    special, agree = _specials(comp, rounded.astype(np.float64))
    distance = np.abs(_ordinal(comp, dt) - _ordinal(rounded, dt)).astype(np.float64)
    return np.where(special, np.where(agree, 0.0, np.inf), distance)


def ulp_error(computed: np.ndarray, exact: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """|computed - exact| / ulp(exact) in `dtype` (float64; fractional).

    An infinite result where the exact value rounds to that infinity counts as 0.
    """
    dt = as_dtype(dtype)
    exact = np.asarray(exact, dtype=np.float64)
    comp = np.asarray(computed).astype(dt).astype(np.float64)
    rounded = round_to(exact, dt).astype(np.float64)
    special, agree = _specials(comp, exact)
    overflow_match = np.isinf(comp) & (comp == rounded)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(comp - exact) / ulp(exact, dt)
    return np.where(special, np.where(agree | overflow_match, 0.0, np.inf), err)


def flushed(computed: np.ndarray, exact: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """Where a result whose correct rounding is a nonzero subnormal came back as zero (FTZ)."""
    fmt = float_format(dtype)
    with np.errstate(over="ignore"):
        comp = np.asarray(computed).astype(fmt.dtype).astype(np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    rounded = round_to(exact, fmt.dtype).astype(np.float64)
    return (comp == 0) & (rounded != 0) & (np.abs(exact) < fmt.smallest_normal)
