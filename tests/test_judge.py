"""conformance/judge.py: how an answer to an invalid input is told apart."""

from __future__ import annotations

import numpy as np

from conformance.judge import judge
from conformance.ops import Op

X = np.zeros((2, 3), np.float32)
LABELS = np.array([0, 7])  # 7 is out of range for 3 classes


def _reaction(value: np.ndarray | None, error: str | None = None) -> tuple[str, str]:
    j = judge(
        Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
        X,
        LABELS,
        {"axis": -1},
        value,
        None,
        None,
        error,
        False,
        invalid=True,
        case="label-out-of-range",
    )
    return j.reaction, " ".join(f.detail for f in j.findings)


def test_a_silent_answer_says_whether_a_user_can_notice_it() -> None:
    plausible = np.array([1.0986, 0.0], np.float32)
    assert _reaction(plausible) == (
        "silent-finite",
        _reaction(plausible)[1],
    )
    assert "looks like a result" in _reaction(plausible)[1]
    for noticed in (np.array([1.0986, np.nan], np.float32), np.array([np.inf, 1.0], np.float32)):
        reaction, detail = _reaction(noticed)
        assert reaction == "silent-nonfinite" and "can notice" in detail
    assert _reaction(None, error="IndexError: label 7") == ("raises", "")
