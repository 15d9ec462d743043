"""The registry: built-in names, entry points, import paths, and lazy imports."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest
from fake_adapters import FakeAdapter

from conformance_adapters import registry
from conformance_adapters.registry import AdapterLoadError, adapter_names, get_adapter, load_path

FRAMEWORKS = ("torch", "tensorflow", "jax", "keras", "optax", "scipy", "onnx", "onnxruntime")


def test_importing_adapters_imports_no_framework() -> None:
    code = (
        "import sys, json, conformance_adapters, conformance_adapters.registry as r\n"
        "for n in r.adapter_names():\n"
        "    a = r.get_adapter(n); a.implementations(); a.availability(); a.version()\n"
        "    a.process_env(); a.static_devices(); a.mode_availability()\n"
        f"print(json.dumps([m for m in {FRAMEWORKS!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_builtin_adapters_are_registered() -> None:
    names = adapter_names()
    for name in (
        "scipy",
        "torch",
        "tensorflow",
        "jax",
        "jax-x32",
        "keras-tensorflow",
        "keras-jax",
        "keras-torch",
        "onnxruntime",
    ):
        assert name in names
        adapter = get_adapter(name)
        assert adapter.name == name and adapter.implementations()


@pytest.mark.parametrize(
    "path", ["fake_adapters:FakeAdapter", "fake_adapters:make_fake", "fake_adapters:FAKE_INSTANCE"]
)
def test_import_paths_load(path: str) -> None:
    adapter = get_adapter(path)
    assert isinstance(adapter, FakeAdapter) and adapter.name == "fake"


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("no_such_module_xyz:Adapter", "cannot import module 'no_such_module_xyz'"),
        ("fake_adapters:Nope", "has no attribute 'Nope'"),
        ("fake_adapters:NOT_AN_ADAPTER", "expected a conformance_adapters.base.Adapter"),
        ("fake_adapters:", "not an import path"),
        ("fake_adapters:_softmax", "the factory"),
    ],
)
def test_bad_import_paths_say_why(path: str, fragment: str) -> None:
    with pytest.raises(AdapterLoadError, match=fragment):
        load_path(path)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(AdapterLoadError, match=r"unknown adapter 'nope'.*torch"):
        get_adapter("nope")


def test_entry_points_register_third_party_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = {
        "myfw": importlib.metadata.EntryPoint(
            "myfw", "fake_adapters:FakeAdapter", registry.ENTRY_POINT_GROUP
        ),
        "broken": importlib.metadata.EntryPoint(
            "broken", "no_such_module_xyz:X", registry.ENTRY_POINT_GROUP
        ),
    }
    monkeypatch.setattr(registry, "_entry_points", lambda: eps)
    assert adapter_names()[-2:] == ["broken", "myfw"]
    assert isinstance(get_adapter("myfw"), FakeAdapter)
    with pytest.raises(AdapterLoadError, match="entry point 'broken'"):
        get_adapter("broken")
    assert "fake" in [a.name for a in registry.all_adapters()]


def test_keras_backend_conflict_makes_other_backends_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Config:
        @staticmethod
        def backend() -> str:
            return "tensorflow"

    class Keras:
        config = Config

    monkeypatch.setitem(sys.modules, "keras", Keras)
    ok, reason = get_adapter("keras-jax").availability()
    assert not ok and "already imported with backend 'tensorflow'" in reason
    assert "KERAS_BACKEND=jax" in reason
    assert get_adapter("keras-tensorflow").availability() == (True, "")


def test_torch_compile_is_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance_adapters.torch_adapter import COMPILE_ENV, TorchAdapter

    monkeypatch.delenv(COMPILE_ENV, raising=False)
    assert "opt-in" in TorchAdapter().mode_availability()["compiled"]
    assert TorchAdapter(compile=True).mode_availability()["compiled"] == ""
    monkeypatch.setenv(COMPILE_ENV, "1")
    assert TorchAdapter().mode_availability()["compiled"] == ""


def test_process_env_of_adapters(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", "off")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    assert get_adapter("jax").process_env() == {"JAX_ENABLE_X64": "1"}
    assert get_adapter("jax-x32").process_env() == {"JAX_ENABLE_X64": "0"}
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path))
    env = get_adapter("jax").process_env()  # JAX's persistent cache, per CPU model
    assert env["JAX_COMPILATION_CACHE_DIR"].startswith(str(tmp_path / "jax-"))
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/elsewhere")  # the user's own wins
    assert "JAX_COMPILATION_CACHE_DIR" not in get_adapter("jax").process_env()
    assert get_adapter("keras-jax").process_env()["KERAS_BACKEND"] == "jax"
    assert get_adapter("tensorflow-onednn-off").process_env()["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert "TF_ENABLE_ONEDNN_OPTS" not in get_adapter("tensorflow").process_env()
