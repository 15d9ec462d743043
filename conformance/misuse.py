"""from_logits misuse: inputs that break an API's contract the way users do.

Each scenario calls an implementation with a mistaken input and records the reaction
(raises / warns / silent, with the message) and, when it answers, how far the answer is
from the loss the user meant. This is a report of behaviour, not a verdict: an API that
silently computes a double softmax is documented as such by the report.

One scenario is no mistake but the path a framework recommends: Keras' default
`from_logits=False` behind its own softmax (sigmoid) activation. Where the logits go in,
the gradient is compared too, with the gradient of the fused loss the user meant: a loss
that clips the probability returns a finite loss and a gradient of exactly zero on a
confidently wrong example, and training stops learning from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance import reference
from conformance.ops import CATALOG, Family, LabelKind, Op, Option, family
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Call, Implementation, UnsupportedCall

_LOGIT_LOSSES = family(Family.FROM_LOGITS)
_FROM_LOGITS = (*_LOGIT_LOSSES, Op.SIGMOID_CROSS_ENTROPY)
_PROBABILITY_LOSSES = family(Family.FROM_PROBABILITIES)
_ROWS, _CLASSES = 4, 5
_LABELS = np.array([0, 3, 1, 4])
_KEPT = np.array([True, True, False, True, False])
"""The per-example mask of `per-example-mask-as-per-class`: as many examples as classes
(5 x 5 logits), so that an API broadcasting it over the class axis raises nothing."""


@dataclass(frozen=True)
class Mistake:
    """One mistaken call and what the user meant by it."""

    call: Call
    meant: np.ndarray
    impl: Implementation
    """What is called: the implementation, or it behind the framework's activation layer."""
    kept: np.ndarray | None = None
    """Examples the user meant to keep: an unreduced answer is compared on these rows."""
    meant_vjp: Callable[[np.ndarray], np.ndarray] | None = None
    """The gradient w.r.t. the call's `x` of sum(cotangent * meant loss), where `x` is what
    the meant loss is a function of (the logits); None: gradients are not compared."""


@dataclass(frozen=True)
class Scenario:
    id: str
    description: str
    applies: Callable[[Adapter, Implementation], bool]
    make: Callable[[Adapter, Implementation, np.dtype, dict[str, Any]], Mistake]


def _logits(dtype: np.dtype, rows: int = _ROWS) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.standard_normal((rows, _CLASSES)) * 3).astype(dtype)


def _onehot(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.eye(_CLASSES)[y].astype(dtype)


def _labels(op: Op, dtype: np.dtype, y: np.ndarray = _LABELS) -> np.ndarray:
    """The labels `op` takes for classes `y`: indices, or one-hot rows (binary losses too)."""
    return y if CATALOG[op].labels is LabelKind.INTEGER else _onehot(y, dtype)


def _confidently_wrong(dtype: np.dtype) -> np.ndarray:
    """`_logits` whose first example puts logit 30 on a class that is not its label and 0
    on its label: a loss of about 30, a gradient far from zero."""
    assert _LABELS[0] == 0
    logits = _logits(dtype)
    logits[0] = np.asarray([0.0, 30.0, -5.0, 1.0, 2.0], dtype)
    return logits


def _meant(op: Op, logits: np.ndarray, options: dict[str, Any]) -> tuple[Op, Any, dict]:
    """The fused loss the user meant on these logits: its op, labels and options."""
    if CATALOG[op].labels is LabelKind.BINARY:
        onehot = _onehot(_LABELS, logits.dtype)
        return Op.SIGMOID_CROSS_ENTROPY, onehot, {"axis": options.get("axis")}
    return Op.SPARSE_SOFTMAX_CROSS_ENTROPY, _LABELS, {}


def _meant_loss(op: Op, logits: np.ndarray, options: dict[str, Any]) -> np.ndarray:
    """The per-example loss of these logits the user meant (a binary loss: sigmoid CE)."""
    meant_op, labels, kw = _meant(op, logits, options)
    return reference.evaluate(meant_op, logits, labels, **kw).value


def _meant_vjp(
    op: Op, logits: np.ndarray, options: dict[str, Any]
) -> Callable[[np.ndarray], np.ndarray]:
    meant_op, labels, kw = _meant(op, logits, options)
    return lambda ct: reference.vjp(meant_op, logits, labels, cotangent=ct, **kw).value


def _activated(op: Op, logits: np.ndarray) -> np.ndarray:
    """What a softmax output layer gives (a sigmoid one for a binary loss), in the dtype."""
    if CATALOG[op].labels is LabelKind.BINARY:
        with np.errstate(over="ignore"):
            return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(logits.dtype)
    return reference.evaluate(Op.SOFTMAX, logits).value.astype(logits.dtype)


def _probabilities_as_logits(
    adapter: Adapter, impl: Implementation, dtype: np.dtype, options: dict[str, Any]
) -> Mistake:
    logits = _logits(dtype)
    x = _activated(impl.op, logits)
    return Mistake(
        _call(x, _labels(impl.op, dtype), options), _meant_loss(impl.op, logits, options), impl
    )


def _logits_with(
    labels: Callable[[Op, np.dtype], np.ndarray],
) -> Callable[[Adapter, Implementation, np.dtype, dict[str, Any]], Mistake]:
    """A scenario passing the logits as they are, with `labels(op, dtype)`."""

    def make(
        adapter: Adapter, impl: Implementation, dtype: np.dtype, options: dict[str, Any]
    ) -> Mistake:
        logits = _logits(dtype)
        call = _call(logits, labels(impl.op, dtype), options)
        return Mistake(call, _meant_loss(impl.op, logits, options), impl)

    return make


def _after(
    which: str,
) -> Callable[[Adapter, Implementation, np.dtype, dict[str, Any]], Mistake]:
    """The model's logits go through the adapter's activation method `which`, then the
    loss (with a confidently wrong example: where a clipped probability stops the
    gradient)."""

    def make(
        adapter: Adapter, impl: Implementation, dtype: np.dtype, options: dict[str, Any]
    ) -> Mistake:
        activation = getattr(adapter, which)(impl.op)
        assert activation is not None
        return _after_activation(activation, impl, dtype, options)

    return make


def _after_activation(
    activation: Callable[[Any, Any], Any],
    impl: Implementation,
    dtype: np.dtype,
    options: dict[str, Any],
) -> Mistake:
    fn = impl.fn

    def after_activation(x: Any, labels: Any, **kw: Any) -> Any:
        axis = kw.get("axis", -1)
        return fn(activation(x, -1 if axis is None else axis), labels, **kw)

    behind = dataclasses.replace(
        impl, name=f"{impl.name} after the activation layer", fn=after_activation
    )
    logits = _confidently_wrong(dtype)
    call = _call(logits, _labels(impl.op, dtype), options)
    meant = _meant_loss(impl.op, logits, options)
    return Mistake(call, meant, behind, meant_vjp=_meant_vjp(impl.op, logits, options))


def _per_example_mask(
    adapter: Adapter, impl: Implementation, dtype: np.dtype, options: dict[str, Any]
) -> Mistake:
    """A mask over examples (which rows are padding) given to a per-class option."""
    logits = _logits(dtype, rows=_CLASSES)
    y = np.array([0, 3, 1, 4, 2])
    x = _activated(impl.op, logits) if CATALOG[impl.op].input_is_probability else logits
    labels = None if CATALOG[impl.op].labels is LabelKind.NONE else _labels(impl.op, dtype, y)
    if Option.WHERE in impl.options:
        mask = {"where": _KEPT.copy()}
    else:
        mask = {"class_weights": _KEPT.astype(dtype)}
    meant = reference.evaluate(
        impl.op, x[_KEPT], None if labels is None else labels[_KEPT], **options
    ).value
    return Mistake(_call(x, labels, {**options, **mask}), meant, impl, kept=_KEPT)


def _call(x: np.ndarray, labels: np.ndarray | None, options: dict[str, Any]) -> Call:
    return Call(x=x, labels=labels, options=options)


def _takes(kind: LabelKind) -> Callable[[Adapter, Implementation], bool]:
    return lambda adapter, impl: CATALOG[impl.op].labels is kind


SCENARIOS = (
    Scenario(
        "probabilities-as-logits",
        "softmax (sigmoid) outputs passed where logits belong (from_logits=True): a double softmax",
        lambda adapter, impl: impl.op in _FROM_LOGITS,
        _probabilities_as_logits,
    ),
    Scenario(
        "activation-output-as-logits",
        "the output of the framework's own softmax (sigmoid) activation layer passed where"
        " logits belong (from_logits=True), in the same eager call or compiled function;"
        " Keras on TensorFlow remembers the logits on that tensor and uses them",
        lambda adapter, impl: (
            impl.op in _FROM_LOGITS and adapter.activation_layer(impl.op) is not None
        ),
        _after("activation_layer"),
    ),
    Scenario(
        "default-path",
        "no mistake: the framework's own softmax (sigmoid) activation, then the probability"
        " loss (Keras' default from_logits=False, as Keras recommends; torch's nn.Sigmoid then"
        " BCELoss); value and gradient w.r.t. the logits against the fused loss of the logits,"
        " on a batch with a confidently wrong example (logit 30 on another class)",
        lambda adapter, impl: (
            impl.op in (*_PROBABILITY_LOSSES, Op.BINARY_CROSS_ENTROPY)
            and adapter.activation(impl.op) is not None
        ),
        _after("activation"),
    ),
    Scenario(
        "logits-as-probabilities",
        "raw logits passed where probabilities belong (from_logits=False)",
        lambda adapter, impl: impl.op in (*_PROBABILITY_LOSSES, Op.BINARY_CROSS_ENTROPY),
        _logits_with(_labels),
    ),
    Scenario(
        "one-hot-into-sparse",
        "one-hot labels passed to a loss that takes class indices",
        _takes(LabelKind.INTEGER),
        _logits_with(lambda op, dtype: _onehot(_LABELS, dtype)),
    ),
    Scenario(
        "indices-into-dense",
        "class indices passed to a loss that takes one-hot labels",
        _takes(LabelKind.DENSE),
        _logits_with(lambda op, dtype: _LABELS.astype(dtype)),
    ),
    Scenario(
        "per-example-mask-as-per-class",
        "a per-example mask (which rows are padding) passed as where= or as class weights,"
        " in a batch with as many examples as classes (so broadcasting it over the classes"
        " raises nothing); the user meant the answer of the kept examples",
        lambda adapter, impl: bool({Option.WHERE, Option.CLASS_WEIGHTS} & impl.options),
        _per_example_mask,
    ),
)


def run_misuse(
    adapter: Adapter,
    impl: Implementation,
    dtype: np.dtype,
    device: str,
    mode: str,
    options: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Every applicable scenario's reaction: {'reaction', 'message', 'relative_error'}."""
    out: dict[str, dict[str, Any]] = {}
    for scenario in SCENARIOS:
        if not scenario.applies(adapter, impl):
            continue
        mistake = scenario.make(adapter, impl, dtype, dict(options))
        call = dataclasses.replace(mistake.call, device=device, mode=mode)
        try:
            outcome = adapter.run(mistake.impl, call)
        except UnsupportedCall as exc:
            out[scenario.id] = {
                "reaction": "unsupported",
                "message": str(exc),
                "relative_error": None,
            }
            continue
        entry: dict[str, Any] = {"description": scenario.description}
        if outcome.error is not None:
            entry |= {
                "reaction": "raises",
                "relative_error": None,
                "message": f"{outcome.error.type}: {outcome.error.message}",
            }
        else:
            entry["reaction"] = "warns" if outcome.warnings or outcome.stderr.strip() else "silent"
            entry["message"] = "; ".join(outcome.warnings)[:500] or outcome.stderr.strip()[:500]
            entry["relative_error"] = _relative_error(outcome.value, mistake.meant, mistake.kept)
            if mistake.meant_vjp is not None and mistake.impl.differentiable:
                entry |= _gradient_against_meant(adapter, mistake, call, outcome.value)
        out[scenario.id] = entry
    return out


VANISHED = 0.1
"""A gradient entry 'vanished' when it is exactly zero where the meant gradient's entry
exceeds this in magnitude (a confidently wrong example's entries are about 1)."""


def _gradient_against_meant(
    adapter: Adapter, mistake: Mistake, call: Call, value: np.ndarray | None
) -> dict[str, Any]:
    """`gradient_relative_error`: the largest, over examples, of the row's max-norm error
    relative to the meant gradient's row max-norm (elementwise relative errors are
    meaningless where the gradient is near zero); `vanished`: entries exactly zero where
    the meant gradient's exceed `VANISHED`; `gradient_reaction`: why there is none."""
    assert mistake.meant_vjp is not None and value is not None
    ct = np.ones(np.shape(value), np.asarray(value).dtype)
    meant_shape = mistake.meant.shape
    if ct.shape == meant_shape:
        meant_ct = ct.astype(np.float64)
    elif ct.ndim == 0:  # a reduced loss: compared with the mean the user meant
        meant_ct = np.full(meant_shape, 1.0 / max(1, int(np.prod(meant_shape))))
    else:
        return {"gradient_relative_error": None}
    outcome = adapter.run(mistake.impl, dataclasses.replace(call, cotangent=ct))
    if outcome.error is not None or outcome.grad is None:
        why = "no gradient" if outcome.error is None else outcome.error.type
        return {"gradient_relative_error": None, "gradient_reaction": f"raises: {why}"}
    got = np.asarray(outcome.grad, np.float64).reshape(len(call.x), -1)
    meant = np.asarray(mistake.meant_vjp(meant_ct), np.float64).reshape(len(call.x), -1)
    scale = np.abs(meant).max(axis=1)
    with np.errstate(all="ignore"):
        rel = np.abs(got - meant).max(axis=1) / scale
    return {
        "gradient_relative_error": float(np.nanmax(rel)) if rel.size else None,
        "vanished": int(((got == 0) & (np.abs(meant) > VANISHED)).sum()),
    }


def _relative_error(
    value: np.ndarray | None, meant: np.ndarray, kept: np.ndarray | None = None
) -> float | None:
    """max |value - meant| / |meant| when shapes allow; None when the answer has another shape.

    `kept`: the rows of an unreduced answer that `meant` holds (a reduced answer is
    compared as it is)."""
    if value is None:
        return None
    v = np.asarray(value, dtype=np.float64)
    if kept is not None and v.ndim and v.shape[0] == kept.shape[0]:
        v = v[kept]
    if v.shape != meant.shape:
        if v.ndim == 0:  # a reduced loss: compare with the mean the user meant
            meant = np.asarray(meant.mean())
        else:
            return None
    with np.errstate(all="ignore"):
        rel = np.abs(v - meant) / np.abs(meant)
    return float(np.nanmax(rel)) if rel.size else None
