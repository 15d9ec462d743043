"""The named corpus: hand-picked inputs that every run sees, each with an id and a reason.

Values are float64; a case is cast to the dtype under test (the reference then judges
the cast values exactly), and a case whose point is lost in a dtype (a value that
overflows it) declares the dtypes it applies to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.dtypes import FLOAT_DTYPES
from conformance.ops import CATALOG, LabelKind, Op, Option

INF = np.inf


@dataclass(frozen=True)
class Case:
    """One named input: logits (or probabilities), optional labels and options."""

    id: str
    why: str
    x: np.ndarray
    labels: np.ndarray | None = None
    options: dict[str, Any] = field(default_factory=dict)
    dtypes: tuple[str, ...] = FLOAT_DTYPES
    invalid: bool = False
    """True when the input breaks the API's contract: the right reaction is to raise."""


def _row(*values: float) -> np.ndarray:
    return np.array([values], dtype=np.float64)


_LOGITS: tuple[tuple[str, str, np.ndarray, tuple[str, ...]], ...] = (
    ("seed-2-1-0.1", "the textbook example [2.0, 1.0, 0.1]", _row(2.0, 1.0, 0.1), FLOAT_DTYPES),
    (
        "seed-0.1-0.3-0.5-0.9",
        "softmax [[.1, .3, .5, .9]] = [0.16838508, 0.205666, 0.25120102, 0.37474789]",
        _row(0.1, 0.3, 0.5, 0.9),
        FLOAT_DTYPES,
    ),
    (
        "spread-1000",
        "[1000, 0, -1000]: exp overflows without the max shift",
        _row(1000, 0, -1000),
        FLOAT_DTYPES,
    ),
    (
        "tiny-loss-100-0",
        "[100, 0]: the loss of class 0 is 3.72e-44, not 0",
        _row(100, 0),
        FLOAT_DTYPES,
    ),
    (
        "dominant-class",
        "[0, -50]: log_softmax of the argmax is -1.9e-22, a tiny negative",
        _row(0, -50),
        FLOAT_DTYPES,
    ),
    (
        "subnormal-probability",
        "[0, -90]: p = 8.2e-40 is subnormal in float32",
        _row(0, -90),
        ("bfloat16", "float32", "float64"),
    ),
    ("ties", "four equal logits: exactly uniform", _row(3, 3, 3, 3), FLOAT_DTYPES),
    ("single-class", "one class: softmax 1, log_softmax 0, loss 0", _row(5.0), FLOAT_DTYPES),
    (
        "partly-masked",
        "a -inf entry: probability 0, log -inf, no NaN",
        _row(0, -INF, 1),
        FLOAT_DTYPES,
    ),
    ("fully-masked", "every entry -inf: 0/0, undefined", _row(-INF, -INF), FLOAT_DTYPES),
    (
        "plus-inf",
        "one +inf: the limit is one-hot at it; oneDNN returns NaN",
        _row(INF, 0),
        FLOAT_DTYPES,
    ),
    ("two-plus-inf", "two +inf: inf/inf, undefined", _row(INF, INF, 0), FLOAT_DTYPES),
    ("nan", "a NaN propagates to its row only", np.array([[np.nan, 0], [1, 0]]), FLOAT_DTYPES),
    (
        "float16-max",
        "[65504, -65504]: the difference overflows float16",
        _row(65504, -65504),
        ("float16",),
    ),
    (
        "float16-max-pair",
        "logsumexp of [65504, 65504] overflows float16 to inf",
        _row(65504, 65504),
        ("float16",),
    ),
    (
        "float32-max",
        "[3.4e38, -3.4e38]: the difference overflows float32",
        _row(3.3895313892515355e38, -3.3895313892515355e38),
        ("bfloat16", "float32"),
    ),
    ("float64-max", "[1.7e308, 0]", _row(1.7e308, 0), ("float64",)),
    (
        "rows-of-different-scales",
        "rows at 1e-3, 1 and 1e3 in one tensor",
        np.array([[1e-3, 2e-3, -1e-3], [1, 2, -1], [1e3, 2e3, -1e3]]),
        FLOAT_DTYPES,
    ),
)


def _large_vocabulary() -> np.ndarray:
    return np.random.default_rng(20261122).standard_normal((1, 131072)) * 3.0


def logit_cases() -> list[Case]:
    """Cases for the logit-only operations (softmax, log_softmax, logsumexp)."""
    cases = [Case(cid, why, x, dtypes=dtypes) for cid, why, x, dtypes in _LOGITS]
    cases.append(
        Case("empty-axis", "zero classes: empty softmax, logsumexp -inf", np.zeros((2, 0)))
    )
    cases.append(
        Case("large-vocabulary", "131072 classes (an LLM vocabulary)", _large_vocabulary())
    )
    return cases


def _one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((*y.shape, classes))
    np.put_along_axis(out, y[..., None], 1.0, axis=-1)
    return out


def _label_cases(op: Op) -> list[Case]:
    sparse = CATALOG[op].labels is LabelKind.INTEGER
    base = [c for c in logit_cases() if c.id not in ("empty-axis",)]
    cases: list[Case] = []
    for c in base:
        classes = c.x.shape[-1]
        y = np.zeros(c.x.shape[:-1], dtype=np.int64)
        labels = y if sparse else _one_hot(y, classes)
        cases.append(Case(c.id, c.why, c.x, labels, dtypes=c.dtypes))
    x = _row(2.0, 1.0, 0.1)
    cases.append(
        Case(
            "label-smoothing-0.1",
            "smoothing 0.1 on the textbook example",
            x,
            np.array([0]) if sparse else np.eye(3)[[0]],
            {Option.LABEL_SMOOTHING.value: 0.1},
        )
    )
    if sparse:
        cases += [
            Case(
                "label-out-of-range",
                "label K with K classes: should raise",
                x,
                np.array([3]),
                invalid=True,
            ),
            Case(
                "label-negative",
                "label -1 (not the ignore index): should raise",
                x,
                np.array([-1]),
                invalid=True,
            ),
            Case(
                "ignored-label",
                "ignore_index=-100: no loss, no weight",
                np.array([[2.0, 1.0, 0.1], [0, 1, 2]]),
                np.array([-100, 2]),
                {Option.IGNORE_INDEX.value: -100},
            ),
        ]
    else:
        cases += [
            Case("soft-labels", "soft labels [0.2, 0.3, 0.5]", x, np.array([[0.2, 0.3, 0.5]])),
            Case(
                "soft-labels-not-normalised",
                "labels summing to 1.2",
                x,
                np.array([[0.5, 0.7, 0.0]]),
                invalid=False,
            ),
        ]
    return cases


def _binary_cases(op: Op) -> list[Case]:
    if op is Op.BINARY_CROSS_ENTROPY:
        p = np.array([[0.5, 1e-8, 1 - 2**-20, 0.0, 1.0]])
        z = np.array([[1.0, 1.0, 0.0, 0.0, 1.0]])
        return [Case("probabilities", "p near 0 and 1 and exactly 0 and 1", p, z)]
    x = np.array([[0.0, 100.0, -100.0, 1e4, -30.0]])
    z = np.array([[1.0, 1.0, 0.0, 1.0, 1.0]])
    return [
        Case("sigmoid-extremes", "large |x|: the loss is exp(-|x|), not 0", x, z),
        Case("sigmoid-soft", "soft targets cancel in max(x,0) - x z", x, np.full(x.shape, 0.75)),
    ]


def _probability_cases(op: Op) -> list[Case]:
    sparse = CATALOG[op].labels is LabelKind.INTEGER
    p = np.array([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0], [1e-30, 0.5, 0.5 - 1e-30]])
    y = np.array([0, 1, 0])
    labels = y if sparse else np.eye(3)[y]
    return [
        Case("probabilities", "a zero probability on the label: the loss is +inf", p, labels),
        Case(
            "tiny-probability",
            "p = 1e-30 on the label: 69.08, not a clipped 16.1",
            np.array([[1e-30, 1 - 1e-30]]),
            np.array([0]) if sparse else np.eye(2)[[0]],
            dtypes=("float32", "float64"),
        ),
    ]


UNBATCHED = "-unbatched"
"""The id suffix of a one-row case judged again as a vector."""


def unbatched(cases: list[Case], *, longest: int = 64) -> list[Case]:
    """Each one-row case of at most `longest` classes again as a rank-1 input. A vector
    is another code path than a batch of rows: ONNX Runtime 1.26's ReduceLogSumExp gave
    -inf for a row of -inf in a batch and NaN for the same row alone (docs/real-bugs.md)."""
    return [
        Case(c.id + UNBATCHED, c.why + "; unbatched (rank 1)", c.x[0], None, c.options, c.dtypes)
        for c in cases
        if c.x.ndim == 2 and c.x.shape[0] == 1 and c.x.shape[1] <= longest and not c.invalid
    ]


def cases_for(op: Op | str) -> list[Case]:
    """The named corpus of `op` (for softmax, log-softmax and logsumexp also unbatched:
    every framework takes a vector there; the losses' batch conventions differ)."""
    op = Op(op)
    if op in (Op.SOFTMAX, Op.LOG_SOFTMAX, Op.LOGSUMEXP):
        named = logit_cases()
        return named + unbatched(named)
    if op in (Op.SIGMOID_CROSS_ENTROPY, Op.BINARY_CROSS_ENTROPY):
        return _binary_cases(op)
    if CATALOG[op].input_is_probability:
        return _probability_cases(op)
    return _label_cases(op)
