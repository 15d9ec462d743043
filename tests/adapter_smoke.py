"""Smoke checks shared by every adapter's tests: known inputs, value and gradient against
the reference, with loose tolerances (the real judging is the harness' job)."""

from __future__ import annotations

import fnmatch
from typing import Any

import numpy as np
import pytest

from conformance.dtypes import as_dtype
from conformance.ops import LabelKind, Op, Option, Reduction, spec
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Axes, Call, Implementation, Outcome

_PROBABILITY = (Op.PROBABILITY_CROSS_ENTROPY, Op.SPARSE_PROBABILITY_CROSS_ENTROPY)

KNOWN: dict[str, dict[str, str]] = {
    "keras.losses.*CategoricalCrossentropy(from_logits=False)": {
        "renormalized": "Keras divides p by its sum: the value moves by the input's rounding"
        " and the gradient gains the projection term (not -t/p)."
    },
    "keras.losses.CategoricalCrossentropy(*)": {
        "smoothing-last-axis": "Keras smooths with K = shape[-1] whatever `axis` is."
    },
    "keras.losses.SparseCategoricalCrossentropy(*)": {
        "mean-excludes-ignored": "With ignore_class, Keras' 'sum_over_batch_size' and 'mean'"
        " divide by the number of examples not ignored."
    },
}
"""Documented framework behaviour the smoke checks step around (the harness judges it)."""


def known(impl: Implementation, aspect: str) -> str | None:
    """Why `aspect` of `impl` is relaxed in the smoke checks (None: it is not)."""
    for pattern, aspects in KNOWN.items():
        if fnmatch.fnmatchcase(impl.name, pattern) and aspect in aspects:
            return aspects[aspect]
    return None


def reference() -> Any:
    """The exact reference the smoke checks compare with."""
    from conformance import reference as ref

    return ref


def cells(adapter: Adapter) -> list[Any]:
    """pytest params (impl, dtype, mode) for every declared cell; unusable modes skip."""
    modes = adapter.mode_availability()
    params = []
    for impl in adapter.implementations():
        for dtype in impl.dtypes:
            for mode in impl.modes:
                marks = [pytest.mark.skip(reason=modes[mode])] if modes.get(mode) else []
                params.append(
                    pytest.param(
                        impl.name, dtype, mode, marks=marks, id=f"{impl.name}-{dtype}-{mode}"
                    )
                )
    return params


def _axis(impl: Implementation, ndim: int, full: bool) -> Any:
    if impl.axes is Axes.ELEMENTWISE:
        return None
    if not full or impl.axes is Axes.LAST:
        return -1
    if impl.axes is Axes.TUPLE and spec(impl.op).tuple_axis:
        return (0, 2)
    if impl.axes is Axes.TRAILING:
        return (2, 1) if ndim == 3 else -1
    return 1


def make_call(
    impl: Implementation,
    dtype: str,
    mode: str,
    *,
    full: bool = False,
    masked: bool = False,
    reduction: Reduction = Reduction.NONE,
    seed: int = 0,
) -> Call:
    """A call on ordinary inputs; `full` sets every option the implementation has but
    `where`, `masked` sets `where` alone (labels only on unmasked classes)."""
    rng = np.random.default_rng(seed)
    dt = as_dtype(dtype)
    s = spec(impl.op)
    shape = (2, 3, 4) if full or masked else (3, 5)
    axis = _axis(impl, len(shape), full or masked)
    if full and Option.LABEL_SMOOTHING in impl.options and known(impl, "smoothing-last-axis"):
        axis = -1
    x = rng.uniform(-3, 3, shape)
    ax = (
        None
        if axis is None
        else tuple(a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,)))
    )
    k = shape[ax[0]] if ax else 1
    if impl.op in _PROBABILITY:
        e = np.exp(x)
        x = e / e.sum(axis=axis, keepdims=True)
    elif impl.op is Op.BINARY_CROSS_ENTROPY:
        x = rng.uniform(0.05, 0.95, shape)
    options: dict[str, Any] = {"axis": axis}
    if Option.REDUCTION in impl.options:
        options["reduction"] = reduction
    labels: np.ndarray | None = None
    if s.labels is LabelKind.DENSE:
        t = rng.uniform(0.1, 1, shape)
        labels = (t / t.sum(axis=axis, keepdims=True)).astype(dt)
    elif s.labels is LabelKind.INTEGER:
        labels = rng.integers(0, k, tuple(n for i, n in enumerate(shape) if i != ax[0]))
    elif s.labels is LabelKind.BINARY:
        labels = rng.choice([0.0, 0.25, 0.5, 1.0], shape).astype(dt)
    if masked:
        where = rng.random(shape) < 0.7
        first = [slice(None)] * len(shape)
        for a in ax or ():
            first[a] = 0
        where[tuple(first)] = True
        if s.labels is LabelKind.INTEGER:
            assert ax is not None and labels is not None
            labels = np.zeros_like(labels)
        elif labels is not None:
            labels = np.where(where, labels, 0).astype(dt)
        options["where"] = where
    if full:
        if Option.SCALE in impl.options:
            options["scale"] = rng.choice([0.5, 1.0, 2.0, 0.25], shape)
        if Option.LABEL_SMOOTHING in impl.options:
            options["label_smoothing"] = 0.125
        if Option.CLASS_WEIGHTS in impl.options:
            options["class_weights"] = rng.choice([0.5, 1.0, 2.0], k)
        if Option.IGNORE_INDEX in impl.options and labels is not None:
            options["ignore_index"] = -1
            labels.flat[0] = -1
    return Call(x.astype(dt), labels, options, "cpu", mode)


def with_cotangent(call: Call, shape: tuple[int, ...], seed: int = 1) -> Call:
    """The call with a bf16-exact cotangent of the output's shape."""
    rng = np.random.default_rng(seed)
    ct = rng.integers(-8, 9, shape) / 8.0
    return Call(call.x, call.labels, call.options, call.device, call.mode, ct)


def _eps(dtype: str) -> float:
    return 2.0**-7 if dtype == "bfloat16" else float(np.finfo(as_dtype(dtype)).eps)


def tolerance(x: np.ndarray, dtypes: list[str | None], op: Op) -> float:
    """8 * eps * (1 + spread of x), eps of the least precise of `dtypes`: loose."""
    eps = max(_eps(d) for d in dtypes if d is not None)
    xs = np.asarray(x, np.float64)
    spread = float(np.max(xs) - np.min(xs)) if op not in _PROBABILITY else 1.0
    if op in _PROBABILITY or op is Op.BINARY_CROSS_ENTROPY:
        spread += float(1 / np.min(xs))
    return 8 * eps * (1 + spread)


def _close(got: np.ndarray, want: np.ndarray, tol: float, scale: float | None = None) -> bool:
    g = np.asarray(got, np.float64)
    if g.shape != want.shape:
        return False
    same = g == want
    with np.errstate(invalid="ignore"):
        bound = tol * (1 + (np.abs(want) if scale is None else scale))
        return bool(np.all(same | (np.abs(g - want) <= bound)))


def run_and_check(adapter: Adapter, impl: Implementation, call: Call, grad: bool = True) -> Outcome:
    """Run `call` (with a cotangent when grad) and compare with the reference."""
    ref = reference()
    opts = dict(call.options)
    if (
        opts.get("ignore_index") is not None
        and known(impl, "mean-excludes-ignored")
        and opts.get("reduction") in (Reduction.SUM_OVER_BATCH_SIZE, Reduction.MEAN)
    ):
        opts["reduction"] = Reduction.WEIGHTED_MEAN
    want = ref.evaluate(impl.op, call.x, call.labels, **opts)
    if grad and impl.differentiable:
        call = with_cotangent(call, want.value.shape)
    out = adapter.run(impl, call)
    context = (
        f"{adapter.name} {impl.name} {call.x.dtype.name} {call.mode} options={opts}\n"
        f"stderr: {out.stderr[-2000:]}\nwarnings: {out.warnings}"
    )
    assert out.error is None, f"{out.error}\n{context}"
    assert out.value is not None and out.output_dtype == out.value.dtype.name
    assert out.output_dtype is not None
    renormalized = known(impl, "renormalized")
    in_dtype = call.x.dtype.name if renormalized else None
    tol = tolerance(call.x, [out.output_dtype, in_dtype], impl.op)
    assert not np.any(want.undefined), f"test input is outside the defined domain\n{context}"
    assert _close(out.value, want.value, tol), (
        f"value off (tol {tol:.3g}):\n got {out.value!r}\nwant {want.value!r}\n{context}"
    )
    if call.cotangent is not None:
        assert out.grad is not None and out.grad.shape == call.x.shape, context
        if renormalized:
            return out
        gwant = ref.vjp(impl.op, call.x, call.labels, cotangent=call.cotangent, **opts)
        gtol = tolerance(call.x, [out.grad_dtype, out.output_dtype], impl.op)
        scale = float(np.max(np.abs(gwant.value)))
        assert _close(out.grad, gwant.value, gtol, scale), (
            f"grad off (tol {gtol:.3g}):\n got {out.grad!r}\nwant {gwant.value!r}\n{context}"
        )
    return out


def check_cell(adapter: Adapter, impl_name: str, dtype: str, mode: str) -> Outcome:
    """One cell on default options, value and gradient."""
    impl = adapter.implementation(impl_name)
    reduction = Reduction.NONE if Reduction.NONE in impl.reductions else impl.reductions[0]
    return run_and_check(adapter, impl, make_call(impl, dtype, mode, reduction=reduction))


def check_options(
    adapter: Adapter, impl_name: str, dtype: str = "float64", mode: str = "eager"
) -> None:
    """Every option the implementation declares, once per declared reduction; `where` alone."""
    impl = adapter.implementation(impl_name)
    if dtype not in impl.dtypes:
        dtype = impl.dtypes[-1]
    for reduction in impl.reductions:
        run_and_check(
            adapter, impl, make_call(impl, dtype, mode, full=True, reduction=reduction, seed=3)
        )
    if Option.WHERE in impl.options:
        run_and_check(adapter, impl, make_call(impl, dtype, mode, masked=True, seed=4))
