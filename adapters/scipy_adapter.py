"""SciPy: scipy.special.softmax, log_softmax and logsumexp (numpy in, numpy out; no autodiff)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from conformance.ops import Op, Option
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Axes, Implementation, Runner

_DOCS = "https://docs.scipy.org/doc/scipy/reference/generated/"


def _softmax(x: np.ndarray, labels: None, *, axis: Any) -> np.ndarray:
    import scipy.special

    return scipy.special.softmax(x, axis=axis)


def _log_softmax(x: np.ndarray, labels: None, *, axis: Any) -> np.ndarray:
    import scipy.special

    return scipy.special.log_softmax(x, axis=axis)


def _logsumexp(x: np.ndarray, labels: None, *, axis: Any, scale: Any) -> np.ndarray:
    import scipy.special

    return np.asarray(scipy.special.logsumexp(x, axis=axis, b=scale))


class ScipyAdapter(Adapter):
    """scipy.special on numpy arrays, CPU only, eager only, no gradients."""

    name = "scipy"
    cost = 1
    framework = "scipy"
    modules = ("scipy",)

    def _implementations(self) -> list[Implementation]:
        common: dict[str, Any] = {"axes": Axes.TUPLE, "differentiable": False}
        return [
            Implementation(
                "scipy.special.softmax",
                Op.SOFTMAX,
                _softmax,
                docs_url=_DOCS + "scipy.special.softmax.html",
                snippet="scipy.special.softmax(x, axis={axis})",
                **common,
                defaults={"axis": None},
            ),
            Implementation(
                "scipy.special.log_softmax",
                Op.LOG_SOFTMAX,
                _log_softmax,
                docs_url=_DOCS + "scipy.special.log_softmax.html",
                snippet="scipy.special.log_softmax(x, axis={axis})",
                **common,
                defaults={"axis": None},
            ),
            Implementation(
                "scipy.special.logsumexp",
                Op.LOGSUMEXP,
                _logsumexp,
                options=frozenset({Option.SCALE}),
                notes="bfloat16 input comes back as float64.",
                docs_url=_DOCS + "scipy.special.logsumexp.html",
                snippet="scipy.special.logsumexp(x, axis={axis}, b={scale})",
                **common,
                defaults={"axis": None, "b": None, "keepdims": False},
            ),
        ]

    def static_devices(self) -> list[str]:
        return ["cpu"]

    def snippet_prelude(self) -> list[str]:
        return ["import scipy.special"]

    def environment(self) -> dict[str, Any]:
        import scipy

        return super().environment() | {"scipy": scipy.__version__}

    def _import(self) -> None:
        import scipy.special  # noqa: F401

    def _to_native(self, a: np.ndarray, device: str) -> Any:
        return a

    def _to_numpy(self, value: Any) -> np.ndarray:
        return np.array(value, copy=True)

    def _build(self, fn: Callable[..., Any], mode: str, grad: bool) -> Runner:
        def run(x: Any, labels: Any, arrays: dict[str, Any], ct: Any) -> tuple[Any, Any]:
            return fn(x, labels, arrays), None

        return run
