"""Cheap properties of the reference over many inputs: its tiers agree, and the results
obey the mathematics (probabilities sum to 1, log-probabilities are <= 0, ...).

Each example draws a batch (up to 4 rows of up to 40 classes, every value kind) and
evaluates it twice: at the input dtype's tier (tier 1 for float16/bfloat16/float32, a
float32 target for float64 inputs) and with target="float64" (tier 2, longdouble). The
two were computed in different arithmetic and must agree within the first's guarantee
(2**-8 ULP of the narrow format) plus one float64 ULP. N_BULK examples per operation;
docs/reference.md adds up the examples per operation across the suite."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_reference_support import DTYPES, np_dtype, rounded, with_examples

from conformance import reference as ref
from conformance.dtypes import float_format

N_BULK = 400
N_LAWS = 9300
KINDS = ("normal", "normal", "wide", "ties", "spread", "near-max", "offset", "tiny")
OPS = (
    "softmax",
    "log_softmax",
    "logsumexp",
    "softmax_cross_entropy",
    "sparse_softmax_cross_entropy",
    "probability_cross_entropy",
    "sparse_probability_cross_entropy",
    "sigmoid_cross_entropy",
    "binary_cross_entropy",
)


def _values(rng: np.random.Generator, kind: str, shape: tuple[int, int], name: str) -> np.ndarray:
    fmax = float((ml_dtypes.finfo if name == "bfloat16" else np.finfo)(np_dtype(name)).max)
    x = rng.standard_normal(shape)
    if kind == "wide":
        x = x * 10.0 ** rng.integers(-3, 5, size=shape)
    elif kind == "ties":
        x = rng.integers(-2, 3, size=shape).astype(np.float64)
    elif kind == "spread":
        x = x * 3
        x[:, 0] += rng.choice([50.0, 745.0, 1e4])
    elif kind == "near-max":
        x = np.sign(x) * fmax * rng.uniform(0.5, 1.0, size=shape)
    elif kind == "offset":
        x = x + rng.choice([1e3, -1e4, 2.0**20])
    elif kind == "tiny":
        x = x * 1e-30
    if rng.random() < 0.15 and shape[1] > 1:
        x[rng.random(shape) < 0.3] = -np.inf
    return rounded(x, name)


@st.composite
def batches(draw: st.DrawFn, op: str) -> dict:
    name = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(KINDS))
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 40)))
    R, K = shape
    opts: dict = {}
    labels = None
    if "probability" in op or op == "binary_cross_entropy":
        x = rounded(rng.random(shape) ** rng.choice([1, 4, 40]), name)
    else:
        x = _values(rng, kind, shape, name)
    if op in ("softmax_cross_entropy", "probability_cross_entropy"):
        t = rng.random(shape) ** 3
        labels = t / np.maximum(t.sum(axis=1, keepdims=True), 1e-300)
        if rng.random() < 0.2:
            labels = rng.standard_normal(shape)  # invalid, still computed exactly
    elif op.startswith("sparse"):
        labels = rng.integers(0, K, size=R)
    elif op in ("sigmoid_cross_entropy", "binary_cross_entropy"):
        labels = rng.choice([0.0, 1.0, 0.5, rng.random()], size=shape)
        opts["axis"] = draw(st.sampled_from([None, -1]))
        if op == "binary_cross_entropy":
            x = np.where((x == 0) & (labels != 0), 0.5, x)
            x = np.where((x == 1) & (labels != 1), 0.5, x)
    if "cross_entropy" in op:
        opts["label_smoothing"] = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5]))
        opts["reduction"] = draw(st.sampled_from(["none", "none", "sum", "mean"]))
    if op in ("softmax_cross_entropy", "sparse_softmax_cross_entropy") and draw(st.booleans()):
        opts["class_weights"] = rng.random(K) * 3
    if op in ("softmax", "log_softmax") and K > 1 and rng.random() < 0.2:
        opts["where"] = rng.random(shape) < 0.7
    return {
        "name": name,
        "x": x,
        "labels": labels,
        "opts": opts,
        "grad": draw(st.booleans()),
        "seed": int(rng.integers(0, 2**31)),
    }


def _agree(a: np.ndarray, b: np.ndarray, name: str) -> None:
    """a: narrow-target result, b: float64-target result."""
    assert np.array_equal(a.undefined, b.undefined)
    av, bv = np.ravel(a.value), np.ravel(b.value)
    fin = np.isfinite(bv)
    assert np.array_equal(np.isnan(av), np.isnan(bv))
    assert np.array_equal(av[~fin & ~np.isnan(bv)], bv[~fin & ~np.isnan(bv)])
    if name == "float64":
        name = "float32"
    fmt = float_format(name)
    mag = np.abs(bv[fin])
    e = np.maximum(np.frexp(mag)[1] - 1, fmt.min_exponent)  # binade of |b|; slack below
    tol = np.ldexp(1.0, e - fmt.precision + 1) * 2.0**-7 + np.spacing(mag) * 2
    assert np.all(np.abs(av[fin] - bv[fin]) <= tol), np.max(np.abs(av[fin] - bv[fin]) / tol)


def _laws(op: str, r: ref.Exact, case: dict) -> None:
    """Identities every float64-target result satisfies (cheap, no oracle)."""
    v, ok = r.value, r.undefined == 0
    if op == "softmax":
        assert np.all(v[ok] >= 0) and np.all(v[ok] <= 1)
        rows = ok.all(axis=-1)
        s = v[rows].sum(axis=-1)
        assert np.all(np.abs(s - 1) <= (v.shape[-1] + 2) * 2.0**-52)
    elif op == "log_softmax":
        assert np.all(v[ok] <= 0)
        rows = ok.all(axis=-1)
        assert np.all(v[rows].max(axis=-1) >= -math.log(v.shape[-1]) * (1 + 1e-15) - 1e-300)
    elif op == "logsumexp":
        x = case["x"]
        with np.errstate(invalid="ignore"):
            assert np.all(v[ok] >= x.max(axis=-1)[ok])
    elif "cross_entropy" in op:
        lab = case["labels"]
        valid = lab is None or op.startswith("sparse") or np.all(lab >= 0)
        if (valid and r.undefined.ndim == 0) or valid:
            assert np.all(v[ok] >= 0)


def _run(op: str, case: dict) -> None:
    name, opts = case["name"], case["opts"]
    xd = case["x"].astype(np_dtype(name))
    lab = case["labels"]
    narrow = {"target": "float32"} if name == "float64" else {}
    if case["grad"]:
        shape = np.shape(ref.evaluate(op, xd, lab, **opts).value)
        g = np.random.default_rng(case["seed"]).standard_normal(shape) + 0.5
        a = ref.vjp(op, xd, lab, cotangent=g, **opts, **narrow)
        b = ref.vjp(op, xd, lab, cotangent=g, **opts, target="float64")
    else:
        a = ref.evaluate(op, xd, lab, **opts, **narrow)
        b = ref.evaluate(op, xd, lab, **opts, target="float64")
        _laws(op, b, case)
    _agree(a, b, name)


def _make(op: str):
    @with_examples(N_BULK)
    @given(case=batches(op))
    def test(case: dict) -> None:
        _run(op, case)

    test.__name__ = f"test_tiers_agree_{op}"
    return test


for _op in OPS:
    globals()[f"test_tiers_agree_{_op}"] = _make(_op)


# ---------------------------------------------------------------- laws, one call each
_NAMES = (*DTYPES, "float32", "float64")


def small_cases(seed: int) -> dict[str, dict]:
    """One small case (at most 3 x 8, no reduction) per operation, all drawn from one seed
    by numpy, which keeps Hypothesis' per-example cost small."""
    rng = np.random.default_rng(seed)
    name = _NAMES[int(rng.integers(len(_NAMES)))]
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 9)))
    R, K = shape
    x = _values(rng, KINDS[int(rng.integers(len(KINDS)))], shape, name)
    p = rounded(rng.random(shape) ** [1, 4, 40][int(rng.integers(3))], name)
    t = rng.random(shape) ** 3
    t = t / np.maximum(t.sum(axis=1, keepdims=True), 1e-300)
    if rng.random() < 0.2:
        t = rng.standard_normal(shape)  # invalid soft labels, still computed exactly
    y = rng.integers(0, K, size=R)
    z = np.array([0.0, 1.0, 0.5, rng.random()])[rng.integers(0, 4, size=shape)]
    pb = np.where(((p == 0) & (z != 0)) | ((p == 1) & (z != 1)), 0.5, p)
    eps = [0.0, 0.0, 0.1, 0.5][int(rng.integers(4))]
    w = rng.random(K) * 3 if rng.random() < 0.5 else None
    where = rng.random(shape) < 0.7 if K > 1 and rng.random() < 0.2 else None
    axis = None if rng.random() < 0.5 else -1
    seed2 = int(rng.integers(0, 2**31))
    ce = {"label_smoothing": eps}
    cw = {**ce, "class_weights": w} if w is not None else ce
    sm = {"where": where} if where is not None else {}
    inputs = {
        "softmax": (x, None, sm),
        "log_softmax": (x, None, sm),
        "logsumexp": (x, None, {}),
        "softmax_cross_entropy": (x, t, cw),
        "sparse_softmax_cross_entropy": (x, y, cw),
        "probability_cross_entropy": (p, t, ce),
        "sparse_probability_cross_entropy": (p, y, ce),
        "sigmoid_cross_entropy": (x, z, {**ce, "axis": axis}),
        "binary_cross_entropy": (pb, z, {**ce, "axis": axis}),
    }
    return {
        op: {"name": name, "x": xi, "labels": lab, "opts": opts, "seed": seed2}
        for op, (xi, lab, opts) in inputs.items()
    }


def _close(a: np.ndarray, b: np.ndarray, rel: float) -> bool:
    return bool(np.all(np.abs(a - b) <= rel * np.maximum(np.abs(a), np.abs(b)) + 1e-300))


def _check_laws(op: str, case: dict) -> None:
    """Identities between the reference's results (float64 inputs: values only; narrow
    inputs: tier 1, values and gradients), each checked at the tier's accuracy."""
    name, x, lab, opts = case["name"], case["x"], case["labels"], case["opts"]
    xd = x.astype(np_dtype(name))
    r = ref.evaluate(op, xd, lab, **opts)
    v, ok = r.value, r.undefined == 0
    rel = 2.0**-50 if name == "float64" else 2.0 ** -(float_format(name).precision + 6)
    k = x.shape[-1]
    if op == "softmax":
        rows = ok.all(axis=-1)
        assert np.all((v[ok] >= 0) & (v[ok] <= 1))
        assert np.all(np.abs(v[rows].sum(axis=-1) - 1) <= (k + 2) * rel)
    elif op == "log_softmax":
        rows = ok.all(axis=-1) & np.all(np.isfinite(x), axis=-1) & ("where" not in opts)
        assert np.all(v[ok] <= 0)
        assert np.all(np.abs(np.exp(v[rows]).sum(axis=-1) - 1) <= (k + 2) * rel * 4)
    elif op == "logsumexp":
        with np.errstate(invalid="ignore"):
            mx = x.max(axis=-1)
            assert np.all(v[ok] >= mx[ok])
            assert np.all(v[ok] <= mx[ok] + math.log(k) * (1 + rel) + 1e-300)
    elif op in ("sparse_softmax_cross_entropy", "sparse_probability_cross_entropy"):
        if op.startswith("sparse_softmax"):
            eps = opts.get("label_smoothing", 0.0)
            w = opts.get("class_weights")
            if eps == 0 and w is None:
                lsm = ref.evaluate(
                    "log_softmax", xd, **({"where": opts["where"]} if "where" in opts else {})
                ).value
                want = -np.take_along_axis(lsm, lab[:, None], axis=-1)[:, 0]
                fine = ok & np.isfinite(want)
                assert _close(v[fine], want[fine], 4 * rel)
        elif opts.get("label_smoothing", 0.0) == 0:
            py = np.take_along_axis(x, lab[:, None], axis=-1)[:, 0]
            fine = ok & (py > 0)
            assert _close(v[fine], -np.log(py[fine]), 4 * rel)
        assert np.all(v[ok] >= 0)
    elif op in ("sigmoid_cross_entropy", "binary_cross_entropy"):
        assert np.all(v[ok] >= 0)
    elif lab is not None and np.all(lab >= 0):
        assert np.all(v[ok] >= 0)
    if name == "float64" or case["seed"] % 3:  # gradients: tier 1, every third example
        return
    g = np.random.default_rng(case["seed"]).standard_normal(np.shape(v)) + 0.5
    d = ref.vjp(op, xd, lab, cotangent=g, **opts)
    dv, dok = d.value, (d.undefined == 0)
    if op in ("softmax", "softmax_cross_entropy", "sparse_softmax_cross_entropy"):
        rows = dok.all(axis=-1) & np.isfinite(dv).all(axis=-1)
        scale = np.abs(dv).sum(axis=-1) + (np.abs(g).max() if op == "softmax" else 0)
        assert np.all(np.abs(dv[rows].sum(axis=-1)) <= (k + 4) * 8 * rel * scale[rows] + 1e-300)
    elif op == "log_softmax":
        rows = dok.all(axis=-1) & np.isfinite(dv).all(axis=-1) & ("where" not in opts)
        gsum = (g * np.isfinite(x)).sum(axis=-1)
        err = np.abs(dv[rows].sum(axis=-1) - gsum[rows] * 0)
        tol = (k + 4) * 8 * rel * (np.abs(dv).sum(axis=-1) + np.abs(g).sum(axis=-1))[rows]
        assert np.all(err <= tol + 1e-300)
    elif op == "logsumexp":
        rows = dok.all(axis=-1)
        err = np.abs(dv[rows].sum(axis=-1) - g[rows])
        assert np.all(err <= (k + 4) * 8 * rel * np.abs(g[rows]) + 1e-300)


@with_examples(N_LAWS)
@given(seed=st.integers(0, 2**64 - 1))
def test_laws(seed: int) -> None:
    """Every operation on a small case drawn from one seed: each example counts once for
    each of the nine operations."""
    cases = small_cases(seed)
    for op in OPS:
        _check_laws(op, cases[op])


@pytest.mark.slow
@pytest.mark.parametrize("op", OPS)
@with_examples(20_000)
@given(data=st.data())
def test_tiers_agree_sweep(op: str, data) -> None:
    """The tier agreement at 20,000 examples per operation (nox 'sweep' session)."""
    _run(op, data.draw(batches(op)))


@pytest.mark.slow
@with_examples(100_000)
@given(seed=st.integers(0, 2**64 - 1))
def test_laws_sweep(seed: int) -> None:
    """The laws at 100,000 examples (nox 'sweep' session)."""
    cases = small_cases(seed)
    for op in OPS:
        _check_laws(op, cases[op])
