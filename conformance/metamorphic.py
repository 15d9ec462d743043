"""Metamorphic laws: transformations of an input that leave the mathematics unchanged.

* `class-order`: reversing the order of the classes (labels, class weights, masks and
  scale factors reversed with them) reverses softmax and log-softmax along the class axes
  and leaves logsumexp and every cross-entropy unchanged;
* `shift`: adding one constant to every logit leaves softmax, log-softmax and
  cross-entropy from logits unchanged, and moves logsumexp by that constant.

Each drawn input gets a variant per law, with the original's shape and
options: the same program, so a compiled cell pays no compilation for it. The variant is
judged against the reference like any input, and then compared with its original where
the reference cannot settle the answer: where each of the two answers is acceptable on its
own (NaN or 0 for a fully masked row, anything for an indeterminate one), the law still
demands the same pattern of NaN, +inf, -inf and finite values in both, moved as the law
moves them. Finite values need no comparison: two answers each within the budget of the
exact answer are within twice the budget of each other, so the judge is the stronger test.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from conformance._reference_rows import normalize_axes
from conformance.dtypes import float_format
from conformance.errors import round_to
from conformance.inputs import Input
from conformance.judge import Finding, Judgement, Verdict, expected
from conformance.ops import CATALOG, Family, LabelKind, Op


class Law(enum.StrEnum):
    CLASS_ORDER = "class-order"
    SHIFT = "shift"


LAWS: dict[Family, tuple[Law, ...]] = {
    Family.SOFTMAX_LIKE: (Law.CLASS_ORDER, Law.SHIFT),
    Family.FROM_LOGITS: (Law.CLASS_ORDER, Law.SHIFT),
    Family.FROM_PROBABILITIES: (Law.CLASS_ORDER,),
    Family.BINARY: (),
}
"""The laws each family obeys (binary cross-entropy is element-wise: it has no classes to
reorder, and a sigmoid is not shift invariant)."""

SEPARATOR = "~"
"""A variant's case is its original's case, this, and the law: 'drawn-3~shift'."""


def _class_axes(item: Input) -> tuple[int, ...]:
    return normalize_axes(item.options.get("axis", -1), item.x.ndim)


def _flip_aligned(a: np.ndarray, axes: tuple[int, ...], ndim: int) -> np.ndarray:
    """`a` (broadcasting against an array of `ndim` dimensions, aligned on the right)
    reversed along those of `axes` it spans; a broadcast length-1 axis needs no reversal."""
    offset = ndim - a.ndim
    own = tuple(ax - offset for ax in axes if ax - offset >= 0 and a.shape[ax - offset] > 1)
    return np.flip(a, own) if own else a


def _reversed_classes(op: Op, item: Input) -> Input | None:
    axes = _class_axes(item)
    if not item.x.size:
        return None
    options = dict(item.options)
    for name in ("where", "scale"):
        if options.get(name) is not None:
            options[name] = _flip_aligned(np.asarray(options[name]), axes, item.x.ndim)
    labels = item.labels
    kind = CATALOG[op].labels
    if kind is LabelKind.INTEGER:
        k = item.x.shape[axes[0]]
        y = np.asarray(labels)
        ignore = options.get("ignore_index")
        inside = (y >= 0) & (y < k)
        if ignore is not None and 0 <= ignore < k:  # an ignored class moves with the others
            options["ignore_index"] = k - 1 - ignore
        elif ignore is not None:  # an index that is no class stays where it is
            inside &= y != ignore
        labels = np.where(inside, k - 1 - y, y).astype(y.dtype)
    elif labels is not None:
        if np.ndim(labels) != item.x.ndim:
            return None
        labels = np.flip(labels, axes)
    if options.get("class_weights") is not None:
        options["class_weights"] = np.flip(np.asarray(options["class_weights"]))
    return Input(
        item.case + SEPARATOR + Law.CLASS_ORDER,
        np.flip(item.x, axes),
        labels,
        options,
        item.invalid,
    )


def shift_for(x: np.ndarray, sign: int) -> float | None:
    """A power of two about eight times the input's largest finite magnitude (at least 8),
    with `sign`; None when x + shift could overflow the dtype."""
    finite = np.abs(x[np.isfinite(x)].astype(np.float64))
    top = float(finite.max()) if finite.size else 0.0
    shift = 2.0 ** np.ceil(np.log2(max(top, 1.0) * 8.0))
    if top + shift > float_format(x.dtype).max / 2:
        return None
    return sign * shift


def _shifted(item: Input, sign: int) -> Input | None:
    shift = shift_for(item.x, sign)
    if shift is None or not item.x.size:
        return None
    with np.errstate(all="ignore"):
        x = (item.x.astype(np.float64) + shift).astype(item.x.dtype)
    return Input(item.case + SEPARATOR + Law.SHIFT, x, item.labels, item.options, item.invalid)


def variants(op: Op, items: list[Input]) -> list[Input]:
    """Each input under each law of the op's family (shifts alternate in sign); a law
    that cannot transform an input (empty, or a shift that would overflow) gives none."""
    out = []
    for index, item in enumerate(items):
        for law in LAWS[CATALOG[op].family]:
            if law is Law.CLASS_ORDER:
                made = _reversed_classes(op, item)
            else:
                made = _shifted(item, 1 if index % 2 == 0 else -1)
            if made is not None:
                out.append(made)
    return out


def _moved(op: Op, law: Law, item: Input, a: np.ndarray, grad: bool) -> np.ndarray:
    """The original's answer `a` where the law puts it in the variant's answer."""
    keeps_classes = grad or not CATALOG[op].reduces_axis
    if law is Law.CLASS_ORDER and keeps_classes and a.shape == item.x.shape:
        return np.flip(a, _class_axes(item))
    return a


def _pattern(a: np.ndarray) -> np.ndarray:
    """0 finite, 1 NaN, 2 +inf, 3 -inf."""
    c = np.asarray(a).astype(np.float64)
    return np.select([np.isnan(c), np.isposinf(c), np.isneginf(c)], [1, 2, 3], 0)


NAMES = ("finite", "NaN", "+inf", "-inf")


def violation(
    op: Op,
    original: tuple[Input, Judgement, dict[str, Any]],
    variant: tuple[Input, Judgement, dict[str, Any]],
) -> Finding | None:
    """The finding when both answers pass on their own but break the law between them."""
    (item, j0, r0), (var, j1, r1) = original, variant
    if j0.findings or j1.findings or r0["value"] is None or r1["value"] is None:
        return None
    law = Law(var.case.rsplit(SEPARATOR, 1)[1])
    for what, grad in (("value", False), ("grad", True)):
        a, b = r0[what], r1[what]
        if a is None or b is None:
            continue
        ref_a = expected(op, item.x, item.labels, item.options, r0["cotangent"] if grad else None)
        ref_b = expected(op, var.x, var.labels, var.options, r1["cotangent"] if grad else None)
        # the exact answers as the dtype holds them: a gradient scaled by another cotangent
        # may overflow in one and not in the other
        exact_a = _moved(op, law, item, round_to(ref_a.exact.value, item.x.dtype), grad)
        exact_b = round_to(ref_b.exact.value, item.x.dtype)
        if exact_a.shape != exact_b.shape or np.shape(a) != exact_a.shape:
            continue
        if np.shape(b) != exact_a.shape or not np.array_equal(_pattern(exact_a), _pattern(exact_b)):
            continue  # the law does not hold in the dtype (an overflow)
        got_a, got_b = _pattern(_moved(op, law, item, np.asarray(a), grad)), _pattern(b)
        differ = np.flatnonzero((got_a != got_b).reshape(-1))
        if differ.size:
            i = int(differ[0])
            return Finding(
                Verdict.DIVERGENT,
                f"{'gradient-' if grad else ''}metamorphic-{law}",
                f"{what} at flat index {i} is {NAMES[got_b.reshape(-1)[i]]} after the "
                f"{law} transformation of {item.case}, {NAMES[got_a.reshape(-1)[i]]} before "
                "(each acceptable alone; the law makes them the same)",
                var.case,
            )
    return None


def check(op: Op, judgements: list[tuple[Input, Judgement, dict[str, Any]]]) -> None:
    """Append each law's violation to its variant's judgement."""
    by_case = {entry[0].case: entry for entry in judgements}
    for entry in judgements:
        case = entry[0].case
        if SEPARATOR not in case:
            continue
        original = by_case.get(case.rsplit(SEPARATOR, 1)[0])
        if original is None:
            continue
        found = violation(op, original, entry)
        if found is not None:
            entry[1].findings.append(found)


__all__ = ["LAWS", "Law", "check", "variants", "violation"]
