"""The defaults-and-signatures check: what each API's parameters default to.

Frameworks differ in their defaults (softmax's axis: the last, the whole array, or chosen by
rank; the reduction: `mean`, `sum_over_batch_size`; the ignore index: -100 or none;
`from_logits`: False in Keras), and a release that changes one changes every caller's
answer silently. Each implementation documents its defaults (`Implementation.defaults`, from
the framework's docs); the check reads the installed release's signature
(`Adapter.installed_defaults`) and records both, parameter by parameter, in the cell's
record. The report tabulates them by concept; `conformance diff` says when a release changed
one. A parameter the docs give and the installed release lacks, or defaults otherwise, is a
disagreement.
"""

from __future__ import annotations

from typing import Any

from conformance_adapters.base import Adapter
from conformance_adapters.interface import Implementation
from conformance_adapters.signatures import ABSENT, as_source

CONCEPTS: dict[str, tuple[str, ...]] = {
    "axis": ("axis", "dim", "axes"),
    "keepdims": ("keepdims", "keepdim"),
    "from_logits": ("from_logits",),
    "reduction": ("reduction",),
    "ignore_index": ("ignore_index", "ignore_class"),
    "label_smoothing": ("label_smoothing",),
    "class_weights": ("weight", "weights"),
    "where": ("where", "mask"),
    "scale": ("b",),
    "pos_weight": ("pos_weight",),
}
"""The report's columns, and the framework parameter names that mean each: one table. A
column named like a catalog option (`Option`) is that option's default."""

_CONCEPT_OF = {name: concept for concept, names in CONCEPTS.items() for name in names}


def concept(parameter: str) -> str:
    """The column of a framework parameter (the parameter's own name when no concept)."""
    return _CONCEPT_OF.get(parameter, parameter)


def check_defaults(adapter: Adapter, impl: Implementation) -> dict[str, Any]:
    """{api, parameters: [{parameter, concept, documented, installed, agrees}]} for the
    record; `installed` and `agrees` are None where the release's signature cannot be read."""
    try:
        installed = adapter.installed_defaults(impl)
    except Exception:  # an old release's layout must not fail the cell: unread
        installed = None
    rows = []
    for parameter, value in impl.defaults.items():
        documented = as_source(value)
        got = None if installed is None else installed.get(parameter, str(ABSENT))
        rows.append(
            {
                "parameter": parameter,
                "concept": concept(parameter),
                "documented": documented,
                "installed": got,
                "agrees": None if got is None else got == documented,
            }
        )
    return {"api": impl.api_path, "parameters": rows}


def disagreements(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The parameters of a recorded check whose installed default is not the documented one."""
    return [p for p in entry.get("parameters") or [] if p.get("agrees") is False]
