"""Hypothesis strategies shared by the reference's tests (this module holds no tests).

Values are drawn in float64 and rounded into the dtype under test, so every array is
exactly representable there: ordinary values, wide ranges, small integers (ties), values
near the dtype's largest finite number, spreads up to 1e4, and -inf entries.
"""

from __future__ import annotations

import functools

import ml_dtypes
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DTYPES = ("float16", "bfloat16", "float32", "float64")
SETTINGS = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}


@functools.cache
def np_dtype(name: str) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


@functools.cache
def fmax(name: str) -> float:
    dt = np_dtype(name)
    info = ml_dtypes.finfo(dt) if name == "bfloat16" else np.finfo(dt)
    return float(info.max)


def rounded(values, name: str) -> np.ndarray:
    """float64 values rounded into dtype `name` (finite ones staying finite), as float64."""
    v = np.asarray(values, dtype=np.float64)
    m = fmax(name)
    v = np.where(np.isfinite(v), np.clip(v, -m, m), v)
    return v.astype(np_dtype(name)).astype(np.float64)


def _scalar(name: str, near_max: bool) -> st.SearchStrategy[float]:
    m = fmax(name)
    parts = [
        st.floats(-8, 8, allow_nan=False),
        st.floats(-8, 8, allow_nan=False),
        st.floats(-60, 60, allow_nan=False),
        st.integers(-3, 3).map(float),
        st.integers(-3, 3).map(float),
        st.floats(-1e4, 1e4, allow_nan=False),
        st.sampled_from([0.0, 1e-30, -1e-30, 2.0**-20, 745.0, -745.0, 88.5, -103.0]),
    ]
    if near_max:
        parts.append(st.floats(m / 2, m).flatmap(lambda v: st.sampled_from([v, -v])))
    return st.one_of(parts)


@st.composite
def logit_rows(
    draw: st.DrawFn,
    name: str,
    kmin: int = 1,
    kmax: int = 5,
    neg_inf: bool = True,
    near_max: bool | None = None,
) -> np.ndarray:
    """One row of logits, exactly representable in dtype `name`."""
    k = draw(st.integers(kmin, kmax))
    if near_max is None:
        near_max = draw(st.integers(0, 9)) == 0
    kind = draw(st.sampled_from(["mixed", "mixed", "mixed", "spread", "offset"]))
    vals = draw(st.lists(_scalar(name, near_max), min_size=k, max_size=k))
    x = np.array(vals, dtype=np.float64)
    if kind == "spread" and k > 1:  # one dominant entry, the rest up to 1e4 below
        x[draw(st.integers(0, k - 1))] += draw(st.sampled_from([30.0, 100.0, 745.0, 1e4]))
    elif kind == "offset":  # a common offset: cancellation in x_i - max
        x = x + draw(st.sampled_from([1e3, -1e3, 1e4, 2.0**20]))
    if neg_inf and k > 1 and draw(st.integers(0, 5)) == 0:
        x[draw(st.integers(0, k - 1))] = -np.inf
    return rounded(x, name)


@st.composite
def masks(draw: st.DrawFn, k: int) -> np.ndarray | None:
    """None, or a mask with at least one True entry."""
    if draw(st.integers(0, 3)) or k == 1:
        return None
    m = np.array(draw(st.lists(st.booleans(), min_size=k, max_size=k)))
    m[draw(st.integers(0, k - 1))] = True
    return m


@st.composite
def soft_labels(draw: st.DrawFn, k: int, negative: bool = True) -> np.ndarray:
    kind = draw(
        st.sampled_from(
            ["soft", "soft", "one-hot", "uniform", "signed"]
            if negative
            else ["soft", "one-hot", "uniform"]
        )
    )
    if kind == "one-hot":
        t = np.zeros(k)
        t[draw(st.integers(0, k - 1))] = 1.0
        return t
    if kind == "uniform":
        return np.full(k, 1.0 / k)
    lo = -1.0 if kind == "signed" else 0.0
    t = np.array(draw(st.lists(st.floats(lo, 1.0), min_size=k, max_size=k)))
    if kind == "soft" and t.sum() > 0:
        t = t / t.sum()
    return t


@st.composite
def cotangents(draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray:
    kind = draw(st.sampled_from(["random", "random", "ones", "one-hot"]))
    n = int(np.prod(shape))
    if kind == "ones":
        return np.ones(shape)
    if kind == "one-hot" and n:
        g = np.zeros(n)
        g[draw(st.integers(0, n - 1))] = 1.0
        return g.reshape(shape)
    vals = draw(st.lists(st.floats(-4, 4), min_size=n, max_size=n))
    return np.array(vals, dtype=np.float64).reshape(shape)


def class_weights(k: int) -> st.SearchStrategy[np.ndarray | None]:
    return st.one_of(st.none(), st.lists(st.floats(0, 4), min_size=k, max_size=k).map(np.array))


smoothing = st.sampled_from([0.0, 0.0, 0.1, 0.25, 1.0])


def with_examples(n: int):
    """Hypothesis settings with `n` examples and the suite's common options."""
    return settings(max_examples=n, **SETTINGS)
