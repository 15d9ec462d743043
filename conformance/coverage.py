"""What a cell exercised: the option values and input classes of the inputs it judged.

Every input is described by a set of *features* ('axis:non-last', 'where:fully-masked-row',
'reduction:weighted_mean', 'empty', ...). An implementation *declares* the features its
options, axis forms and reductions make possible (`declared`); a cell's record counts the
features it judged, with and without a gradient (`exercised`), and names what was declared
but never drawn, as a coverage report names the lines no test ran.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from conformance.dtypes import float_format
from conformance.inputs import Input
from conformance.ops import CATALOG, Axes, LabelKind, Op, Option, Reduction, is_default
from conformance.strategies import Example

_AXIS_FEATURES: dict[Axes, frozenset[str]] = {
    Axes.ELEMENTWISE: frozenset(),
    Axes.LAST: frozenset({"axis:last"}),
    Axes.ANY: frozenset({"axis:last", "axis:non-last", "axis:followed-by-size-1"}),
    Axes.TUPLE: frozenset({"axis:last", "axis:non-last", "axis:followed-by-size-1", "axis:tuple"}),
    Axes.TRAILING: frozenset({"axis:last", "axis:tuple"}),
}
_OPTION_FEATURES: dict[Option, frozenset[str]] = {
    Option.AXIS: frozenset(),  # by the axis form (`_AXIS_FEATURES`)
    Option.REDUCTION: frozenset(),  # by the reductions offered
    Option.WHERE: frozenset(
        {
            "where:partly-masked",
            "where:fully-masked-row",
            "where:broadcast",
            "where:hidden-nonfinite",
        }
    ),
    Option.SCALE: frozenset({"scale:set", "scale:zero", "scale:broadcast"}),
    Option.CLASS_WEIGHTS: frozenset({"class_weights:set", "class_weights:zero"}),
    Option.IGNORE_INDEX: frozenset(
        {"ignore_index:some", "ignore_index:all", "ignore_index:a-class", "ignore_index:outside"}
    ),
    Option.LABEL_SMOOTHING: frozenset({"label_smoothing:set"}),
}
"""The features each option must show in a cell's draws (tests/test_coverage.py)."""
_REDUCED_WITH: dict[Option, str] = {
    Option.IGNORE_INDEX: "ignore_index:some",
    Option.CLASS_WEIGHTS: "class_weights:set",
    Option.WHERE: "where:partly-masked",
    Option.LABEL_SMOOTHING: "label_smoothing:set",
}
"""Options whose meaning a reduction changes (a mean's denominator counts weights, ignored
labels, masked examples): each reduction is drawn with each of them, over two examples or
more (one example: every reduction is the identity)."""
_MEANS = frozenset(Reduction) - {Reduction.NONE, Reduction.SUM}
"""The reductions with a denominator."""
_UNWEIGHTED_IGNORE = "ignore_index:some&class_weights:unset"
"""Ignored labels without class weights: a weighted mean's denominator is then a count,
with weights a sum of weights (two formulas, each drawn with each reduction that divides:
a mean that counts the ignored labels is wrong in the first only)."""
assert set(_OPTION_FEATURES) == set(Option), "every option says what drawing it means"


def declared(
    op: Op,
    options: frozenset[Option],
    axes: Axes,
    reductions: tuple[Reduction, ...],
    ranks: range,
    empty: bool,
) -> frozenset[str]:
    """The features an implementation's declaration makes possible within a menu's ranks."""
    out = set(_AXIS_FEATURES[axes]) if CATALOG[op].labels is not LabelKind.BINARY else set()
    for option in options:
        out |= _OPTION_FEATURES[option]
    if len(reductions) > 1:
        for r in reductions:
            out.add(f"reduction:{r.value}")
            out |= {
                f"reduction:{r.value}&{feature}"
                for option, feature in _REDUCED_WITH.items()
                if option in options
            }
            if {Option.IGNORE_INDEX, Option.CLASS_WEIGHTS} <= options and r in _MEANS:
                out.add(f"reduction:{r.value}&{_UNWEIGHTED_IGNORE}")
    out |= {f"rank:{r}" for r in ranks}
    if empty:
        out.add("empty")
    spec = CATALOG[op]
    if not spec.input_is_probability:
        out.add("near-overflow")
    if spec.labels in (LabelKind.NONE, LabelKind.DENSE) and axes is not Axes.ELEMENTWISE:
        out.add("empty-class-axis")  # integer labels: no class means no valid label
    if not spec.input_is_probability and (
        spec.labels is LabelKind.DENSE
        or (spec.labels is LabelKind.INTEGER and Option.LABEL_SMOOTHING in options)
    ):
        out.add("overflowing-log-probability")
    return frozenset(out)


def features(op: Op, item: Input | Example) -> frozenset[str]:
    """The features of one input (judged, or drawn)."""
    x, opts = item.x, item.options
    out = {f"rank:{x.ndim}"}
    if x.size == 0:
        out.add("empty")
    if not np.isfinite(x.astype(np.float64)).all():
        out.add("nonfinite")
    if item.invalid:  # judged by its reaction only: none of its options is exercised
        return frozenset({"invalid"})
    class_dims = _class_dims(op, opts.get("axis", -1), x.ndim)
    if class_dims and CATALOG[op].labels is not LabelKind.BINARY:
        if not math.prod(x.shape[d] for d in class_dims):
            out.add("empty-class-axis")
    if CATALOG[op].labels is not LabelKind.BINARY and x.ndim:
        axis = opts.get("axis", -1)
        if axis is None or (isinstance(axis, tuple | list) and len(axis) > 1):
            out.add("axis:tuple")
        elif class_dims == (x.ndim - 1,):
            out.add("axis:last")
        else:
            out.add("axis:non-last")
            if all(n == 1 for n in x.shape[max(class_dims) + 1 :]):
                out.add("axis:followed-by-size-1")
    where = opts.get("where")
    if _near_overflow(x, where):
        out.add("near-overflow")
        if _overflowing_log_probability(op, item, class_dims):
            out.add("overflowing-log-probability")
    if where is not None:
        out |= _mask_features(np.asarray(where, bool), x, class_dims)
    scale = opts.get("scale")
    if scale is not None:
        out.add("scale:set")
        if (np.asarray(scale) == 0).any():
            out.add("scale:zero")
        if np.shape(scale) != x.shape:
            out.add("scale:broadcast")
    weights = opts.get("class_weights")
    if weights is not None:
        if (_weights_in_play(op, np.asarray(weights), item.labels, opts) != 0).any():
            out.add("class_weights:set")
        if (np.asarray(weights) == 0).any():
            out.add("class_weights:zero")
    ignore = opts.get("ignore_index")
    if ignore is not None and item.labels is not None and item.labels.size:
        ignored = np.asarray(item.labels) == ignore
        if ignored.any():  # which kind of index: a class left out, or none at all
            k = item.x.shape[class_dims[0]] if class_dims else 0
            out.add("ignore_index:a-class" if 0 <= ignore < k else "ignore_index:outside")
        if ignored.all():
            out.add("ignore_index:all")
        elif ignored.any():
            out.add("ignore_index:some")
    if not is_default("label_smoothing", opts.get("label_smoothing", 0.0)):
        out.add("label_smoothing:set")
    examples = math.prod(n for d, n in enumerate(x.shape) if d not in class_dims)
    if "reduction" in opts and examples >= 2:  # one example: every reduction is the identity
        reduction = Reduction(opts["reduction"]).value
        out.add(f"reduction:{reduction}")
        out |= {f"reduction:{reduction}&{f}" for f in _REDUCED_WITH.values() if f in out}
        unweighted = opts.get("class_weights") is None
        if "ignore_index:some" in out and unweighted and Reduction(opts["reduction"]) in _MEANS:
            out.add(f"reduction:{reduction}&{_UNWEIGHTED_IGNORE}")
    return frozenset(out)


NEAR_OVERFLOW = 2.0**-4
"""An input is near overflow when a finite entry it does not mask is within four binades of
the dtype's largest value: there a shift by the row's maximum, a sum of two entries, a loss
that is the spread of a row or a product by a label can overflow although the exact answer
is finite (optax.safe_softmax_cross_entropy gives inf for a float32 loss of 3.24e38)."""


def _near_overflow(x: np.ndarray, where: Any) -> bool:
    if not x.size:
        return False
    seen = x.astype(np.float64)
    if where is not None:
        seen = seen[np.broadcast_to(np.asarray(where, bool), x.shape)]
    seen = np.abs(seen[np.isfinite(seen)])
    return bool(seen.size) and float(seen.max()) >= float_format(x.dtype).max * NEAR_OVERFLOW


def _overflowing_log_probability(
    op: Op, item: Input | Example, class_dims: tuple[int, ...]
) -> bool:
    """A label weighs a log-probability beyond the dtype's range, yet the loss is in range:
    computed in units of the dtype's largest value, some row has a weighted entry whose
    gap to the row's largest logit exceeds 1 while the label-weighted gaps sum below 1
    (the row's log-sum-exp is its largest logit up to log K, nothing at this scale)."""
    spec = CATALOG[op]
    if spec.labels not in (LabelKind.DENSE, LabelKind.INTEGER) or spec.input_is_probability:
        return False
    if len(class_dims) != 1 or item.labels is None or not item.x.size:
        return False
    axis, opts = class_dims[0], item.options
    scaled = np.moveaxis(item.x.astype(np.float64), axis, -1) / float_format(item.x.dtype).max
    k = scaled.shape[-1]
    if spec.labels is LabelKind.DENSE:
        y = np.moveaxis(np.broadcast_to(item.labels, item.x.shape).astype(np.float64), axis, -1)
    else:
        labels = np.asarray(item.labels)
        valid = (labels >= 0) & (labels < k) & (labels != opts.get("ignore_index"))
        y = (np.arange(k) == np.where(valid, labels, -1)[..., None]).astype(np.float64)
        smoothing = opts.get("label_smoothing", 0.0) or 0.0
        y = np.where(valid[..., None], y * (1 - smoothing) + smoothing / k, 0.0)
    kept = np.isfinite(scaled)
    if opts.get("where") is not None:
        kept &= np.moveaxis(
            np.broadcast_to(np.asarray(opts["where"], bool), item.x.shape), axis, -1
        )
    top = np.where(kept, scaled, -np.inf).max(axis=-1, keepdims=True)
    gap = np.where(kept & (y > 0), top - scaled, 0.0)
    return bool(((gap > 1).any(axis=-1) & ((y * gap).sum(axis=-1) < 1)).any())


def _weights_in_play(
    op: Op, weights: np.ndarray, labels: np.ndarray | None, opts: dict[str, Any]
) -> np.ndarray:
    """The class weights that can change the answer: for integer labels, those of the
    labelled classes of examples that are not ignored (an all-ignored batch uses none)."""
    if CATALOG[op].labels is not LabelKind.INTEGER or labels is None:
        return weights.reshape(-1)
    y = np.asarray(labels).reshape(-1)
    active = (y != opts.get("ignore_index")) & (y >= 0) & (y < weights.size)
    return weights.reshape(-1)[y[active]]


def _class_dims(op: Op, axis: Any, ndim: int) -> tuple[int, ...]:
    if not ndim:
        return ()
    if axis is None:
        return tuple(range(ndim)) if CATALOG[op].labels is not LabelKind.BINARY else ()
    axes = tuple(axis) if isinstance(axis, tuple | list) else (int(axis),)
    return tuple(sorted({int(a) % ndim for a in axes}))


def _mask_features(mask: np.ndarray, x: np.ndarray, class_dims: tuple[int, ...]) -> set[str]:
    out = set()
    if mask.shape != x.shape:
        out.add("where:broadcast")
    full = np.broadcast_to(mask, x.shape)
    hidden = x[~full] if x.size else x.reshape(-1)
    if hidden.size and not np.isfinite(hidden.astype(np.float64)).all():
        out.add("where:hidden-nonfinite")
    if not x.size or not class_dims:
        return out
    rows = np.moveaxis(full, class_dims, tuple(range(-len(class_dims), 0)))
    rows = rows.reshape(-1, int(np.prod([x.shape[a] for a in class_dims])))
    kept = rows.sum(axis=1)
    if ((kept > 0) & (kept < rows.shape[1])).any():
        out.add("where:partly-masked")
    if rows.shape[1] and (kept == 0).any():
        out.add("where:fully-masked-row")
    return out


def summary(op: Op, judged: list[tuple[Input, bool]], wanted: frozenset[str]) -> dict[str, Any]:
    """A cell's coverage: per feature, [inputs judged, of which with a gradient]; and the
    declared features no judged input showed."""
    counts: dict[str, list[int]] = {}
    for item, with_gradient in judged:
        for feature in features(op, item):
            entry = counts.setdefault(feature, [0, 0])
            entry[0] += 1
            entry[1] += int(with_gradient)
    return {
        "exercised": dict(sorted(counts.items())),
        "not_drawn": sorted(wanted - set(counts)),
    }
