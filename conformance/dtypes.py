"""The floating-point dtypes under test, by name, with their parameters."""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

FLOAT_DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
"""Every dtype the suite judges, narrowest first."""


@dataclass(frozen=True)
class FloatFormat:
    """The parameters of a binary floating-point format that error measurement needs."""

    name: str
    dtype: np.dtype
    precision: int
    """Significand bits, the implicit bit included (p): 11, 8, 24, 53."""
    min_exponent: int
    """Exponent of the smallest normal number (emin): 2**emin is the smallest normal."""
    max: float
    """The largest finite value."""

    @property
    def unit_roundoff(self) -> float:
        """u = 2**-p: the largest relative error of one correctly rounded operation."""
        return 2.0**-self.precision

    @property
    def smallest_normal(self) -> float:
        return 2.0**self.min_exponent

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (self.min_exponent - self.precision + 1)


def as_dtype(name_or_dtype: str | np.dtype | type) -> np.dtype:
    """The numpy dtype for a name ('bfloat16' included) or a dtype-like."""
    if isinstance(name_or_dtype, str) and name_or_dtype == "bfloat16":
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name_or_dtype)


def dtype_name(dtype: str | np.dtype | type) -> str:
    """The suite's name of a float dtype: 'float16', 'bfloat16', 'float32' or 'float64'."""
    return as_dtype(dtype).name


def float_format(dtype: str | np.dtype | type) -> FloatFormat:
    """The parameters of a float dtype under test."""
    dt = as_dtype(dtype)
    info = ml_dtypes.finfo(dt) if dt == np.dtype(ml_dtypes.bfloat16) else np.finfo(dt)
    return FloatFormat(
        name=dt.name,
        dtype=dt,
        precision=int(info.nmant) + 1,
        min_exponent=int(info.minexp),
        max=float(info.max),
    )


def is_exactly_representable(values: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """Element-wise: does each value survive a round trip through `dtype` unchanged?"""
    v = np.asarray(values, dtype=np.float64)
    back = v.astype(as_dtype(dtype)).astype(np.float64)
    return (back == v) | (np.isnan(v) & np.isnan(back))
