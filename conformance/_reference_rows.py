"""The reference's view of its inputs: exact float64, axes normalised, arrays seen as rows
(batch, classes), and the special-value analysis of rows."""

from __future__ import annotations

import math

import numpy as np


def exact_f64(a: object, what: str = "x") -> np.ndarray:
    """Float inputs as float64, exactly (bfloat16/float16/float32 widen without rounding)."""
    arr = np.asarray(a)
    if arr.dtype.kind in "biu" or arr.dtype.itemsize <= 8 or arr.dtype == object:
        out = arr.astype(np.float64, copy=False)
    else:
        out = arr.astype(np.float64)
        back = out.astype(arr.dtype)
        if not np.all((back == arr) | np.isnan(out)):
            raise ValueError(f"{what} has values that float64 cannot hold exactly")
    return out


def normalize_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= int(a) < ndim:
            raise ValueError(f"axis {a} out of range for {ndim} dimensions")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(out)


class RowView:
    """An array seen as rows (batch, classes): `axes` moved last and flattened."""

    def __init__(self, shape: tuple[int, ...], axes: tuple[int, ...]):
        self.shape, self.axes = shape, axes
        self.batch_axes = tuple(i for i in range(len(shape)) if i not in axes)
        self.perm = self.batch_axes + axes
        self.batch_shape = tuple(shape[i] for i in self.batch_axes)
        self.R = math.prod(self.batch_shape)
        self.K = math.prod(shape[i] for i in axes)

    def rows(self, a: np.ndarray) -> np.ndarray:
        a = np.broadcast_to(a, self.shape)
        return np.ascontiguousarray(np.transpose(a, self.perm).reshape(self.R, self.K))

    def batch(self, a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.broadcast_to(a, self.batch_shape).reshape(self.R))

    def unrows(self, a: np.ndarray) -> np.ndarray:
        full = a.reshape(self.batch_shape + tuple(self.shape[i] for i in self.axes))
        return np.transpose(full, np.argsort(self.perm))


def canonical_rows(xe: np.ndarray) -> dict[str, np.ndarray]:
    """Special-value analysis of rows whose excluded entries are already -inf.

    One +inf: the limit, 0 there and -inf elsewhere. Returns the canonical rows and per
    row: NaN present, +inf count, finite mask, finite count, max and argmax."""
    nan = np.isnan(xe).any(axis=1)
    pinf = (xe == np.inf).sum(axis=1)
    one = pinf == 1
    xc = xe.copy()
    if one.any():
        xc[one] = np.where(xe[one] == np.inf, 0.0, -np.inf)
    xc[nan] = -np.inf
    fin = np.isfinite(xc)
    nfin = fin.sum(axis=1)
    masked = np.where(fin, xc, -np.inf)
    k = np.argmax(masked, axis=1) if xc.shape[1] else np.zeros(len(xc), dtype=np.intp)
    m = masked[np.arange(len(xc)), k] if xc.shape[1] else np.zeros(len(xc))
    return {"x": xc, "nan": nan, "pinf": pinf, "fin": fin, "nfin": nfin, "m": m, "k": k}
