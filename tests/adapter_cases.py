"""Smoke tests for the adapters named in CONFORMANCE_TEST_ADAPTERS (comma-separated), run in
a worker process by `test_adapter_workers.py`: adapters that need a process of their own
(a Keras backend is fixed per process, TF_ENABLE_ONEDNN_OPTS is read when TensorFlow is
imported), and those whose XLA compiles are best spread over the CPUs."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from adapter_smoke import cells, check_cell, check_options, make_call, run_and_check

from conformance.dtypes import as_dtype
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Call, UnsupportedCall
from conformance_adapters.registry import get_adapter

NAMES = [n for n in os.environ.get("CONFORMANCE_TEST_ADAPTERS", "scipy").split(",") if n]
ADAPTERS: dict[str, Adapter] = {name: get_adapter(name) for name in NAMES}

VARIANT_OF = {"jax-x32": "jax", "tensorflow-onednn-off": "tensorflow"}
"""Adapters whose API mapping is another's (only a process setting differs): their options
are covered there."""
FLOAT64_COMES_BACK_AS = {"jax-x32": "float32", "keras-jax": "float32"}
"""Silent float64 -> float32: JAX's default x64 off (keras-jax leaves it so)."""


def _adapter(name: str) -> Adapter:
    adapter = ADAPTERS[name]
    available, reason = adapter.availability()
    if not available:
        pytest.skip(reason)
    return adapter


def _params(per_adapter: str) -> list[object]:
    out: list[object] = []
    for name, adapter in ADAPTERS.items():
        if per_adapter == "cells":
            out += [
                pytest.param(name, *p.values, marks=p.marks, id=f"{name}:{p.id}")
                for p in cells(adapter)
            ]
        elif per_adapter == "impls" and name not in VARIANT_OF:
            out += [
                pytest.param(name, i.name, id=f"{name}:{i.name}") for i in adapter.implementations()
            ]
        elif per_adapter == "adapters":
            out.append(pytest.param(name, id=name))
        elif per_adapter == "float64" and adapter.only_dtypes in (None, ("float64",)):
            out.append(pytest.param(name, id=name))
    return out


@pytest.mark.parametrize(("name", "impl", "dtype", "mode"), _params("cells"))
def test_cell(name: str, impl: str, dtype: str, mode: str) -> None:
    check_cell(_adapter(name), impl, dtype, mode)


@pytest.mark.parametrize(("name", "impl"), _params("impls"))
def test_options(name: str, impl: str) -> None:
    check_options(_adapter(name), impl)


@pytest.mark.parametrize("name", _params("adapters"))
def test_environment_and_devices(name: str) -> None:
    adapter = _adapter(name)
    env = adapter.environment()
    assert env["adapter"] == name and env["version"] == adapter.version()
    assert "cpu" in env["devices"] and adapter.devices()[0] == "cpu"


@pytest.mark.parametrize("name", _params("float64"))
def test_float64_output_dtype(name: str) -> None:
    adapter = _adapter(name)
    impl = next(i for i in adapter.implementations() if i.op.value == "softmax")
    out = adapter.run(impl, Call(np.array([[1.0, 2.0, 3.0]]), options={"axis": -1}))
    assert out.error is None and out.warnings == []
    assert out.output_dtype == FLOAT64_COMES_BACK_AS.get(name, "float64")


@pytest.mark.parametrize("name", _params("adapters"))
def test_cuda_is_refused_without_a_gpu(name: str) -> None:
    adapter = _adapter(name)
    if "cuda" in adapter.devices():
        pytest.skip("this machine has a CUDA device")
    impl = adapter.implementations()[0]
    x = np.zeros((2, 3), as_dtype(impl.dtypes[-1]))
    with pytest.raises(UnsupportedCall, match="cuda"):
        adapter.run(impl, Call(x, device="cuda"))


@pytest.mark.parametrize(("name", "impl"), _params("impls"))
def test_cuda_cell(name: str, impl: str) -> None:
    adapter = _adapter(name)
    if "cuda" not in adapter.devices():
        pytest.skip(f"{name} sees no CUDA device")
    implementation = adapter.implementation(impl)
    call = make_call(implementation, "float32", "eager")
    run_and_check(adapter, implementation, dataclasses.replace(call, device="cuda"))


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("tensorflow")])
def test_tensorflow_error_and_native_log_are_captured(name: str) -> None:
    adapter = _adapter(name)
    impl = adapter.implementation("tf.nn.sparse_softmax_cross_entropy_with_logits")
    x = np.zeros((2, 3), np.float32)
    out = adapter.run(impl, Call(x, np.array([0, 5]), {"axis": -1}))
    assert out.error is not None and out.error.type.endswith("InvalidArgumentError")
    assert "label value of 5" in out.error.message
    assert "OP_REQUIRES failed" in out.stderr
    xla = adapter.run(impl, Call(x, np.array([0, 5]), {"axis": -1}, mode="compiled-xla"))
    assert xla.error is None and xla.value is not None and np.isnan(xla.value[1])


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("keras-")])
def test_keras_activation_output_reaches_the_loss_as_the_tensor_it_is(name: str) -> None:
    """The activation-output-as-logits misuse passes the Keras activation's own tensor to
    the loss in one call (every mode): on TensorFlow, Keras recognises it, warns and uses
    the logits it remembered, which only happens if the tensor is Keras' own."""
    from conformance.drawing import options_for
    from conformance.misuse import run_misuse

    adapter = _adapter(name)
    impl = adapter.implementation("keras.losses.CategoricalCrossentropy(from_logits=True)")
    for mode in (m for m in impl.modes if not adapter.mode_availability().get(m)):
        misuse = run_misuse(adapter, impl, np.dtype("float32"), "cpu", mode, options_for(impl, {}))
        entry = misuse["activation-output-as-logits"]
        assert entry["relative_error"] is not None, (mode, entry)
        if adapter.backend == "tensorflow":
            assert entry["reaction"] == "warns" and "Softmax activation" in entry["message"]
            assert entry["relative_error"] < 1e-6, (mode, entry)
