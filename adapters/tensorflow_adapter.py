"""TensorFlow: tf.nn softmax / cross-entropy ops and tf.math.reduce_logsumexp.

`TensorFlowEngine` (conversions, GradientTape, tf.function with and without XLA) is shared
with the keras-tensorflow adapter.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from conformance.cache import cache_dir, machine_tag
from conformance.ops import Op
from conformance_adapters.base import Adapter
from conformance_adapters.common import distribution_version
from conformance_adapters.interface import Axes, Implementation, Runner
from conformance_adapters.signatures import ABSENT

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
_DOCS = "https://www.tensorflow.org/api_docs/python/"
_MODES = ("eager", "compiled", "compiled-xla")


class _RetracingFilter(logging.Filter):
    """Drops TF's 'triggered tf.function retracing' warning: the adapter makes one
    tf.function per shape on purpose, so the warning would blame the framework's call."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


XLA_CACHE_NOISE = (
    "Error parsing text-format tensorflow.XlaSerializedCacheEntry",
    "Loading XLA:CPU AOT result. Target machine feature +prefer-no-",
    "All log messages before absl::InitializeLog() is called are written to STDERR",
)
"""What TensorFlow's XLA loader logs (at ERROR level) for every entry it reads from its
persistent cache, all on the machine that wrote it: it tries the text format before the
binary one, and it takes LLVM's tuning attributes `+prefer-no-gather`/`+prefer-no-scatter`
for CPU features the host lacks (openxla/xla#44565); the first such line also brings absl's
note that logging is not initialized. Lines of the suite's own caching, not of the call:
dropped from what a call wrote to stderr."""


def xla_cache_env(version: str | None) -> dict[str, str]:
    """TensorFlow's persistent XLA cache in the suite's cache (`conformance.cache`): each
    compiled cluster is written once and loaded by later runs (a quick run's XLA cells spend
    ~0.15 s per new shape compiling). One folder per CPU (`machine_tag`), TensorFlow version,
    `XLA_FLAGS` and oneDNN setting, so an executable is only ever loaded where and as it was
    compiled. A `TF_XLA_FLAGS` the user set is left as it is."""
    if "TF_XLA_FLAGS" in os.environ:
        return {}
    shaping = "|".join(f"{k}={os.environ.get(k)}" for k in ("XLA_FLAGS", ONEDNN_ENV))
    tag = hashlib.sha256(f"{version}|{shaping}".encode()).hexdigest()[:12]
    folder = cache_dir(f"tf-xla-{machine_tag()}-{tag}")
    if folder is None:
        return {}
    return {"TF_XLA_FLAGS": f"--tf_xla_persistent_cache_directory={folder}"}


class TensorFlowEngine(Adapter):
    """tf.constant in, .numpy() out (bf16 is ml_dtypes.bfloat16 both ways); tf.GradientTape."""

    modules: tuple[str, ...] = ("tensorflow",)
    own_log_lines = XLA_CACHE_NOISE
    onednn: bool | None = None
    """None: TF's own default (oneDNN on for x86-64 Linux CPUs) or the user's environment;
    True/False: pin TF_ENABLE_ONEDNN_OPTS (must be set before TensorFlow is imported)."""
    snippet_result = "out.numpy().tolist()"

    @property  # type: ignore[override]
    def framework(self) -> str:
        """The installed distribution: 'tensorflow-cpu', 'tensorflow' or a GPU build."""
        for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"):
            if distribution_version(dist):
                return dist
        return "tensorflow"

    def process_env(self) -> dict[str, str]:
        env = {"TF_CPP_MIN_LOG_LEVEL": "1"}
        if self.onednn is not None:
            env[ONEDNN_ENV] = "1" if self.onednn else "0"
        return env

    def availability(self) -> tuple[bool, str]:
        ok, reason = super().availability()
        if ok and self.onednn is not None and "tensorflow" in sys.modules:
            current = os.environ.get(ONEDNN_ENV)
            if current != self.process_env()[ONEDNN_ENV]:
                return False, (
                    f"TensorFlow was already imported in this process with "
                    f"{ONEDNN_ENV}={current}; this adapter needs a fresh process"
                )
        return ok, reason

    def _tf(self) -> Any:
        if "tensorflow" not in sys.modules:
            for key, value in self.process_env().items():
                if key == ONEDNN_ENV:
                    os.environ[key] = value
                else:
                    os.environ.setdefault(key, value)
            os.environ.update(xla_cache_env(distribution_version(self.framework)))
        import tensorflow as tf

        logger = logging.getLogger("tensorflow")
        if not any(isinstance(f, _RetracingFilter) for f in logger.filters):
            logger.addFilter(_RetracingFilter())
        return tf

    def _import(self) -> None:
        self._tf()

    def devices(self) -> list[str]:
        tf = self._tf()
        return ["cpu", "cuda"] if tf.config.list_physical_devices("GPU") else ["cpu"]

    def static_devices(self) -> list[str]:
        return ["cpu"] if self.framework == "tensorflow-cpu" else super().static_devices()

    def environment(self) -> dict[str, Any]:
        tf = self._tf()
        from tensorflow.python.util import _pywrap_util_port

        env = super().environment()
        env.update(
            {
                "tensorflow": tf.__version__,
                ONEDNN_ENV: os.environ.get(ONEDNN_ENV, "unset (TensorFlow's default)"),
                "onednn_enabled": bool(_pywrap_util_port.IsMklEnabled()),
                "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL"),
                "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
                "TF_XLA_FLAGS": os.environ.get("TF_XLA_FLAGS"),
                "TF_DETERMINISTIC_OPS": os.environ.get("TF_DETERMINISTIC_OPS"),
                "tf.intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "tf.inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "tf.tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled(),
                "tf.build_info": dict(tf.sysconfig.get_build_info()),
                "devices": {"cpu": "/CPU:0"}
                | ({"cuda": "/GPU:0"} if "cuda" in self.devices() else {}),
            }
        )
        return env

    def _device_scope(self, device: str) -> contextlib.AbstractContextManager[Any]:
        tf = self._tf()
        return tf.device("/GPU:0" if device == "cuda" else "/CPU:0")

    def _to_native(self, a: np.ndarray, device: str) -> Any:
        tf = self._tf()
        return tf.identity(tf.constant(a))

    def _to_numpy(self, value: Any) -> np.ndarray:
        return np.array(value.numpy(), copy=True)

    def snippet_env(self) -> dict[str, str]:
        return {} if self.onednn is None else {ONEDNN_ENV: self.process_env()[ONEDNN_ENV]}

    def snippet_prelude(self) -> list[str]:
        return ["import tensorflow as tf"]

    def snippet_array(self, name: str, a: np.ndarray) -> str:
        return f"tf.constant({name})"

    def snippet_wrapper(self, mode: str) -> str | None:
        if mode == "compiled":
            return "tf.function({}, autograph=False)"
        if mode == "compiled-xla":
            return "tf.function({}, autograph=False, jit_compile=True)"
        return super().snippet_wrapper(mode)

    def _build(self, fn: Callable[..., Any], mode: str, grad: bool) -> Runner:
        tf = self._tf()

        def step(x: Any, labels: Any, arrays: dict[str, Any], ct: Any) -> tuple[Any, Any]:
            if not grad:
                return fn(x, labels, arrays), None
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x, labels, arrays)
            g = tape.gradient(y, x, output_gradients=tf.cast(ct, y.dtype))
            return y, tf.zeros_like(x) if g is None else tf.convert_to_tensor(g)

        if mode == "compiled":
            return tf.function(step, autograph=False)
        if mode == "compiled-xla":
            return tf.function(step, autograph=False, jit_compile=True)
        return step


# ----------------------------------------------------------------------------- the API mapping


def _softmax(x: Any, labels: Any, *, axis: int) -> Any:
    import tensorflow as tf

    return tf.nn.softmax(x, axis=axis)


def _log_softmax(x: Any, labels: Any, *, axis: int) -> Any:
    import tensorflow as tf

    return tf.nn.log_softmax(x, axis=axis)


def _logsumexp(x: Any, labels: Any, *, axis: int | tuple[int, ...] | None) -> Any:
    import tensorflow as tf

    return tf.math.reduce_logsumexp(x, axis=list(axis) if isinstance(axis, tuple) else axis)


def _softmax_ce(x: Any, labels: Any, *, axis: int) -> Any:
    import tensorflow as tf

    return tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=x, axis=axis)


def _sparse_softmax_ce(x: Any, labels: Any, *, axis: int) -> Any:
    import tensorflow as tf

    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x)


def _sigmoid_ce(x: Any, labels: Any, *, axis: None) -> Any:
    import tensorflow as tf

    return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=x)


class TensorFlowAdapter(TensorFlowEngine):
    """tf.nn on CPU (GPU when a CUDA build sees one); eager, tf.function, tf.function+XLA."""

    name = "tensorflow"
    cost = 15
    api_aliases: ClassVar[dict[str, str]] = {"tf": "tensorflow"}

    def _implementations(self) -> list[Implementation]:
        nn = _DOCS + "tf/nn/"
        return [
            Implementation(
                "tf.nn.softmax",
                Op.SOFTMAX,
                _softmax,
                axes=Axes.ANY,
                modes=_MODES,
                docs_url=nn + "softmax",
                snippet="tf.nn.softmax(x, axis={axis})",
                defaults={"axis": None},
            ),
            Implementation(
                "tf.nn.log_softmax",
                Op.LOG_SOFTMAX,
                _log_softmax,
                axes=Axes.ANY,
                modes=_MODES,
                docs_url=nn + "log_softmax",
                snippet="tf.nn.log_softmax(x, axis={axis})",
                defaults={"axis": None},
            ),
            Implementation(
                "tf.math.reduce_logsumexp",
                Op.LOGSUMEXP,
                _logsumexp,
                axes=Axes.TUPLE,
                modes=_MODES,
                docs_url=_DOCS + "tf/math/reduce_logsumexp",
                snippet="tf.math.reduce_logsumexp(x, axis={axis})",
                defaults={"axis": None, "keepdims": False},
            ),
            Implementation(
                "tf.nn.softmax_cross_entropy_with_logits",
                Op.SOFTMAX_CROSS_ENTROPY,
                _softmax_ce,
                axes=Axes.ANY,
                modes=_MODES,
                docs_url=nn + "softmax_cross_entropy_with_logits",
                snippet="tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=x,"
                " axis={axis})",
                defaults={"axis": -1},
            ),
            Implementation(
                "tf.nn.sparse_softmax_cross_entropy_with_logits",
                Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
                _sparse_softmax_ce,
                axes=Axes.LAST,
                modes=_MODES,
                label_dtype="int64",
                notes="Out-of-range labels raise on CPU and give NaN on GPU.",
                docs_url=nn + "sparse_softmax_cross_entropy_with_logits",
                snippet="tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x)",
                defaults={"axis": ABSENT},
            ),
            Implementation(
                "tf.nn.sigmoid_cross_entropy_with_logits",
                Op.SIGMOID_CROSS_ENTROPY,
                _sigmoid_ce,
                axes=Axes.ELEMENTWISE,
                modes=_MODES,
                docs_url=nn + "sigmoid_cross_entropy_with_logits",
                snippet="tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=x)",
                defaults={"axis": ABSENT},
            ),
        ]

    def snippet_values(
        self, impl: Implementation, options: dict[str, Any], ndim: int
    ) -> dict[str, str]:
        values = super().snippet_values(impl, options, ndim)
        if isinstance(options.get("axis"), tuple):  # _logsumexp: a list
            values["axis"] = repr([int(a) for a in options["axis"]])
        return values


class TensorFlowOneDnnOffAdapter(TensorFlowAdapter):
    """The same APIs with oneDNN's custom CPU kernels off (TF_ENABLE_ONEDNN_OPTS=0)."""

    name = "tensorflow-onednn-off"
    cost = 6.5
    onednn = False
    only_dtypes = ("float32", "bfloat16")  # the dtypes oneDNN's CPU kernels serve
