"""The report's defaults table: what each API's parameters default to, by concept.

Built from the records' `defaults` (`conformance.defaults.check_defaults`): one row per API
and set of defaults, whichever adapters share it (Keras on its three backends), one column
per concept (`conformance.defaults.CONCEPTS`) that some row has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance.defaults import CONCEPTS
from conformance_adapters.signatures import ABSENT, REQUIRED, UNSET


@dataclass
class Default:
    """One parameter's default, as the docs give it and as the installed release has it."""

    parameter: str
    documented: str
    installed: str | None
    agrees: bool | None

    @property
    def text(self) -> str:
        if self.documented == ABSENT:
            return "—"
        if self.documented in (REQUIRED, UNSET):
            return f"{self.parameter} ({self.documented})"
        return f"{self.parameter}={self.documented}"


@dataclass
class DefaultsRow:
    api: str
    frameworks: list[str] = field(default_factory=list)
    """'framework version' of each release whose records give this row."""
    adapters: list[str] = field(default_factory=list)
    implementations: list[str] = field(default_factory=list)
    """The implementations (spellings) whose records give this row."""
    by_concept: dict[str, list[Default]] = field(default_factory=dict)

    @property
    def spelling(self) -> str:
        """The one implementation of the row when its name is not the API's, else ''."""
        names = self.implementations
        return names[0] if len(names) == 1 and names[0] != self.api else ""

    @property
    def disagreements(self) -> list[Default]:
        return [d for ds in self.by_concept.values() for d in ds if d.agrees is False]


def defaults_table(records: Iterable[dict[str, Any]]) -> tuple[list[str], list[DefaultsRow]]:
    """(columns, rows) of results records: the concepts in `CONCEPTS` order, then any
    other parameter."""
    rows: dict[tuple[Any, ...], DefaultsRow] = {}
    for record in records:
        entry = record.get("defaults") or {}
        params = entry.get("parameters") or []
        if not params:
            continue
        defaults = [
            (
                str(p.get("concept")),
                Default(
                    str(p.get("parameter")),
                    str(p.get("documented")),
                    None if p.get("installed") is None else str(p.get("installed")),
                    p.get("agrees"),
                ),
            )
            for p in params
        ]
        key = (str(entry.get("api")), tuple((k, repr(d)) for k, d in defaults))
        row = rows.setdefault(key, DefaultsRow(str(entry.get("api"))))
        release = f"{record.get('framework')} {record.get('framework_version')}"
        if release not in row.frameworks:
            row.frameworks.append(release)
        if str(record.get("adapter")) not in row.adapters:
            row.adapters.append(str(record.get("adapter")))
        if str(record.get("implementation")) not in row.implementations:
            row.implementations.append(str(record.get("implementation")))
        if not row.by_concept:
            for concept, d in defaults:
                row.by_concept.setdefault(concept, []).append(d)
    used = {k for row in rows.values() for k in row.by_concept}
    columns = [k for k in CONCEPTS if k in used] + sorted(used - set(CONCEPTS))
    return columns, sorted(rows.values(), key=lambda r: (r.frameworks, r.api))


def markdown(columns: list[str], rows: list[DefaultsRow]) -> str:
    """The table as Markdown (`conformance list --defaults`; docs/defaults.md)."""

    def cell(row: DefaultsRow, column: str) -> str:
        texts = []
        for d in row.by_concept.get(column, []):
            text = "—" if d.text == "—" else f"`{d.text}`"
            if d.agrees is False:
                text += f" ≠ installed `{d.installed}`"
            texts.append(text)
        return "<br>".join(texts)

    lines = [
        "| API | release | " + " | ".join(f"`{c}`" for c in columns) + " |",
        "| --- | --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in rows:
        values = " | ".join(cell(row, c) for c in columns)
        api = f"`{row.api}`" + (f" in `{row.spelling}`" if row.spelling else "")
        lines.append(f"| {api} | {', '.join(row.frameworks)} | {values} |")
    return "\n".join(lines) + "\n"
