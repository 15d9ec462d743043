"""The parameter defaults an installed release declares, read from its signatures.

What `Implementation.defaults` documents is checked against these (`conformance.defaults`),
as array-api-tests checks signatures against the standard. Values are Python source text
(`repr`) so that they compare exactly and travel as JSON; a parameter without a default is
`REQUIRED`, one the release does not have `ABSENT`, an optional one without a default
(ONNX attributes) `UNSET`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from typing import Any


class Word(str):
    """A default that is not a value: written as the word, not as a Python literal."""


REQUIRED = Word("required")
ABSENT = Word("absent")
UNSET = Word("unset")


def as_source(value: Any) -> str:
    """A documented default as the text `parameter_defaults` gives for it."""
    return str(value) if isinstance(value, Word) else repr(value)


_DOCSTRING_SIGNATURE = re.compile(r"^\s*\w+\((?P<params>[^)]*)\)")


def resolve(path: str) -> Any:
    """The object at dotted `path` (its longest importable module prefix, then attributes)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"nothing importable in {path!r}")


def _source(default: Any) -> str:
    return str(REQUIRED) if default is inspect.Parameter.empty else repr(default)


def _from_docstring(obj: Any) -> dict[str, str] | None:
    """A builtin's signature from its docstring's first line, `name(a, b=1, *, c=None)`,
    the form torch's C functions document themselves in."""
    match = _DOCSTRING_SIGNATURE.match(getattr(obj, "__doc__", None) or "")
    if match is None:
        return None
    try:
        tree = ast.parse(f"def f({match['params']}): pass")
    except SyntaxError:
        return None
    args = tree.body[0].args  # type: ignore[attr-defined]
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults, strict=True))
    pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    out: dict[str, str] = {}
    for arg, node in pairs:
        if node is None:
            out[arg.arg] = str(REQUIRED)
            continue
        try:
            out[arg.arg] = repr(ast.literal_eval(node))
        except ValueError:
            out[arg.arg] = ast.unparse(node)
    return out


def _signature_defaults(obj: Any) -> dict[str, str] | None:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return _from_docstring(obj)
    return {
        name: _source(p.default)
        for name, p in signature.parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name != "self"
    }


def parameter_defaults(obj: Any) -> dict[str, str] | None:
    """Each parameter of callable `obj` and its default as source text; a class: its
    constructor's, then those of its `call` (a Keras layer takes `mask=` there). None when
    neither the signature nor the docstring says."""
    out = _signature_defaults(obj)
    if out is not None and inspect.isclass(obj) and callable(getattr(obj, "call", None)):
        out = {**(_signature_defaults(obj.call) or {}), **out}
    return out
