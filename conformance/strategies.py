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
from conformance.ops import CATALOG, Axes, LabelKind, Op, Option, Reduction

IGNORE_INDEX = -100
"""torch's default ignore index, the one a label is set to when no other is drawn."""
OUTSIDE_IGNORE_INDICES = (IGNORE_INDEX, -1, 255)
"""Ignore indices that are no class: torch's default, the -1 of padding conventions, the
255 of segmentation's void label (a class only when there are 256 or more)."""


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


@dataclass(frozen=True)
class Surface:
    """What one implementation can be called with; the draws cover all of it."""

    options: frozenset[Option]
    axes: Axes = Axes.ANY
    reductions: tuple[Reduction, ...] = (Reduction.NONE,)


@dataclass(frozen=True)
class Menu:
    """The sizes draws take (a profile's choice): a short menu keeps compiled cells to few
    programs, since each distinct shape, axis and baked-in scalar is one compilation."""

    max_rank: int = 4
    min_rank: int = 1
    class_counts: tuple[int, ...] | None = None
    """Class-axis lengths (an empty class axis is drawn besides, one draw in 16); None:
    anything from 1 to 2**17 (and rarely 0)."""
    batch_sizes: tuple[int, ...] = (1, 1, 2, 3, 4, 5, 0)
    """Lengths of the other axes (0: an empty batch)."""
    label_smoothings: tuple[float, ...] = (0.1, 0.2, 0.5)


@st.composite
def class_axes(draw: st.DrawFn, rank: int, axes: Axes) -> int | tuple[int, ...] | None:
    """The class axis (or axes) an implementation declares it can take: the last; any
    single axis, negative or not; a tuple of distinct axes in any order; or the trailing
    axes from one on, as a tuple in any order."""
    if axes is Axes.ELEMENTWISE:
        return None
    if axes is Axes.LAST:
        return -1 if draw(st.booleans()) else rank - 1
    if axes is Axes.TRAILING:
        first = draw(st.integers(0, rank - 1))
        trailing = list(range(first, rank))
        if draw(st.booleans()):
            trailing = draw(st.permutations(trailing))
        return tuple(a - rank if draw(st.booleans()) else a for a in trailing)
    if axes is Axes.TUPLE and draw(st.integers(0, 2)) == 0:
        chosen = draw(st.permutations(range(rank)))[: draw(st.integers(1, rank))]
        return tuple(a - rank if draw(st.booleans()) else a for a in chosen)
    axis = draw(st.integers(0, rank - 1))
    return axis - rank if draw(st.booleans()) else axis


@st.composite
def shapes(
    draw: st.DrawFn, rank: int, axis: int | tuple[int, ...] | None, menu: Menu
) -> tuple[int, ...]:
    """A rank-`rank` shape whose class axis (axes) takes a class count and whose other
    axes take batch sizes (size 1 and empty included): so the class axis is followed by
    size-1 axes as often as it ends the shape."""
    class_dims = set() if axis is None else {a % rank for a in _as_tuple(axis)}
    shape = list(draw(st.lists(st.sampled_from(menu.batch_sizes), min_size=rank, max_size=rank)))
    for i, a in enumerate(sorted(class_dims)):
        if i:  # a tuple of axes: the others are short
            shape[a] = draw(st.sampled_from([1, 2, 3]))
        elif menu.class_counts:
            shape[a] = draw(st.sampled_from(menu.class_counts))
            if draw(st.integers(0, 15)) == 0:
                shape[a] = 0  # an empty class axis: every profile draws one
        else:
            shape[a] = draw(
                st.one_of(
                    st.integers(1, 8),
                    st.integers(9, 300),
                    st.sampled_from([1000, 4096, 32000, 131072]),
                )
            )
            if draw(st.integers(0, 49)) == 0:
                shape[a] = 0  # an empty class axis, rarely
    # bound the element count so a draw stays cheap: shrink batch axes first
    first_class_dim = min(class_dims, default=None)
    for i in sorted(
        set(range(rank)) - {first_class_dim}, key=lambda i: (i in class_dims, -shape[i])
    ):
        if math.prod(shape) <= 2**18:
            break
        shape[i] = 1
    return tuple(shape)


def _as_tuple(axis: int | tuple[int, ...]) -> tuple[int, ...]:
    return tuple(axis) if isinstance(axis, tuple | list) else (int(axis),)


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
def ignore_indices(draw: st.DrawFn, classes: int) -> int:
    """An ignore index: one that is no class (the usual use), or one of the classes (a
    "background" class left out of the loss: its logits still count, its rows do not)."""
    if classes > 1 and draw(st.integers(0, 2)) == 0:
        return draw(st.integers(0, classes - 1))
    return draw(st.sampled_from(OUTSIDE_IGNORE_INDICES))


@st.composite
def integer_labels(
    draw: st.DrawFn,
    shape: tuple[int, ...],
    classes: int,
    *,
    invalid: bool,
    ignore: int | None = None,
) -> tuple[np.ndarray, bool]:
    """Class indices; sometimes `ignore` (when it is a class, drawn only there); when
    `invalid`, out of range or negative. `bad` says whether one is out of range, not
    counting `ignore` (the caller decides what an ignored label is)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = rng.integers(0, max(classes, 1), size=shape, dtype=np.int64)
    if ignore is not None and 0 <= ignore < classes:
        others = np.delete(np.arange(classes), ignore)  # other labels miss it: it is drawn
        y = others[rng.integers(0, others.size, size=shape)] if others.size else y
    if ignore is not None and y.size > 1 and draw(st.integers(0, 3)) == 0:
        y.reshape(-1)[0] = ignore  # some ignored (all ignored is the caller's draw)
    if classes == 0 and y.size:
        return y, True  # an empty class axis has no valid label
    bad = invalid and y.size > 0 and draw(st.integers(0, 4)) == 0
    if bad:
        y.reshape(-1)[-1] = draw(st.sampled_from([classes, classes + 7, -1]))
    return y, bad


@st.composite
def dense_labels(
    draw: st.DrawFn,
    shape: tuple[int, ...],
    axis: int,
    dtype: str,
    *,
    invalid: bool,
    x: np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """One-hot or soft labels along `axis`; confident ones (most of the mass on the largest
    logit of `x`, the rest spread: a right prediction, whose loss stays finite with the
    largest spreads while log-probabilities overflow); when `invalid`, soft labels that
    don't sum to 1."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kinds = ["one-hot", "soft", "soft-invalid" if invalid else "soft"]
    kind = draw(st.sampled_from([*kinds, "confident"] if x is not None else kinds))
    moved = np.moveaxis(np.zeros(shape), axis, -1)
    k = moved.shape[-1]
    if kind == "one-hot" and k:
        idx = rng.integers(0, k, size=moved.shape[:-1])
        np.put_along_axis(moved, idx[..., None], 1.0, axis=-1)
    elif k:
        moved = rng.dirichlet(np.ones(k), size=moved.shape[:-1]).reshape(moved.shape)
        if kind == "soft-invalid":
            moved = moved * 1.25
        if kind == "confident":
            rest = draw(st.sampled_from([0.1, 1e-3]))
            idx = np.moveaxis(largest_logit(x, axis, keepdims=True), axis, -1)
            moved = moved * rest
            np.put_along_axis(moved, idx, np.take_along_axis(moved, idx, -1) + 1 - rest, -1)
    labels = np.moveaxis(moved, -1, axis).astype(as_dtype(dtype))
    # Soft labels that do not sum to 1 break the usual contract, but the mathematics
    # -sum t log p still defines the loss and no framework promises to check: they are
    # judged for accuracy, not for a reaction.
    return labels, False


def largest_logit(x: np.ndarray, axis: int, *, keepdims: bool = False) -> np.ndarray:
    """The index of each row's largest logit along `axis` (NaN taken as lowest)."""
    values = x.astype(np.float64)
    return np.argmax(np.where(np.isnan(values), -np.inf, values), axis=axis, keepdims=keepdims)


@st.composite
def masks(draw: st.DrawFn, shape: tuple[int, ...], class_dims: tuple[int, ...]) -> np.ndarray:
    """A `where=` mask broadcastable to `shape`: per entry, per example (size 1 along the
    class axes) or per class (size 1 along the others); partly and fully masked rows."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    form = draw(st.sampled_from(["entry", "entry", "entry", "example", "class"]))
    mask_shape = tuple(
        1
        if (form == "example" and i in class_dims) or (form == "class" and i not in class_dims)
        else n
        for i, n in enumerate(shape)
    )
    keep = draw(st.sampled_from([0.3, 0.7, 0.9]))
    mask = rng.random(mask_shape) < keep
    if form != "class" and mask.size and draw(st.booleans()):
        rows = np.moveaxis(mask, class_dims, tuple(range(-len(class_dims), 0)))
        flat = rows.reshape(-1, math.prod(rows.shape[len(shape) - len(class_dims) :]))
        flat[rng.random(len(flat)) < 0.4] = False  # fully masked rows
        mask = np.moveaxis(flat.reshape(rows.shape), tuple(range(-len(class_dims), 0)), class_dims)
    return np.ascontiguousarray(mask)


def _masked_values(draw: st.DrawFn, x: np.ndarray, mask: np.ndarray, dtype: str) -> np.ndarray:
    """`x` with some masked entries set to what must not matter: huge, +-inf or NaN."""
    if not x.size or draw(st.integers(0, 2)):
        return x
    value = draw(st.sampled_from([float_format(dtype).max, np.inf, -np.inf, np.nan]))
    hidden = ~np.broadcast_to(mask, x.shape)
    with np.errstate(over="ignore"):
        return np.where(hidden, np.asarray(value).astype(x.dtype), x)


@st.composite
def scale_factors(
    draw: st.DrawFn, shape: tuple[int, ...], class_dims: tuple[int, ...], dtype: str
) -> np.ndarray:
    """logsumexp's factors b >= 0, per entry or per class: zeros (a removed term, a row of
    zeros: -inf), ones, and spreads over powers of ten."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    per_class = draw(st.booleans())
    b_shape = tuple(1 if per_class and i not in class_dims else n for i, n in enumerate(shape))
    kind = draw(st.sampled_from(["uniform", "powers", "ones"]))
    if kind == "ones":
        b = np.ones(b_shape)
    elif kind == "powers":
        b = _POWERS_OF_TEN[rng.integers(0, 7, size=b_shape)]
    else:
        b = rng.random(b_shape) * 2.0
    if b.size and draw(st.booleans()):
        b = np.where(rng.random(b_shape) < 0.3, 0.0, b)  # removed terms, sometimes whole rows
    return b.astype(as_dtype(dtype))


@st.composite
def class_weights(draw: st.DrawFn, classes: int, dtype: str) -> np.ndarray:
    """A weight per class: spreads, zeros (a class that counts for nothing), all zero."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["uniform", "uniform", "some-zero", "all-zero", "powers"]))
    w = rng.uniform(0.1, 3.0, size=classes)
    if kind == "some-zero":
        w = np.where(rng.random(classes) < 0.4, 0.0, w)
    elif kind == "all-zero":
        w = np.zeros(classes)
    elif kind == "powers":
        w = _POWERS_OF_TEN[rng.integers(0, 7, size=classes)]
    return w.astype(as_dtype(dtype))


@st.composite
def examples(
    draw: st.DrawFn,
    op: Op,
    dtype: str,
    surface: Surface | None = None,
    menu: Menu = Menu(),
    *,
    invalid: bool = True,
) -> Example:
    """An input of `op` in `dtype` that sets the options of `surface` (by default, all
    the catalog's), each drawn from its own strategy (`OPTION_DRAWS` says which)."""
    spec = CATALOG[op]
    if surface is None:
        surface = Surface(
            spec.options, Axes.TUPLE if spec.tuple_axis else Axes.ANY, tuple(Reduction)
        )
    supported = surface.options
    binary = spec.labels is LabelKind.BINARY
    rank = draw(st.integers(min(menu.min_rank, menu.max_rank), menu.max_rank))
    axis = -1 if binary else draw(class_axes(rank, surface.axes))
    shape = draw(shapes(rank, axis, menu))
    class_dims = tuple(sorted({a % rank for a in _as_tuple(axis)}))
    options: dict[str, Any] = {}
    # binary losses are element-wise, or reduce the last axis (Keras' mean over it)
    options[Option.AXIS.value] = (
        axis if not binary else (None if surface.axes is Axes.ELEMENTWISE else -1)
    )
    if spec.input_is_probability:
        x = _probabilities(draw, shape, axis, dtype, binary=binary)
    else:
        x = draw(
            float_arrays(
                shape, dtype, specials=spec.labels is LabelKind.NONE or draw(st.integers(0, 4)) == 0
            )
        )
    classes = math.prod(shape[a] for a in class_dims) if class_dims else 0
    labels, bad = None, False
    if spec.labels is LabelKind.INTEGER:
        labels_shape = tuple(np.delete(shape, axis % rank))
        ignore = draw(ignore_indices(shape[axis])) if Option.IGNORE_INDEX in supported else None
        labels, bad = draw(
            integer_labels(labels_shape, shape[axis], invalid=invalid, ignore=ignore)
        )
        if x.size and not bad and draw(st.integers(0, 3)) == 0:  # confident and right
            top = largest_logit(x, axis)  # a row whose top class is ignored stays ignored
            labels = top if ignore is None else np.where(labels == ignore, labels, top)
        if ignore is not None:
            options[Option.IGNORE_INDEX.value] = ignore
            if labels.size and draw(st.integers(0, 7)) == 0:
                labels = np.full_like(labels, ignore)  # an all-ignored batch
        # invalid means a label that is neither a class nor ignored (with no class at all,
        # a row whose label is the ignore index is still valid: found by the 100k sweep)
        ignored = labels == ignore if ignore is not None else np.zeros(labels.shape, bool)
        bad = bool(np.any(~ignored & ((labels < 0) | (labels >= shape[axis]))))
    elif spec.labels is LabelKind.DENSE:
        labels, bad = draw(dense_labels(shape, axis, dtype, invalid=invalid, x=x))
    elif binary:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        soft = draw(st.booleans())
        z = rng.random(shape) if soft else rng.integers(0, 2, size=shape).astype(float)
        labels = z.astype(as_dtype(dtype))
    if Option.WHERE in supported and draw(st.integers(0, 2)) == 0:
        mask = draw(masks(shape, class_dims))
        options[Option.WHERE.value] = mask
        if not spec.input_is_probability:
            x = _masked_values(draw, x, mask, dtype)
    if Option.SCALE in supported and draw(st.integers(0, 2)) == 0:
        options[Option.SCALE.value] = draw(scale_factors(shape, class_dims, dtype))
    if Option.CLASS_WEIGHTS in supported and draw(st.booleans()):
        options[Option.CLASS_WEIGHTS.value] = draw(class_weights(classes, dtype))
    if Option.REDUCTION in supported and len(surface.reductions) > 1:
        options[Option.REDUCTION.value] = draw(st.sampled_from(surface.reductions))
    if Option.LABEL_SMOOTHING in supported and draw(st.integers(0, 3)) == 0:
        options[Option.LABEL_SMOOTHING.value] = draw(st.sampled_from(menu.label_smoothings))
    return Example(x=x, labels=labels, options=options, invalid=bad)


def _probabilities(draw: st.DrawFn, shape, axis, dtype: str, *, binary: bool) -> np.ndarray:
    """Probabilities: a softmax of logits (rows sum to 1 up to rounding), or values in [0, 1]."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    axis = -1 if axis is None else axis
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
