"""The one interface between the harness and a framework.

An `Adapter` offers `Implementation`s (one user-facing API bound to one catalog op) and
runs a `Call` on one of them, returning an `Outcome`. Everything that is the same for every
framework lives here: option validation, the numpy side of conversions, capturing warnings
and native stderr, catching the framework's exceptions, caching compiled callables.
A framework module only supplies conversions, compilation/autodiff and the API mapping.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import enum
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.common import (
    capture,
    distribution_version,
    exact_cast,
    module_installed,
    nvidia_gpu_present,
)
from conformance.dtypes import FLOAT_DTYPES, dtype_name
from conformance.ops import LabelKind, Op, Option, Reduction, spec

MODES: tuple[str, ...] = ("eager", "compiled", "compiled-xla")
"""eager; compiled: jax.jit, tf.function, torch.compile; compiled-xla: tf.function(jit_compile)."""
DEVICES: tuple[str, ...] = ("cpu", "cuda")
"""Device names are the same for every framework."""

OPTION_DEFAULTS: dict[str, Any] = {
    "axis": -1,
    "where": None,
    "scale": None,
    "label_smoothing": 0.0,
    "class_weights": None,
    "ignore_index": None,
    "reduction": Reduction.NONE,
}
"""Every option a Call may carry, with the value meaning 'not used' (as `reference.evaluate`)."""
ARRAY_OPTIONS: frozenset[str] = frozenset({"where", "scale", "class_weights"})
"""Options whose values are arrays: they travel as native arrays, not as trace constants."""

NativeFn = Callable[..., Any]
"""fn(x, labels, **options) -> native array; it receives exactly the options it declares."""
Runner = Callable[[Any, Any, dict[str, Any], Any], tuple[Any, Any]]
"""runner(x, labels, array_options, cotangent_or_None) -> (value, grad_or_None), native."""


_ABSL_PREFIX = re.compile(r"^([IWEF])\d{4} [\d:.]+ +\d+ (?=[\w.-]+:\d+\])", re.MULTILINE)
"""The time stamp and thread id of an absl (TensorFlow, XLA) log line."""


class Axes(enum.StrEnum):
    """Which `axis` values an implementation can express."""

    ELEMENTWISE = "elementwise"
    """Only axis=None (element-wise binary losses)."""
    LAST = "last"
    """Only the last axis (-1 or ndim-1)."""
    ANY = "any"
    """Any single int axis."""
    TUPLE = "tuple"
    """An int or a tuple of ints (None: every axis)."""

    def __str__(self) -> str:
        return self.value


class UnsupportedCall(ValueError):
    """A Call that the Implementation does not declare (a harness error, not a finding)."""


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
            elif not _is_default(key, value) and Option(key) not in self.options:
                return f"{self.name} has no option {key}"
        return None


def _snippet_source(name: str, value: Any) -> str:
    """An option's value as Python source: an array by its variable `name`, enums by value."""
    if isinstance(value, np.ndarray):
        return name
    if isinstance(value, tuple | list):
        return repr(tuple(int(v) for v in value))
    if isinstance(value, enum.Enum):
        value = value.value
    return repr(value.item() if isinstance(value, np.generic) else value)


def _is_default(key: str, value: Any) -> bool:
    default = OPTION_DEFAULTS[key]
    return value is None if default is None else value == default


def _check_axis(axes: Axes, axis: Any, ndim: int) -> str | None:
    if axes is Axes.ELEMENTWISE:
        return None if axis is None else "only element-wise (axis=None)"
    if axis is None:
        return None if axes is Axes.TUPLE else "axis=None is not expressible"
    if isinstance(axis, tuple | list):
        if axes is not Axes.TUPLE:
            return "tuple axes are not expressible"
        return None if all(-ndim <= int(a) < ndim for a in axis) else f"axis {axis} out of range"
    if not -max(ndim, 1) <= int(axis) < max(ndim, 1):
        return f"axis {axis} out of range for rank {ndim}"
    if axes is Axes.LAST and int(axis) % max(ndim, 1) != max(ndim, 1) - 1:
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


# ----------------------------------------------------------------------------- adapter


class Adapter(abc.ABC):
    """A framework's side of the interface; the harness sees only this.

    Constructing an adapter and calling `implementations()`, `availability()`, `version()`
    or `process_env()` never imports the framework; the other methods may.
    """

    name: str = ""
    """Unique adapter name, e.g. 'torch', 'tensorflow', 'keras-jax'."""
    framework: str = ""
    """The pip distribution, e.g. 'torch', 'tensorflow-cpu', 'keras', 'jax'."""
    modules: tuple[str, ...] = ()
    """Top-level modules that must be importable."""
    cache_size: int = 512
    only_dtypes: tuple[str, ...] | None = None
    """A variant adapter that exists for one finding restricts its cells to these dtypes."""
    gradient_mode: str = "eager"
    """Where a profile that judges each gradient once judges it: the mode in which the
    framework's users take gradients, and the cheapest that runs the framework's own
    backward pass."""
    own_log_lines: tuple[str, ...] = ()
    """Substrings of native log lines that the suite's own setup causes (a cache loader's
    complaint), not the call: such lines are dropped from `Outcome.stderr`."""
    cost: float = 1.0
    """Seconds of a warm quick run of this adapter on the 2-core reference machine
    (`benchmarks/quick_run.py`); the runner starts the costliest adapters first. Only a
    schedule: a wrong value costs wall time, never a result."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[Any, ...], Runner] = OrderedDict()
        self._impls: list[Implementation] | None = None
        self._modes: dict[str, str] | None = None

    # -- what it offers
    @abc.abstractmethod
    def _implementations(self) -> list[Implementation]:
        """Every API this adapter binds (called once; never imports the framework)."""

    def implementations(self) -> list[Implementation]:
        """Every API this adapter binds, with what each declares."""
        if self._impls is None:
            self._impls = [
                impl
                if self.only_dtypes is None
                else dataclasses.replace(
                    impl, dtypes=tuple(d for d in impl.dtypes if d in self.only_dtypes)
                )
                for impl in self._implementations()
            ]
            names = [i.name for i in self._impls]
            if len(set(names)) != len(names):
                raise ValueError(f"{self.name}: duplicate implementation names")
        return self._impls

    def implementation(self, name: str) -> Implementation:
        for impl in self.implementations():
            if impl.name == name:
                return impl
        raise KeyError(f"{self.name} has no implementation {name!r}")

    def version(self) -> str | None:
        return distribution_version(self.framework)

    def availability(self) -> tuple[bool, str]:
        """(available, reason); never raises and never imports the framework."""
        for mod in self.modules:
            if not module_installed(mod):
                return False, f"{mod} is not installed"
        return True, ""

    def mode_availability(self) -> dict[str, str]:
        """Each mode this adapter's implementations use -> '' if usable, else why not."""
        return {m: "" for impl in self.implementations() for m in impl.modes}

    def process_env(self) -> dict[str, str]:
        """Environment variables to set before the framework is imported in a worker."""
        return {}

    def devices(self) -> list[str]:
        """'cpu', plus 'cuda' when the framework sees an NVIDIA GPU (may import it)."""
        return ["cpu"]

    def static_devices(self) -> list[str]:
        """`devices()` guessed without importing the framework."""
        return ["cpu", "cuda"] if nvidia_gpu_present() else ["cpu"]

    def environment(self) -> dict[str, Any]:
        """Settings that change numerics (may import the framework)."""
        return {
            "adapter": self.name,
            "framework": self.framework,
            "version": self.version(),
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        }

    # -- the reproducer (`conformance.snippets`): `Implementation.snippet` is the call
    snippet_result: str = "np.asarray(out).tolist()"
    """Python giving the output `out` as (nested lists of) Python numbers, printed."""

    def snippet_env(self) -> dict[str, str]:
        """The part of `process_env()` that changes what is computed, set before imports."""
        return {}

    def snippet_prelude(self) -> list[str]:
        """Imports the snippets may use (each keeps those it uses), then settings."""
        return []

    def snippet_array(self, name: str, a: np.ndarray) -> str:
        """Python making numpy variable `name` (holding `a`) the array `_to_native` makes."""
        return name

    def snippet_wrapper(self, mode: str) -> str | None:
        """How `_build` wraps fn in `mode`, around `{}` (None: no reproducer for `mode`)."""
        return "{}" if mode == "eager" else None

    def snippet_values(
        self, impl: Implementation, options: dict[str, Any], ndim: int
    ) -> dict[str, str]:
        """Python for each placeholder of `impl.snippet`, from what `fn` receives (array
        options as arrays or None) and the rank of x: arrays by their variable's name."""
        return {k: _snippet_source(k, v) for k, v in options.items()}

    # -- the framework's part
    @abc.abstractmethod
    def _to_native(self, a: np.ndarray, device: str) -> Any:
        """numpy (bf16 included) -> native array on `device`, same dtype."""

    @abc.abstractmethod
    def _to_numpy(self, value: Any) -> np.ndarray:
        """native -> numpy in exactly the native dtype (bf16 as ml_dtypes.bfloat16)."""

    @abc.abstractmethod
    def _build(self, fn: Callable[..., Any], mode: str, grad: bool) -> Runner:
        """Wrap fn(x, labels, arrays) for `mode`; with grad, also return the VJP."""

    def _import(self) -> None:
        """Import the framework (run() calls it outside the capture, so that import-time
        log lines are not blamed on the first call)."""
        return None

    def _device_scope(self, device: str) -> contextlib.AbstractContextManager[Any]:
        """A context the conversions and the call run in (e.g. tf.device)."""
        return contextlib.nullcontext()

    # -- running
    def check(self, impl: Implementation, call: Call) -> str | None:
        """Why `call` cannot run on `impl` here (None when it can)."""
        reason = impl.check(call)
        if reason:
            return reason
        modes = getattr(self, "_modes", None)
        if modes is None:  # fixed for the adapter's life: computed once
            modes = self._modes = self.mode_availability()
        mode_reason = modes.get(call.mode, f"no mode {call.mode!r}")
        if mode_reason:
            return mode_reason
        if call.device != "cpu" and call.device not in self.devices():
            return f"{self.name} sees no {call.device!r} device"
        return None

    def run(self, impl: Implementation, call: Call) -> Outcome:
        """Run `call` on `impl`; framework exceptions end up in `Outcome.error`.

        Raises `UnsupportedCall` when the call is outside what `impl` declares.
        """
        reason = self.check(impl, call)
        if reason:
            raise UnsupportedCall(reason)
        try:
            self._import()
        except Exception as exc:
            raise UnsupportedCall(
                f"{self.name} is unavailable: {type(exc).__name__}: {exc}"
            ) from exc
        out = Outcome()
        kwargs, inputs = self.prepare(impl, call, out.notes)
        key = (
            impl.name,
            call.mode,
            call.device,
            call.cotangent is not None,
            tuple(sorted(kwargs.items(), key=lambda kv: kv[0])),
            *((k, v.shape, v.dtype.str) if v is not None else (k,) for k, v in inputs.items()),
        )
        started = time.perf_counter()
        with capture() as cap:
            out.value, out.grad, out.error = self._execute(impl, call, kwargs, inputs, key)
        out.seconds = time.perf_counter() - started
        out.warnings, out.stderr = cap.warnings, self._call_log(cap.stderr)
        if out.value is not None:
            out.output_dtype = dtype_name(out.value.dtype)
        if out.grad is not None:
            out.grad_dtype = dtype_name(out.grad.dtype)
        return out

    def _call_log(self, stderr: str) -> str:
        """`stderr` without the lines of `own_log_lines`, and absl log lines without their
        time stamp and thread id ("W0000 00:00:1795347978.533411    3517 op_kernel.cc:1858]"
        -> "W op_kernel.cc:1858]"), so the same message from two calls is one message."""
        if not stderr:
            return stderr
        lines = stderr.splitlines(keepends=True)
        kept = [ln for ln in lines if not any(s in ln for s in self.own_log_lines)]
        return _ABSL_PREFIX.sub(r"\1 ", "".join(kept))

    def prepare(
        self, impl: Implementation, call: Call, notes: list[str] | None = None
    ) -> tuple[dict[str, Any], dict[str, np.ndarray | None]]:
        """What `impl.fn` is given for `call`: its static keyword arguments (array options
        left out), and every array (x, labels, array options, cotangent) in the dtype the
        framework receives; a cast that changes a value is added to `notes`."""
        options = {**OPTION_DEFAULTS, **call.options}
        kwargs = {k: options[k] for k in impl.option_names}
        if "reduction" in kwargs:
            kwargs["reduction"] = Reduction(kwargs["reduction"])
        if isinstance(kwargs.get("axis"), list):
            kwargs["axis"] = tuple(kwargs["axis"])
        arrays_np = {k: kwargs.pop(k) for k in list(kwargs) if k in ARRAY_OPTIONS}
        x_dtype = dtype_name(call.x.dtype)
        notes = [] if notes is None else notes
        return kwargs, self._numpy_inputs(impl, call, arrays_np, x_dtype, notes)

    def _numpy_inputs(
        self,
        impl: Implementation,
        call: Call,
        arrays: dict[str, Any],
        x_dtype: str,
        notes: list[str],
    ) -> dict[str, np.ndarray | None]:
        """Every array of the call, in the dtype the framework is given."""
        res: dict[str, np.ndarray | None] = {"x": np.array(call.x, order="C", copy=True)}
        wanted: dict[str, str] = {}
        if call.labels is not None:
            wanted["labels"] = x_dtype if impl.label_dtype == "same" else str(impl.label_dtype)
        for key in arrays:
            wanted[key] = "bool" if key == "where" else x_dtype
        sources = {"labels": call.labels, **arrays}
        for key, dtype in wanted.items():
            src = sources[key]
            if src is None:
                res[key] = None
                continue
            res[key], exact = exact_cast(np.asarray(src), dtype)
            if not exact:
                notes.append(f"{key} rounded to {dtype}")
        for key in arrays:
            res.setdefault(key, None)
        res.setdefault("labels", None)
        res["cotangent"] = (
            None if call.cotangent is None else np.array(call.cotangent, order="C", copy=True)
        )
        return res

    def _execute(
        self,
        impl: Implementation,
        call: Call,
        static: dict[str, Any],
        inputs: dict[str, np.ndarray | None],
        key: tuple[Any, ...],
    ) -> tuple[np.ndarray | None, np.ndarray | None, ErrorInfo | None]:
        stage = "input"
        try:
            with self._device_scope(call.device):
                native = {
                    k: None if v is None else self._to_native(v, call.device)
                    for k, v in inputs.items()
                }
                runner = self._runner(impl, call.mode, static, key, grad=call.cotangent is not None)
                stage = "call"
                arrays = {k: native[k] for k in native if k in ARRAY_OPTIONS}
                value, grad = runner(native["x"], native["labels"], arrays, native["cotangent"])
                stage = "output"
                value_np = self._to_numpy(value)
                grad_np = None if grad is None else self._to_numpy(grad)
        except Exception as exc:
            return None, None, ErrorInfo.from_exception(exc, stage)
        return value_np, grad_np, None

    def _runner(
        self,
        impl: Implementation,
        mode: str,
        static: dict[str, Any],
        key: tuple[Any, ...],
        grad: bool,
    ) -> Runner:
        runner = self._cache.get(key)
        if runner is not None:
            self._cache.move_to_end(key)
            return runner

        def fn(x: Any, labels: Any, arrays: dict[str, Any]) -> Any:
            return impl.fn(x, labels, **static, **arrays)

        runner = self._build(fn, mode, grad)
        self._cache[key] = runner
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return runner
