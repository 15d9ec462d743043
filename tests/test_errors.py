"""ULP measurement: exact rounding, distances, specials, subnormals."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.dtypes import FLOAT_DTYPES, as_dtype, float_format
from conformance.errors import flushed, round_to, strict_ulp, ulp, ulp_error


def rounded_by_fractions(x: float, dtype: str) -> float:
    """Round-to-nearest-even of x into dtype's format, in exact rational arithmetic."""
    fmt = float_format(dtype)
    if x == 0 or not math.isfinite(x):
        return x
    exact = Fraction(x)
    e = max(math.floor(math.log2(abs(x))), fmt.min_exponent)
    if Fraction(2) ** e > abs(exact):  # log2 rounded up across a binade edge
        e = max(e - 1, fmt.min_exponent)
    quantum = Fraction(2) ** (e - fmt.precision + 1)
    n = exact / quantum
    low = math.floor(n)
    rest = n - low
    k = low + 1 if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and low % 2) else low
    value = k * quantum
    top = Fraction(fmt.max) + Fraction(2) ** (math.frexp(fmt.max)[1] - 1 - fmt.precision)
    if abs(value) >= top or abs(exact) >= top:
        return math.copysign(math.inf, x)
    return math.copysign(float(value), x) if value == 0 else float(value)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@settings(max_examples=2000, deadline=None)
@given(x=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_round_to_is_correct_rounding(dtype: str, x: float) -> None:
    got = float(round_to(np.array([x]), dtype)[0])
    assert got == rounded_by_fractions(x, dtype) or (got == 0 and x == 0)


def test_bfloat16_double_rounding_is_avoided() -> None:
    x = np.array([1 + 2**-8 + 2**-30])
    assert float(np.float32(x[0]).astype(ml_dtypes.bfloat16)) == 1.0  # the trap
    assert float(round_to(x, "bfloat16")[0]) == 1 + 2**-7


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_neighbours_are_one_ulp_apart(dtype: str) -> None:
    fmt = float_format(dtype)
    values = np.array([1.0, -3.5, fmt.smallest_normal, fmt.smallest_subnormal, fmt.max / 3])
    for v in values:
        a = np.array([v], dtype=as_dtype(dtype))
        exact = a.astype(np.float64)
        b = exact + ulp(exact, dtype)
        assert strict_ulp(a, b, dtype)[0] == 1
        assert ulp_error(a, b, dtype)[0] == 1.0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_signed_zeros_subnormals_and_specials(dtype: str) -> None:
    fmt = float_format(dtype)
    tiny = fmt.smallest_subnormal
    dt = as_dtype(dtype)
    computed = np.array([0.0, -0.0, tiny, -tiny, np.inf, np.nan, np.nan, 1.0, fmt.max, np.inf])
    exact = np.array([-0.0, 0.0, -tiny, tiny, np.inf, np.nan, 1.0, np.nan, np.inf, fmt.max * 1.01])
    distance = strict_ulp(computed.astype(dt), exact, dtype)
    assert list(distance) == [0, 0, 2, 2, 0, 0, np.inf, np.inf, np.inf, 0]
    err = ulp_error(computed.astype(dt), exact, dtype)
    assert list(err[:6]) == [0, 0, 2, 2, 0, 0]
    assert np.isinf(err[6:9]).all() and err[9] == 0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_ulp_is_the_spacing_of_the_format(dtype: str) -> None:
    fmt = float_format(dtype)
    dt = as_dtype(dtype)
    rng = np.random.default_rng(1)
    v = (rng.standard_normal(200) * 10.0 ** rng.integers(-3, 3, 200)).astype(dt)
    v = v[np.isfinite(v.astype(np.float64)) & (np.abs(v.astype(np.float64)) >= fmt.smallest_normal)]
    expected = np.abs(np.spacing(np.abs(v).astype(np.float32)).astype(np.float64))
    if dtype == "float64":
        expected = np.spacing(np.abs(v.astype(np.float64)))
    elif fmt.precision < 24:
        expected = expected * 2.0 ** (24 - fmt.precision)
    np.testing.assert_array_equal(ulp(v.astype(np.float64), dtype), expected)
    below_normal = np.array([0.0, fmt.smallest_subnormal, fmt.smallest_normal / 3])
    assert (ulp(below_normal, dtype) == fmt.smallest_subnormal).all()


def test_half_ulp_and_flush_to_zero() -> None:
    assert ulp_error(np.float32([1.0]), np.array([1 + 2**-24]), "float32")[0] == 0.5
    subnormal = float_format("float32").smallest_normal / 4
    assert flushed(np.float32([0.0, 0.0]), np.array([subnormal, 1.0]), "float32").tolist() == [
        True,
        False,
    ]
