"""Keras 3: keras.ops, keras.layers.Softmax and keras.losses, one adapter per backend.

Keras fixes its backend once per process (KERAS_BACKEND, read when keras is first imported;
importing tensorflow imports keras too). An adapter is available only while keras is not
yet imported or was imported with its backend; a harness runs each in its own worker
process with `process_env()` set. Conversions, autodiff and compilation are the backend's
engine (torch, tensorflow, jax adapters). Losses are built as users write them: the
default `dtype=None` makes Keras compute in floatx (float32) whatever the input dtype.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from conformance.ops import CATALOG, LabelKind, Op, Option, Reduction
from conformance_adapters.base import Adapter
from conformance_adapters.common import distribution_version, passed, unless_last
from conformance_adapters.interface import Axes, Implementation
from conformance_adapters.jax_adapter import JaxEngine
from conformance_adapters.tensorflow_adapter import TensorFlowEngine
from conformance_adapters.torch_adapter import TorchEngine

_DOCS = "https://keras.io/api/"
_REDUCTIONS = {
    Reduction.NONE: None,
    Reduction.SUM: "sum",
    Reduction.SUM_OVER_BATCH_SIZE: "sum_over_batch_size",
    Reduction.MEAN: "mean",
}
_SPARSE_REDUCTIONS = _REDUCTIONS | {Reduction.WEIGHTED_MEAN: "mean_with_sample_weight"}
_BACKEND_MODULE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
_SMOOTH, _IGNORE = "label_smoothing={label_smoothing}", "ignore_class={ignore_index?}"


def _loss_snippet(cls: str, from_logits: bool, option: str) -> str:
    """The call of the loss object `_loss` builds, as `Implementation.snippet`."""
    return (
        f"keras.losses.{cls}(from_logits={from_logits}, axis={{axis?}}, {option},"
        " reduction={reduction})(labels, x)"
    )


def loaded_keras_backend() -> str | None:
    """The backend of the keras already imported in this process (None: not imported)."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return str(keras.config.backend())
    except AttributeError:  # a partially imported keras
        return os.environ.get("KERAS_BACKEND", "tensorflow")


class KerasMixin(Adapter):
    """What is the same for every Keras backend; the engine comes from the backend's adapter."""

    backend: str = ""
    framework = "keras"

    @property  # type: ignore[override]
    def modules(self) -> tuple[str, ...]:
        return ("keras", _BACKEND_MODULE[self.backend])

    def version(self) -> str | None:
        return distribution_version("keras")

    def availability(self) -> tuple[bool, str]:
        for mod in self.modules:
            if not self._installed(mod):
                return False, f"{mod} is not installed"
        loaded = loaded_keras_backend()
        if loaded is not None and loaded != self.backend:
            return False, (
                f"keras is already imported with backend {loaded!r} in this process;"
                f" {self.name} needs a process with KERAS_BACKEND={self.backend}"
            )
        return True, ""

    @staticmethod
    def _installed(mod: str) -> bool:
        from conformance_adapters.common import module_installed

        return module_installed(mod)

    def process_env(self) -> dict[str, str]:
        return super().process_env() | {"KERAS_BACKEND": self.backend}

    def _import(self) -> None:
        if "keras" not in sys.modules:
            for key, value in self.process_env().items():
                if key == "KERAS_BACKEND":
                    os.environ[key] = value
                else:
                    os.environ.setdefault(key, value)
        super()._import()
        import keras

        if keras.config.backend() != self.backend:
            raise RuntimeError(
                f"keras runs backend {keras.config.backend()!r}, not "
                f"{self.backend!r}: use a fresh process"
            )

    def environment(self) -> dict[str, Any]:
        self._import()
        import keras

        env = super().environment()
        env.update(
            {
                "keras": keras.__version__,
                "KERAS_BACKEND": os.environ.get("KERAS_BACKEND"),
                "keras.backend": keras.config.backend(),
                "keras.floatx": keras.config.floatx(),
                "keras.epsilon": keras.config.epsilon(),
                "keras.dtype_policy": keras.config.dtype_policy().name,
            }
        )
        return env

    def snippet_env(self) -> dict[str, str]:
        return super().snippet_env() | {"KERAS_BACKEND": self.backend}

    def snippet_prelude(self) -> list[str]:
        return [*super().snippet_prelude(), "import keras"]

    def snippet_values(
        self, impl: Implementation, options: dict[str, Any], ndim: int
    ) -> dict[str, str]:
        values = super().snippet_values(impl, options, ndim)
        if "reduction" in options:
            values["reduction"] = repr(_SPARSE_REDUCTIONS[options["reduction"]])
        return values

    def _device_scope(self, device: str) -> contextlib.AbstractContextManager[Any]:
        import keras

        stack = contextlib.ExitStack()
        stack.enter_context(super()._device_scope(device))
        stack.enter_context(keras.device("gpu:0" if device == "cuda" else "cpu:0"))
        return stack

    def activation_layer(self, op: Op) -> Callable[[Any, Any], Any] | None:
        """keras.activations.softmax / sigmoid: what Dense(activation=...) returns, which
        carries the logits on the TensorFlow backend (`_keras_logits`)."""
        binary = CATALOG[op].labels is LabelKind.BINARY
        return _sigmoid_activation if binary else _softmax_activation

    def _implementations(self) -> list[Implementation]:
        modes = (
            ("eager", "compiled", "compiled-xla")
            if self.backend == "tensorflow"
            else ("eager", "compiled")
        )
        red, sparse_red = tuple(_REDUCTIONS), tuple(_SPARSE_REDUCTIONS)
        smooth = frozenset({Option.LABEL_SMOOTHING})
        ignore = frozenset({Option.IGNORE_INDEX})
        cce, scce, bce = (
            _DOCS + "losses/probabilistic_losses/#" + n
            for n in (
                "categoricalcrossentropy-class",
                "sparsecategoricalcrossentropy-class",
                "binarycrossentropy-class",
            )
        )
        mean_note = (
            "With ignore_class, 'mean' and 'sum_over_batch_size' divide by the number"
            " of examples not ignored. "
        )
        prob_note = "Keras renormalizes p by its sum and clips it to [epsilon, 1 - epsilon]. "
        cce_defaults = {  # CategoricalCrossentropy's and BinaryCrossentropy's
            "from_logits": False,
            "label_smoothing": 0.0,
            "axis": -1,
            "reduction": "sum_over_batch_size",
        }
        scce_defaults = {
            "from_logits": False,
            "ignore_class": None,
            "reduction": "sum_over_batch_size",
            "axis": -1,
        }
        smooth_note = "Label smoothing uses K = the size of the LAST axis whatever `axis` is. "
        # The sparse loss takes `axis`, but the tensorflow and jax backends raise for any
        # axis but -1 ('Only axis=-1 is currently supported'; a shape check on jax).
        sparse_axes = Axes.ANY if self.backend == "torch" else Axes.LAST
        axis_note = (
            "" if self.backend == "torch" else "axis= other than -1 raises on this backend. "
        )
        return [
            Implementation(
                "keras.ops.softmax",
                Op.SOFTMAX,
                _ops_softmax,
                axes=Axes.TUPLE,
                modes=modes,
                docs_url=_DOCS + "ops/nn/#softmax-function",
                snippet="keras.ops.softmax(x, axis={axis})",
                defaults={"axis": -1},
            ),
            Implementation(
                "keras.ops.log_softmax",
                Op.LOG_SOFTMAX,
                _ops_log_softmax,
                axes=Axes.TUPLE,
                modes=modes,
                docs_url=_DOCS + "ops/nn/#logsoftmax-function",
                snippet="keras.ops.log_softmax(x, axis={axis})",
                defaults={"axis": -1},
            ),
            Implementation(
                "keras.ops.logsumexp",
                Op.LOGSUMEXP,
                _ops_logsumexp,
                axes=Axes.TUPLE,
                modes=modes,
                docs_url=_DOCS + "ops/core/#logsumexp-function",
                snippet="keras.ops.logsumexp(x, axis={axis})",
                defaults={"axis": None, "keepdims": False},
            ),
            Implementation(
                "keras.layers.Softmax",
                Op.SOFTMAX,
                _layer_softmax,
                options=frozenset({Option.WHERE}),
                axes=Axes.TUPLE,
                modes=modes,
                notes="mask= replaces masked logits by a large negative number and"
                " zeroes them after; a fully masked row gives 0.",
                docs_url=_DOCS + "layers/activation_layers/softmax/",
                snippet="keras.layers.Softmax(axis={axis})(x, mask={where})",
                defaults={"axis": -1, "mask": None},
            ),
            Implementation(
                "keras.losses.CategoricalCrossentropy(from_logits=True)",
                Op.SOFTMAX_CROSS_ENTROPY,
                _cce_logits,
                options=smooth,
                reductions=red,
                axes=Axes.ANY,
                modes=modes,
                notes=smooth_note,
                docs_url=cce,
                snippet=_loss_snippet("CategoricalCrossentropy", True, _SMOOTH),
                defaults=cce_defaults,
            ),
            Implementation(
                "keras.losses.CategoricalCrossentropy(from_logits=False)",
                Op.PROBABILITY_CROSS_ENTROPY,
                _cce_probs,
                options=smooth,
                reductions=red,
                axes=Axes.ANY,
                modes=modes,
                notes=prob_note + smooth_note,
                docs_url=cce,
                snippet=_loss_snippet("CategoricalCrossentropy", False, _SMOOTH),
                defaults=cce_defaults,
            ),
            Implementation(
                "keras.losses.SparseCategoricalCrossentropy(from_logits=True)",
                Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
                _scce_logits,
                options=ignore,
                reductions=sparse_red,
                axes=sparse_axes,
                modes=modes,
                notes=mean_note + axis_note + "weighted_mean is 'mean_with_sample_weight'.",
                docs_url=scce,
                snippet=_loss_snippet("SparseCategoricalCrossentropy", True, _IGNORE),
                defaults=scce_defaults,
            ),
            Implementation(
                "keras.losses.SparseCategoricalCrossentropy(from_logits=False)",
                Op.SPARSE_PROBABILITY_CROSS_ENTROPY,
                _scce_probs,
                options=ignore,
                reductions=sparse_red,
                axes=sparse_axes,
                modes=modes,
                notes=mean_note + axis_note + prob_note,
                docs_url=scce,
                snippet=_loss_snippet("SparseCategoricalCrossentropy", False, _IGNORE),
                defaults=scce_defaults,
            ),
            Implementation(
                "keras.losses.BinaryCrossentropy(from_logits=True)",
                Op.SIGMOID_CROSS_ENTROPY,
                _bce_logits,
                options=smooth,
                reductions=red,
                axes=Axes.ANY,
                modes=modes,
                notes="Always the per-example mean over `axis` (no element-wise form).",
                docs_url=bce,
                snippet=_loss_snippet("BinaryCrossentropy", True, _SMOOTH),
                defaults=cce_defaults,
            ),
            Implementation(
                "keras.losses.BinaryCrossentropy(from_logits=False)",
                Op.BINARY_CROSS_ENTROPY,
                _bce_probs,
                options=smooth,
                reductions=red,
                axes=Axes.ANY,
                modes=modes,
                notes="p is clipped to [epsilon, 1 - epsilon]; the per-example mean over `axis`.",
                docs_url=bce,
                snippet=_loss_snippet("BinaryCrossentropy", False, _SMOOTH),
                defaults=cce_defaults,
            ),
        ]


# ----------------------------------------------------------------------------- the API mapping


def _ops_softmax(x: Any, labels: Any, *, axis: Any) -> Any:
    import keras

    return keras.ops.softmax(x, axis=axis)


def _ops_log_softmax(x: Any, labels: Any, *, axis: Any) -> Any:
    import keras

    return keras.ops.log_softmax(x, axis=axis)


def _ops_logsumexp(x: Any, labels: Any, *, axis: Any) -> Any:
    import keras

    return keras.ops.logsumexp(x, axis=axis)


def _softmax_activation(x: Any, axis: Any) -> Any:
    import keras

    return keras.activations.softmax(x, axis=axis)


def _sigmoid_activation(x: Any, axis: Any) -> Any:
    import keras

    return keras.activations.sigmoid(x)


@functools.lru_cache(maxsize=64)
def _softmax_layer(axis: Any) -> Any:
    import keras

    return keras.layers.Softmax(axis=axis)


def _layer_softmax(x: Any, labels: Any, *, axis: Any, where: Any) -> Any:
    return _softmax_layer(axis)(x, mask=where)


@functools.lru_cache(maxsize=256)
def _loss(cls: str, axis: int, **kwargs: Any) -> Any:
    """The loss object, given only what the call sets (the last axis and no ignored class
    are every release's defaults; SparseCategoricalCrossentropy has no axis= before 3.10)."""
    import keras

    return getattr(keras.losses, cls)(**passed(axis=unless_last(axis)), **kwargs)


def _cce(
    x: Any, labels: Any, from_logits: bool, axis: int, reduction: Reduction, label_smoothing: float
) -> Any:
    loss = _loss(
        "CategoricalCrossentropy",
        from_logits=from_logits,
        axis=axis,
        label_smoothing=label_smoothing,
        reduction=_REDUCTIONS[reduction],
    )
    return loss(labels, x)


def _cce_logits(x: Any, labels: Any, **kw: Any) -> Any:
    return _cce(x, labels, True, **kw)


def _cce_probs(x: Any, labels: Any, **kw: Any) -> Any:
    return _cce(x, labels, False, **kw)


def _scce(
    x: Any,
    labels: Any,
    from_logits: bool,
    axis: int,
    reduction: Reduction,
    ignore_index: int | None,
) -> Any:
    loss = _loss(
        "SparseCategoricalCrossentropy",
        from_logits=from_logits,
        axis=axis,
        **passed(ignore_class=ignore_index),
        reduction=_SPARSE_REDUCTIONS[reduction],
    )
    return loss(labels, x)


def _scce_logits(x: Any, labels: Any, **kw: Any) -> Any:
    return _scce(x, labels, True, **kw)


def _scce_probs(x: Any, labels: Any, **kw: Any) -> Any:
    return _scce(x, labels, False, **kw)


def _bce(
    x: Any, labels: Any, from_logits: bool, axis: int, reduction: Reduction, label_smoothing: float
) -> Any:
    loss = _loss(
        "BinaryCrossentropy",
        from_logits=from_logits,
        axis=axis,
        label_smoothing=label_smoothing,
        reduction=_REDUCTIONS[reduction],
    )
    return loss(labels, x)


def _bce_logits(x: Any, labels: Any, **kw: Any) -> Any:
    return _bce(x, labels, True, **kw)


def _bce_probs(x: Any, labels: Any, **kw: Any) -> Any:
    return _bce(x, labels, False, **kw)


# ----------------------------------------------------------------------------- the adapters


class KerasTensorFlowAdapter(KerasMixin, TensorFlowEngine):
    """Keras 3 on TensorFlow: eager, tf.function, tf.function(jit_compile=True)."""

    name = "keras-tensorflow"
    cost = 36
    backend = "tensorflow"


class KerasJaxAdapter(KerasMixin, JaxEngine):
    """Keras 3 on JAX (JAX's default x64 off: float64 becomes float32): eager, jax.jit."""

    name = "keras-jax"
    cost = 33
    backend = "jax"


class KerasTorchAdapter(KerasMixin, TorchEngine):
    """Keras 3 on PyTorch: eager; torch.compile when opted in (CONFORMANCE_TORCH_COMPILE=1)."""

    name = "keras-torch"
    cost = 6
    backend = "torch"
