"""Copy-paste reproducers: exact inputs as bytes, then the call in the framework's own API.

The call is the Implementation's `snippet` with the adapter's `snippet_*` hooks
(`conformance_adapters.base.Adapter`): environment, imports, conversions to native arrays,
the wrapper
of the cell's mode, and printing the output exactly. Static options are constants; the
arrays are arguments of a compiled function, as the adapter traces them.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np

from conformance_adapters.base import Adapter
from conformance_adapters.interface import ARRAY_OPTIONS, Call, Implementation
from conformance_adapters.release import render_template


def array_literal(name: str, a: np.ndarray) -> str:
    """Python that rebuilds `a` bit for bit (base64 of its little-endian bytes)."""
    a = np.asarray(a)
    data = base64.b64encode(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()).decode()
    dtype = "ml_dtypes.bfloat16" if a.dtype.name == "bfloat16" else f'"{a.dtype.name}"'
    return (
        f'{name} = np.frombuffer(base64.b64decode("{data}"), dtype={dtype})'
        f".reshape({tuple(a.shape)!r}).copy()"
    )


def snippet(
    adapter: Adapter,
    impl: Implementation,
    x: np.ndarray,
    labels: np.ndarray | None,
    options: dict[str, Any],
    mode: str,
    rows: int | None = None,
) -> str:
    """A self-contained script reproducing one call of `impl` in `mode` on exact inputs:
    the arrays as the framework receives them, the call, and `print` of the output.
    `rows`: the call repeated the input's rows along axis 0 to this many (the harness
    batches row-wise inputs; see `batching.stack`)."""
    static, inputs = adapter.prepare(impl, Call(x, labels, options, mode=mode))
    arrays = {k: v for k, v in inputs.items() if v is not None and k != "cotangent"}
    literals = [array_literal(k, v) for k, v in arrays.items()]
    if rows:
        literals += [
            f"{k} = np.resize({k}, ({rows}, *{k}.shape[1:]))  # the call: these rows, repeated"
            for k in ("x", "labels")
            if k in arrays
        ]
    wrapper = adapter.snippet_wrapper(mode) if impl.snippet else None
    if wrapper is None:
        printable = {k: (k if isinstance(v, np.ndarray) else v) for k, v in options.items()}
        comment = f"# {impl.name} on x{', labels' if labels is not None else ''}"
        return _script({}, [*literals, "", f"{comment} with {printable} ({mode})"])
    passed = {k: inputs.get(k) for k in impl.option_names if k in ARRAY_OPTIONS}
    values = adapter.snippet_values(impl, static | passed, np.ndim(x))
    expr = render_template(impl.snippet, static | passed).format(**values)
    if wrapper != "{}":
        names = ", ".join(arrays)
        expr = f"{wrapper.format(f'lambda {names}: {expr}')}({names})"
    native = {k: adapter.snippet_array(k, v) for k, v in arrays.items()}
    body = [
        *literals,
        *(f"{k} = {v}" for k, v in native.items() if v != k),
        f"out = {expr}",
        f"print({adapter.snippet_result})",
    ]
    return _script(adapter.snippet_env(), [*adapter.snippet_prelude(), "", *body])


def _script(env: dict[str, str], lines: list[str]) -> str:
    """The environment first (before any import), the imports `lines` use, then `lines`."""
    settings = [f"os.environ[{json.dumps(k)}] = {json.dumps(v)}" for k, v in env.items()]
    head = ["import os", "", *settings, ""] if env else []
    imports = ["import base64", "import ml_dtypes  # noqa: F401 (bfloat16)", "import numpy as np"]
    rest = [ln for ln in lines if not ln.startswith("import ")]
    names = _names("\n".join(rest))
    imports += [ln for ln in lines if ln.startswith("import ") and _binds(ln) in names]
    return "\n".join([*head, *imports, *rest]) + "\n"


def _binds(line: str) -> str:
    """The name an import line binds: 'import a.b as c' -> c, 'import a.b' -> a."""
    words = line.split()
    return words[3] if len(words) > 3 and words[2] == "as" else words[1].split(".")[0]


def _names(code: str) -> set[str]:
    """Names used as `name.attribute` in `code` (not after a dot)."""
    return set(re.findall(r"(?<![\w.])([A-Za-z_]\w*)\.", code))
