"""What the installed release of a framework accepts, read from an implementation's snippet.

The snippet (`Implementation.snippet`) is the call in the framework's own API, with each
option as a `keyword={option}` placeholder: it names the callables and which keyword carries
which option. A release whose callable has no such keyword cannot express a call that sets
the option; the suite then says so (`unsupported`, with the reason) instead of recording
the TypeError of its own call as the framework's error. A placeholder written `{option?}`
is left out of the call while the option is unset (None): the suite passes only what the
call sets, so an old release that lacks the keyword still runs every other call.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
from typing import Any

from conformance.ops import OPTIONS, is_default

OPTION_NAMES = frozenset(o.value for o in OPTIONS)

_PLACEHOLDER = re.compile(r"\{(\w+)\??\}")
_OPTIONAL = re.compile(r",\s*\w+=\{(\w+)\?\}")


def render_template(snippet: str, options: dict[str, Any]) -> str:
    """The snippet's template for one call: `, kw={option?}` dropped while the option is at
    its default, kept as `, kw={option}` otherwise (then filled in by str.format)."""

    def keep(match: re.Match[str]) -> str:
        return "" if unset(match.group(1), options) else match.group(0).replace("?}", "}")

    return _OPTIONAL.sub(keep, snippet)


def unset(name: str, options: dict[str, Any]) -> bool:
    """Whether a placeholder's option is absent or at its default (the call leaves it out)."""
    value = options.get(name)
    return value is None or (name in OPTION_NAMES and is_default(name, value))


@functools.cache
def option_keywords(snippet: str) -> tuple[tuple[str, str, str, bool], ...]:
    """(callable as written, keyword, option, left out while unset) for each
    `keyword={option}` or `keyword={option?}` in the snippet."""
    source = _PLACEHOLDER.sub(
        lambda m: f"__option_{m.group(1)}{'__' if m.group(0).endswith('?}') else ''}", snippet
    )
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        return ()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            value = kw.value
            if kw.arg and isinstance(value, ast.Name) and value.id.startswith("__option_"):
                name = value.id.removeprefix("__option_")
                optional = name.endswith("__")
                found.append((ast.unparse(node.func), kw.arg, name.removesuffix("__"), optional))
    return tuple(found)


def _resolve(dotted: str) -> Any | None:
    """The object a dotted name as written in a snippet refers to (None: not a plain name)."""
    parts = dotted.split(".")
    if not all(p.isidentifier() for p in parts):
        return None
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


@functools.cache
def accepts(dotted: str, keyword: str) -> bool:
    """Whether the callable takes `keyword` (True when its signature cannot be read)."""
    obj = _resolve(dotted)
    if obj is None:
        return True
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return True
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def lacking(snippet: str, options: dict[str, Any]) -> str | None:
    """Why the installed release cannot make this call: a keyword the call passes (an
    option it sets, or one always passed) that the release's callable does not take (None:
    nothing lacks)."""
    for func, keyword, option, optional in option_keywords(snippet):
        if not (optional and unset(option, options)) and not accepts(func, keyword):
            return f"{func} has no {keyword}= in the installed release (the call sets {option})"
    return None
