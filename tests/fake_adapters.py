"""A numpy-only adapter for testing the interface itself (no framework needed)."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from conformance.ops import Op, Option, Reduction
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Axes, Implementation, Runner


def _softmax(x: np.ndarray, labels: None, *, axis: int) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.astype(np.float64).max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


def _identity(x: np.ndarray, labels: None, *, axis: Any) -> np.ndarray:
    return x


def _raises(x: np.ndarray, labels: None, *, axis: int) -> np.ndarray:
    raise ValueError("boom: the framework refused\nsecond line")


def _warns(x: np.ndarray, labels: None, *, axis: int) -> np.ndarray:
    warnings.warn("careful with that", RuntimeWarning, stacklevel=2)
    return _softmax(x, labels, axis=axis)


def _stderr(x: np.ndarray, labels: None, *, axis: int) -> np.ndarray:
    os.write(2, b"native: a log line on fd 2\n")
    print("python: a line on sys.stderr", file=sys.stderr)
    return _softmax(x, labels, axis=axis)


def _upcast(x: np.ndarray, labels: None, *, axis: int) -> np.ndarray:
    return _softmax(x.astype(np.float64), labels, axis=axis)


SEEN: dict[str, Any] = {}
"""What `_loss` was given, for the tests to look at."""


def _loss(
    x: np.ndarray,
    labels: np.ndarray,
    *,
    axis: int,
    reduction: Reduction,
    ignore_index: int | None,
    class_weights: np.ndarray | None,
) -> np.ndarray:
    SEEN.update(
        labels=labels, reduction=reduction, ignore_index=ignore_index, class_weights=class_weights
    )
    logp = np.log(_softmax(x, None, axis=-1).astype(np.float64))
    per = -np.take_along_axis(logp, labels[..., None].astype(np.int64), -1)[..., 0]
    return (per.sum() if reduction is Reduction.SUM else per).astype(x.dtype)


class FakeAdapter(Adapter):
    """numpy 'framework': eager and a counted 'compiled' mode; softmax's VJP by formula."""

    name = "fake"
    framework = "numpy"
    modules = ("numpy",)

    def __init__(self) -> None:
        super().__init__()
        self.builds = 0
        self.fail_input = False

    def _implementations(self) -> list[Implementation]:
        modes = ("eager", "compiled")
        return [
            Implementation("fake.softmax", Op.SOFTMAX, _softmax, modes=modes),
            Implementation(
                "fake.identity", Op.SOFTMAX, _identity, axes=Axes.TUPLE, differentiable=False
            ),
            Implementation(
                "fake.any_axis",
                Op.LOG_SOFTMAX,
                _identity,
                axes=Axes.ANY,
                dtypes=("float32",),
                differentiable=False,
            ),
            Implementation("fake.raises", Op.SOFTMAX, _raises),
            Implementation("fake.warns", Op.SOFTMAX, _warns),
            Implementation("fake.stderr", Op.SOFTMAX, _stderr),
            Implementation("fake.upcast", Op.SOFTMAX, _upcast),
            Implementation(
                "fake.loss",
                Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
                _loss,
                options=frozenset({Option.IGNORE_INDEX, Option.CLASS_WEIGHTS}),
                reductions=(Reduction.NONE, Reduction.SUM),
                label_dtype="int32",
                differentiable=False,
            ),
            Implementation(
                "fake.binary",
                Op.SIGMOID_CROSS_ENTROPY,
                _identity,
                axes=Axes.ELEMENTWISE,
                differentiable=False,
            ),
        ]

    def _to_native(self, a: np.ndarray, device: str) -> Any:
        if self.fail_input:
            raise TypeError("cannot convert")
        return a.copy()

    def _to_numpy(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def _build(self, fn: Callable[..., Any], mode: str, grad: bool) -> Runner:
        self.builds += 1

        def run(x: Any, labels: Any, arrays: dict[str, Any], ct: Any) -> tuple[Any, Any]:
            y = fn(x, labels, arrays)
            if not grad:
                return y, None
            y64, c = y.astype(np.float64), ct.astype(np.float64)
            g = y64 * (c - (c * y64).sum(axis=-1, keepdims=True))
            return y, g.astype(x.dtype)

        return run


class NotInstalledAdapter(FakeAdapter):
    """An adapter whose framework module does not exist."""

    name = "not-installed"
    framework = "no-such-framework"
    modules = ("no_such_framework_module_xyz",)


def make_fake() -> FakeAdapter:
    """A zero-argument factory, for the registry's import-path loading."""
    return FakeAdapter()


FAKE_INSTANCE = FakeAdapter()
NOT_AN_ADAPTER = object()
