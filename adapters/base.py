"""The one interface between the harness and a framework.

An `Adapter` offers `Implementation`s (one user-facing API bound to one catalog op) and
runs a `Call` on one of them, returning an `Outcome` (those data types:
`conformance_adapters.interface`).
Everything that is the same for every framework lives here: option validation, the numpy
side of conversions, capturing warnings and native stderr, catching the framework's
exceptions, caching compiled callables. A framework module only supplies conversions,
compilation/autodiff and the API mapping.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import enum
import hashlib
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from conformance.dtypes import dtype_name
from conformance.ops import Op, Reduction
from conformance_adapters.common import (
    capture,
    cpu_description,
    distribution_version,
    exact_cast,
    module_installed,
    nvidia_gpu_present,
)
from conformance_adapters.interface import (
    ARRAY_OPTIONS,
    OPTION_DEFAULTS,
    Call,
    ErrorInfo,
    Implementation,
    Outcome,
    Runner,
    UnsupportedCall,
)
from conformance_adapters.release import lacking
from conformance_adapters.signatures import parameter_defaults, resolve

_ABSL_PREFIX = re.compile(r"^([IWEF])\d{4} [\d:.]+ +\d+ (?=[\w.-]+:\d+\])", re.MULTILINE)
"""The time stamp and thread id of an absl (TensorFlow, XLA) log line."""


def _snippet_source(name: str, value: Any) -> str:
    """An option's value as Python source: an array by its variable `name`, enums by value."""
    if isinstance(value, np.ndarray):
        return name
    if isinstance(value, tuple | list):
        return repr(tuple(int(v) for v in value))
    if isinstance(value, enum.Enum):
        value = value.value
    return repr(value.item() if isinstance(value, np.generic) else value)


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
            "cpu": cpu_description(),
        }

    api_aliases: ClassVar[dict[str, str]] = {}
    """How the names of `Implementation.api_path` abbreviate modules (`tf` for tensorflow)."""

    def installed_defaults(self, impl: Implementation) -> dict[str, str] | None:
        """The installed release's parameter defaults of `impl`'s API
        (`signatures.parameter_defaults`); None when nothing says."""
        head, _, rest = impl.api_path.partition(".")
        path = ".".join(filter(None, (self.api_aliases.get(head, head), rest)))
        try:
            return parameter_defaults(resolve(path))
        except (ImportError, AttributeError):
            return None

    def activation(self, op: Op) -> Callable[[Any, Any], Any] | None:
        """activation(x, axis) -> native: the activation a user puts before a probability
        loss of `op` (the `default-path` scenario): the activation layer where there is one,
        else the framework's plain softmax (sigmoid for the binary loss); None: none."""
        return self.activation_layer(op)

    def activation_layer(self, op: Op) -> Callable[[Any, Any], Any] | None:
        """activation(x, axis) -> native: the framework's own output-layer activation
        (softmax; sigmoid for the binary loss) whose output a user passes to a loss of `op`:
        to `from_logits=True` in the `activation-output-as-logits` misuse, and (through
        `activation`) to the probability loss in the `default-path` scenario. Only where
        that output is more than plain probabilities (Keras remembers the logits on it);
        None elsewhere, where passing it is the `probabilities-as-logits` misuse."""
        return None

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
        lacks = lacking(impl.snippet, {**OPTION_DEFAULTS, **call.options})
        if lacks:
            raise UnsupportedCall(f"{self.framework} {self.version()}: {lacks}")
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
        out.program = hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()
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
