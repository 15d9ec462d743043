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


def _class_dims(x: np.ndarray, axis: Any) -> tuple[int, ...]:
    axes = tuple(axis) if isinstance(axis, tuple | list) else (axis,)
    return tuple(sorted({int(a) % x.ndim for a in axes}))


def _non_last_axis_as_last(x, labels, **o):
    """Right over the last axis; any other axis is taken as the last (a lowering that
    drops a transpose)."""
    axis = o["axis"]
    if x.ndim and not isinstance(axis, tuple) and int(axis) % x.ndim != x.ndim - 1:
        moved = np.moveaxis(x, -1, int(axis))  # the same shape, the wrong class axis
        where = o.get("where")
        o = {
            **o,
            "where": None
            if where is None
            else np.moveaxis(np.broadcast_to(where, x.shape), -1, int(axis)),
        }
        return np.moveaxis(_exact(Op.LOG_SOFTMAX)(moved, labels, **o), int(axis), -1)
    return _exact(Op.LOG_SOFTMAX)(x, labels, **o)


def _tuple_axis_first_only(x, labels, **o):
    """logsumexp over a tuple of axes reduces the first, then takes the max over the rest."""
    axis = o["axis"]
    if isinstance(axis, tuple) and len(axis) > 1 and x.size and o.get("where") is None:
        dims = _class_dims(x, axis)
        first = _exact(Op.LOGSUMEXP)(x, labels, **{**o, "axis": dims[0], "scale": None})
        rest = tuple(d - 1 for d in dims[1:])
        return np.max(first, axis=rest)
    return _exact(Op.LOGSUMEXP)(x, labels, **o)


def _uniform_over_fully_masked(x, labels, **o):
    """A mask applied by adding a large negative number: a fully masked row comes back
    as 1/K over its masked entries."""
    out = _exact(Op.SOFTMAX)(x, labels, **o)
    where = o.get("where")
    if where is None or not x.size:
        return out
    dims = _class_dims(x, o["axis"])
    mask = np.broadcast_to(where, x.shape)
    empty = ~np.any(mask, axis=dims, keepdims=True)
    k = int(np.prod([x.shape[d] for d in dims]))
    return np.where(np.broadcast_to(empty, x.shape), np.asarray(1 / k, x.dtype), out)


def _mask_as_lowest_logit(x, labels, **o):
    """A mask applied by adding the dtype's lowest finite value to masked logits: NaN and
    +inf behind the mask still count, the largest logit masked becomes 0, and a fully
    masked row is a loss of K equal logits."""
    where = o.get("where")
    if where is not None:
        lowest = np.asarray(np.finfo(x.dtype).min if x.dtype.kind == "f" else -3e38, x.dtype)
        hidden = ~np.broadcast_to(where, x.shape)
        with np.errstate(all="ignore"):
            x = np.where(hidden, x + lowest, x)
        o = {**o, "where": None}
    return _exact(Op.SPARSE_SOFTMAX_CROSS_ENTROPY)(x, labels, **o)


def _weighted_mean_by_count(x, labels, **o):
    """torch's weighted 'mean' divided by the number of examples, not by their weights."""
    if o.get("reduction") == Reduction.WEIGHTED_MEAN and o.get("class_weights") is not None:
        total = _exact(Op.SPARSE_SOFTMAX_CROSS_ENTROPY)(x, labels, **{**o, "reduction": "sum"})
        ignored = labels == o.get("ignore_index", -100)
        return (total / max(int((~ignored).sum()), 1)).astype(x.dtype)
    return _exact(Op.SPARSE_SOFTMAX_CROSS_ENTROPY)(x, labels, **o)


def _ignored_counted_in_mean(x, labels, **o):
    """A mean whose denominator counts the ignored examples."""
    ignored = labels == o.get("ignore_index", -100)
    if (
        o.get("reduction") == Reduction.WEIGHTED_MEAN
        and o.get("class_weights") is None
        and ignored.any()
    ):
        total = _exact(Op.SPARSE_SOFTMAX_CROSS_ENTROPY)(x, labels, **{**o, "reduction": "sum"})
        return (total / labels.size).astype(x.dtype)
    return _exact(Op.SPARSE_SOFTMAX_CROSS_ENTROPY)(x, labels, **o)


def _sum_is_a_mean(x, labels, **o):
    """reduction='sum' divides by the batch size."""
    if o.get("reduction") == Reduction.SUM:
        o = {**o, "reduction": Reduction.SUM_OVER_BATCH_SIZE}
    return _exact(Op.SOFTMAX_CROSS_ENTROPY)(x, labels, **o)


def _zero_scale_kept(x, labels, **o):
    """logsumexp with factors b: a zero factor keeps its term (b taken as 1)."""
    b = o.get("scale")
    if b is not None:
        o = {**o, "scale": np.where(b == 0, np.ones_like(b), b)}
    return _exact(Op.LOGSUMEXP)(x, labels, **o)


def _smoothing_over_the_others(x, labels, **o):
    """Label smoothing that spreads eps over the K-1 other classes, not over all K."""
    s, dims = o.get("label_smoothing", 0.0), _class_dims(x, o["axis"])
    k = x.shape[dims[0]] if x.ndim else 1
    if s and k > 1:
        o = {**o, "label_smoothing": s * k / (k - 1)}
    return _exact(Op.SPARSE_SOFTMAX_CROSS_ENTROPY)(x, labels, **o)


def _raises_on_empty(op: Op):
    def fn(x, labels, **o):
        if x.size == 0:
            raise ValueError("cannot reduce an empty batch")
        return _exact(op)(x, labels, **o)

    return fn


def _class_weights_ignored(x, labels, **o):
    """Class weights dropped from the per-example losses."""
    return _exact(Op.SOFTMAX_CROSS_ENTROPY)(x, labels, **{**o, "class_weights": None})


def _sigmoid_cross_entropy_naive(x, labels, **o):
    """-z log s(x) - (1 - z) log(1 - s(x)) in the input's precision (no log-sigmoid)."""
    with np.errstate(all="ignore"):
        p = (1 / (1 + np.exp(-x))).astype(x.dtype)
        one = np.asarray(1, x.dtype)
        loss = -(labels * np.log(p) + (one - labels) * np.log(one - p))
    smoothing = o.get("label_smoothing", 0.0)
    if smoothing or o.get("reduction", Reduction.NONE) != Reduction.NONE:
        return _exact(Op.SIGMOID_CROSS_ENTROPY)(x, labels, **o)
    return loss.astype(x.dtype)


class NanGradientBehindMask(ExactAdapter):
    """The gradient of a masked entry holding a non-finite logit is NaN (the gradient of
    `where(mask, exp(x), 0)` is `0 * exp(x)`: 0 * inf)."""

    name = "nan-gradient-behind-mask"

    def gradient(self, impl, x, labels, options, ct):
        g = super().gradient(impl, x, labels, options, ct)
        where = options.get("where")
        if where is None or g.shape != x.shape:
            return g
        hidden = ~np.broadcast_to(where, x.shape) & ~np.isfinite(x.astype(np.float64))
        return np.where(hidden, np.asarray(np.nan, g.dtype), g)


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
        **OPTION_CONFINED,
    }


def _confined(name: str, op: Op, fn: Callable[..., Any], verdict: str, kind: str):
    return name, (broken(name, {op: fn}), op, verdict, kind)


OPTION_CONFINED: dict[str, tuple[Adapter, Op, str, str]] = dict(
    [
        _confined(
            "non-last-axis-as-last",
            Op.LOG_SOFTMAX,
            _non_last_axis_as_last,
            "inaccurate",
            "over-budget",
        ),
        _confined(
            "tuple-axis-first-only",
            Op.LOGSUMEXP,
            _tuple_axis_first_only,
            "inaccurate",
            "over-budget",
        ),
        _confined(
            "uniform-over-fully-masked",
            Op.SOFTMAX,
            _uniform_over_fully_masked,
            "divergent",
            "undefined-unacceptable",
        ),
        _confined(
            "mask-as-lowest-logit",
            Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
            _mask_as_lowest_logit,
            "divergent",
            "nan-where-defined",
        ),
        _confined(
            "weighted-mean-by-count",
            Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
            _weighted_mean_by_count,
            "inaccurate",
            "over-budget",
        ),
        _confined(
            "ignored-counted-in-mean",
            Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
            _ignored_counted_in_mean,
            "inaccurate",
            "over-budget",
        ),
        _confined(
            "sum-is-a-mean", Op.SOFTMAX_CROSS_ENTROPY, _sum_is_a_mean, "inaccurate", "over-budget"
        ),
        _confined("zero-scale-kept", Op.LOGSUMEXP, _zero_scale_kept, "inaccurate", "over-budget"),
        _confined(
            "smoothing-over-the-others",
            Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
            _smoothing_over_the_others,
            "inaccurate",
            "over-budget",
        ),
        _confined(
            "raises-on-empty-batch",
            Op.PROBABILITY_CROSS_ENTROPY,
            _raises_on_empty(Op.PROBABILITY_CROSS_ENTROPY),
            "error",
            "raised",
        ),
        _confined(
            "class-weights-ignored",
            Op.SOFTMAX_CROSS_ENTROPY,
            _class_weights_ignored,
            "inaccurate",
            "over-budget",
        ),
        _confined(
            "sigmoid-cross-entropy-naive",
            Op.SIGMOID_CROSS_ENTROPY,
            _sigmoid_cross_entropy_naive,
            "divergent",
            "infinity",
        ),
        (
            "nan-gradient-behind-mask",
            (NanGradientBehindMask(), Op.LOG_SOFTMAX, "divergent", "gradient-nan-where-defined"),
        ),
    ]
)
"""Broken implementations each confined to one option or op family: the default quick
run must flag every one (tests/test_harness.py); together they name every option."""
