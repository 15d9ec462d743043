"""Broken implementations each confined to one option or op family (the proof that the
draws cover what the catalog declares): each changes the exact adapter in one place only,
the way real releases have gone wrong. tests/test_harness.py runs them in the quick profile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from harness_adapters import MODES, BrokenAdapter, ExactAdapter, _exact, broken

from conformance.ops import Op, Reduction
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Implementation


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


def _fully_masked_rows(x: np.ndarray, o: dict[str, Any]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Where x's rows (along the class axes) are fully masked, broadcast to x's shape."""
    dims = _class_dims(x, o["axis"])
    mask = np.broadcast_to(o["where"], x.shape)
    return np.broadcast_to(~np.any(mask, axis=dims, keepdims=True), x.shape), dims


def _fully_masked_by_class_order(x, labels, **o):
    """A fully masked row comes back as 0 when its first logit exceeds its last, else NaN
    (a kernel whose empty-row path reads the first and last entries): each answer is
    acceptable alone; reversing the classes changes it."""
    out = _exact(Op.SOFTMAX)(x, labels, **o)
    if o.get("where") is None or not x.size:
        return out
    empty, dims = _fully_masked_rows(x, o)
    first = np.take(x, [0], axis=dims[0]) if len(dims) == 1 else x.reshape(-1)[:1]
    last = np.take(x, [-1], axis=dims[0]) if len(dims) == 1 else x.reshape(-1)[-1:]
    zero = np.broadcast_to(first > last, x.shape)
    return np.where(empty & zero, np.asarray(0, x.dtype), out)


def _fully_masked_by_sign(x, labels, **o):
    """A fully masked row comes back as -inf when its largest finite logit is negative, else
    NaN (the masked logits decide the empty row's answer): each acceptable alone, but
    shifting every logit changes it."""
    out = _exact(Op.LOG_SOFTMAX)(x, labels, **o)
    if o.get("where") is None or not x.size:
        return out
    empty, dims = _fully_masked_rows(x, o)
    finite = np.where(np.isfinite(x), x, -np.inf)
    negative = np.broadcast_to(np.max(finite, axis=dims, keepdims=True) < 0, x.shape)
    return np.where(empty & negative, np.asarray(-np.inf, x.dtype), np.where(empty, np.nan, out))


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


def _log_probabilities_rounded_first(x, labels, **o):
    """Dense cross-entropy as -sum(y * log_softmax(x)) with the log-probabilities rounded to
    the input's precision first: a log-probability below the dtype's lowest value is -inf,
    though weighted by its (smoothed) label the loss is finite (optax 0.2.8's
    safe_softmax_cross_entropy). Right everywhere else."""
    exact = _exact(Op.SOFTMAX_CROSS_ENTROPY)(x, labels, **o)
    if not x.size:
        return exact
    axis, where = o["axis"], o.get("where")
    logp = _exact(Op.LOG_SOFTMAX)(x, None, axis=axis, where=where)
    k = x.shape[axis]
    y = np.broadcast_to(labels, x.shape).astype(np.float64)
    smoothing = o.get("label_smoothing", 0.0)
    y = y * (1 - smoothing) + smoothing / k
    kept = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
    lost = (logp == -np.inf) & kept & (y > 0) & np.isfinite(x.astype(np.float64))
    lost = lost.any(axis=axis)
    if o.get("reduction", Reduction.NONE) == Reduction.NONE:
        return np.where(lost, np.asarray(np.inf, x.dtype), exact)
    return np.asarray(np.inf, x.dtype) if lost.any() else exact


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


class LogProbabilitiesRoundedFirst(BrokenAdapter):
    """Dense cross-entropy declared as optax declares it (last axis, no option), its
    log-probabilities rounded first: only near-overflow inputs show it."""

    name = "log-probabilities-rounded-first"
    replacements: ClassVar[dict[Op, Callable[..., Any]]] = {
        Op.SOFTMAX_CROSS_ENTROPY: _log_probabilities_rounded_first
    }

    def _implementations(self) -> list[Implementation]:
        return [
            Implementation(
                "rounded-first.softmax_cross_entropy",
                Op.SOFTMAX_CROSS_ENTROPY,
                _log_probabilities_rounded_first,
                modes=MODES,
            )
        ]


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
            "nan-where-defined|infinity",  # NaN or +inf behind the mask, whichever is drawn
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
        (
            "log-probabilities-rounded-first",
            (LogProbabilitiesRoundedFirst(), Op.SOFTMAX_CROSS_ENTROPY, "divergent", "infinity"),
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
        _confined(
            "fully-masked-by-class-order",
            Op.SOFTMAX,
            _fully_masked_by_class_order,
            "divergent",
            "metamorphic-class-order",
        ),
        _confined(
            "fully-masked-by-sign",
            Op.LOG_SOFTMAX,
            _fully_masked_by_sign,
            "divergent",
            "metamorphic-shift",
        ),
        (
            "nan-gradient-behind-mask",
            (NanGradientBehindMask(), Op.LOG_SOFTMAX, "divergent", "gradient-nan-where-defined"),
        ),
    ]
)
"""Broken implementations each confined to one option or op family: the default quick
run must flag every one (tests/test_harness.py); together they name every option."""
