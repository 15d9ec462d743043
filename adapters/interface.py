"""What passes between the harness and an adapter: implementations, calls and outcomes.

Plain data and option validation, no framework and none of `conformance_adapters.base.Adapter`'s
behaviour: an `Implementation` (one user-facing API bound to one catalog op) takes a `Call`
(exact numpy inputs, options, device, mode) and the adapter answers with an `Outcome`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.dtypes import FLOAT_DTYPES, dtype_name
from conformance.ops import (
    ARRAY_OPTIONS,
    OPTION_DEFAULTS,
    Axes,
    LabelKind,
    Op,
    Option,
    Reduction,
    is_default,
    spec,
)

__all__ = [
    "ARRAY_OPTIONS",
    "DEVICES",
    "MODES",
    "OPTION_DEFAULTS",
    "Axes",
    "Call",
    "ErrorInfo",
    "Implementation",
    "NativeFn",
    "Outcome",
    "Runner",
    "UnsupportedCall",
    "api_selected",
]

MODES: tuple[str, ...] = ("eager", "compiled", "compiled-xla")
"""eager; compiled: jax.jit, tf.function, torch.compile; compiled-xla: tf.function(jit_compile)."""
DEVICES: tuple[str, ...] = ("cpu", "cuda")
"""Device names are the same for every framework."""

NativeFn = Callable[..., Any]
"""fn(x, labels, **options) -> native array; it receives exactly the options it declares."""
Runner = Callable[[Any, Any, dict[str, Any], Any], tuple[Any, Any]]
"""runner(x, labels, array_options, cotangent_or_None) -> (value, grad_or_None), native."""


class UnsupportedCall(ValueError):
    """A Call that the Implementation does not declare (a harness error, not a finding)."""


def api_selected(name: str, patterns: list[str]) -> bool:
    """Whether an implementation name matches one of the `--api` patterns (shell-style,
    case-sensitive)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass(frozen=True)
class Implementation:
    """One user-facing API of a framework, bound to one catalog op."""

    name: str
    """The API as users write it, e.g. 'torch.nn.functional.cross_entropy[probability targets]'."""
    op: Op
    fn: NativeFn = field(repr=False, compare=False)
    options: frozenset[Option] = frozenset()
    """Supported options; AXIS always, REDUCTION when `reductions` offers more than NONE."""
    reductions: tuple[Reduction, ...] = (Reduction.NONE,)
    axes: Axes = Axes.LAST
    dtypes: tuple[str, ...] = FLOAT_DTYPES
    modes: tuple[str, ...] = ("eager",)
    label_dtype: str | None = None
    """'int64' / 'int32' for integer labels, 'same' for the logits' dtype, None: no labels."""
    differentiable: bool = True
    notes: str = ""
    docs_url: str = ""
    snippet: str = ""
    """What `fn` computes, as one Python expression in the framework's own API for the
    reproducer (`conformance.snippets`): `x`, `labels` and the array options are variables,
    `{option}` placeholders take `Adapter.snippet_values`. Empty: no reproducible call."""
    defaults: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """What the framework's docs give as the default of each parameter that changes the
    answer (its own names: `dim`, `ignore_index`, `from_logits`, ...), for the defaults
    check (`conformance.defaults`); `signatures.REQUIRED` where the docs give none."""
    api: str = ""
    """The dotted path whose signature holds `defaults`; empty: the name up to its first
    `(` or `[` (see `api_path`)."""

    @property
    def api_path(self) -> str:
        return self.api or re.split(r"[(\[]", self.name, maxsplit=1)[0]

    def __post_init__(self) -> None:
        opts = set(self.options) | {Option.AXIS}
        if self.reductions != (Reduction.NONE,):
            opts.add(Option.REDUCTION)
        bad = opts - spec(self.op).options
        if bad:
            raise ValueError(
                f"{self.name}: options {sorted(map(str, bad))} not in the catalog for {self.op}"
            )
        object.__setattr__(self, "options", frozenset(opts))
        object.__setattr__(self, "op", Op(self.op))
        if self.label_dtype is None and spec(self.op).labels != LabelKind.NONE:
            default = "int64" if spec(self.op).labels == LabelKind.INTEGER else "same"
            object.__setattr__(self, "label_dtype", default)

    @property
    def option_names(self) -> tuple[str, ...]:
        """The keyword arguments `fn` receives, sorted."""
        return tuple(sorted(o.value for o in self.options))

    def check(self, call: Call) -> str | None:
        """Why this implementation cannot take `call` (None when it can)."""
        x_dtype = dtype_name(call.x.dtype)
        if x_dtype not in self.dtypes:
            return f"{self.name} does not take {x_dtype}"
        if call.mode not in self.modes:
            return f"{self.name} has no {call.mode!r} mode"
        has_labels = spec(self.op).labels != LabelKind.NONE
        if has_labels != (call.labels is not None):
            return f"{self.op} {'needs' if has_labels else 'takes no'} labels"
        if call.cotangent is not None and not self.differentiable:
            return f"{self.name} has no gradient"
        unknown = set(call.options) - set(OPTION_DEFAULTS)
        if unknown:
            return f"unknown options {sorted(unknown)}"
        for key, value in call.options.items():
            if key == "axis":
                reason = _check_axis(self.axes, value, call.x.ndim)
                if reason:
                    return f"{self.name}: {reason}"
            elif key == "reduction":
                if Reduction(value) not in self.reductions:
                    return f"{self.name} cannot express reduction {Reduction(value)}"
            elif not is_default(key, value) and Option(key) not in self.options:
                return f"{self.name} has no option {key}"
        return None


def _check_axis(axes: Axes, axis: Any, ndim: int) -> str | None:
    if axes is Axes.ELEMENTWISE:
        return None if axis is None else "only element-wise (axis=None)"
    if axis is None:
        return None if axes in (Axes.TUPLE, Axes.TRAILING) else "axis=None is not expressible"
    if isinstance(axis, tuple | list):
        if axes not in (Axes.TUPLE, Axes.TRAILING):
            return "tuple axes are not expressible"
        if not all(-ndim <= int(a) < ndim for a in axis):
            return f"axis {axis} out of range"
        chosen = sorted(int(a) % ndim for a in axis)
        if axes is Axes.TRAILING and chosen != list(range(ndim - len(chosen), ndim)):
            return f"axis {axis} is not the trailing axes from one to the last"
        return None
    if not -max(ndim, 1) <= int(axis) < max(ndim, 1):
        return f"axis {axis} out of range for rank {ndim}"
    if axes in (Axes.LAST, Axes.TRAILING) and int(axis) % max(ndim, 1) != max(ndim, 1) - 1:
        return "only the last axis"
    return None


@dataclass(frozen=True)
class Call:
    """One invocation: exact inputs (numpy, any float dtype incl. ml_dtypes.bfloat16)."""

    x: np.ndarray
    labels: np.ndarray | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """Catalog option names -> values (axis, where, scale, label_smoothing, class_weights,
    ignore_index, reduction); absent means `OPTION_DEFAULTS`."""
    device: str = "cpu"
    mode: str = "eager"
    cotangent: np.ndarray | None = None
    """When given: also the gradient w.r.t. x of sum(cotangent * output), by the framework's
    own autodiff. Cast to the output's dtype by the framework (keep it representable)."""


@dataclass(frozen=True)
class ErrorInfo:
    """An exception the framework raised (captured, never propagated)."""

    type: str
    """Qualified exception type, e.g. 'torch.OutOfMemoryError'."""
    message: str
    """First non-empty line of the message."""
    stage: str = "call"
    """'input' (conversion to native), 'call' (compute) or 'output' (conversion back)."""

    @classmethod
    def from_exception(cls, exc: BaseException, stage: str = "call") -> ErrorInfo:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        message = lines[0] if lines else ""
        if message.endswith(":"):  # e.g. TF's 'Graph execution error:' then a traceback
            detail = [
                ln
                for ln in lines[1:]
                if not ln.endswith(":") and not ln.startswith(("File ", "Detected at node"))
            ]
            message = f"{message} {detail[0]}" if detail else message
        kind = type(exc)
        return cls(f"{kind.__module__}.{kind.__qualname__}", message[:500], stage)


@dataclass
class Outcome:
    """What a framework did with one Call."""

    value: np.ndarray | None = None
    """The output, converted back exactly: float16 stays float16, bf16 stays ml_dtypes.bfloat16."""
    grad: np.ndarray | None = None
    output_dtype: str | None = None
    """The dtype the framework returned (may differ from the input's: a finding)."""
    grad_dtype: str | None = None
    warnings: list[str] = field(default_factory=list)
    """Python warnings raised during the call, as 'Category: message'."""
    stderr: str = ""
    """Text written to stderr during the call: file descriptor 2 (native logs) and sys.stderr."""
    error: ErrorInfo | None = None
    seconds: float = 0.0
    """Wall time of conversion, call and conversion back."""
    notes: list[str] = field(default_factory=list)
    """What the adapter itself did to the inputs (e.g. a cast that was not exact)."""
    program: str = ""
    """Names the program the call ran: calls with equal names share one trace/compilation
    (implementation, mode, device, gradient or not, static options, input shapes and dtypes)."""
