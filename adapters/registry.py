"""Finding adapters: built-in names, the `conformance.adapters` entry point group, and
'module:attribute' import paths. Importing this module imports no framework."""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from conformance_adapters.base import Adapter

ENTRY_POINT_GROUP = "conformance.adapters"

BUILTIN: dict[str, str] = {
    "scipy": "conformance_adapters.scipy_adapter:ScipyAdapter",
    "torch": "conformance_adapters.torch_adapter:TorchAdapter",
    "tensorflow": "conformance_adapters.tensorflow_adapter:TensorFlowAdapter",
    "tensorflow-onednn-off": "conformance_adapters.tensorflow_adapter:TensorFlowOneDnnOffAdapter",
    "jax": "conformance_adapters.jax_adapter:JaxAdapter",
    "jax-x32": "conformance_adapters.jax_adapter:JaxX32Adapter",
    "keras-tensorflow": "conformance_adapters.keras_adapter:KerasTensorFlowAdapter",
    "keras-jax": "conformance_adapters.keras_adapter:KerasJaxAdapter",
    "keras-torch": "conformance_adapters.keras_adapter:KerasTorchAdapter",
    "onnxruntime": "conformance_adapters.onnxruntime_adapter:OnnxRuntimeAdapter",
}
"""Built-in adapter names -> import paths (the modules import their framework lazily)."""


class AdapterLoadError(LookupError):
    """An adapter name or import path that does not give an Adapter."""


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def adapter_names() -> list[str]:
    """Built-in adapters first, then those registered by entry point."""
    names = list(BUILTIN)
    names += sorted(n for n in _entry_points() if n not in BUILTIN)
    return names


def as_adapter(obj: Any, where: str) -> Adapter:
    """An Adapter from an Adapter instance, an Adapter subclass or a zero-argument factory."""
    if isinstance(obj, Adapter):
        return obj
    if isinstance(obj, type) and issubclass(obj, Adapter):
        return obj()
    if callable(obj) and not isinstance(obj, type):
        try:
            made = obj()
        except Exception as exc:
            raise AdapterLoadError(
                f"{where}: calling the factory failed: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(made, Adapter):
            return made
        raise AdapterLoadError(
            f"{where}: the factory returned {type(made).__name__}, "
            "not a conformance_adapters.base.Adapter"
        )
    raise AdapterLoadError(
        f"{where} is {type(obj).__name__}: expected a conformance_adapters.base.Adapter"
        " subclass, instance or zero-argument factory"
    )


def load_path(path: str) -> Adapter:
    """The adapter at 'package.module:attribute' (attribute may be dotted)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise AdapterLoadError(f"{path!r} is not an import path of the form 'module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise AdapterLoadError(
            f"cannot import module {module_name!r} for adapter {path!r}: {exc}"
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AdapterLoadError(
                f"module {module_name!r} has no attribute {attr!r} (adapter {path!r})"
            ) from None
    return as_adapter(obj, path)


def get_adapter(name_or_path: str) -> Adapter:
    """A fresh adapter by built-in name, entry point name or 'module:attribute' path."""
    if name_or_path in BUILTIN:
        return load_path(BUILTIN[name_or_path])
    if ":" in name_or_path:
        return load_path(name_or_path)
    eps = _entry_points()
    if name_or_path in eps:
        try:
            obj = eps[name_or_path].load()
        except Exception as exc:
            raise AdapterLoadError(
                f"entry point {name_or_path!r} ({eps[name_or_path].value}) failed to load: {exc}"
            ) from exc
        return as_adapter(obj, f"entry point {name_or_path!r}")
    known = ", ".join(adapter_names())
    raise AdapterLoadError(
        f"unknown adapter {name_or_path!r}: not one of {known}, nor a 'module:attribute' path"
    )


def all_adapters() -> list[Adapter]:
    """Every built-in and entry-point adapter (entry points that fail to load are skipped)."""
    found = []
    for name in adapter_names():
        try:
            found.append(get_adapter(name))
        except AdapterLoadError:
            continue
    return found
