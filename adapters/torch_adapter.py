"""PyTorch: torch.softmax, torch.nn.functional losses, torch.logsumexp.

`TorchEngine` (conversions, autograd, torch.compile) is shared with the keras-torch adapter.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from conformance.ops import Op, Option, Reduction
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Axes, Implementation, Runner
from conformance_adapters.signatures import ABSENT, REQUIRED

COMPILE_ENV = "CONFORMANCE_TORCH_COMPILE"
"""Set to 1 to enable the 'compiled' mode (torch.compile is slow to compile)."""

_DOCS = "https://pytorch.org/docs/stable/generated/"
_CROSS_ENTROPY_DEFAULTS = {
    "dim": ABSENT,
    "weight": None,
    "ignore_index": -100,
    "reduction": "mean",
    "label_smoothing": 0.0,
}
"""`F.cross_entropy`'s documented defaults (classes on dim 1: no class-axis parameter)."""


class TorchEngine(Adapter):
    """Conversions (bf16 through its bits), devices, autograd VJPs and torch.compile."""

    modules: tuple[str, ...] = ("torch",)
    snippet_result = "out.tolist()"

    def __init__(self, compile: bool | None = None) -> None:
        super().__init__()
        self.compile = (
            os.environ.get(COMPILE_ENV, "") not in ("", "0") if compile is None else compile
        )

    def mode_availability(self) -> dict[str, str]:
        modes = super().mode_availability()
        if "compiled" in modes and not self.compile:
            modes["compiled"] = (
                f"torch.compile is opt-in (slow to compile): set {COMPILE_ENV}=1"
                " or construct the adapter with compile=True"
            )
        return modes

    def _import(self) -> None:
        import torch  # noqa: F401

    def devices(self) -> list[str]:
        import torch

        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]

    def static_devices(self) -> list[str]:
        version = self.version() or ""
        return ["cpu"] if "+cpu" in version else super().static_devices()

    def environment(self) -> dict[str, Any]:
        import torch

        env = super().environment()
        env.update(
            {
                "torch": torch.__version__,
                "torch.num_threads": torch.get_num_threads(),
                "torch.deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
                "torch.float32_matmul_precision": torch.get_float32_matmul_precision(),
                "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                "torch.backends.mkldnn.is_available": torch.backends.mkldnn.is_available(),
                "torch.cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "torch.cuda": torch.version.cuda,
                COMPILE_ENV: self.compile,
                "devices": {"cpu": "cpu"}
                | ({"cuda": torch.cuda.get_device_name(0)} if torch.cuda.is_available() else {}),
            }
        )
        return env

    def _to_native(self, a: np.ndarray, device: str) -> Any:
        import torch

        if a.dtype.name == "bfloat16":
            t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(a)
        return t.to(device) if device != "cpu" else t

    def _to_numpy(self, value: Any) -> np.ndarray:
        import ml_dtypes
        import torch

        t = value.detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
        return t.numpy().copy()

    def snippet_prelude(self) -> list[str]:
        return ["import torch", "import torch.nn.functional as F"]

    def snippet_array(self, name: str, a: np.ndarray) -> str:
        if a.dtype.name == "bfloat16":
            return f"torch.from_numpy({name}.view(np.int16)).view(torch.bfloat16)"
        return f"torch.from_numpy({name})"

    def snippet_wrapper(self, mode: str) -> str | None:
        if mode == "compiled":
            return "torch.compile({}, dynamic=False)"
        return super().snippet_wrapper(mode)

    def _build(self, fn: Callable[..., Any], mode: str, grad: bool) -> Runner:
        import torch

        forward = torch.compile(fn, dynamic=False) if mode == "compiled" else fn

        def run(x: Any, labels: Any, arrays: dict[str, Any], ct: Any) -> tuple[Any, Any]:
            if not grad:
                with torch.no_grad():
                    return forward(x, labels, arrays), None
            x = x.detach().requires_grad_(True)
            y = forward(x, labels, arrays)
            (g,) = torch.autograd.grad(y, x, grad_outputs=ct.to(y.dtype), allow_unused=True)
            return y.detach(), torch.zeros_like(x) if g is None else g

        return run


# ----------------------------------------------------------------------------- the API mapping


def _classes_to_dim1(t: Any, axis: int) -> Any:
    """torch's losses want classes on dim 1: move the catalog's class axis there."""
    if t.ndim <= 1:
        return t
    a = axis % t.ndim
    return t if a == 1 else t.movedim(a, 1)


_INDEX_REDUCTION = {Reduction.NONE: "none", Reduction.SUM: "sum", Reduction.WEIGHTED_MEAN: "mean"}
_PLAIN_REDUCTION = {Reduction.NONE: "none", Reduction.SUM: "sum", Reduction.MEAN: "mean"}


def _softmax(x: Any, labels: Any, *, axis: int) -> Any:
    import torch

    return torch.softmax(x, axis)


def _f_softmax(x: Any, labels: Any, *, axis: int) -> Any:
    import torch.nn.functional as F

    return F.softmax(x, dim=axis)


def _f_log_softmax(x: Any, labels: Any, *, axis: int) -> Any:
    import torch.nn.functional as F

    return F.log_softmax(x, dim=axis)


def _logsumexp(x: Any, labels: Any, *, axis: int | tuple[int, ...] | None) -> Any:
    import torch

    return torch.logsumexp(x, dim=tuple(range(x.ndim)) if axis is None else axis)


def _ce_index(
    x: Any,
    labels: Any,
    *,
    axis: int,
    reduction: Reduction,
    label_smoothing: float,
    class_weights: Any,
    ignore_index: int | None,
) -> Any:
    import torch.nn.functional as F

    extra = {} if ignore_index is None else {"ignore_index": ignore_index}
    return F.cross_entropy(
        _classes_to_dim1(x, axis),
        labels,
        weight=class_weights,
        reduction=_INDEX_REDUCTION[reduction],
        label_smoothing=label_smoothing,
        **extra,
    )


def _ce_prob(
    x: Any,
    labels: Any,
    *,
    axis: int,
    reduction: Reduction,
    label_smoothing: float,
    class_weights: Any,
) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(
        _classes_to_dim1(x, axis),
        _classes_to_dim1(labels, axis),
        weight=class_weights,
        reduction=_PLAIN_REDUCTION[reduction],
        label_smoothing=label_smoothing,
    )


def _nll_log_softmax(
    x: Any,
    labels: Any,
    *,
    axis: int,
    reduction: Reduction,
    class_weights: Any,
    ignore_index: int | None,
) -> Any:
    import torch.nn.functional as F

    extra = {} if ignore_index is None else {"ignore_index": ignore_index}
    dim = 0 if x.ndim == 1 else 1
    return F.nll_loss(
        F.log_softmax(_classes_to_dim1(x, axis), dim=dim),
        labels,
        weight=class_weights,
        reduction=_INDEX_REDUCTION[reduction],
        **extra,
    )


def _bce_logits(x: Any, labels: Any, *, axis: None, reduction: Reduction) -> Any:
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(x, labels, reduction=_PLAIN_REDUCTION[reduction])


def _sigmoid(x: Any, axis: Any) -> Any:
    import torch

    return torch.sigmoid(x)


def _softmax_over(x: Any, axis: Any) -> Any:
    import torch

    return torch.softmax(x, dim=axis)


def _bce(x: Any, labels: Any, *, axis: None, reduction: Reduction) -> Any:
    import torch.nn.functional as F

    return F.binary_cross_entropy(x, labels, reduction=_PLAIN_REDUCTION[reduction])


_MOVE = "The catalog's class axis is moved to dim 1 (torch.movedim) before the call. "
_IGNORE = (
    "ignore_index=None is mapped to torch's default -100, so a label -100 is ignored"
    " rather than invalid. "
)


class TorchAdapter(TorchEngine):
    """PyTorch functional API on CPU (and CUDA when present)."""

    name = "torch"
    cost = 4
    framework = "torch"

    def activation(self, op: Op) -> Callable[[Any, Any], Any] | None:
        """`nn.Sigmoid` before `BCELoss` (`nn.Softmax` had a probability loss to go to)."""
        return _sigmoid if op is Op.BINARY_CROSS_ENTROPY else _softmax_over

    def _implementations(self) -> list[Implementation]:
        modes = ("eager", "compiled")
        loss = frozenset({Option.CLASS_WEIGHTS})
        return [
            Implementation(
                "torch.softmax",
                Op.SOFTMAX,
                _softmax,
                axes=Axes.ANY,
                modes=modes,
                docs_url=_DOCS + "torch.softmax.html",
                snippet="torch.softmax(x, dim={axis})",
                defaults={"dim": REQUIRED},
            ),
            Implementation(
                "torch.nn.functional.softmax",
                Op.SOFTMAX,
                _f_softmax,
                axes=Axes.ANY,
                modes=modes,
                docs_url=_DOCS + "torch.nn.functional.softmax.html",
                snippet="F.softmax(x, dim={axis})",
                defaults={"dim": None},
            ),
            Implementation(
                "torch.nn.functional.log_softmax",
                Op.LOG_SOFTMAX,
                _f_log_softmax,
                axes=Axes.ANY,
                modes=modes,
                docs_url=_DOCS + "torch.nn.functional.log_softmax.html",
                snippet="F.log_softmax(x, dim={axis})",
                defaults={"dim": None},
            ),
            Implementation(
                "torch.logsumexp",
                Op.LOGSUMEXP,
                _logsumexp,
                axes=Axes.TUPLE,
                modes=modes,
                docs_url=_DOCS + "torch.logsumexp.html",
                snippet="torch.logsumexp(x, dim={axis})",
                defaults={"dim": REQUIRED, "keepdim": False},
            ),
            Implementation(
                "torch.nn.functional.cross_entropy",
                Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
                _ce_index,
                options=loss | {Option.LABEL_SMOOTHING, Option.IGNORE_INDEX},
                reductions=tuple(_INDEX_REDUCTION),
                axes=Axes.ANY,
                modes=modes,
                notes=_MOVE + _IGNORE + "reduction='mean' is the weighted mean.",
                docs_url=_DOCS + "torch.nn.functional.cross_entropy.html",
                snippet="F.cross_entropy({x_dim1}, labels, weight={class_weights},"
                " reduction={reduction}, label_smoothing={label_smoothing},"
                " ignore_index={ignore_index})",
                defaults=_CROSS_ENTROPY_DEFAULTS,
            ),
            Implementation(
                "torch.nn.functional.cross_entropy[probability targets]",
                Op.SOFTMAX_CROSS_ENTROPY,
                _ce_prob,
                options=loss | {Option.LABEL_SMOOTHING},
                reductions=tuple(_PLAIN_REDUCTION),
                axes=Axes.ANY,
                modes=modes,
                notes=_MOVE + "reduction='mean' divides by the number of examples.",
                docs_url=_DOCS + "torch.nn.functional.cross_entropy.html",
                snippet="F.cross_entropy({x_dim1}, {labels_dim1}, weight={class_weights},"
                " reduction={reduction}, label_smoothing={label_smoothing})",
                defaults=_CROSS_ENTROPY_DEFAULTS,
            ),
            Implementation(
                "torch.nn.functional.nll_loss(log_softmax)",
                Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
                _nll_log_softmax,
                options=loss | {Option.IGNORE_INDEX},
                reductions=tuple(_INDEX_REDUCTION),
                axes=Axes.ANY,
                modes=modes,
                notes=_MOVE + _IGNORE + "F.nll_loss(F.log_softmax(x, dim=1), y).",
                docs_url=_DOCS + "torch.nn.functional.nll_loss.html",
                snippet="F.nll_loss(F.log_softmax({x_dim1}, dim={dim1}), labels,"
                " weight={class_weights}, reduction={reduction}, ignore_index={ignore_index})",
                defaults={"dim": ABSENT, "weight": None, "ignore_index": -100, "reduction": "mean"},
            ),
            Implementation(
                "torch.nn.functional.binary_cross_entropy_with_logits",
                Op.SIGMOID_CROSS_ENTROPY,
                _bce_logits,
                reductions=tuple(_PLAIN_REDUCTION),
                axes=Axes.ELEMENTWISE,
                modes=modes,
                docs_url=_DOCS + "torch.nn.functional.binary_cross_entropy_with_logits.html",
                snippet="F.binary_cross_entropy_with_logits(x, labels, reduction={reduction})",
                defaults={"dim": ABSENT, "weight": None, "reduction": "mean", "pos_weight": None},
            ),
            Implementation(
                "torch.nn.functional.binary_cross_entropy",
                Op.BINARY_CROSS_ENTROPY,
                _bce,
                reductions=tuple(_PLAIN_REDUCTION),
                axes=Axes.ELEMENTWISE,
                modes=modes,
                notes="torch clamps log(p) and log(1-p) at -100.",
                docs_url=_DOCS + "torch.nn.functional.binary_cross_entropy.html",
                snippet="F.binary_cross_entropy(x, labels, reduction={reduction})",
                defaults={"dim": ABSENT, "weight": None, "reduction": "mean"},
            ),
        ]

    def snippet_values(
        self, impl: Implementation, options: dict[str, Any], ndim: int
    ) -> dict[str, str]:
        """Also `{x_dim1}` and `{labels_dim1}` (`_classes_to_dim1`) and `{dim1}`."""
        values = super().snippet_values(impl, options, ndim)
        axis = options.get("axis")
        move = ""
        if isinstance(axis, int | np.integer) and ndim > 1 and axis % ndim != 1:
            move = f".movedim({axis % ndim}, 1)"
        values |= {"x_dim1": "x" + move, "labels_dim1": "labels" + move}
        values["dim1"] = "1" if ndim > 1 else "0"
        if "axis" in options and axis is None:  # _logsumexp
            values["axis"] = repr(tuple(range(ndim)))
        if "reduction" in options:
            values["reduction"] = repr((_INDEX_REDUCTION | _PLAIN_REDUCTION)[options["reduction"]])
        if "ignore_index" in options and options["ignore_index"] is None:
            values["ignore_index"] = "-100"  # torch's default: what the adapter leaves it at
        return values
