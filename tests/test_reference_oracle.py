"""The reference against the independent interval-arithmetic oracle (tests/oracle.py).

Every example draws one input in one dtype and checks the value AND the gradient of the
op: float64 targets within 1 float64 ULP, narrower targets within 2**-8 target ULP.
Example counts per operation: N_ORACLE here, plus the mpmath-tier run in
test_reference_tiers.py and the cheap identities in test_reference_properties.py
(docs/reference.md has the table)."""

from __future__ import annotations

import numpy as np
import oracle as O
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_reference_support import (
    DTYPES,
    class_weights,
    cotangents,
    logit_rows,
    masks,
    np_dtype,
    rounded,
    smoothing,
    soft_labels,
    with_examples,
)

from conformance import reference as ref

N_ORACLE = 300
names = st.sampled_from(DTYPES)


def _softmax_like(data, op: str) -> None:
    name = data.draw(names)
    x = data.draw(logit_rows(name))
    k = len(x)
    where = data.draw(masks(k))
    scale = None
    if op == "logsumexp" and k > 1 and data.draw(st.booleans()):
        scale = np.array(
            data.draw(
                st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 1e-3]), min_size=k, max_size=k)
            )
        )
    alive = (x > -np.inf) & (True if where is None else where)
    if scale is not None:
        alive &= scale != 0
    if not alive.any():  # fully masked rows: test_reference.py
        return
    xd = x.astype(np_dtype(name))
    kw = {"where": where} if where is not None else {}
    if scale is not None:
        kw["scale"] = scale
    got = ref.evaluate(op, xd, **kw)
    if op == "softmax":
        want = O.softmax(x, where)
    elif op == "log_softmax":
        want = O.log_softmax(x, where)
    else:
        want = [O.logsumexp(x, where, scale)]
    for r, w in zip(np.ravel(got.value), want, strict=True):
        O.check(r, w, name, op)
    g = data.draw(cotangents(np.shape(got.value)))
    grad = ref.vjp(op, xd, cotangent=g, **kw)
    if op == "softmax":
        want = O.softmax_vjp(x, g, where)
    elif op == "log_softmax":
        want = O.log_softmax_vjp(x, g, where)
    else:
        want = O.logsumexp_vjp(x, float(g), where, scale)
    for r, w in zip(np.ravel(grad.value), want, strict=True):
        O.check(r, w, name, op + "_vjp")


@with_examples(N_ORACLE)
@given(st.data())
def test_softmax(data) -> None:
    _softmax_like(data, "softmax")


@with_examples(N_ORACLE)
@given(st.data())
def test_log_softmax(data) -> None:
    _softmax_like(data, "log_softmax")


@with_examples(N_ORACLE)
@given(st.data())
def test_logsumexp(data) -> None:
    _softmax_like(data, "logsumexp")


def _cross_entropy(data, sparse: bool, probabilities: bool) -> None:
    name = data.draw(names)
    if probabilities:
        k = data.draw(st.integers(1, 5))
        vals = data.draw(
            st.lists(
                st.one_of(
                    st.floats(2.0**-30, 1.0), st.sampled_from([1.0, 0.5, 1e-30, 1 - 2.0**-20])
                ),
                min_size=k,
                max_size=k,
            )
        )
        x = rounded(vals, name)
        x = np.where(x <= 0, 2.0**-14, x)  # strictly positive in every dtype
        where = None
    else:
        x = data.draw(logit_rows(name, neg_inf=False))
        k = len(x)
        where = data.draw(masks(k))
    eps = data.draw(smoothing)
    w = data.draw(class_weights(k))
    if sparse:
        y = data.draw(st.integers(0, k - 1))
        t, labels = O.one_hot(y, k), np.array(y)
        op = "sparse_probability_cross_entropy" if probabilities else "sparse_softmax_cross_entropy"
    else:
        t = data.draw(soft_labels(k))
        labels = t
        op = "probability_cross_entropy" if probabilities else "softmax_cross_entropy"
    xd = x.astype(np_dtype(name))
    kw = {"label_smoothing": eps, "class_weights": w}
    if where is not None:
        kw["where"] = where
    got = ref.evaluate(op, xd, labels, **kw)
    if probabilities:
        want = O.probability_cross_entropy(x, t, w, eps)
    else:
        want = O.cross_entropy(x, t, w, eps, where)
    O.check(float(got.value), want, name, op)
    g = data.draw(st.floats(-3, 3))
    grad = ref.vjp(op, xd, labels, cotangent=np.array(g), **kw)
    if probabilities:
        want = O.probability_cross_entropy_vjp(x, t, g, w, eps)
    else:
        want = O.cross_entropy_vjp(x, t, g, w, eps, where)
    for r, v in zip(grad.value, want, strict=True):
        O.check(r, v, name, op + "_vjp")


@with_examples(N_ORACLE)
@given(st.data())
def test_softmax_cross_entropy(data) -> None:
    _cross_entropy(data, sparse=False, probabilities=False)


@with_examples(N_ORACLE)
@given(st.data())
def test_sparse_softmax_cross_entropy(data) -> None:
    _cross_entropy(data, sparse=True, probabilities=False)


@with_examples(N_ORACLE)
@given(st.data())
def test_probability_cross_entropy(data) -> None:
    _cross_entropy(data, sparse=False, probabilities=True)


@with_examples(N_ORACLE)
@given(st.data())
def test_sparse_probability_cross_entropy(data) -> None:
    _cross_entropy(data, sparse=True, probabilities=True)


def _binary(data, sigmoid: bool) -> None:
    name = data.draw(names)
    k = data.draw(st.integers(1, 4))
    if sigmoid:
        x = data.draw(logit_rows(name, kmin=k, kmax=k, neg_inf=False))
    else:
        vals = data.draw(
            st.lists(
                st.one_of(
                    st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0, 0.5, 1e-30, 1 - 2.0**-20])
                ),
                min_size=k,
                max_size=k,
            )
        )
        x = rounded(vals, name)
    z = np.array(
        data.draw(
            st.lists(
                st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, 0.5])), min_size=k, max_size=k
            )
        )
    )
    eps = data.draw(smoothing)
    if not sigmoid:  # p = 0 needs a zero weight on log p, p = 1 one on log(1 - p)
        zs = (1 - eps) * z + eps / 2
        keep = ~(((x == 0) & (zs != 0)) | ((x == 1) & (zs != 1)))
        x, z = x[keep], z[keep]
        if not len(x):
            return
    xd = x.astype(np_dtype(name))
    op = "sigmoid_cross_entropy" if sigmoid else "binary_cross_entropy"
    mean = data.draw(st.booleans())
    got = ref.evaluate(op, xd, z, axis=-1 if mean else None, label_smoothing=eps)
    want = (O.sigmoid_cross_entropy if sigmoid else O.binary_cross_entropy)(x, z, eps)
    if mean:
        with O.mp.workprec(400):
            want = [O.mp.fsum(want) / len(want)]
    for r, v in zip(np.ravel(got.value), want, strict=True):
        O.check(r, v, name, op + ("_mean" if mean else ""))
    g = data.draw(cotangents(np.shape(got.value)))
    grad = ref.vjp(op, xd, z, axis=-1 if mean else None, label_smoothing=eps, cotangent=g)
    fn = O.sigmoid_cross_entropy_vjp if sigmoid else O.binary_cross_entropy_vjp
    if mean:  # g / n may be inexact (and subnormal): scale the exact gradient instead
        with O.mp.workprec(400):
            want = [v * O.mp.mpf(float(g)) / len(x) for v in fn(x, z, np.ones(len(x)), eps)]
    else:
        want = fn(x, z, g, eps)
    for r, v in zip(np.ravel(grad.value), want, strict=True):
        O.check(r, v, name, op + "_vjp")


@with_examples(N_ORACLE)
@given(st.data())
def test_sigmoid_cross_entropy(data) -> None:
    _binary(data, sigmoid=True)


@with_examples(N_ORACLE)
@given(st.data())
def test_binary_cross_entropy(data) -> None:
    _binary(data, sigmoid=False)


@with_examples(150)
@given(st.data())
def test_reductions(data) -> None:
    """Sum, mean, weighted mean and Keras' sum over batch size of a small batch."""
    name = data.draw(names)
    n = data.draw(st.integers(1, 4))
    k = data.draw(st.integers(1, 4))
    x = np.stack([data.draw(logit_rows(name, kmin=k, kmax=k, neg_inf=False)) for _ in range(n)])
    y = np.array(data.draw(st.lists(st.integers(-1, k - 1), min_size=n, max_size=n)))
    w = data.draw(class_weights(k))
    eps = data.draw(smoothing)
    red = data.draw(st.sampled_from(["sum", "mean", "weighted_mean", "sum_over_batch_size"]))
    kw = {"label_smoothing": eps, "class_weights": w, "ignore_index": -1, "reduction": red}
    xd = x.astype(np_dtype(name))
    got = ref.evaluate("sparse_softmax_cross_entropy", xd, y, **kw)
    kept = [i for i in range(n) if y[i] != -1]
    with O.mp.workprec(600):
        per = [O.cross_entropy(x[i], O.one_hot(y[i], k), w, eps) for i in kept]
        wy = [1.0 if w is None else float(w[y[i]]) for i in kept]
        den = {
            "sum": 1,
            "mean": n,
            "sum_over_batch_size": n,
            "weighted_mean": O.mp.fsum([O.mp.mpf(v) for v in wy]),
        }[red]
        if den == 0:
            assert got.undefined == ref.Undefined.NO_WEIGHT
            return
        total = O.mp.fsum(per) / den
    O.check(float(got.value), total, name, "reduction_" + red)
    g = data.draw(st.floats(-2, 2))
    grad = ref.vjp("sparse_softmax_cross_entropy", xd, y, cotangent=np.array(g), **kw)
    for i in range(n):
        if y[i] == -1:
            assert np.all(grad.value[i] == 0)
            continue
        with O.mp.workprec(600):
            want = O.cross_entropy_vjp(x[i], O.one_hot(y[i], k), 1.0, w, eps)
            want = [v * O.mp.mpf(g) / den for v in want]
        for r, v in zip(grad.value[i], want, strict=True):
            O.check(r, v, name, "reduction_vjp_" + red)


@pytest.mark.parametrize("name", DTYPES)
def test_check_helper_rejects_a_wrong_value(name: str) -> None:
    """The comparison itself must fail on a value 2 ULP (float64) or 1 target ULP off."""
    exact = O.softmax(np.array([0.0, 1.0]))[0]
    good = O.to_f64(exact)
    bad = (
        good * (1 + 2.0**-51)
        if name == "float64"
        else float(np.nextafter(np.array(good, np_dtype(name)), np.array(1, np_dtype(name))))
    )
    with pytest.raises(AssertionError):
        O.check(bad, exact, name, "selftest")
