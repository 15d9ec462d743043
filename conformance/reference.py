"""The exact reference: the value every catalog operation should have. (API CONTRACT STUB)

This stub fixes the public API; the implementation replaces the bodies.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from conformance.ops import Op, Reduction


class Undefined(enum.IntEnum):
    """Why the reference gives no number (its value is NaN there), per output element."""

    DEFINED = 0
    NAN_INPUT = 1
    """A NaN among the inputs the element depends on."""
    FULLY_MASKED = 2
    """Every entry of the row is -inf or masked out, so the value is 0/0 or -inf - -inf."""
    INDETERMINATE_INF = 3
    """Two or more +inf logits in a row (inf/inf), or a +inf next to a -inf label term."""
    INVALID_LABEL = 4
    """An integer label outside [0, K) that is not the ignore index."""
    INVALID_PROBABILITY = 5
    """A probability outside [0, 1] where its logarithm is needed."""
    NO_WEIGHT = 6
    """A weighted mean over zero total weight (every example ignored or weighted 0)."""


@dataclass(frozen=True)
class Exact:
    """A reference result: float64 values and, per element, why a value is missing."""

    value: np.ndarray
    """float64; NaN exactly where `undefined` is not DEFINED."""
    undefined: np.ndarray
    """uint8 codes of `Undefined`, the shape of `value`."""


def evaluate(
    op: Op | str,
    x: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    axis: int | tuple[int, ...] | None = -1,
    where: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    label_smoothing: float = 0.0,
    class_weights: np.ndarray | None = None,
    ignore_index: int | None = None,
    reduction: Reduction | str = Reduction.NONE,
) -> Exact:
    """The exact value of `op` on exactly-taken inputs (any float dtype, bf16 included)."""
    raise NotImplementedError


def vjp(
    op: Op | str,
    x: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    cotangent: np.ndarray,
    **options: object,
) -> Exact:
    """The exact gradient of sum(cotangent * op(x, labels, **options)) with respect to x."""
    raise NotImplementedError


def softmax(
    x: np.ndarray, axis: int | tuple[int, ...] = -1, *, where: np.ndarray | None = None
) -> np.ndarray:
    return evaluate(Op.SOFTMAX, x, axis=axis, where=where).value


def log_softmax(
    x: np.ndarray, axis: int | tuple[int, ...] = -1, *, where: np.ndarray | None = None
) -> np.ndarray:
    return evaluate(Op.LOG_SOFTMAX, x, axis=axis, where=where).value


def logsumexp(
    x: np.ndarray, axis: int | tuple[int, ...] = -1, *, where: np.ndarray | None = None
) -> np.ndarray:
    return evaluate(Op.LOGSUMEXP, x, axis=axis, where=where).value
