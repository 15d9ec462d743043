"""Hypothesis strategies for the inputs of every catalog operation.

Arrays are built from a few drawn parameters (a seed, a scale, an offset, where to put
special values) and numpy's generator, so a 100k-class row costs no more to draw than a
3-class one, and every value is exactly representable in the dtype under test (the
float64 draw is rounded to it, and the reference reads the rounded values).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.dtypes import FLOAT_DTYPES, as_dtype, float_format
from conformance.ops import CATALOG, LabelKind, Op, Option

IGNORE_INDEX = -100
"""The ignore index the strategies use (torch's default)."""


@contextlib.contextmanager
def without_local_constants() -> Iterator[None]:
    """Draws that do not depend on which modules the process has loaded.

    Hypothesis (since 6.131) mixes literals it finds in the source of *local* modules loaded
    in the process (an editable install is local) into its draws
    (`hypothesis.internal.conjecture.providers._get_local_constants`): a worker that loaded
    the TensorFlow adapter and one that loaded the torch adapter drew different inputs for
    the same seed (the baseline's digests caught it). Inside this block Hypothesis sees no
    local constants; if its internals move, the block does nothing and
    tests/test_harness.py says so."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - another Hypothesis layout
        yield
        return
    saved = getattr(providers, "_get_local_constants", None)
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if saved is None or cache is None or not hasattr(providers, "Constants"):
        yield  # pragma: no cover
        return
    empty = providers.Constants()
    providers._get_local_constants = lambda: empty
    cache.cache.clear()  # choices computed with local constants
    try:
        yield
    finally:
        providers._get_local_constants = saved
        cache.cache.clear()


@dataclass(frozen=True)
class Example:
    """One drawn input of an operation."""

    x: np.ndarray
    labels: np.ndarray | None = None
    options: dict[str, Any] = field(default_factory=dict)
    invalid: bool = False
    """True when the labels break the API's contract (out of range, not normalised)."""


@st.composite
def shapes(
    draw: st.DrawFn,
    *,
    max_rank: int = 4,
    class_counts: tuple[int, ...] | None = None,
    min_rank: int = 1,
    empty_batches: bool = True,
) -> tuple[int, ...]:
    """Ranks 1-4; size-1 and (rarely) empty dimensions; class counts up to 2**17 (rarely),
    or from the menu `class_counts` (so that rows of equal length can be batched)."""
    rank = draw(st.integers(min(min_rank, max_rank), max_rank))
    sizes = [1, 1, 2, 3, 4, 5, 0] if empty_batches else [1, 1, 2, 3, 4, 5]
    batch = draw(st.lists(st.sampled_from(sizes), min_size=rank - 1, max_size=rank - 1))
    if class_counts:
        return (*batch, draw(st.sampled_from(class_counts)))
    classes = draw(
        st.one_of(
            st.integers(1, 8),
            st.integers(9, 300),
            st.sampled_from([1000, 4096, 32000, 131072]),
        )
    )
    if draw(st.integers(0, 49)) == 0:
        classes = 0  # an empty class axis, rarely
    shape = [*batch, classes]
    # bound the element count so a draw stays cheap
    while int(np.prod(shape)) > 2**18 and len(shape) > 1:
        shape.pop(0)
    return tuple(shape)


@st.composite
def axes(draw: st.DrawFn, rank: int) -> int:
    """An axis of a rank-`rank` array, negative or not."""
    axis = draw(st.integers(0, rank - 1))
    return axis - rank if draw(st.booleans()) else axis


_SCALES = (0.0, 1e-3, 1.0, 10.0, 100.0, 1e3, 1e4)
_POWERS_OF_TEN = np.array([1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0])

# Draws must be the same bits under every numpy (two framework releases are compared on
# identical inputs, and jax 0.4 needs numpy 1.26): numpy's SIMD exp and pow differ by an ULP
# between versions and CPUs, so draws use only IEEE-exact operations (+, *, /) and libm's exp.


def _power(a: np.ndarray, n: int) -> np.ndarray:
    """a**n by repeated squaring: a fixed sequence of correctly rounded products."""
    result, base = np.ones_like(a), a
    while n:
        if n & 1:
            result = result * base
        base, n = base * base, n >> 1
    return result


def _sum(a: np.ndarray, axis: int) -> np.ndarray:
    """Correctly rounded sums along `axis` (keepdims): numpy's pairwise sum is not."""
    return np.expand_dims(np.apply_along_axis(math.fsum, axis, a), axis)


def _exp(a: np.ndarray) -> np.ndarray:
    """exp by the C library (math.exp), not numpy's version- and CPU-dependent SIMD loop."""
    return np.frompyfunc(math.exp, 1, 1)(a).astype(np.float64) if a.size else np.exp(a)


@st.composite
def float_arrays(
    draw: st.DrawFn, shape: tuple[int, ...], dtype: str, *, specials: bool = True
) -> np.ndarray:
    """Logit arrays: ordinary values, spreads from 0 to 1e4 and near the dtype's max, rows at
    different scales, ties, and (when `specials`) -inf masks, +inf and NaN."""
    fmt = float_format(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["normal", "normal", "spread", "near-max", "row-scales", "ties"]))
    scale = draw(st.sampled_from(_SCALES))
    x = rng.standard_normal(shape)
    if kind == "spread":
        x = x * scale + draw(st.sampled_from([0.0, 1.0, -1e3, 1e4]))
    elif kind == "near-max":
        x = np.clip(x, -1, 1) * fmt.max * draw(st.sampled_from([0.5, 0.99, 1.0]))
    elif kind == "row-scales" and len(shape) >= 2:
        x = x * _POWERS_OF_TEN[rng.integers(0, 7, size=(*shape[:-1], 1))]
    elif kind == "ties" and x.size:
        x = rng.integers(-2, 3, size=shape).astype(np.float64) * max(scale, 1.0)
    else:
        x = x * max(scale, 1e-3)
    if specials and x.size and draw(st.integers(0, 3)) == 0:
        special = draw(st.sampled_from([-np.inf, -np.inf, np.inf, np.nan]))
        count = draw(st.integers(1, max(1, min(x.size, 4))))
        flat = x.reshape(-1)
        flat[rng.choice(flat.size, size=count, replace=False)] = special
        if special == -np.inf and draw(st.booleans()) and x.ndim:
            x[..., :] = np.where(rng.random((*shape[:-1], 1)) < 0.3, -np.inf, x)  # full rows
    with np.errstate(over="ignore"):
        return x.astype(as_dtype(dtype))


@st.composite
def integer_labels(
    draw: st.DrawFn, shape: tuple[int, ...], classes: int, *, invalid: bool
) -> tuple[np.ndarray, bool]:
    """Class indices; sometimes the ignore index; when `invalid`, out of range or negative."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = rng.integers(0, max(classes, 1), size=shape, dtype=np.int64)
    if y.size and draw(st.integers(0, 3)) == 0:
        y.reshape(-1)[0] = IGNORE_INDEX
    if classes == 0 and y.size:
        return y, True  # an empty class axis has no valid label
    bad = invalid and y.size > 0 and draw(st.integers(0, 4)) == 0
    if bad:
        y.reshape(-1)[-1] = draw(st.sampled_from([classes, classes + 7, -1]))
    return y, bad


@st.composite
def dense_labels(
    draw: st.DrawFn, shape: tuple[int, ...], axis: int, dtype: str, *, invalid: bool
) -> tuple[np.ndarray, bool]:
    """One-hot or soft labels along `axis`; when `invalid`, soft labels that don't sum to 1."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["one-hot", "soft", "soft-invalid" if invalid else "soft"]))
    moved = np.moveaxis(np.zeros(shape), axis, -1)
    k = moved.shape[-1]
    if kind == "one-hot" and k:
        idx = rng.integers(0, k, size=moved.shape[:-1])
        np.put_along_axis(moved, idx[..., None], 1.0, axis=-1)
    elif k:
        moved = rng.dirichlet(np.ones(k), size=moved.shape[:-1]).reshape(moved.shape)
        if kind == "soft-invalid":
            moved = moved * 1.25
    labels = np.moveaxis(moved, -1, axis).astype(as_dtype(dtype))
    # Soft labels that do not sum to 1 break the usual contract, but the mathematics
    # -sum t log p still defines the loss and no framework promises to check: they are
    # judged for accuracy, not for a reaction.
    return labels, False


@st.composite
def examples(
    draw: st.DrawFn,
    op: Op,
    dtype: str,
    supported: frozenset[Option] | None = None,
    *,
    invalid: bool = True,
    max_rank: int = 4,
    class_counts: tuple[int, ...] | None = None,
    last_axis_only: bool = False,
    min_rank: int = 1,
    empty_batches: bool = True,
    label_smoothings: tuple[float, ...] = (0.1, 0.2, 0.5),
) -> Example:
    """An input of `op` in `dtype`, using only the `supported` options of an implementation."""
    spec = CATALOG[op]
    supported = spec.options if supported is None else supported
    shape = draw(
        shapes(
            max_rank=max_rank,
            class_counts=class_counts,
            min_rank=min_rank,
            empty_batches=empty_batches,
        )
    )
    binary = spec.labels is LabelKind.BINARY
    axis = -1 if last_axis_only or binary or max_rank <= 2 else draw(axes(len(shape)))
    options: dict[str, Any] = {}
    if spec.labels is not LabelKind.BINARY:
        options[Option.AXIS.value] = axis
    if spec.input_is_probability:
        x = _probabilities(draw, shape, axis, dtype, binary=spec.labels is LabelKind.BINARY)
    else:
        x = draw(
            float_arrays(
                shape, dtype, specials=spec.labels is LabelKind.NONE or draw(st.integers(0, 4)) == 0
            )
        )
    labels, bad = None, False
    if spec.labels is LabelKind.INTEGER:
        labels, bad = draw(
            integer_labels(tuple(np.delete(shape, axis % len(shape))), shape[axis], invalid=invalid)
        )
        if Option.IGNORE_INDEX in supported:
            options[Option.IGNORE_INDEX.value] = IGNORE_INDEX
        elif (labels == IGNORE_INDEX).any():
            labels = np.where(labels == IGNORE_INDEX, 0, labels)
        # invalid means a label that is neither a class nor ignored (with no class at all,
        # a row whose label is the ignore index is still valid: found by the 100k sweep)
        ignored = (labels == IGNORE_INDEX) & (Option.IGNORE_INDEX in supported)
        bad = bool(np.any(~ignored & ((labels < 0) | (labels >= shape[axis]))))
    elif spec.labels is LabelKind.DENSE:
        labels, bad = draw(dense_labels(shape, axis, dtype, invalid=invalid))
    elif spec.labels is LabelKind.BINARY:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        soft = draw(st.booleans())
        z = rng.random(shape) if soft else rng.integers(0, 2, size=shape).astype(float)
        labels = z.astype(as_dtype(dtype))
    if Option.LABEL_SMOOTHING in supported and draw(st.integers(0, 3)) == 0:
        options[Option.LABEL_SMOOTHING.value] = draw(st.sampled_from(label_smoothings))
    return Example(x=x, labels=labels, options=options, invalid=bad)


def _probabilities(draw: st.DrawFn, shape, axis, dtype: str, *, binary: bool) -> np.ndarray:
    """Probabilities: a softmax of logits (rows sum to 1 up to rounding), or values in [0, 1]."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if binary:
        p = _power(rng.random(shape), draw(st.sampled_from([1, 4, 30])))
    else:
        z = rng.standard_normal(shape) * draw(st.sampled_from([0.5, 3.0, 30.0]))
        z = z - z.max(axis=axis, keepdims=True) if z.size else z
        p = _exp(z)
        p = p / _sum(p, axis) if p.size else p
    return p.astype(as_dtype(dtype))


def dtypes() -> st.SearchStrategy[str]:
    """The dtypes under test."""
    return st.sampled_from(FLOAT_DTYPES)
