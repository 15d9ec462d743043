"""Copy-paste reproducers: exact inputs as bytes, then the call in the framework's own API."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def array_literal(name: str, a: np.ndarray) -> str:
    """Python that rebuilds `a` bit for bit (base64 of its little-endian bytes)."""
    a = np.asarray(a)
    data = base64.b64encode(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()).decode()
    dtype = "ml_dtypes.bfloat16" if a.dtype.name == "bfloat16" else f'"{a.dtype.name}"'
    return (
        f'{name} = np.frombuffer(base64.b64decode("{data}"), dtype={dtype})'
        f".reshape({tuple(a.shape)!r})"
    )


def snippet(
    adapter: Any, impl: Any, x: np.ndarray, labels: np.ndarray | None, options: dict[str, Any]
) -> str:
    """A self-contained script reproducing one call of `impl` on exact inputs."""
    lines = [
        "import base64",
        "import ml_dtypes  # noqa: F401 (bfloat16)",
        "import numpy as np",
        "",
        array_literal("x", x),
    ]
    if labels is not None:
        lines.append(array_literal("labels", labels))
    for key, value in options.items():
        if isinstance(value, np.ndarray):
            lines.append(array_literal(key, value))
    call = getattr(adapter, "snippet_call", None)
    text = call(impl, options) if callable(call) else None
    if text:
        lines += ["", text]
    else:
        printable = {k: (k if isinstance(v, np.ndarray) else v) for k, v in options.items()}
        lines += [
            "",
            f"# {impl.name} on x{', labels' if labels is not None else ''} with {printable}",
        ]
    return "\n".join(lines) + "\n"
