"""Framework adapters: the one interface (`conformance_adapters.base`) and a lazy registry.

Importing this package, the registry or any adapter module imports no framework.
"""

from conformance_adapters.base import Adapter
from conformance_adapters.interface import (
    Axes,
    Call,
    ErrorInfo,
    Implementation,
    Outcome,
    UnsupportedCall,
)
from conformance_adapters.registry import adapter_names, all_adapters, get_adapter, load_path

__all__ = [
    "Adapter",
    "Axes",
    "Call",
    "ErrorInfo",
    "Implementation",
    "Outcome",
    "UnsupportedCall",
    "adapter_names",
    "all_adapters",
    "get_adapter",
    "load_path",
]
