"""The catalog: every operation the suite judges, and the options each one takes.

Declarative data only: no framework code and no numerics. Adapters bind framework
APIs to these operations; the reference computes them exactly; the harness draws
inputs for them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Op(enum.StrEnum):
    """A mathematical operation, independent of any framework's spelling of it."""

    SOFTMAX = "softmax"
    """p_i = exp(x_i) / sum_j exp(x_j) along `axis`."""
    LOG_SOFTMAX = "log_softmax"
    """log p_i = x_i - logsumexp(x) along `axis`."""
    LOGSUMEXP = "logsumexp"
    """log sum_j exp(x_j) along `axis` (the axis is reduced)."""
    SOFTMAX_CROSS_ENTROPY = "softmax_cross_entropy"
    """-sum_j t_j log softmax(x)_j with dense (one-hot or soft) labels t."""
    SPARSE_SOFTMAX_CROSS_ENTROPY = "sparse_softmax_cross_entropy"
    """-log softmax(x)_y with integer class labels y."""
    PROBABILITY_CROSS_ENTROPY = "probability_cross_entropy"
    """-sum_j t_j log p_j from probabilities p (the `from_logits=False` mathematics)."""
    SPARSE_PROBABILITY_CROSS_ENTROPY = "sparse_probability_cross_entropy"
    """-log p_y from probabilities p and integer labels y (`from_logits=False`)."""
    SIGMOID_CROSS_ENTROPY = "sigmoid_cross_entropy"
    """Element-wise -(z log sigmoid(x) + (1 - z) log sigmoid(-x)) from logits x."""
    BINARY_CROSS_ENTROPY = "binary_cross_entropy"
    """Element-wise -(z log p + (1 - z) log(1 - p)) from probabilities p."""


class Reduction(enum.StrEnum):
    """How per-example losses become the returned value."""

    NONE = "none"
    """The per-example losses, unreduced."""
    SUM = "sum"
    """Sum of the per-example losses."""
    MEAN = "mean"
    """Sum divided by the number of per-example losses (ignored ones included)."""
    WEIGHTED_MEAN = "weighted_mean"
    """torch's 'mean': sum(w_y * l) / sum(w_y) over the examples that are not ignored."""
    SUM_OVER_BATCH_SIZE = "sum_over_batch_size"
    """Keras' default: sum of the per-example losses divided by their count."""


class Option(enum.StrEnum):
    """Options an operation may accept (what an implementation supports is its own)."""

    AXIS = "axis"
    """The class axis: an int, negative or not; softmax-like ops also take a tuple of ints.
    For the element-wise binary losses, None (element-wise) or the axis averaged over
    (Keras' per-sample mean over the last axis)."""
    WHERE = "where"
    """A boolean mask over the logits: False entries take no part (as jax's `where=`)."""
    LABEL_SMOOTHING = "label_smoothing"
    """eps: labels become (1 - eps) * t + eps / K (torch, Keras and optax agree)."""
    CLASS_WEIGHTS = "class_weights"
    """A weight per class (torch's `weight=`), scaling each example's loss by w_y."""
    IGNORE_INDEX = "ignore_index"
    """Integer labels equal to it contribute no loss and no weight."""
    REDUCTION = "reduction"
    """One of `Reduction`."""
    SCALE = "scale"
    """logsumexp's non-negative factors b: log sum_j b_j exp(x_j) (jax's `b=`)."""


class OptionKind(enum.StrEnum):
    """What an option's value is, which says how it travels and how it is compared."""

    AXIS = "axis"
    """An int, a tuple of ints or None (compiled code bakes it in)."""
    ARRAY = "array"
    """A numpy array (a mask, factors, weights): passed as a native array, not a constant."""
    SCALAR = "scalar"
    """A Python number (compiled code bakes it in: each value is one more program)."""
    CHOICE = "choice"
    """One of an enum's values."""


@dataclass(frozen=True)
class OptionSpec:
    """One option: its name, the value that means 'not used', and what kind of value it is."""

    option: Option
    default: Any
    kind: OptionKind

    @property
    def name(self) -> str:
        return self.option.value

    def is_default(self, value: Any) -> bool:
        """Whether `value` means the same as leaving the option out."""
        if self.default is None:
            return value is None
        if self.kind is OptionKind.CHOICE:
            return type(self.default)(value) == self.default
        if isinstance(value, tuple | list):
            return False
        return bool(value == self.default)


OPTIONS: dict[Option, OptionSpec] = {
    o.option: o
    for o in (
        OptionSpec(Option.AXIS, -1, OptionKind.AXIS),
        OptionSpec(Option.WHERE, None, OptionKind.ARRAY),
        OptionSpec(Option.LABEL_SMOOTHING, 0.0, OptionKind.SCALAR),
        OptionSpec(Option.CLASS_WEIGHTS, None, OptionKind.ARRAY),
        OptionSpec(Option.IGNORE_INDEX, None, OptionKind.SCALAR),
        OptionSpec(Option.REDUCTION, Reduction.NONE, OptionKind.CHOICE),
        OptionSpec(Option.SCALE, None, OptionKind.ARRAY),
    )
}
"""The one table of options: every other module derives names, defaults and kinds from it."""
assert set(OPTIONS) == set(Option), "every option has one row"

OPTION_DEFAULTS: dict[str, Any] = {o.name: o.default for o in OPTIONS.values()}
"""Option name -> the value meaning 'not used' (derived from `OPTIONS`)."""
ARRAY_OPTIONS: frozenset[str] = frozenset(
    o.name for o in OPTIONS.values() if o.kind is OptionKind.ARRAY
)
"""Options whose values are arrays: they travel as native arrays, not as trace constants."""


def is_default(name: str, value: Any) -> bool:
    """Whether option `name` set to `value` means the same as leaving it out."""
    return OPTIONS[Option(name)].is_default(value)


class Family(enum.StrEnum):
    """Operations that share a formula and an error analysis."""

    SOFTMAX_LIKE = "softmax-like"
    """softmax, log_softmax, logsumexp: no labels, any axes."""
    FROM_LOGITS = "from-logits"
    """Cross-entropy from logits, dense or integer labels."""
    FROM_PROBABILITIES = "from-probabilities"
    """Cross-entropy from probabilities, dense or integer labels."""
    BINARY = "binary"
    """Element-wise binary cross-entropy, from logits or probabilities."""


class Axes(enum.StrEnum):
    """Which `axis` values an implementation can express."""

    ELEMENTWISE = "elementwise"
    """Only axis=None (element-wise binary losses)."""
    LAST = "last"
    """Only the last axis (-1 or ndim-1)."""
    ANY = "any"
    """Any single int axis."""
    TUPLE = "tuple"
    """An int or a tuple of ints (None: every axis)."""
    TRAILING = "trailing"
    """The axes from one of them to the last, as a tuple (None: every axis; an int: the
    last): ONNX's Softmax before opset 13 coerces its input to 2-D around `axis`."""

    def __str__(self) -> str:
        return self.value


class LabelKind(enum.StrEnum):
    """What the second argument of a loss is."""

    NONE = "none"
    DENSE = "dense"
    """Same shape as the logits: one-hot or soft labels, any float dtype."""
    INTEGER = "integer"
    """The logits' shape without the class axis: integer class indices."""
    BINARY = "binary"
    """Same shape as the logits, values in [0, 1] (element-wise losses)."""


@dataclass(frozen=True)
class OpSpec:
    """What the catalog knows about one operation."""

    op: Op
    family: Family
    labels: LabelKind
    options: frozenset[Option]
    reduces_axis: bool
    """True when the class axis disappears from the result."""
    input_is_probability: bool = False
    tuple_axis: bool = False


_SOFTMAX_LIKE = frozenset({Option.AXIS, Option.WHERE})
_BINARY = frozenset({Option.AXIS, Option.REDUCTION, Option.LABEL_SMOOTHING})
_LOSS = frozenset({Option.AXIS, Option.REDUCTION, Option.LABEL_SMOOTHING, Option.CLASS_WEIGHTS})
_S, _L, _P, _B = Family.SOFTMAX_LIKE, Family.FROM_LOGITS, Family.FROM_PROBABILITIES, Family.BINARY

CATALOG: dict[Op, OpSpec] = {
    spec.op: spec
    for spec in (
        OpSpec(Op.SOFTMAX, _S, LabelKind.NONE, _SOFTMAX_LIKE, False, tuple_axis=True),
        OpSpec(Op.LOG_SOFTMAX, _S, LabelKind.NONE, _SOFTMAX_LIKE, False, tuple_axis=True),
        OpSpec(
            Op.LOGSUMEXP, _S, LabelKind.NONE, _SOFTMAX_LIKE | {Option.SCALE}, True, tuple_axis=True
        ),
        OpSpec(Op.SOFTMAX_CROSS_ENTROPY, _L, LabelKind.DENSE, _LOSS | {Option.WHERE}, True),
        OpSpec(
            Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
            _L,
            LabelKind.INTEGER,
            _LOSS | {Option.IGNORE_INDEX, Option.WHERE},
            True,
        ),
        OpSpec(
            Op.PROBABILITY_CROSS_ENTROPY,
            _P,
            LabelKind.DENSE,
            _LOSS,
            True,
            input_is_probability=True,
        ),
        OpSpec(
            Op.SPARSE_PROBABILITY_CROSS_ENTROPY,
            _P,
            LabelKind.INTEGER,
            _LOSS | {Option.IGNORE_INDEX},
            True,
            input_is_probability=True,
        ),
        OpSpec(Op.SIGMOID_CROSS_ENTROPY, _B, LabelKind.BINARY, _BINARY, False),
        OpSpec(
            Op.BINARY_CROSS_ENTROPY, _B, LabelKind.BINARY, _BINARY, False, input_is_probability=True
        ),
    )
}


def spec(op: Op | str) -> OpSpec:
    """The catalog entry of `op` (by enum or name)."""
    return CATALOG[Op(op)]


def family(name: Family) -> tuple[Op, ...]:
    """The ops of a family, in catalog order (families are declared once, in `CATALOG`)."""
    return tuple(op for op, entry in CATALOG.items() if entry.family is name)
