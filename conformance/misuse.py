"""from_logits misuse: inputs that break an API's contract the way users do.

Each scenario calls an implementation with a mistaken input and records the reaction
(raises / warns / silent, with the message) and, when silent, how far the answer is from
the loss the user meant. This is a report of behaviour, not a verdict: an API that
silently computes a double softmax is documented as such by the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapters.base import Adapter
from adapters.interface import Call, Implementation, UnsupportedCall
from conformance import reference
from conformance.ops import CATALOG, LabelKind, Op

_LOGIT_LOSSES = (Op.SOFTMAX_CROSS_ENTROPY, Op.SPARSE_SOFTMAX_CROSS_ENTROPY)
_PROBABILITY_LOSSES = (Op.PROBABILITY_CROSS_ENTROPY, Op.SPARSE_PROBABILITY_CROSS_ENTROPY)


@dataclass(frozen=True)
class Scenario:
    id: str
    description: str
    applies: Callable[[Op], bool]


SCENARIOS = (
    Scenario(
        "probabilities-as-logits",
        "softmax outputs passed where logits belong (from_logits=True): a double softmax",
        lambda op: op in _LOGIT_LOSSES,
    ),
    Scenario(
        "logits-as-probabilities",
        "raw logits passed where probabilities belong (from_logits=False)",
        lambda op: op in (*_PROBABILITY_LOSSES, Op.BINARY_CROSS_ENTROPY),
    ),
    Scenario(
        "one-hot-into-sparse",
        "one-hot labels passed to a loss that takes class indices",
        lambda op: CATALOG[op].labels is LabelKind.INTEGER,
    ),
    Scenario(
        "indices-into-dense",
        "class indices passed to a loss that takes one-hot labels",
        lambda op: CATALOG[op].labels is LabelKind.DENSE,
    ),
)


def _inputs(rng: np.random.Generator, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    logits = (rng.standard_normal((4, 5)) * 3).astype(dtype)
    y = np.array([0, 3, 1, 4])
    return logits, y


def _meant(op: Op, logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The per-example loss the user meant: cross-entropy of these logits and labels."""
    return reference.evaluate(Op.SPARSE_SOFTMAX_CROSS_ENTROPY, logits, y).value


def _call(
    adapter: Adapter,
    impl: Implementation,
    scenario: str,
    dtype: np.dtype,
    device: str,
    mode: str,
    options: dict[str, Any],
) -> tuple[Call, np.ndarray] | None:
    rng = np.random.default_rng(7)
    logits, y = _inputs(rng, dtype)
    onehot = np.eye(5)[y].astype(dtype)
    meant = _meant(impl.op, logits, y)
    probs = reference.evaluate(Op.SOFTMAX, logits).value.astype(dtype)
    sparse = CATALOG[impl.op].labels is LabelKind.INTEGER
    labels = y if sparse else onehot
    if scenario == "probabilities-as-logits":
        x = probs
    elif scenario == "logits-as-probabilities":
        x = logits
        if impl.op is Op.BINARY_CROSS_ENTROPY:
            labels = onehot
            meant = reference.evaluate(
                Op.SIGMOID_CROSS_ENTROPY, logits, onehot, axis=options.get("axis")
            ).value
    elif scenario == "one-hot-into-sparse":
        x, labels = logits, onehot
    elif scenario == "indices-into-dense":
        x, labels = logits, y.astype(dtype)
    else:
        return None
    return Call(x=x, labels=labels, options=options, device=device, mode=mode), meant


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
        if not scenario.applies(impl.op):
            continue
        made = _call(adapter, impl, scenario.id, dtype, device, mode, options)
        if made is None:
            continue
        call, meant = made
        try:
            outcome = adapter.run(impl, call)
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
            entry["relative_error"] = _relative_error(outcome.value, meant)
        out[scenario.id] = entry
    return out


def _relative_error(value: np.ndarray | None, meant: np.ndarray) -> float | None:
    """max |value - meant| / |meant| when shapes allow; None when the answer has another shape."""
    if value is None:
        return None
    v = np.asarray(value, dtype=np.float64)
    if v.shape != meant.shape:
        if v.ndim == 0:  # a reduced loss: compare with the mean the user meant
            meant = np.asarray(meant.mean())
        else:
            return None
    with np.errstate(all="ignore"):
        rel = np.abs(v - meant) / np.abs(meant)
    return float(np.nanmax(rel)) if rel.size else None
