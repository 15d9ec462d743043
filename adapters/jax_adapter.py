"""JAX: jax.nn softmax / log_softmax / logsumexp and optax's cross-entropy losses.

`JaxEngine` (device_put, jax.vjp, jax.jit, the x64 switch) is shared with keras-jax.
Two adapters: `jax` runs with jax_enable_x64 on (float64 is float64), `jax-x32` with JAX's
default (x64 off), which silently computes float64 inputs in float32: `output_dtype` shows it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from conformance.cache import cache_dir, machine_tag
from conformance.ops import Op, Option
from conformance_adapters.base import Adapter
from conformance_adapters.common import module_installed, passed, unless_last
from conformance_adapters.interface import Axes, Implementation, Runner
from conformance_adapters.signatures import ABSENT

_JAX_DOCS = "https://docs.jax.dev/en/latest/_autosummary/"
_OPTAX_DOCS = "https://optax.readthedocs.io/en/latest/api/losses.html#optax.losses."
_MODES = ("eager", "compiled")
_LOGSUMEXP_DEFAULTS = {"axis": None, "b": None, "keepdims": False, "where": None}


def _compilation_cache_env() -> dict[str, str]:
    """JAX's persistent compilation cache, in the suite's cache (`conformance.cache`).

    Every new shape costs an XLA compilation (~0.1 s jitted, ~0.3 s op by op in eager
    mode, where each primitive compiles apart); a later run loads the executables instead.
    The cache key covers the jax/jaxlib versions, flags and devices, so it never changes
    what is computed. A cache the user configured is left as it is."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return {}
    folder = cache_dir(f"jax-{machine_tag()}")
    if folder is None:
        return {}
    return {
        "JAX_COMPILATION_CACHE_DIR": str(folder),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


class JaxEngine(Adapter):
    """jax.device_put in, np.asarray out (exact, bf16 included); jax.vjp; jax.jit."""

    modules: tuple[str, ...] = ("jax",)
    framework = "jax"
    x64: bool | None = None
    """True/False: run every call inside jax.enable_x64(x64); None: the process' setting."""
    gradient_mode = "compiled"
    """Eager gradients are the jitted VJP too (see `_build`): judging them in compiled mode
    costs one program per shape instead of a program and the op-by-op forward pass."""

    def process_env(self) -> dict[str, str]:
        env = {} if self.x64 is None else {"JAX_ENABLE_X64": "1" if self.x64 else "0"}
        return env | _compilation_cache_env()

    def _import(self) -> None:
        import jax  # noqa: F401

    def _jax_device(self, device: str) -> Any:
        import jax

        if device == "cpu":
            return jax.devices("cpu")[0]
        for platform in ("cuda", "gpu"):
            with contextlib.suppress(RuntimeError):
                return jax.devices(platform)[0]
        raise RuntimeError("JAX sees no CUDA device")

    def devices(self) -> list[str]:
        try:
            self._jax_device("cuda")
        except RuntimeError:
            return ["cpu"]
        return ["cpu", "cuda"]

    def static_devices(self) -> list[str]:
        cuda = any(
            module_installed(m)
            for m in ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_plugins.xla_cuda12")
        )
        return super().static_devices() if cuda else ["cpu"]

    def environment(self) -> dict[str, Any]:
        import jax
        import jaxlib

        env = super().environment()
        with self._x64_scope():
            x64 = bool(jax.config.jax_enable_x64)
        env.update(
            {
                "jax": jax.__version__,
                "jaxlib": jaxlib.__version__,
                "jax_enable_x64": x64,
                "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
                "jax_numpy_dtype_promotion": jax.config.jax_numpy_dtype_promotion,
                "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS"),
                "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
                "devices": {d: str(self._jax_device(d).device_kind) for d in self.devices()},
            }
        )
        if module_installed("optax"):
            import optax

            env["optax"] = optax.__version__
        return env

    def _x64_scope(self) -> contextlib.AbstractContextManager[Any]:
        import jax

        if self.x64 is None:
            return contextlib.nullcontext()
        enable_x64 = getattr(jax, "enable_x64", None)
        if enable_x64 is None:  # jax < 0.8: only jax.experimental.enable_x64
            import jax.experimental

            enable_x64 = jax.experimental.enable_x64
        return enable_x64(self.x64)

    def _device_scope(self, device: str) -> contextlib.AbstractContextManager[Any]:
        import jax

        stack = contextlib.ExitStack()
        stack.enter_context(self._x64_scope())
        stack.enter_context(jax.default_device(self._jax_device(device)))
        return stack

    def _to_native(self, a: np.ndarray, device: str) -> Any:
        import jax

        return jax.device_put(a, self._jax_device(device))

    def _to_numpy(self, value: Any) -> np.ndarray:
        return np.array(value, copy=True)

    def snippet_prelude(self) -> list[str]:
        x64 = ['jax.config.update("jax_enable_x64", True)'] if self.x64 else []
        return ["import jax", "import jax.numpy as jnp", *x64]

    def snippet_array(self, name: str, a: np.ndarray) -> str:
        return f"jnp.asarray({name})"

    def snippet_values(
        self, impl: Implementation, options: dict[str, Any], ndim: int
    ) -> dict[str, str]:
        values = super().snippet_values(impl, options, ndim)
        masked = impl.fn in (_softmax, _log_softmax) and options.get("where") is not None
        if masked and where_needs_initial():  # the call `_masked` makes
            values["where"] += ", initial=-jnp.inf"
        return values

    def snippet_wrapper(self, mode: str) -> str | None:
        return "jax.jit({})" if mode == "compiled" else super().snippet_wrapper(mode)

    def _build(self, fn: Callable[..., Any], mode: str, grad: bool) -> Runner:
        import jax

        def step(x: Any, labels: Any, arrays: dict[str, Any], ct: Any) -> tuple[Any, Any]:
            if not grad:
                return fn(x, labels, arrays), None
            y, pullback = jax.vjp(lambda x_: fn(x_, labels, arrays), x)
            (g,) = pullback(ct.astype(y.dtype))
            return y, g

        if mode == "compiled":
            return jax.jit(step)
        if not grad:
            return step

        # Eager values are the plain op-by-op call users see. Eager gradients come from the
        # jitted VJP: op-by-op, jax.vjp compiles every primitive of the backward pass for
        # every new shape (~1 s a shape here), and users take gradients under jit anyway.
        jitted = jax.jit(step)

        def eager(x: Any, labels: Any, arrays: dict[str, Any], ct: Any) -> tuple[Any, Any]:
            _, g = jitted(x, labels, arrays, ct)
            return fn(x, labels, arrays), g

        return eager


# ----------------------------------------------------------------------------- the API mapping


def _softmax(x: Any, labels: Any, *, axis: Any, where: Any) -> Any:
    import jax

    return jax.nn.softmax(x, axis=axis, **_masked(where))


def _log_softmax(x: Any, labels: Any, *, axis: Any, where: Any) -> Any:
    import jax

    return jax.nn.log_softmax(x, axis=axis, **_masked(where))


def _nn_logsumexp(x: Any, labels: Any, *, axis: Any, where: Any, scale: Any) -> Any:
    import jax

    return jax.nn.logsumexp(x, axis=axis, **passed(b=scale, where=where))


def _scipy_logsumexp(x: Any, labels: Any, *, axis: Any, where: Any, scale: Any) -> Any:
    import jax.scipy.special

    return jax.scipy.special.logsumexp(x, axis=axis, **passed(b=scale, where=where))


def _optax_ce(x: Any, labels: Any, *, axis: int, where: Any) -> Any:
    import optax

    return optax.softmax_cross_entropy(x, labels, **passed(axis=unless_last(axis), where=where))


def _optax_ce_smoothed(
    x: Any, labels: Any, *, axis: int, where: Any, label_smoothing: float
) -> Any:
    import optax

    extra = passed(axis=unless_last(axis), where=where)
    return optax.softmax_cross_entropy(
        x, optax.smooth_labels(labels, label_smoothing, **extra), **extra
    )


def _optax_sparse_ce(x: Any, labels: Any, *, axis: int, where: Any) -> Any:
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(
        x, labels, **passed(axis=unless_last(axis), where=where)
    )


def _masked(where: Any) -> dict[str, Any]:
    """`where=` when the call sets it, with `initial=-inf` where the release requires one."""
    if where is None:
        return {}
    return {"where": where, **({"initial": -float("inf")} if where_needs_initial() else {})}


@functools.cache
def where_needs_initial() -> bool:
    """jax before 0.4.27 refuses softmax(where=) without `initial` (ValueError)."""
    import jax
    import jax.numpy as jnp

    try:
        jax.nn.softmax(jnp.zeros(1), where=jnp.ones(1, bool))
    except ValueError as exc:
        return "initial" in str(exc)
    return False


def _optax_safe_ce(x: Any, labels: Any, *, axis: int) -> Any:
    import optax

    return optax.safe_softmax_cross_entropy(x, labels)


def _optax_sigmoid(x: Any, labels: Any, *, axis: None) -> Any:
    import optax

    return optax.sigmoid_binary_cross_entropy(x, labels)


class JaxAdapter(JaxEngine):
    """jax.nn and optax with jax_enable_x64 on."""

    name = "jax"
    cost = 35
    x64: bool | None = True

    def snippet_prelude(self) -> list[str]:
        return [*super().snippet_prelude(), "import optax"]

    def _implementations(self) -> list[Implementation]:
        where = frozenset({Option.WHERE})
        lse = where | {Option.SCALE}
        impls = [
            Implementation(
                "jax.nn.softmax",
                Op.SOFTMAX,
                _softmax,
                options=where,
                axes=Axes.TUPLE,
                modes=_MODES,
                docs_url=_JAX_DOCS + "jax.nn.softmax.html",
                snippet="jax.nn.softmax(x, axis={axis}, where={where?})",
                defaults={"axis": -1, "where": None},
            ),
            Implementation(
                "jax.nn.log_softmax",
                Op.LOG_SOFTMAX,
                _log_softmax,
                options=where,
                axes=Axes.TUPLE,
                modes=_MODES,
                docs_url=_JAX_DOCS + "jax.nn.log_softmax.html",
                snippet="jax.nn.log_softmax(x, axis={axis}, where={where?})",
                defaults={"axis": -1, "where": None},
            ),
            Implementation(
                "jax.nn.logsumexp",
                Op.LOGSUMEXP,
                _nn_logsumexp,
                options=lse,
                axes=Axes.TUPLE,
                modes=_MODES,
                notes="The same function object as jax.scipy.special.logsumexp.",
                docs_url=_JAX_DOCS + "jax.nn.logsumexp.html",
                snippet="jax.nn.logsumexp(x, axis={axis}, b={scale?}, where={where?})",
                defaults=_LOGSUMEXP_DEFAULTS,
            ),
            Implementation(
                "jax.scipy.special.logsumexp",
                Op.LOGSUMEXP,
                _scipy_logsumexp,
                options=lse,
                axes=Axes.TUPLE,
                modes=_MODES,
                docs_url=_JAX_DOCS + "jax.scipy.special.logsumexp.html",
                snippet="jax.scipy.special.logsumexp(x, axis={axis}, b={scale?}, where={where?})",
                defaults=_LOGSUMEXP_DEFAULTS,
            ),
        ]
        if not module_installed("optax"):
            return impls
        optax_impls = [
            Implementation(
                "optax.softmax_cross_entropy",
                Op.SOFTMAX_CROSS_ENTROPY,
                _optax_ce,
                options=where,
                axes=Axes.ANY,
                modes=_MODES,
                docs_url=_OPTAX_DOCS + "softmax_cross_entropy",
                snippet="optax.softmax_cross_entropy(x, labels, axis={axis?}, where={where?})",
                defaults={"axis": -1, "where": None},
            ),
            Implementation(
                "optax.softmax_cross_entropy(optax.smooth_labels)",
                Op.SOFTMAX_CROSS_ENTROPY,
                _optax_ce_smoothed,
                options=where | {Option.LABEL_SMOOTHING},
                axes=Axes.ANY,
                modes=_MODES,
                notes="optax.smooth_labels(labels, eps, axis=axis, where=where): with"
                " where, K counts the unmasked classes.",
                docs_url=_OPTAX_DOCS + "smooth_labels",
                snippet="optax.softmax_cross_entropy(x, optax.smooth_labels(labels,"
                " {label_smoothing}, axis={axis?}, where={where?}), axis={axis?}, where={where?})",
                defaults={"axis": -1, "where": None, "label_smoothing": ABSENT},
            ),
            Implementation(
                "optax.softmax_cross_entropy_with_integer_labels",
                Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
                _optax_sparse_ce,
                options=where,
                axes=Axes.ANY,
                modes=_MODES,
                label_dtype="int32",
                notes="A fully masked row (where) gives loss 0.",
                docs_url=_OPTAX_DOCS + "softmax_cross_entropy_with_integer_labels",
                snippet="optax.softmax_cross_entropy_with_integer_labels(x, labels,"
                " axis={axis?}, where={where?})",
                defaults={"axis": -1, "where": None},
            ),
            Implementation(
                "optax.safe_softmax_cross_entropy",
                Op.SOFTMAX_CROSS_ENTROPY,
                _optax_safe_ce,
                axes=Axes.LAST,
                modes=_MODES,
                notes="Dense labels, last axis only; masks -inf logits.",
                docs_url=_OPTAX_DOCS + "safe_softmax_cross_entropy",
                snippet="optax.safe_softmax_cross_entropy(x, labels)",
                defaults={"axis": ABSENT, "where": ABSENT},
            ),
            Implementation(
                "optax.sigmoid_binary_cross_entropy",
                Op.SIGMOID_CROSS_ENTROPY,
                _optax_sigmoid,
                axes=Axes.ELEMENTWISE,
                modes=_MODES,
                docs_url=_OPTAX_DOCS + "sigmoid_binary_cross_entropy",
                snippet="optax.sigmoid_binary_cross_entropy(x, labels)",
                defaults={"axis": ABSENT},
            ),
        ]
        return impls + optax_impls


class JaxX32Adapter(JaxAdapter):
    """The same APIs with JAX's default jax_enable_x64=False (float64 computed as float32)."""

    name = "jax-x32"
    cost = 9
    x64 = False
    only_dtypes = ("float64",)  # the finding: float64 input computed in float32
