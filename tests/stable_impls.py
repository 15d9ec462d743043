"""Textbook implementations computed entirely in the dtype under test, correct and broken.

The budget must pass the correct ones with margin and flag the broken ones: that is
what makes a budget neither too tight (false alarms) nor too loose (missed faults).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Impl = Callable[..., np.ndarray]


def stable_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def stable_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    d = x - x.max(axis=axis, keepdims=True)
    return d - np.log(np.exp(d).sum(axis=axis, keepdims=True))


def stable_logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def stable_sparse_ce(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    lsm = stable_log_softmax(x)
    return -np.take_along_axis(lsm, y[..., None], axis=-1)[..., 0]


def stable_dense_ce(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    return -(t * stable_log_softmax(x)).sum(axis=-1)


def stable_sigmoid_ce(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """TensorFlow's documented formula: max(x, 0) - x z + log(1 + exp(-|x|))."""
    zero = np.zeros((), dtype=x.dtype)
    return np.maximum(x, zero) - x * z + np.log1p(np.exp(-np.abs(x)))


def stable_softmax_vjp(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    p = stable_softmax(x)
    return p * (g - (g * p).sum(axis=-1, keepdims=True))


def stable_sparse_ce_vjp(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
    p = stable_softmax(x)
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, y[..., None], np.ones((), dtype=x.dtype), axis=-1)
    return g[..., None] * (p - onehot)


# Broken on purpose: each is a fault users of real frameworks have met.


def softmax_without_max_shift(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def log_of_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.log(stable_softmax(x, axis))


def softmax_in_float16(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return stable_softmax(x.astype(np.float16), axis).astype(x.dtype)


def log_softmax_in_float16(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return stable_log_softmax(x.astype(np.float16), axis).astype(x.dtype)


def softmax_wrong_axis(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return stable_softmax(x, 0 if axis in (-1, x.ndim - 1) else -1)


def logsumexp_without_max_shift(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.log(np.exp(x).sum(axis=axis))


def sparse_ce_unshifted(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """lse(x) - x_y with the lse computed without a max shift."""
    lse = np.log(np.exp(x).sum(axis=-1))
    return lse - np.take_along_axis(x, y[..., None], axis=-1)[..., 0]


def sparse_ce_vjp_wrong_sign(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
    return -stable_sparse_ce_vjp(x, y, g)
