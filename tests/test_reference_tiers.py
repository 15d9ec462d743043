"""The reference's precision tiers: the mpmath tier on its own (as on platforms whose
longdouble is plain double), the libm accuracy the float tiers assume, the building blocks
(pairwise sums, TwoSum, correct rounding)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import oracle as O
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from mpmath import mp
from test_reference import HARD_ROWS
from test_reference_support import (
    class_weights,
    cotangents,
    logit_rows,
    rounded,
    smoothing,
    soft_labels,
    with_examples,
)

from conformance import _precision as P
from conformance import reference as ref

N_MPMATH = 80


@pytest.fixture
def no_longdouble(monkeypatch):
    """Tiers 2 and 2b off: float64 targets go straight to mpmath."""
    monkeypatch.setattr(P, "USE_LONGDOUBLE", False)
    monkeypatch.setattr(P, "USE_DOUBLE_DOUBLE", False)


@pytest.fixture
def double_double_only(monkeypatch):
    """No longdouble (macOS arm64, Windows): float64 targets start in double-double."""
    monkeypatch.setattr(P, "USE_LONGDOUBLE", False)
    monkeypatch.setattr(P, "USE_DOUBLE_DOUBLE", True)


@pytest.mark.usefixtures("no_longdouble")
@pytest.mark.parametrize(("name", "row"), [r for r in HARD_ROWS if r[0] == "float64"])
def test_hard_rows_in_mpmath(name: str, row: list[float]) -> None:
    x = np.array(row)
    for r, w in zip(ref.log_softmax(x), O.log_softmax(x), strict=True):
        assert O.ulp_error(r, w) == 0  # Ziv: correctly rounded
    assert O.ulp_error(float(ref.logsumexp(x)), O.logsumexp(x)) == 0
    g = np.linspace(-1, 2, len(x))
    for r, w in zip(ref.vjp("softmax", x, cotangent=g).value, O.softmax_vjp(x, g), strict=True):
        assert O.ulp_error(r, w) == 0


@pytest.mark.usefixtures("no_longdouble")
def test_a_tie_broken_beyond_any_precision_is_one_of_two_neighbours() -> None:
    """p_4 (g_4 - sum p_j g_j) with two logits at the float64 maximum and g_3 = (4k + 2)
    subnormal steps is -(k + 1/2) steps minus a term of e^-(2^1024): a float64 midpoint
    that neither Ziv loop can leave. The oracle says so; either neighbour is accepted,
    nothing further."""
    big = float(np.finfo(np.float64).max)
    x = np.array([0.0, 0.0, big, big])
    g = np.array([1.0, 1.0, 0xA7C5AC472 * 2.0**-1074, 0.0])
    want = O.softmax_vjp(x, g)
    got = ref.vjp("softmax", x, cotangent=g).value
    tied = [w for w in want if isinstance(w, O.Undecided)]
    assert len(tied) == 2 and all(O.ulp_distance(w.lo, w.hi) == 1 for w in tied)
    for r, w in zip(got, want, strict=True):
        assert O.ulp_error(r, w) == 0
    below = np.nextafter(min(tied[0].lo, tied[0].hi), -np.inf)
    assert O.ulp_error(below, tied[0]) == 1


_OPS = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "softmax_cross_entropy",
    "sparse_softmax_cross_entropy",
    "probability_cross_entropy",
    "sparse_probability_cross_entropy",
    "sigmoid_cross_entropy",
    "binary_cross_entropy",
]


@pytest.mark.usefixtures("no_longdouble")
@pytest.mark.parametrize("op", _OPS)
@with_examples(N_MPMATH)
@given(data=st.data())
def test_mpmath_tier_is_correctly_rounded(op: str, data) -> None:
    """float64 targets in mpmath alone: every value and gradient element is the
    correctly rounded exact value."""
    _tier_vs_oracle(op, data, max_ulps=0)


@pytest.mark.usefixtures("double_double_only")
@pytest.mark.parametrize("op", _OPS)
@with_examples(N_MPMATH)
@given(data=st.data())
def test_double_double_tier(op: str, data) -> None:
    """float64 targets without longdouble: within 1 ULP (double-double, then mpmath)."""
    _tier_vs_oracle(op, data, max_ulps=1)


def _tier_vs_oracle(op: str, data, max_ulps: int) -> None:
    x = data.draw(logit_rows("float64", kmax=4, neg_inf=False))
    k = len(x)
    labels, kw = None, {}
    if "probability" in op or op == "binary_cross_entropy":
        top = 1 - 2.0**-40 if op == "binary_cross_entropy" else 1.0  # p = 1: an inf loss
        x = rounded(
            np.array(data.draw(st.lists(st.floats(2.0**-40, top), min_size=k, max_size=k))),
            "float64",
        )
    if op in ("softmax_cross_entropy", "probability_cross_entropy"):
        labels = data.draw(soft_labels(k))
    elif op.startswith("sparse"):
        labels = np.array(data.draw(st.integers(0, k - 1)))
    elif op in ("sigmoid_cross_entropy", "binary_cross_entropy"):
        labels = np.array(data.draw(st.lists(st.floats(0, 1), min_size=k, max_size=k)))
        kw["axis"] = None
    if "cross_entropy" in op:
        kw["label_smoothing"] = data.draw(smoothing)
    if "cross_entropy" in op and "sigmoid" not in op and "binary" not in op:
        kw["class_weights"] = data.draw(class_weights(k))
    got = ref.evaluate(op, x, labels, **kw)
    g = data.draw(cotangents(np.shape(got.value)))
    grad = ref.vjp(op, x, labels, cotangent=g, **kw)
    t = (
        None
        if labels is None
        else (O.one_hot(int(labels), k) if op.startswith("sparse") else labels)
    )
    eps, w = kw.get("label_smoothing", 0.0), kw.get("class_weights")
    if op == "softmax":
        want, wgrad = O.softmax(x), O.softmax_vjp(x, g)
    elif op == "log_softmax":
        want, wgrad = O.log_softmax(x), O.log_softmax_vjp(x, g)
    elif op == "logsumexp":
        want, wgrad = [O.logsumexp(x)], O.logsumexp_vjp(x, float(g))
    elif op in ("softmax_cross_entropy", "sparse_softmax_cross_entropy"):
        want, wgrad = [O.cross_entropy(x, t, w, eps)], O.cross_entropy_vjp(x, t, float(g), w, eps)
    elif op in ("probability_cross_entropy", "sparse_probability_cross_entropy"):
        want = [O.probability_cross_entropy(x, t, w, eps)]
        wgrad = O.probability_cross_entropy_vjp(x, t, float(g), w, eps)
    elif op == "sigmoid_cross_entropy":
        want = O.sigmoid_cross_entropy(x, labels, eps)
        wgrad = O.sigmoid_cross_entropy_vjp(x, labels, g, eps)
    else:
        want = O.binary_cross_entropy(x, labels, eps)
        wgrad = O.binary_cross_entropy_vjp(x, labels, g, eps)
    for r, v in zip(np.ravel(got.value), want, strict=True):
        assert O.ulp_error(r, v) <= max_ulps, (op, r, O.to_f64(v))
    for r, v in zip(np.ravel(grad.value), wgrad, strict=True):
        assert O.ulp_error(r, v) <= max_ulps, (op + " vjp", r, O.to_f64(v))


# ---------------------------------------------------------------- assumptions and parts
@pytest.mark.parametrize("backend", [P.F64, P.LD] if P.WIDE_LONGDOUBLE else [P.F64])
@pytest.mark.parametrize("fn", ["exp", "log", "log1p"])
def test_libm_accuracy_assumption(backend: P.Backend, fn: str) -> None:
    """The float tiers' bounds assume exp/log/log1p within fn_err units of u."""
    rng = np.random.default_rng(1)
    if fn == "exp":
        x = -np.concatenate([rng.random(400) * 700, rng.random(200) * 3, rng.random(100) * 1e-8])
    else:
        x = np.concatenate([rng.random(400), 10.0 ** rng.uniform(-300, 300, 300)])
    xb = x.astype(backend.dtype) * (1 + backend.dtype(backend.u) * 3)  # use the low bits
    y = getattr(np, fn)(xb)
    worst = 0.0
    with mp.workprec(200):
        for xi, yi in zip(xb, y, strict=True):
            exact = getattr(mp, fn)(_to_mp(xi))
            if exact != 0:
                worst = max(worst, float(abs(_to_mp(yi) - exact) / abs(exact)))
    assert worst <= backend.fn_err * backend.u, worst / backend.u


@pytest.mark.parametrize("fn", ["exp", "log", "log1p"])
def test_double_double_functions(fn: str) -> None:
    """The double-double tier assumes its exp/log/log1p within fn_err * u = 2**-98."""
    from conformance import _dd

    rng = np.random.default_rng(2)
    if fn == "exp":
        x = np.concatenate(
            [
                -rng.random(300) * 700,
                rng.standard_normal(300) * 3,
                -(10.0 ** rng.uniform(-300, 0, 100)),
            ]
        )
    elif fn == "log1p":
        x = np.concatenate([10.0 ** rng.uniform(-30, 6, 300), -rng.random(200) * 0.999])
    else:
        x = np.concatenate(
            [
                10.0 ** rng.uniform(-300, 300, 300),
                1 + rng.standard_normal(200) * 10.0 ** rng.uniform(-12, -1, 200),
            ]
        )
    lo = x * rng.uniform(-1, 1, x.size) * 2.0**-54
    y = getattr(_dd, fn)(_dd.DD(x, lo))
    worst = 0.0
    with mp.workprec(300):
        for i in range(x.size):
            exact = getattr(mp, fn)(mp.mpf(float(x[i])) + mp.mpf(float(lo[i])))
            if abs(exact) > mp.mpf(2) ** -960:
                got = mp.mpf(float(y.hi[i])) + mp.mpf(float(y.lo[i]))
                worst = max(worst, float(abs(got - exact) / abs(exact)))
    assert worst <= P.DD.fn_err * P.DD.u, math.log2(worst)


@given(st.floats(-1e250, 1e250), st.floats(-1e250, 1e250), st.floats(-1, 1), st.floats(-1, 1))
@with_examples(300)
def test_double_double_arithmetic(a: float, b: float, fa: float, fb: float) -> None:
    from conformance import _dd

    # the documented domain (conformance/_dd.py): below 2**-969 the error terms of a
    # product are subnormal and the relative accuracy goes (the callers' floors escalate)
    assume(all(v == 0 or abs(v) >= 2.0**-969 for v in (a, b)))
    x = _dd.DD(np.array([a]), np.array([a * fa * 2.0**-54]))
    y = _dd.DD(np.array([b]), np.array([b * fb * 2.0**-54]))
    # The oracle is exact: hi and lo can be 350+ binades apart (a = fb = 8e-91 puts lo near
    # 4e-197), which a fixed working precision would round (a false alarm, seen once).
    with mp.workprec(400), np.errstate(all="ignore"):
        X = mp.fadd(a, float(x.lo[0]), exact=True)
        Y = mp.fadd(b, float(y.lo[0]), exact=True)
        exact_ops = (
            (x + y, mp.fadd(X, Y, exact=True)),
            (x - y, mp.fsub(X, Y, exact=True)),
            (x * y, mp.fmul(X, Y, exact=True)),
        )
        for got, exact in exact_ops + (((x / y, X / Y),) if b else ()):
            val = mp.mpf(float(got.hi[0])) + mp.mpf(float(got.lo[0]))
            if exact != 0 and abs(exact) > mp.mpf(2) ** -900 and abs(exact) < mp.mpf(2) ** 990:
                assert abs(val - exact) <= abs(exact) * P.DD.u


def _to_mp(v) -> mp.mpf:
    hi, lo = P.ld_to_dd(np.array([v], dtype=np.longdouble))
    return mp.mpf(float(hi[0])) + mp.mpf(float(lo[0]))


@given(st.lists(st.floats(-1e300, 1e300), min_size=1, max_size=70))
@with_examples(300)
def test_pairwise_sum_bound(values: list[float]) -> None:
    a = np.array(values)
    exact = sum((Fraction(v) for v in values), Fraction(0))
    got = P.pairwise_sum(a[None, :])[0]
    depth = P.F64.depth(len(values))
    bound = depth * 2.0**-53 * math.fsum(abs(v) for v in values) * (1 + 1e-10)
    assert abs(Fraction(float(got)) - exact) <= Fraction(bound)


@given(st.floats(-1e300, 1e300), st.floats(-1e300, 1e300))
@with_examples(300)
def test_two_diff_is_exact(a: float, b: float) -> None:
    for B in [P.F64, P.LD] if P.WIDE_LONGDOUBLE else [P.F64]:
        hi, lo = B.two_diff(B.arr(np.array([a])), B.arr(np.array([b])))
        h, ll = (P.ld_to_dd(hi)[0][0], P.ld_to_dd(lo)[0][0]) if B is P.LD else (hi[0], lo[0])
        hh = P.ld_to_dd(hi) if B is P.LD else (hi, np.zeros(1))
        total = Fraction(float(hh[0][0])) + Fraction(float(hh[1][0])) + Fraction(float(ll))
        if B is P.LD:
            lh, lt = P.ld_to_dd(lo)
            total = (
                Fraction(float(hh[0][0]))
                + Fraction(float(hh[1][0]))
                + Fraction(float(lh[0]))
                + Fraction(float(lt[0]))
            )
        assert total == Fraction(a) - Fraction(b), (B.name, h)


@pytest.mark.parametrize(
    "value",
    [
        "3.7200759760208359629e-44",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "7.4109846876186982e-324",
        "1.7976931348623158e308",
        "1.7976931348623159e308",
        "-1e-400",
        "0.1",
        "-2.2250738585072011e-308",
    ],
)
def test_round_mpf_is_correct_rounding(value: str) -> None:
    ctx = P.mp_context()
    with ctx.workprec(400), mp.workprec(400):
        assert P.round_mpf(ctx.mpf(value)) == O.to_f64(mp.mpf(value))
