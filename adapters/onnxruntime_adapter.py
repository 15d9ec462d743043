"""ONNX Runtime: the Softmax, LogSoftmax, ReduceLogSumExp and SoftmaxCrossEntropyLoss nodes.

Each call is one node of the default ONNX domain at a fixed opset, built with `onnx.helper`
and run on the CPU execution provider (`conformance_adapters.onnx_node`, whose source is
also the reproducer's prelude). Softmax and LogSoftmax are judged at opset 13 (one axis)
and at opset 11, whose semantics differ: before opset 13 the input is coerced to 2-D around
`axis`, so the node normalises over every axis from `axis` to the last (the catalog's
trailing tuple axis). Eager: graph optimisations off; compiled: ORT_ENABLE_ALL. Inference
only: no gradients.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from conformance.ops import Op, Option, Reduction
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Axes, Implementation, Runner
from conformance_adapters.signatures import ABSENT, UNSET

_DOCS = "https://onnx.ai/onnx/operators/"
_DTYPES = ("float16", "float32", "float64")
_NO_BF16 = "The CPU execution provider has no bfloat16 kernel for this node. "
_SCE_REDUCTION = {Reduction.NONE: "none", Reduction.SUM: "sum", Reduction.WEIGHTED_MEAN: "mean"}
"""The catalog's reductions -> SoftmaxCrossEntropyLoss's `reduction` ('mean' divides by the
weights of the labels not ignored, 1 each without weights)."""


def _run(*args: Any, **attributes: Any) -> Any:
    from conformance_adapters.onnx_node import onnx_run

    return onnx_run(*args, **attributes)


def _first_axis(axis: int | tuple[int, ...] | None, ndim: int) -> int:
    """The `axis` attribute of an opset-11 node normalising over `axis` (trailing axes)."""
    if axis is None:
        return 0
    if isinstance(axis, tuple):
        return min(a % ndim for a in axis)
    return int(axis)


def _softmax_node(op_type: str, opset: int) -> Callable[..., Any]:
    def fn(x: np.ndarray, labels: None, *, axis: Any) -> Any:
        first = _first_axis(axis, x.ndim) if opset < 13 else axis
        return _run(op_type, opset, [x], axis=first)

    return fn


def _axes_input(axis: int | tuple[int, ...] | None) -> np.ndarray | None:
    """ReduceLogSumExp-18's `axes` input (None: left out, which reduces every axis)."""
    if axis is None:
        return None
    return np.array(axis if isinstance(axis, tuple) else (axis,), dtype=np.int64)


def _logsumexp(x: np.ndarray, labels: None, *, axis: Any) -> Any:
    return _run("ReduceLogSumExp", 18, [x, _axes_input(axis)], keepdims=0)


def _cross_entropy(
    x: np.ndarray,
    labels: np.ndarray,
    *,
    axis: int,
    reduction: Reduction,
    class_weights: np.ndarray | None,
    ignore_index: int | None,
) -> Any:
    batched = x.ndim > 1
    scores = np.ascontiguousarray(np.moveaxis(x, axis, 1)) if batched else x[None]
    out = _run(
        "SoftmaxCrossEntropyLoss",
        13,
        [scores, labels if batched else labels[None], class_weights],
        reduction=_SCE_REDUCTION[reduction],
        ignore_index=ignore_index,
    )
    return out if batched or reduction is not Reduction.NONE else out[0]


class OnnxRuntimeAdapter(Adapter):
    """ONNX nodes on ONNX Runtime's CPU execution provider, graph optimisations off
    (eager) and on (compiled)."""

    name = "onnxruntime"
    cost = 2
    framework = "onnxruntime"
    modules = ("onnxruntime", "onnx")
    snippet_result = "out.tolist()"

    def _implementations(self) -> list[Implementation]:
        common: dict[str, Any] = {
            "dtypes": _DTYPES,
            "modes": ("eager", "compiled"),
            "differentiable": False,
        }
        impls = []
        for op_type, op in (("Softmax", Op.SOFTMAX), ("LogSoftmax", Op.LOG_SOFTMAX)):
            impls += [
                Implementation(
                    f"{op_type}-13",
                    op,
                    _softmax_node(op_type, 13),
                    axes=Axes.ANY,
                    notes=_NO_BF16,
                    docs_url=f"{_DOCS}onnx__{op_type}.html",
                    snippet=f'onnx_run("{op_type}", 13, [x], axis={{axis}})',
                    **common,
                    defaults={"axis": -1},
                ),
                Implementation(
                    f"{op_type}-11",
                    op,
                    _softmax_node(op_type, 11),
                    axes=Axes.TRAILING,
                    notes=_NO_BF16 + "Before opset 13 the input is coerced to 2-D around"
                    " `axis`: the node normalises over every axis from `axis` to the last.",
                    docs_url=f"{_DOCS}onnx__{op_type}.html#{op_type.lower()}-11",
                    snippet=f'onnx_run("{op_type}", 11, [x], axis={{axis}})',
                    **common,
                    defaults={"axis": 1},
                ),
            ]
        impls += [
            Implementation(
                "ReduceLogSumExp-18",
                Op.LOGSUMEXP,
                _logsumexp,
                axes=Axes.TUPLE,
                notes=_NO_BF16 + "The axes are an input since opset 18; axis=None leaves it"
                " out (every axis reduced).",
                docs_url=_DOCS + "onnx__ReduceLogSumExp.html",
                snippet='onnx_run("ReduceLogSumExp", 18, [x, {axes}], keepdims=0)',
                **common,
                defaults={"axes": UNSET, "keepdims": 1, "noop_with_empty_axes": 0},
            ),
            Implementation(
                "SoftmaxCrossEntropyLoss-13",
                Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
                _cross_entropy,
                options=frozenset({Option.CLASS_WEIGHTS, Option.IGNORE_INDEX}),
                reductions=tuple(_SCE_REDUCTION),
                axes=Axes.ANY,
                notes=_NO_BF16 + "The node takes classes on dim 1 (N, C, d1, ...): the"
                " catalog's class axis is moved there, and a rank-1 input gets a batch of"
                " one. reduction='mean' is the weighted mean over the labels not ignored.",
                docs_url=_DOCS + "onnx__SoftmaxCrossEntropyLoss.html",
                snippet='{unbatch}(onnx_run("SoftmaxCrossEntropyLoss", 13, [{x_dim1}, {labels_n},'
                " {class_weights}], reduction={reduction}, ignore_index={ignore_index?}))",
                **common,
                defaults={
                    "axis": ABSENT,
                    "reduction": "mean",
                    "ignore_index": UNSET,
                    "weights": UNSET,
                },
            ),
        ]
        return impls

    def installed_defaults(self, impl: Implementation) -> dict[str, str] | None:
        """The node's attributes (their defaults) and optional inputs (`UNSET`) in the
        schema of the installed onnx at the implementation's opset (`Softmax-13`)."""
        import onnx.defs
        from onnx.helper import get_attribute_value

        op_type, _, opset = impl.name.partition("-")
        schema = onnx.defs.get_schema(op_type, int(opset), "")
        out = {i.name: str(UNSET) for i in schema.inputs if i.option.name == "Optional"}
        for name, attribute in schema.attributes.items():
            value = attribute.default_value
            if not value.type:
                out[name] = str(UNSET)
                continue
            got = get_attribute_value(value)
            out[name] = repr(got.decode() if isinstance(got, bytes) else got)
        return out

    def static_devices(self) -> list[str]:
        return ["cpu"]

    def snippet_prelude(self) -> list[str]:
        """The source of `onnx_node` (what the adapter runs), less its docstring."""
        from conformance_adapters import onnx_node

        source = inspect.getsource(onnx_node)
        body = source.split('"""', 2)[2].strip().splitlines()
        return [ln for ln in body if ln != "import numpy as np"]

    def snippet_wrapper(self, mode: str) -> str | None:
        return {"eager": "{}", "compiled": "optimized({})"}.get(mode)

    def snippet_values(
        self, impl: Implementation, options: dict[str, Any], ndim: int
    ) -> dict[str, str]:
        """Also `{axes}` (ReduceLogSumExp's input), `{x_dim1}`, `{labels_n}` and
        `{unbatch}` (SoftmaxCrossEntropyLoss's layout); opset 11 takes its first axis."""
        values = super().snippet_values(impl, options, ndim)
        axis = options.get("axis")
        if impl.axes is Axes.TRAILING:
            values["axis"] = repr(_first_axis(axis, ndim))
        axes = _axes_input(axis) if isinstance(axis, int | tuple | type(None)) else None
        values["axes"] = "None" if axes is None else f"np.array({tuple(axes.tolist())!r})"
        batched = ndim > 1
        moved = batched and isinstance(axis, int | np.integer) and axis % ndim != 1
        values["x_dim1"] = (
            (f"np.ascontiguousarray(np.moveaxis(x, {axis}, 1))" if moved else "x")
            if batched
            else "x[None]"
        )
        values["labels_n"] = "labels" if batched else "labels[None]"
        reduction = options.get("reduction")
        values["unbatch"] = "np.squeeze" if not batched and reduction is Reduction.NONE else ""
        if reduction is not None:
            values["reduction"] = repr(_SCE_REDUCTION[Reduction(reduction)])
        return values

    def environment(self) -> dict[str, Any]:
        import onnx
        import onnxruntime

        return super().environment() | {
            "onnxruntime": onnxruntime.__version__,
            "onnx": onnx.__version__,
            "onnxruntime.providers": onnxruntime.get_available_providers(),
        }

    def _import(self) -> None:
        import conformance_adapters.onnx_node  # noqa: F401

    def _to_native(self, a: np.ndarray, device: str) -> Any:
        return a

    def _to_numpy(self, value: Any) -> np.ndarray:
        return np.array(value, copy=True)

    def _build(self, fn: Callable[..., Any], mode: str, grad: bool) -> Runner:
        from conformance_adapters.onnx_node import optimized

        call = optimized(fn) if mode == "compiled" else fn

        def run(x: Any, labels: Any, arrays: dict[str, Any], ct: Any) -> tuple[Any, Any]:
            return call(x, labels, arrays), None

        return run
