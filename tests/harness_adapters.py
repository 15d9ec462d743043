"""Adapters written for the harness's own tests: one that is exactly right, and broken ones.

`ExactAdapter` returns the reference correctly rounded to the dtype under test, for every
catalog op, option, dtype and mode: the harness must never flag it. Each broken adapter
changes one thing, the way real frameworks have gone wrong, and must be flagged with the
right verdict.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from conformance import reference
from conformance.errors import round_to
from conformance.judge import input_key
from conformance.ops import CATALOG, LabelKind, Op, Option, Reduction
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Axes, Implementation, Runner

ALL_REDUCTIONS = tuple(Reduction)
MODES = ("eager", "compiled")


_ANSWERS: OrderedDict[bytes, Any] = OrderedDict()
"""The exact adapter's answers by input (eager and compiled cells see the same inputs)."""


def _remembered(key: bytes, compute: Callable[[], Any]) -> Any:
    if key not in _ANSWERS:
        _ANSWERS[key] = compute()
        while len(_ANSWERS) > 8192:
            _ANSWERS.popitem(last=False)
    _ANSWERS.move_to_end(key)
    return _ANSWERS[key]


def _bad_label(op: Op, x: np.ndarray, labels: Any, options: dict[str, Any]) -> bool:
    """An integer label neither a class nor ignored (whatever else makes the row NaN)."""
    if CATALOG[op].labels is not LabelKind.INTEGER or not x.ndim:
        return False
    k = x.shape[int(options.get("axis", -1))]
    y = np.asarray(labels)
    return bool(np.any((y != options.get("ignore_index", -100)) & ((y < 0) | (y >= k))))


def _exact(op: Op) -> Callable[..., np.ndarray]:
    def fn(x: np.ndarray, labels: np.ndarray | None, **options: Any) -> np.ndarray:
        key = b"value" + input_key(op, [x, labels], options)
        exact = _remembered(key, lambda: reference.evaluate(op, x, labels, **options))
        if (exact.undefined == reference.Undefined.INVALID_LABEL).any() or _bad_label(
            op, x, labels, options
        ):
            raise ValueError("label out of range")
        return round_to(exact.value, x.dtype)

    return fn


class ExactAdapter(Adapter):
    """The reference, correctly rounded: what a perfect framework returns."""

    name = "exact"
    framework = "numpy"

    def _implementations(self) -> list[Implementation]:
        impls = []
        for op, spec in CATALOG.items():
            binary = spec.labels is LabelKind.BINARY
            has_reduction = Option.REDUCTION in spec.options
            impls.append(
                Implementation(
                    f"exact.{op.value}",
                    op,
                    self.function(op),
                    options=spec.options - {Option.AXIS, Option.REDUCTION},
                    reductions=ALL_REDUCTIONS if has_reduction else (Reduction.NONE,),
                    axes=Axes.ELEMENTWISE
                    if binary
                    else (Axes.TUPLE if spec.tuple_axis else Axes.ANY),
                    modes=MODES,
                )
            )
        return impls

    def function(self, op: Op) -> Callable[..., np.ndarray]:
        return _exact(op)

    def _to_native(self, a: np.ndarray, device: str) -> Any:
        return a

    def _to_numpy(self, value: Any) -> np.ndarray:
        return np.array(value, copy=True)

    def _build(self, fn: Callable[..., Any], mode: str, grad: bool) -> Runner:
        raise NotImplementedError("ExactAdapter builds its runners in _runner")

    def _runner(
        self,
        impl: Implementation,
        mode: str,
        static: dict[str, Any],
        key: tuple[Any, ...],
        grad: bool,
    ) -> Runner:
        def run(x: Any, labels: Any, arrays: dict[str, Any], ct: Any) -> tuple[Any, Any]:
            options = {**static, **arrays}
            value = self.forward(impl, x, labels, options, mode)
            return value, None if ct is None else self.gradient(impl, x, labels, options, ct)

        return run

    def forward(self, impl: Implementation, x, labels, options, mode: str) -> np.ndarray:
        return impl.fn(x, labels, **options)

    def gradient(self, impl: Implementation, x, labels, options, ct) -> np.ndarray:
        key = b"vjp" + input_key(impl.op, [x, labels, ct], options)
        exact = _remembered(key, lambda: reference.vjp(impl.op, x, labels, cotangent=ct, **options))
        return round_to(exact.value, x.dtype)


def _softmax_no_shift(x, labels, **o):
    e = np.exp(x.astype(x.dtype))
    return e / e.sum(axis=o["axis"], keepdims=True)


def _log_of_softmax(x, labels, **o):
    with np.errstate(divide="ignore"):
        return np.log(round_to(reference.evaluate(Op.SOFTMAX, x, axis=o["axis"]).value, x.dtype))


def _half_intermediates(op: Op):
    exact = _exact(op)

    def fn(x, labels, **o):
        if x.dtype == np.float32:
            return exact(x.astype(np.float16), labels, **o).astype(np.float32)
        return exact(x, labels, **o)

    return fn


def _wrong_axis(x, labels, **o):
    axis = o["axis"]
    other = 0 if x.ndim > 1 and axis in (-1, x.ndim - 1) else axis
    return _exact(Op.SOFTMAX)(x, labels, **{**o, "axis": other})


def _large_row_truncated(x, labels, **o):
    """Right up to 512 classes; beyond, only the first 512 classes are summed."""
    out = _exact(Op.SOFTMAX)(x, labels, **o)
    if x.shape[o["axis"]] > 512:
        out = out * np.asarray(1.5, dtype=x.dtype)
    return out


def _probability_input_softmaxed(x, labels, **o):
    """Treats probabilities as logits: the double-softmax of the from_logits mix-up."""
    p = reference.evaluate(Op.SOFTMAX, x, axis=o["axis"]).value.astype(x.dtype)
    return _exact(Op.PROBABILITY_CROSS_ENTROPY)(p, labels, **o)


def _silent_labels(x, labels, **o):
    y = np.clip(labels, 0, x.shape[o["axis"]] - 1)
    return _exact(Op.SPARSE_SOFTMAX_CROSS_ENTROPY)(x, y, **o)


def _nan_poisons_batch(x, labels, **o):
    out = _exact(Op.SOFTMAX)(x, labels, **o)
    if np.isnan(x.astype(np.float64)).any():
        out[...] = np.nan
    return out


class BrokenAdapter(ExactAdapter):
    """ExactAdapter with some ops replaced (see `REPLACEMENTS`)."""

    replacements: ClassVar[dict[Op, Callable[..., Any]]] = {}

    def function(self, op: Op) -> Callable[..., np.ndarray]:
        return self.replacements.get(op, _exact(op))


def broken(name: str, replacements: dict[Op, Callable[..., Any]], **extra: Any) -> BrokenAdapter:
    cls = type(name, (BrokenAdapter,), {"name": name, "replacements": replacements, **extra})
    return cls()


class CompiledOnlyError(ExactAdapter):
    """Right in eager mode, off by 2**-8 relative in compiled mode (a mode-only fault)."""

    name = "compiled-only-error"

    def forward(self, impl, x, labels, options, mode):
        out = super().forward(impl, x, labels, options, mode)
        return out * np.asarray(1 + 2**-8, dtype=out.dtype) if mode == "compiled" else out


class WrongGradientSign(ExactAdapter):
    name = "wrong-gradient-sign"

    def gradient(self, impl, x, labels, options, ct):
        return -super().gradient(impl, x, labels, options, ct)


class Float32Output(ExactAdapter):
    """Returns float32 whatever the input dtype (a silent dtype change)."""

    name = "float32-output"

    def forward(self, impl, x, labels, options, mode):
        return super().forward(impl, x, labels, options, mode).astype(np.float32)


class Activated(np.ndarray):
    """An activation's output that remembers its logits (as Keras does on TensorFlow)."""

    logits: np.ndarray


class RememberingAdapter(ExactAdapter):
    """Its activation layer remembers the logits; its logit losses warn and use them."""

    name = "remembering"

    def activation_layer(self, op: Op) -> Callable[[Any, Any], Any] | None:
        def activation(x: np.ndarray, axis: Any) -> np.ndarray:
            if op is Op.SIGMOID_CROSS_ENTROPY:
                p = 1 / (1 + np.exp(-x.astype(np.float64)))
            else:
                p = reference.evaluate(Op.SOFTMAX, x, axis=axis).value
            out = round_to(p, x.dtype).view(Activated)
            out.logits = x
            return out

        return activation

    def function(self, op: Op) -> Callable[..., np.ndarray]:
        exact = _exact(op)

        def loss(x: np.ndarray, labels: np.ndarray | None, **options: Any) -> np.ndarray:
            if isinstance(x, Activated):
                warnings.warn("from_logits=True received the output of a softmax", stacklevel=1)
                x = x.logits
            return exact(x, labels, **options)

        return loss


class ForgettingAdapter(RememberingAdapter):
    """Its activation layer gives plain probabilities: the loss computes a double softmax."""

    name = "forgetting"

    def function(self, op: Op) -> Callable[..., np.ndarray]:
        exact = _exact(op)
        return lambda x, labels, **options: exact(np.asarray(x), labels, **options)


class MaskShapeChecked(ExactAdapter):
    """Raises on a `where=` mask that is not the shape of x (no broadcasting)."""

    name = "mask-shape-checked"

    def forward(self, impl, x, labels, options, mode):
        where = options.get("where")
        if where is not None and where.shape != x.shape:
            raise ValueError(f"where has shape {where.shape}, x has shape {x.shape}")
        return super().forward(impl, x, labels, options, mode)


def broken_adapters() -> dict[str, tuple[Adapter, Op, str, str]]:
    """name -> (adapter, op to run, expected verdict, expected finding kind)."""
    return {
        "no-max-shift": (
            broken("no-max-shift", {Op.SOFTMAX: _softmax_no_shift}),
            Op.SOFTMAX,
            "divergent",
            "nan-where-defined",
        ),
        "log-of-softmax": (
            broken("log-of-softmax", {Op.LOG_SOFTMAX: _log_of_softmax}),
            Op.LOG_SOFTMAX,
            "divergent",
            "infinity",
        ),
        "float16-intermediates": (
            broken("float16-intermediates", {Op.SOFTMAX: _half_intermediates(Op.SOFTMAX)}),
            Op.SOFTMAX,
            "inaccurate",
            "over-budget",
        ),
        "wrong-axis": (
            broken("wrong-axis", {Op.SOFTMAX: _wrong_axis}),
            Op.SOFTMAX,
            "inaccurate",
            "over-budget",
        ),
        "large-rows-only": (
            broken("large-rows-only", {Op.SOFTMAX: _large_row_truncated}),
            Op.SOFTMAX,
            "inaccurate",
            "over-budget",
        ),
        "double-softmax": (
            broken("double-softmax", {Op.PROBABILITY_CROSS_ENTROPY: _probability_input_softmaxed}),
            Op.PROBABILITY_CROSS_ENTROPY,
            "inaccurate",
            "over-budget",
        ),
        "silent-out-of-range-labels": (
            broken("silent-out-of-range-labels", {Op.SPARSE_SOFTMAX_CROSS_ENTROPY: _silent_labels}),
            Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
            "error",
            "silent-invalid",
        ),
        "nan-poisons-batch": (
            broken("nan-poisons-batch", {Op.SOFTMAX: _nan_poisons_batch}),
            Op.SOFTMAX,
            "divergent",
            "nan-where-defined",
        ),
        "compiled-only-error": (CompiledOnlyError(), Op.LOG_SOFTMAX, "inaccurate", "over-budget"),
        "wrong-gradient-sign": (
            WrongGradientSign(),
            Op.SOFTMAX_CROSS_ENTROPY,
            "inaccurate",
            "gradient-over-budget",
        ),
        "float32-output": (Float32Output(), Op.SOFTMAX, "divergent", "dtype"),
    }
