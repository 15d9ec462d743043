"""The metamorphic laws: what the variants are, and that a broken law is told apart."""

from __future__ import annotations

import numpy as np

from conformance.inputs import Input
from conformance.judge import Judgement
from conformance.metamorphic import LAWS, Law, shift_for, variants, violation
from conformance.ops import CATALOG, Op, Reduction


def _sparse_item() -> Input:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    where = np.array([[True, False, True]] * 4)
    options = {
        "axis": -1,
        "where": where,
        "class_weights": np.array([1.0, 2.0, 3.0]),
        "ignore_index": -100,
        "reduction": Reduction.WEIGHTED_MEAN,
    }
    return Input("drawn-0", x, np.array([0, 2, -100, 1]), options)


def test_reversing_the_classes_reverses_labels_weights_and_masks() -> None:
    item = _sparse_item()
    order, shift = variants(Op.SPARSE_SOFTMAX_CROSS_ENTROPY, [item])
    assert order.case == "drawn-0~class-order" and shift.case == "drawn-0~shift"
    np.testing.assert_array_equal(order.x, item.x[:, ::-1])
    np.testing.assert_array_equal(order.labels, [2, 0, -100, 1])  # the ignored label stays
    np.testing.assert_array_equal(order.options["class_weights"], [3.0, 2.0, 1.0])
    np.testing.assert_array_equal(order.options["where"], item.options["where"][:, ::-1])
    assert order.x.shape == item.x.shape  # the same program


def test_an_ignored_class_is_reversed_with_the_others() -> None:
    item = _sparse_item()
    item = Input(item.case, item.x, np.array([0, 2, 1, 1]), {**item.options, "ignore_index": 1})
    order, _ = variants(Op.SPARSE_SOFTMAX_CROSS_ENTROPY, [item])
    np.testing.assert_array_equal(order.labels, [2, 0, 1, 1])
    assert order.options["ignore_index"] == 1  # class 1 of 3 is its own mirror
    item = Input(item.case, item.x, np.array([0, 2, 0, 1]), {**item.options, "ignore_index": 0})
    order, _ = variants(Op.SPARSE_SOFTMAX_CROSS_ENTROPY, [item])
    np.testing.assert_array_equal(order.labels, [2, 0, 2, 1])
    assert order.options["ignore_index"] == 2  # the rows ignored before are ignored after


def test_a_broadcast_mask_is_reversed_only_along_the_axes_it_spans() -> None:
    x = np.zeros((2, 3, 1), np.float32)
    item = Input("drawn-1", x, None, {"axis": (0, 1), "where": np.array([[True], [False], [True]])})
    (order, _) = variants(Op.SOFTMAX, [item])
    assert order.options["where"].shape == (3, 1)
    np.testing.assert_array_equal(order.options["where"], item.options["where"][::-1])


def test_shifts_are_exact_powers_of_two_that_do_not_overflow() -> None:
    x = np.array([[3.0, -100.0]], np.float16)
    assert shift_for(x, 1) == 1024.0 and shift_for(x, -1) == -1024.0
    assert shift_for(np.array([[60000.0]], np.float16), 1) is None
    first, second = (variants(Op.LOG_SOFTMAX, [Input(f"d{i}", x, None, {}) for i in (0, 1)]))[1::2]
    assert float(first.x[0, 0] - x[0, 0]) == 1024.0
    assert float(second.x[0, 0] - x[0, 0]) == -1024.0  # shifts alternate in sign


def test_every_family_has_its_laws() -> None:
    assert {spec.family for spec in CATALOG.values()} == set(LAWS)
    assert (
        variants(Op.SIGMOID_CROSS_ENTROPY, [Input("d", np.zeros((2, 2)), np.zeros((2, 2)), {})])
        == []
    )


def _answer(value: np.ndarray) -> dict:
    return {"value": value, "grad": None, "cotangent": None}


def test_an_undefined_answer_that_moves_with_the_class_order_is_a_violation() -> None:
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    where = np.zeros((1, 3), bool)  # fully masked: NaN or 0 are each acceptable
    item = Input("drawn-0", x, None, {"axis": -1, "where": where})
    order = variants(Op.SOFTMAX, [item])[0]
    nan, zero = np.full((1, 3), np.nan, np.float32), np.zeros((1, 3), np.float32)
    found = violation(
        Op.SOFTMAX, (item, Judgement(), _answer(nan)), (order, Judgement(), _answer(zero))
    )
    assert found is not None and found.kind == "metamorphic-class-order"
    assert found.case == "drawn-0~class-order"
    same = violation(
        Op.SOFTMAX, (item, Judgement(), _answer(nan)), (order, Judgement(), _answer(nan))
    )
    assert same is None


def test_softmax_answers_are_compared_where_the_law_puts_them() -> None:
    x = np.array([[0.0, np.inf, 1.0]], np.float32)  # softmax [0, nan, 0] in the reference
    item = Input("drawn-0", x, None, {"axis": -1})
    order = variants(Op.SOFTMAX, [item])[0]
    before = np.array([[0.0, np.nan, 0.0]], np.float32)
    moved = before[:, ::-1].copy()
    args = (item, Judgement(), _answer(before))
    assert violation(Op.SOFTMAX, args, (order, Judgement(), _answer(moved))) is None
    unmoved = np.array([[np.nan, 0.0, 0.0]], np.float32)
    assert violation(Op.SOFTMAX, args, (order, Judgement(), _answer(unmoved))) is not None


def test_answers_with_their_own_findings_are_left_to_the_judge() -> None:
    from conformance.judge import Finding, Verdict

    x = np.zeros((1, 3), np.float32)
    item = Input("drawn-0", x, None, {"axis": -1, "where": np.zeros((1, 3), bool)})
    order = variants(Op.SOFTMAX, [item])[0]
    flagged = Judgement([Finding(Verdict.DIVERGENT, "k", "d", "drawn-0")])
    nan, zero = np.full((1, 3), np.nan, np.float32), np.zeros((1, 3), np.float32)
    assert (
        violation(Op.SOFTMAX, (item, flagged, _answer(nan)), (order, Judgement(), _answer(zero)))
        is None
    )
    assert Law.SHIFT in LAWS[CATALOG[Op.SOFTMAX].family]
