"""How a cell's inputs become calls: row-wise inputs stacked into few shapes, and their
cotangents.

A compiled cell pays one compilation per distinct call, so inputs whose options mean the
same are stacked along axis 0 and padded to a power-of-two row count with copies of their
own rows; an input re-run on its own is padded to its batch's row count (the same
program). Cotangents are drawn per input, so batching never changes a gradient's judgement.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance.inputs import Input
from conformance.judge import expected, input_key
from conformance.ops import ARRAY_OPTIONS, Reduction
from conformance_adapters.interface import Implementation

GRADIENT_MAX_ELEMENTS = 2**15
"""Gradients are judged on inputs up to this size: the exact VJP of a 131k-class float64
row can need mpmath (cancellation in g - <g, p>), and small rows exercise the same code."""


def batch_key(impl: Implementation, item: Input) -> tuple[Any, ...] | None:
    """Inputs with equal keys can be stacked along axis 0 into one call (row-wise ops).

    Options are compared by meaning (a default left out equals the default spelled out),
    and invalid inputs only join other invalid inputs: a call that raises is re-run input
    by input, and a valid row should not pay for an invalid neighbour."""
    if item.x.ndim < 2 or item.x.shape[0] == 0:
        return None
    opts = item.options
    if any(opts.get(k) is not None for k in ARRAY_OPTIONS):
        return None
    if Reduction(opts.get("reduction", Reduction.NONE)) is not Reduction.NONE:
        return None
    axis = opts.get("axis", -1)
    if axis is not None and (isinstance(axis, tuple | list) or int(axis) % item.x.ndim == 0):
        return None
    labels_shape = None if item.labels is None else item.labels.shape[1:]
    canonical = {k: v for k, v in opts.items() if v is not None and v != 0.0 and k not in ("axis",)}
    if axis is not None:
        canonical["axis"] = int(axis) % item.x.ndim
    frozen = tuple(sorted((k, str(v)) for k, v in canonical.items()))
    return (item.x.shape[1:], labels_shape, frozen, item.invalid)


def row_bucket(rows: int) -> int:
    """Stacked calls are padded to a power of two rows, so that a compiled cell sees few
    distinct shapes (each costs a compilation: ~0.1 s under XLA, per dtype and mode)."""
    return 1 << max(rows - 1, 0).bit_length()


def chunks(items: list[Input], max_elements: int | None) -> list[list[Input]]:
    """`items` split so that a stacked call stays within `max_elements` (gradients)."""
    if max_elements is None:
        return [items]
    out: list[list[Input]] = [[]]
    size = 0
    for item in items:
        if out[-1] and row_bucket(size + item.x.size) > max_elements:
            out.append([])
            size = 0
        out[-1].append(item)
        size += item.x.size
    return out


def cotangent(
    impl: Implementation, batch: list[Input], x: np.ndarray, seed: int, stacked: bool
) -> np.ndarray:
    """The cotangent of a call on `x`: per input, standard normal + 0.5 in x's dtype, drawn
    from a generator seeded by the cell's seed and the input's own bytes, so that how the
    inputs are batched, padded or re-run never changes an input's cotangent (nor its
    gradient's judgement); a stack's rows are repeated as `stack` repeats x's."""
    parts = []
    for item in batch:
        shape = expected(impl.op, item.x, item.labels, item.options).exact.value.shape
        tag = int.from_bytes(input_key(impl.op, [item.x, item.labels], item.options)[:8], "little")
        rng = np.random.default_rng([seed, tag])
        parts.append((rng.standard_normal(shape) + 0.5).astype(x.dtype))
    if not stacked:
        return parts[0]
    return repeat_rows(np.concatenate(parts, axis=0), len(x))


def repeat_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """`a` with its rows (axis 0) repeated in turn to `rows` rows (`np.resize` along axis 0,
    what a reproducer writes); `a` itself when it has that many."""
    return a if len(a) == rows else a[np.arange(rows) % len(a)]


def stack(items: list[Input], rows: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The inputs stacked along axis 0, padded to `rows` (by default `row_bucket`) rows with
    copies of their own rows (`repeat_rows`)."""
    x = np.concatenate([i.x for i in items], axis=0)
    labels = None if items[0].labels is None else np.concatenate([i.labels for i in items], 0)
    count = rows or row_bucket(x.shape[0])
    return repeat_rows(x, count), None if labels is None else repeat_rows(labels, count)


def rows_of(items: list[Input]) -> list[slice]:
    """The slice of a stacked output that belongs to each input (outputs keep axis 0)."""
    bounds, start = [], 0
    for item in items:
        bounds.append(slice(start, start + item.x.shape[0]))
        start += item.x.shape[0]
    return bounds
