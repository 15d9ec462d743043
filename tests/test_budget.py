"""The error budget in both directions: correct stable code passes, broken code is flagged."""

from __future__ import annotations

import numpy as np
import pytest
import stable_impls as impls
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance import reference
from conformance.budget import budget_ratio, error_bound, vjp_error_bound
from conformance.dtypes import FLOAT_DTYPES, as_dtype
from conformance.ops import Op


@st.composite
def logits(draw: st.DrawFn, dtype: str | None = None) -> np.ndarray:
    """Rows of logits exactly representable in the dtype, at scales from 1e-2 to 1e3."""
    dtype = dtype or draw(st.sampled_from(FLOAT_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40))
    scale = 10.0 ** draw(st.integers(-2, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    return x.astype(as_dtype(dtype))


def ratio_of(op: Op, computed: np.ndarray, x: np.ndarray, labels=None, **options) -> float:
    exact = reference.evaluate(op, x, labels, **options).value
    bound = error_bound(op, x, labels, **options)
    return float(np.max(budget_ratio(computed, exact, bound, x.dtype), initial=0.0))


CORRECT = [
    (Op.SOFTMAX, impls.stable_softmax),
    (Op.LOG_SOFTMAX, impls.stable_log_softmax),
    (Op.LOGSUMEXP, impls.stable_logsumexp),
]


@pytest.mark.parametrize(("op", "impl"), CORRECT, ids=[op.value for op, _ in CORRECT])
@settings(max_examples=300, deadline=None)
@given(x=logits())
def test_stable_algorithm_in_the_dtype_is_within_budget(op: Op, impl, x: np.ndarray) -> None:
    with np.errstate(all="ignore"):
        computed = impl(x)
    assert ratio_of(op, computed, x) <= 1.0


@settings(max_examples=300, deadline=None)
@given(x=logits(), data=st.data())
def test_stable_losses_and_gradients_are_within_budget(x: np.ndarray, data: st.DataObject) -> None:
    k = x.shape[-1]
    y = np.asarray(data.draw(hnp.arrays(np.int64, x.shape[:-1], elements=st.integers(0, k - 1))))
    with np.errstate(all="ignore"):
        loss = impls.stable_sparse_ce(x, y)
        assert ratio_of(Op.SPARSE_SOFTMAX_CROSS_ENTROPY, loss, x, y) <= 1.0
        t = np.zeros(x.shape, dtype=x.dtype)
        np.put_along_axis(t, y[..., None], np.ones((), dtype=x.dtype), axis=-1)
        dense = impls.stable_dense_ce(x, t)
        assert ratio_of(Op.SOFTMAX_CROSS_ENTROPY, dense, x, t) <= 1.0
        g = np.ones(y.shape, dtype=x.dtype)
        grad = impls.stable_sparse_ce_vjp(x, y, g)
    exact = reference.vjp(Op.SPARSE_SOFTMAX_CROSS_ENTROPY, x, y, cotangent=g).value
    bound = vjp_error_bound(Op.SPARSE_SOFTMAX_CROSS_ENTROPY, x, y, cotangent=g)
    assert budget_ratio(grad, exact, bound, x.dtype).max() <= 1.0


@settings(max_examples=200, deadline=None)
@given(x=logits(), data=st.data())
def test_stable_sigmoid_cross_entropy_is_within_budget(x: np.ndarray, data) -> None:
    z = np.asarray(
        data.draw(hnp.arrays(np.float64, x.shape, elements=st.sampled_from([0, 1, 0.25])))
    )
    z = z.astype(x.dtype)
    with np.errstate(all="ignore"):
        loss = impls.stable_sigmoid_ce(x, z)
    assert ratio_of(Op.SIGMOID_CROSS_ENTROPY, loss, x, z, axis=None) <= 1.0


def f32(*values: float) -> np.ndarray:
    return np.array([values], dtype=np.float32)


RNG = np.random.default_rng(7)
BROKEN = {
    "softmax without max shift overflows": (
        Op.SOFTMAX,
        impls.softmax_without_max_shift,
        f32(100, 0),
    ),
    "log of softmax underflows": (Op.LOG_SOFTMAX, impls.log_of_softmax, f32(0, -200)),
    "float16 intermediates for float32": (
        Op.SOFTMAX,
        impls.softmax_in_float16,
        RNG.standard_normal((4, 10)).astype(np.float32),
    ),
    "float16 intermediates for float32 (log)": (
        Op.LOG_SOFTMAX,
        impls.log_softmax_in_float16,
        RNG.standard_normal((4, 10)).astype(np.float32),
    ),
    "softmax over the wrong axis": (
        Op.SOFTMAX,
        impls.softmax_wrong_axis,
        RNG.standard_normal((3, 4)).astype(np.float32),
    ),
    "logsumexp without max shift": (Op.LOGSUMEXP, impls.logsumexp_without_max_shift, f32(1000, 0)),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_implementations_are_flagged(case: str) -> None:
    op, impl, x = BROKEN[case]
    with np.errstate(all="ignore"):
        computed = impl(x)
    assert ratio_of(op, computed, x) > 1.0


def test_unshifted_cross_entropy_is_flagged_on_large_offsets() -> None:
    x = f32(1e4 + 1, 1e4)
    y = np.array([1])
    with np.errstate(all="ignore"):
        loss = impls.sparse_ce_unshifted(x, y)
    assert ratio_of(Op.SPARSE_SOFTMAX_CROSS_ENTROPY, loss, x, y) > 1.0


def test_wrong_sign_gradient_is_flagged() -> None:
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    y = np.array([0, 2, 4])
    g = np.ones(3, dtype=np.float32)
    grad = impls.sparse_ce_vjp_wrong_sign(x, y, g)
    exact = reference.vjp(Op.SPARSE_SOFTMAX_CROSS_ENTROPY, x, y, cotangent=g).value
    bound = vjp_error_bound(Op.SPARSE_SOFTMAX_CROSS_ENTROPY, x, y, cotangent=g)
    assert budget_ratio(grad, exact, bound, np.float32).max() > 1.0


def test_log_softmax_budget_is_absolute_near_zero() -> None:
    """The dominant class of [0, -50]: exact -1.9e-22, the standard algorithm returns 0,
    which is within budget (an absolute scale) though ~2**73 float32 ULPs away."""
    x = f32(0, -50)
    exact = reference.evaluate(Op.LOG_SOFTMAX, x).value
    computed = impls.stable_log_softmax(x)
    assert computed[0, 0] == 0 and exact[0, 0] < 0
    assert ratio_of(Op.LOG_SOFTMAX, computed, x) <= 1.0


@settings(max_examples=200, deadline=None)
@given(x=logits(), data=st.data())
def test_correctly_rounded_dense_losses_are_within_budget_under_every_reduction(
    x: np.ndarray, data: st.DataObject
) -> None:
    """The reference rounded to the dtype (the best any framework can return) meets the
    budget of the loss and of its gradient, whatever the labels, weights and reduction:
    a weighted mean of dense labels divides by sum(w * t), which may be far below the batch."""
    k = x.shape[-1]
    t = data.draw(hnp.arrays(np.float64, x.shape, elements=st.sampled_from([0.0, 0.25, 1.0])))
    t = t.astype(x.dtype)
    options = {
        "reduction": data.draw(st.sampled_from(["none", "sum", "mean", "weighted_mean"])),
        "label_smoothing": data.draw(st.sampled_from([0.0, 0.1])),
        "class_weights": data.draw(
            st.none() | hnp.arrays(np.float64, (k,), elements=st.sampled_from([0.0, 0.5, 2.0]))
        ),
    }
    op = Op.SOFTMAX_CROSS_ENTROPY
    value = reference.evaluate(op, x, t, **options).value
    if not np.isfinite(value).all():  # no weight at all: judged as undefined elsewhere
        return
    assert ratio_of(op, value.astype(x.dtype), x, t, **options) <= 1.0
    g = np.ones(np.shape(value), dtype=x.dtype)
    exact = reference.vjp(op, x, t, cotangent=g, **options).value
    bound = vjp_error_bound(op, x, t, cotangent=g, **options)
    assert budget_ratio(exact.astype(x.dtype), exact, bound, x.dtype).max(initial=0.0) <= 1.0
