"""The reference on named hard cases, every special value, the API, and torch's conventions."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import oracle as O
import pytest
from mpmath import mp

from conformance import reference as ref
from conformance.reference import Undefined as U

inf, nan = np.inf, np.nan
A = -0.6931471805599453  # -fl(log 2): logsumexp([A, A]) = log 2 - fl(log 2), tiny


def ulps(a: float, b: float) -> int:
    return O.ulp_distance(a, b)


# ---------------------------------------------------------------- hard cases
HARD_ROWS = [
    ("float64", [0.0, -50.0]),
    ("float64", [100.0, 0.0]),
    ("float64", [1.7e308, 0.0]),
    ("float64", [1.7e308, -1.7e308]),
    ("float64", [-1.7e308, -1.7e308]),
    ("float32", [3.4e38, -3.4e38]),
    ("float32", [3.4e38, 3.4e38, -1.0]),
    ("float16", [65504.0, -65504.0, 0.0]),
    ("bfloat16", [3.3895e38, 1.0, -3.3895e38]),
    ("float64", [0.0, -1e4]),
    ("float64", [1e4, 0.0, -1e4]),
    ("float64", [0.0, -1e5, -1e300]),
    ("float64", [0.0, -745.0]),  # probability: the smallest subnormal
    ("float64", [0.0, -744.44, -746.0]),
    ("float64", [0.0, -800.0]),  # probability below every subnormal: 0
    ("float32", [0.0, -103.5, -110.0]),  # float32 subnormal probabilities
    ("float64", [A, A]),  # logsumexp near 0
    ("float64", [2.0**60, 2.0**60 - 256]),
    ("float64", [665429.28417233, -758376.51631184]),  # x_1 - x_0 sits on a midpoint
    ("float64", [1e6, 1e6, 1e6 - 2.0**-33]),
    ("float64", [5.0]),
    ("float64", [0.0, 0.0, 0.0, 0.0, 4.67935051e-63]),
    ("float64", [-1e-300, 1e-300]),
]


@pytest.mark.parametrize(("name", "row"), HARD_ROWS)
def test_hard_rows(name: str, row: list[float]) -> None:
    from test_reference_support import np_dtype, rounded

    x = rounded(row, name)
    xd = x.astype(np_dtype(name))
    for op, want in (
        ("softmax", O.softmax(x)),
        ("log_softmax", O.log_softmax(x)),
        ("logsumexp", [O.logsumexp(x)]),
    ):
        got = ref.evaluate(op, xd)
        assert not got.undefined.any()
        for r, w in zip(np.ravel(got.value), want, strict=True):
            O.check(r, w, name, op)
    for y in range(len(x)):
        got = ref.evaluate("sparse_softmax_cross_entropy", xd, np.array(y))
        O.check(float(got.value), O.cross_entropy(x, O.one_hot(y, len(x))), name, "sce")
    g = np.linspace(-1, 2, len(x))
    for r, w in zip(
        ref.vjp("log_softmax", xd, cotangent=g).value, O.log_softmax_vjp(x, g), strict=True
    ):
        O.check(r, w, name, "log_softmax_vjp")


def test_named_values() -> None:
    lsm = ref.log_softmax(np.array([0.0, -50.0]))
    assert lsm[0] == -1.9287498479639178e-22
    loss = ref.evaluate("sparse_softmax_cross_entropy", np.array([100.0, 0.0]), np.array(0))
    # log1p(e^-100) = 3.72007597602083596...e-44: the correctly rounded float64 is
    # 3.720075976020836e-44, one ULP above the often quoted 3.7200759760208356e-44
    assert float(loss.value) == 3.720075976020836e-44
    assert float(ref.logsumexp(np.array([A, A]))) == 2.3190468138462996e-17
    assert ref.logsumexp(np.array([1.7e308, 0.0])) == 1.7e308
    assert ref.logsumexp(np.array([3.4e38, -3.4e38], np.float32)) == np.float32(3.4e38)


def test_soft_labels_where_the_naive_formula_cancels() -> None:
    x, t = np.array([1e6, 1e6]), np.array([0.75, 0.25])
    naive = t.sum() * (1e6 + np.log(2.0)) - (t * x).sum()
    exact = O.cross_entropy(x, t)
    got = float(ref.evaluate("softmax_cross_entropy", x, t).value)
    assert ulps(got, O.to_f64(exact)) <= 1
    assert ulps(naive, O.to_f64(exact)) > 1000
    x, t = np.array([40.0, 0.0, -3.0]), np.array([1.5, -0.25, -0.25])  # invalid, still exact
    O.check(
        float(ref.evaluate("softmax_cross_entropy", x, t).value),
        O.cross_entropy(x, t),
        "float64",
        "signed labels",
    )


@pytest.mark.parametrize("k", [1, 2, 3, 7, 100, 1000, 100_000])
def test_class_counts(k: int) -> None:
    """Rows of small integers: the exact values need one exp per distinct value."""
    rng = np.random.default_rng(k)
    x = rng.integers(-3, 4, size=k).astype(np.float64)
    x[0] = 3.0
    vals, counts = np.unique(x, return_counts=True)
    with mp.workprec(300):
        lse = mp.log(mp.fsum(int(c) * mp.exp(int(v)) for v, c in zip(vals, counts, strict=True)))
        got = ref.evaluate("logsumexp", x)
        assert ulps(float(got.value), O.to_f64(lse)) <= 1
        lsm = ref.log_softmax(x)
        sm = ref.softmax(x.astype(np.float32))
        for i in sorted({0, k - 1, k // 2}):
            assert ulps(lsm[i], O.to_f64(int(x[i]) - lse)) <= 1
            O.check(sm[i], mp.exp(int(x[i]) - lse), "float32", "softmax_k")
        y = k // 3
        ce = ref.evaluate("sparse_softmax_cross_entropy", x, np.array(y), label_smoothing=0.1)
        eps = mp.mpf(0.1)  # the double nearest 0.1, and 1 - eps exactly
        want = lse - (1 - eps) * int(x[y]) - eps * mp.fsum(int(v) for v in x) / k
        assert ulps(float(ce.value), O.to_f64(want)) <= 1


# ---------------------------------------------------------------- special values
def _ev(op, x, *args, **kw):
    return ref.evaluate(op, np.asarray(x, dtype=np.float64), *args, **kw)


def test_masked_and_neg_inf_entries() -> None:
    for op, at_masked in (("softmax", 0.0), ("log_softmax", -inf)):
        r = _ev(op, [0.0, -inf, 1.0])
        assert r.value[1] == at_masked and not r.undefined.any()
        r = _ev(op, [0.0, 5.0, 1.0], where=np.array([True, False, True]))
        assert r.value[1] == at_masked and not r.undefined.any()
        assert r.value[0] == _ev(op, [0.0, 1.0]).value[0]
        for row, where in (([-inf, -inf], None), ([1.0, 2.0], np.array([False, False]))):
            r = _ev(op, row, where=where)
            assert (r.undefined == U.FULLY_MASKED).all() and np.isnan(r.value).all()
    assert _ev("logsumexp", [-inf, -inf]).value == -inf
    assert _ev("logsumexp", [1.0, 2.0], where=np.array([False, False])).value == -inf
    r = _ev("logsumexp", [1.0, 2.0], where=np.array([False, True]))
    assert r.value == 2.0


def test_plus_inf_logits() -> None:
    r = _ev("softmax", [inf, 0.0, -inf])
    assert list(r.value) == [1.0, 0.0, 0.0] and not r.undefined.any()
    assert list(_ev("log_softmax", [inf, 0.0]).value) == [0.0, -inf]
    assert _ev("logsumexp", [inf, 0.0]).value == inf
    assert _ev("logsumexp", [inf, inf]).value == inf  # log(inf + inf) is defined
    for op in ("softmax", "log_softmax"):
        r = _ev(op, [inf, inf, 0.0])
        assert (r.undefined == U.INDETERMINATE_INF).all()
    r = _ev("softmax_cross_entropy", [inf, inf, 0.0], np.array([1.0, 0.0, 0.0]))
    assert r.undefined == U.INDETERMINATE_INF
    assert _ev("sparse_softmax_cross_entropy", [inf, 0.0], np.array(0)).value == 0.0
    assert _ev("sparse_softmax_cross_entropy", [inf, 0.0], np.array(1)).value == inf


def test_nan_inputs() -> None:
    for op in ("softmax", "log_softmax", "logsumexp"):
        r = _ev(op, [[nan, 0.0], [1.0, 0.0]])
        assert (r.undefined[0] == U.NAN_INPUT).all() and not r.undefined[1].any()
        assert np.isnan(r.value[0]).all()
    r = _ev("softmax", [nan, 0.0], where=np.array([False, True]))  # masked NaN takes no part
    assert list(r.value) == [0.0, 1.0]
    r = _ev("softmax_cross_entropy", [0.0, 1.0], np.array([nan, 1.0]))
    assert r.undefined == U.NAN_INPUT
    r = ref.vjp("softmax", np.array([0.0, 1.0]), cotangent=np.array([nan, 1.0]))
    assert (r.undefined == U.NAN_INPUT).all()


def test_empty_class_axis() -> None:
    assert ref.softmax(np.zeros((3, 0))).shape == (3, 0)
    assert list(_ev("logsumexp", np.zeros((2, 0))).value) == [-inf, -inf]
    assert list(_ev("softmax_cross_entropy", np.zeros((2, 0)), np.zeros((2, 0))).value) == [0, 0]
    r = _ev("sparse_softmax_cross_entropy", np.zeros((1, 0)), np.array([0]))
    assert r.undefined[0] == U.INVALID_LABEL
    for op in ("softmax_cross_entropy", "probability_cross_entropy"):
        # no class, so nothing to smooth over: an empty sum (found by the 100k sweep,
        # where the smoothing's eps / K divided by zero)
        r = _ev(op, np.zeros((2, 0)), np.zeros((2, 0)), label_smoothing=0.1)
        assert list(r.value) == [0, 0] and not r.undefined.any()
        g = ref.vjp(
            op, np.zeros((2, 0)), np.zeros((2, 0)), label_smoothing=0.1, cotangent=np.ones(2)
        )
        assert g.value.shape == (2, 0)
    r = _ev("softmax_cross_entropy", np.zeros((0, 3)), np.zeros((0, 3)), reduction="mean")
    assert r.undefined == U.NO_WEIGHT
    assert (
        _ev("softmax_cross_entropy", np.zeros((0, 3)), np.zeros((0, 3)), reduction="sum").value
        == 0.0
    )


def test_labels_and_ignore_index() -> None:
    x = np.array([[0.0, 1.0], [0.0, 1.0], [nan, 1.0]])
    r = ref.evaluate("sparse_softmax_cross_entropy", x, np.array([2, -5, -100]), ignore_index=-100)
    assert list(r.undefined) == [U.INVALID_LABEL, U.INVALID_LABEL, 0]
    assert r.value[2] == 0.0  # ignored: loss 0 even over NaN logits
    r = ref.evaluate(
        "sparse_softmax_cross_entropy",
        x[:2],
        np.array([-100, -100]),
        ignore_index=-100,
        reduction="weighted_mean",
    )
    assert r.undefined == U.NO_WEIGHT
    r = ref.evaluate(
        "sparse_softmax_cross_entropy",
        x[:2],
        np.array([0, 1]),
        class_weights=np.array([0.0, 0.0]),
        reduction="weighted_mean",
    )
    assert r.undefined == U.NO_WEIGHT
    g = ref.vjp(
        "sparse_softmax_cross_entropy",
        x,
        np.array([0, 1, -100]),
        ignore_index=-100,
        cotangent=np.ones(3),
    )
    assert (g.value[2] == 0).all() and not g.undefined[2].any()


def test_probabilities() -> None:
    p = np.array([[0.0, 1.0], [0.0, 1.0], [0.5, 0.5], [1.5, -0.5], [0.2, 0.8]])
    t = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5], [1.0, 0.0]])
    r = ref.evaluate("probability_cross_entropy", p, t)
    assert r.value[0] == 0.0 and r.value[1] == inf  # 0 log 0 = 0; t > 0 at p = 0
    assert r.undefined[3] == U.INVALID_PROBABILITY
    assert r.value[4] == -math.log(0.2) or ulps(r.value[4], -math.log(0.2)) <= 1
    r = ref.evaluate("probability_cross_entropy", np.array([0.3, 0.3]), np.array([1.0, 1.0]))
    assert ulps(float(r.value), -2 * math.log(0.3)) <= 1  # no renormalisation, no clipping
    g = ref.vjp("probability_cross_entropy", p[:2], t[:2], cotangent=np.ones(2))
    assert g.value[0, 0] == 0.0 and g.value[1, 0] == -inf
    r = ref.evaluate(
        "binary_cross_entropy",
        np.array([0.0, 1.0, 0.0, 1.0, 1.5]),
        np.array([0.0, 1.0, 1.0, 0.0, 1.0]),
        axis=None,
    )
    assert list(r.value[:4]) == [0.0, 0.0, inf, inf]
    assert r.undefined[4] == U.INVALID_PROBABILITY
    r = ref.evaluate(
        "sigmoid_cross_entropy",
        np.array([inf, -inf, inf, -inf]),
        np.array([1.0, 0.0, 0.0, 1.0]),
        axis=None,
    )
    assert list(r.value) == [0.0, 0.0, inf, inf]
    g = ref.vjp(
        "sigmoid_cross_entropy",
        np.array([inf, -inf, 0.0]),
        np.array([1.0, 0.0, 0.5]),
        axis=None,
        cotangent=np.ones(3),
    )
    assert list(g.value) == [0.0, 0.0, 0.0]


def test_reductions_propagate_and_gradients_follow() -> None:
    x = np.array([[0.0, 1.0], [nan, 1.0]])
    for red in ("sum", "mean", "weighted_mean", "sum_over_batch_size"):
        r = ref.evaluate("sparse_softmax_cross_entropy", x, np.array([0, 1]), reduction=red)
        assert r.undefined == U.NAN_INPUT and np.isnan(r.value)
        g = ref.vjp(
            "sparse_softmax_cross_entropy",
            x,
            np.array([0, 1]),
            reduction=red,
            cotangent=np.array(1.0),
        )
        assert (g.undefined == U.NAN_INPUT).all()
    x = np.array([[-inf, 1.0], [0.0, 1.0]])
    r = ref.evaluate(
        "softmax_cross_entropy", x, np.array([[1.0, 0.0], [0.0, 1.0]]), reduction="mean"
    )
    assert r.value == inf
    r = ref.evaluate(
        "softmax_cross_entropy", x, np.array([[1.0, 0.0], [-1.0, 0.0]]), reduction="sum"
    )
    assert r.value == inf or r.undefined == U.INDETERMINATE_INF
    g = ref.vjp("softmax_cross_entropy", x[:1], np.array([[1.0, 0.0]]), cotangent=np.ones(1))
    assert list(g.value[0]) == [-1.0, 1.0]  # the limit of p C - c at a -inf logit


def test_gradients_at_special_rows() -> None:
    g = ref.vjp(
        "softmax",
        np.array([[0.0, -inf, 1.0], [inf, 0.0, 1.0]]),
        cotangent=np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]),
    )
    assert g.value[0, 1] == 0 and list(g.value[1]) == [0.0, 0.0, 0.0]
    g = ref.vjp("log_softmax", np.array([inf, 0.0, 1.0]), cotangent=np.array([1.0, 2.0, 3.0]))
    assert list(g.value) == [-5.0, 2.0, 3.0]
    g = ref.vjp("softmax", np.array([1.0, 2.0]), cotangent=np.array([inf, 1.0]))
    assert (g.undefined == U.INDETERMINATE_INF).all()
    g = ref.vjp("logsumexp", np.array([inf, 0.0]), cotangent=np.array(2.0))
    assert list(g.value) == [2.0, 0.0]


def test_exact_zero_gradients() -> None:
    """Exact zeros need exact arithmetic: constant cotangents, tied logits, p = z."""
    assert (ref.vjp("softmax", np.array([1.0, 2.0, 3.0]), cotangent=np.ones(3)).value == 0).all()
    assert (ref.vjp("log_softmax", np.zeros(5), cotangent=np.ones(5)).value == 0).all()
    g = ref.vjp(
        "softmax_cross_entropy",
        np.zeros((1, 3)),
        np.full((1, 3), 1 / 3),
        label_smoothing=0.1,
        cotangent=np.ones(1),
    )
    assert (g.value == 0).all()
    g = ref.vjp(
        "sigmoid_cross_entropy",
        np.zeros(2),
        np.full(2, 0.5),
        axis=None,
        label_smoothing=0.3,
        cotangent=np.ones(2),
    )
    assert (g.value == 0).all()
    g = ref.vjp(
        "binary_cross_entropy", np.array([0.3]), np.array([0.3]), axis=None, cotangent=np.ones(1)
    )
    assert g.value[0] == 0.0


def test_scale() -> None:
    assert _ev("logsumexp", [0.0, 0.0], scale=np.array([0.5, 0.5])).value == 0.0
    r = _ev("logsumexp", [0.0, 1.0], scale=np.array([0.0, 2.0]))
    assert ulps(float(r.value), 1 + math.log(2)) <= 1
    assert _ev("logsumexp", [nan, 1.0], scale=np.array([0.0, 2.0])).undefined == 0
    with pytest.raises(ValueError):
        _ev("logsumexp", [0.0, 1.0], scale=np.array([-1.0, 2.0]))


# ---------------------------------------------------------------- API
def test_axes_and_shapes() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    base = ref.log_softmax(x, axis=-1)
    assert np.array_equal(ref.log_softmax(np.moveaxis(x, -1, 0), axis=0), np.moveaxis(base, -1, 0))
    assert np.array_equal(ref.log_softmax(x, axis=2), base)
    two = ref.log_softmax(x, axis=(0, 2))
    flat = ref.log_softmax(np.moveaxis(x, 1, 0).reshape(3, 8), axis=-1)
    assert np.array_equal(np.moveaxis(two, 1, 0).reshape(3, 8), flat)
    assert ref.logsumexp(x, axis=(0, 2)).shape == (3,)
    assert ref.logsumexp(x, axis=None).shape == ()
    y = rng.integers(0, 3, size=(2, 4))
    ce = ref.evaluate("sparse_softmax_cross_entropy", x, y, axis=1)
    assert ce.value.shape == (2, 4)
    dense = ref.evaluate("softmax_cross_entropy", x, np.eye(3)[y].transpose(0, 2, 1), axis=1)
    assert np.array_equal(ce.value, dense.value)  # sparse = dense one-hot, exactly
    r = ref.evaluate("binary_cross_entropy", rng.random((2, 3)), rng.random((2, 3)), axis=1)
    assert r.value.shape == (2,)
    g = ref.vjp(
        "softmax_cross_entropy",
        x,
        np.eye(3)[y].transpose(0, 2, 1),
        axis=1,
        reduction="mean",
        cotangent=np.array(1.0),
    )
    assert g.value.shape == x.shape


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32])
def test_narrow_inputs_are_taken_exactly(dtype) -> None:
    x = np.array([0.1, 3.0, -7.3]).astype(dtype)
    exact = x.astype(np.float64)
    a = ref.evaluate("log_softmax", x, target="float64").value
    assert np.array_equal(a, ref.log_softmax(exact))


def test_inputs_are_not_modified() -> None:
    x = np.array([[3.0, -np.inf, 1.0], [0.0, 2.0, 2.0]])
    t = np.array([[0.2, 0.0, 0.8], [1.0, 0.0, 0.0]])
    keep_x, keep_t = x.copy(), t.copy()
    for op in ("softmax", "log_softmax", "logsumexp"):
        ref.evaluate(op, x)
        ref.vjp(op, x, cotangent=np.ones(ref.evaluate(op, x).value.shape))
    ref.evaluate("softmax_cross_entropy", x, t, label_smoothing=0.1)
    ref.vjp("softmax_cross_entropy", x, t, cotangent=np.ones(2))
    assert np.array_equal(x, keep_x) and np.array_equal(t, keep_t)


def test_option_validation() -> None:
    with pytest.raises(ValueError):
        ref.evaluate("softmax", np.zeros(3), label_smoothing=0.1)
    with pytest.raises(ValueError):
        ref.evaluate("sigmoid_cross_entropy", np.zeros(3), np.zeros(3), class_weights=np.ones(3))
    with pytest.raises(TypeError):
        ref.evaluate("sparse_softmax_cross_entropy", np.zeros((1, 3)), np.array([0.5]))
    with pytest.raises(TypeError):
        ref.vjp("softmax", np.zeros(3), cotangent=np.ones(3), bogus=1)


# ---------------------------------------------------------------- torch's conventions
def test_torch_cross_entropy_conventions() -> None:
    """Smoothing and class weights inside the sum; 'mean' divides by sum_i w_{y_i} over the
    examples not ignored (also with smoothing), which is Reduction.WEIGHTED_MEAN; for
    probability targets torch's 'mean' divides by the batch size (Reduction.MEAN)."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    y = np.array([0, 3, 1, -100, 2])
    w = np.array([0.5, 2.0, 1.5, 3.0])
    soft = rng.random((5, 4))
    soft /= soft.sum(axis=1, keepdims=True)
    X = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    for red, ours in (("none", "none"), ("sum", "sum"), ("mean", "weighted_mean")):
        for weight in (None, w):
            for eps in (0.0, 0.2):
                tw = None if weight is None else torch.tensor(weight)
                kw = {"class_weights": weight, "label_smoothing": eps, "reduction": ours}
                out = torch.nn.functional.cross_entropy(
                    X, torch.tensor(y), weight=tw, label_smoothing=eps, reduction=red
                )
                got = ref.evaluate("sparse_softmax_cross_entropy", x, y, ignore_index=-100, **kw)
                np.testing.assert_allclose(got.value, out.detach().numpy(), rtol=1e-14, atol=1e-15)
                (gt,) = torch.autograd.grad(out, X, torch.ones_like(out))
                gr = ref.vjp(
                    "sparse_softmax_cross_entropy",
                    x,
                    y,
                    ignore_index=-100,
                    cotangent=np.ones(out.shape),
                    **kw,
                )
                np.testing.assert_allclose(gr.value, gt.numpy(), rtol=1e-13, atol=1e-15)
                out = torch.nn.functional.cross_entropy(
                    X, torch.tensor(soft), weight=tw, label_smoothing=eps, reduction=red
                )
                ours_soft = "mean" if red == "mean" else ours
                got = ref.evaluate(
                    "softmax_cross_entropy", x, soft, **{**kw, "reduction": ours_soft}
                )
                np.testing.assert_allclose(got.value, out.detach().numpy(), rtol=1e-14, atol=1e-15)
