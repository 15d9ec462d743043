"""The report's data model: records turned into what the templates show, nothing rendered."""

from __future__ import annotations

import hashlib
import math
import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.diff import cell_name, fmt
from conformance.judge import SEVERITY, Verdict
from conformance.results import cell_key, read_records

DTYPE_ORDER = ("float16", "bfloat16", "float32", "float64")
DEVICE_ORDER = ("cpu", "cuda", "gpu", "tpu")
MODE_ORDER = ("eager", "compiled")
OP_ORDER = (
    "softmax",
    "log_softmax",
    "logsumexp",
    "softmax_cross_entropy",
    "sparse_softmax_cross_entropy",
    "probability_cross_entropy",
    "sparse_probability_cross_entropy",
    "sigmoid_cross_entropy",
    "binary_cross_entropy",
)
SYMBOLS = {
    "pass": ("✓", "pass"),
    "inaccurate": ("▲", "inaccurate"),
    "divergent": ("≠", "divergent"),
    "error": ("✗", "error"),
    "unsupported": ("–", "n/a"),
    "crashed": ("‼", "crashed"),
    "timeout": ("◴", "timeout"),
}
"""Per verdict: a symbol and a short label, so that colour is never the only signal."""
SNIPPET_LIMIT = 64_000
"""Reproducers longer than this are cut in the page (`conformance replay` has the full input)."""

Column = tuple[str, str, str]
"""dtype, device, mode."""


def _rank(value: str, order: tuple[str, ...]) -> tuple[int, str]:
    return (order.index(value) if value in order else len(order), value)


def column_sort_key(column: Column) -> tuple[Any, ...]:
    dtype, device, mode = column
    return (_rank(dtype, DTYPE_ORDER), _rank(device, DEVICE_ORDER), _rank(mode, MODE_ORDER))


def anchor(*parts: str) -> str:
    """A stable HTML id for any text (implementation names hold dots, colons, brackets)."""
    return "a" + hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:12]


def severity(verdict: str | None) -> int:
    try:
        return SEVERITY[Verdict(verdict)]
    except ValueError:
        return len(SEVERITY)


def num(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class Cell:
    """One record, with what the matrix and the implementation section show of it."""

    record: dict[str, Any]
    source: str
    name: str
    anchor: str
    column: Column
    verdict: str
    known_only: bool
    """Not a pass, but every finding is a known deviation."""
    max_ulp: float | None
    max_ratio: float | None
    examples: int

    @property
    def symbol(self) -> str:
        return SYMBOLS.get(self.verdict, ("?", self.verdict))[0]

    @property
    def label(self) -> str:
        return SYMBOLS.get(self.verdict, ("?", self.verdict))[1]

    @property
    def column_label(self) -> str:
        return " · ".join(self.column)

    @property
    def tooltip(self) -> str:
        r = self.record
        lines = [
            f"{self.record.get('implementation')} — {self.column_label}: {self.verdict}"
            + (" (known deviation)" if self.known_only else ""),
            f"max strict ULP {fmt(self.max_ulp)} · max budget ratio {fmt_ratio(self.max_ratio)}"
            f" · {self.examples} examples",
        ]
        for f in (r.get("findings") or [])[:3]:
            lines.append(f"{f.get('verdict')}: {f.get('kind')} at {f.get('case')}")
        if r.get("unsupported"):
            lines.append("unsupported: " + "; ".join(map(str, r["unsupported"][:2])))
        return "\n".join(lines)

    @property
    def replay(self) -> str:
        return f"conformance replay {shlex.quote(self.source)} {shlex.quote(self.name)}"

    @property
    def snippet(self) -> tuple[str, bool]:
        """The worst input's reproducer, and whether it was cut."""
        text = str((self.record.get("worst") or {}).get("snippet") or "")
        return (text[:SNIPPET_LIMIT], True) if len(text) > SNIPPET_LIMIT else (text, False)


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value) or math.isnan(value) or value >= 1e4:
        return fmt(value)
    return f"{value:.3g}"


def compact(cols: list[Column], dtypes: set[str]) -> str:
    """Columns grouped by the dtypes they share; 'all dtypes' when they cover every one."""
    by_place: dict[str, set[str]] = {}
    for dtype, device, mode in cols:
        by_place.setdefault(f"{device} · {mode}", set()).add(dtype)
    by_dtypes: dict[tuple[str, ...], list[str]] = {}
    for place, ds in by_place.items():
        key = tuple(sorted(ds, key=lambda d: _rank(d, DTYPE_ORDER)))
        by_dtypes.setdefault(key, []).append(place)
    parts = []
    for ds, places in by_dtypes.items():
        which = "all dtypes" if set(ds) == dtypes and len(ds) > 1 else ", ".join(ds)
        parts.append(f"{', '.join(places)} ({which})")
    return "; ".join(parts)


@dataclass
class FindingGroup:
    """Findings of one kind on one case, over the cells that showed them."""

    verdict: str
    kind: str
    case: str
    known: str
    detail: str
    """The first cell's detail (others differ only in numbers)."""
    cells: list[Cell] = field(default_factory=list)


@dataclass
class Implementation:
    """A report row: one implementation of one adapter, its cells by column."""

    adapter: str
    name: str
    op: str
    framework: str
    versions: list[str]
    anchor: str
    cells: dict[Column, Cell] = field(default_factory=dict)

    @property
    def ordered_cells(self) -> list[Cell]:
        return [self.cells[c] for c in sorted(self.cells, key=column_sort_key)]

    @property
    def worst(self) -> str:
        return max((c.verdict for c in self.cells.values()), key=severity, default="pass")

    @property
    def all_pass(self) -> bool:
        return all(c.verdict in ("pass", "unsupported") for c in self.cells.values())

    @property
    def findings(self) -> list[FindingGroup]:
        """Findings of all cells, one row per (verdict, kind, case, known) with its cells."""
        groups: dict[tuple[str, ...], FindingGroup] = {}
        for c in self.ordered_cells:
            for f in c.record.get("findings") or []:
                key = tuple(str(f.get(k) or "") for k in ("verdict", "kind", "case", "known"))
                if key not in groups:
                    groups[key] = FindingGroup(*key, detail=str(f.get("detail") or ""))
                groups[key].cells.append(c)
        return sorted(groups.values(), key=lambda g: (-severity(g.verdict), g.kind, g.case))

    @property
    def worst_cell(self) -> Cell | None:
        """The cell whose stored input is worst: verdict (unexpected first), then ratio."""
        stored = [c for c in self.ordered_cells if c.record.get("worst")]
        return max(
            stored,
            key=lambda c: (
                bool(c.record.get("unexpected")),
                severity(c.record["worst"].get("verdict")),
                min(c.max_ratio or 0.0, 1e300),
            ),
            default=None,
        )

    def where(self, cells: list[Cell]) -> str:
        """Cells named compactly: 'cpu · eager, cpu · compiled (float16, float32)'."""
        return compact([c.column for c in cells], {c[0] for c in self.cells})

    @property
    def messages(self) -> list[tuple[str, int]]:
        counts: Counter[str] = Counter()
        for c in self.cells.values():
            counts.update(str(m) for m in c.record.get("messages") or [])
        return sorted(counts.items())

    @property
    def unsupported(self) -> list[tuple[str, str]]:
        return [
            (c.column_label, str(reason))
            for c in self.ordered_cells
            for reason in c.record.get("unsupported") or []
        ]

    @property
    def coverage(self) -> tuple[list[tuple[str, int, int, int]], list[tuple[str, str]]]:
        """What the cells judged, as a coverage report: per input feature (option value,
        axis form, input class) the inputs over all cells, of them with a gradient, and
        in how many cells; and, per cell, the declared features it never drew."""
        counts: dict[str, list[int]] = {}
        not_drawn = []
        for c in self.ordered_cells:
            cov = c.record.get("coverage") or {}
            for feature, (n, with_grad) in (cov.get("exercised") or {}).items():
                entry = counts.setdefault(str(feature), [0, 0, 0])
                entry[0] += int(n)
                entry[1] += int(with_grad)
                entry[2] += 1
            not_drawn += [(c.column_label, str(f)) for f in cov.get("not_drawn") or []]
        rows = [(f, *counts[f]) for f in sorted(counts)]
        return rows, not_drawn  # type: ignore[return-value]

    def dtype_histograms(self) -> list[tuple[str, dict[str, int]]]:
        """Per dtype, the strict-ULP histogram summed over devices and modes."""
        by_dtype: dict[str, Counter[str]] = {}
        for c in self.ordered_cells:
            hist = c.record.get("ulp_histogram") or {}
            if hist:
                by_dtype.setdefault(c.column[0], Counter()).update(
                    {str(k): int(v) for k, v in hist.items()}
                )
        return [(d, dict(h)) for d, h in by_dtype.items()]


@dataclass
class AdapterGroup:
    name: str
    framework: str
    versions: list[str]
    implementations: list[Implementation]


@dataclass
class Loaded:
    """Cells of the merged input files (a later file's record of a cell wins)."""

    cells: list[Cell]
    sources: list[tuple[str, int]]
    """(path, records read) per input file."""
    notes: list[str]


def make_cell(record: dict[str, Any], source: str) -> Cell:
    verdict = str(record.get("verdict"))
    return Cell(
        record=record,
        source=source,
        name=cell_name(record),
        anchor=anchor("cell", *cell_key(record)),
        column=(str(record.get("dtype")), str(record.get("device")), str(record.get("mode"))),
        verdict=verdict,
        known_only=verdict not in ("pass", "unsupported") and not record.get("unexpected"),
        max_ulp=num(record.get("max_ulp")),
        max_ratio=num(record.get("max_budget_ratio")),
        examples=int(record.get("examples") or 0),
    )


def load(paths: list[Path]) -> Loaded:
    """Read every results file (ResultsError on one that is not), later cells win."""
    by_key: dict[tuple[str, ...], Cell] = {}
    sources: list[tuple[str, int]] = []
    notes: list[str] = []
    for path in paths:
        read = read_records(path)
        sources.append((os.fspath(path), len(read.records)))
        if read.torn_lines:
            notes.append(
                f"{path}: incomplete line {', '.join(map(str, read.torn_lines))} set aside"
                " (an interrupted run)"
            )
        for record in read.records:
            by_key[cell_key(record)] = make_cell(record, os.fspath(path))
    return Loaded([by_key[k] for k in sorted(by_key)], sources, notes)


def implementations(cells: list[Cell]) -> list[AdapterGroup]:
    """Cells as rows, grouped by adapter; within an adapter, catalog op order, then name."""
    rows: dict[tuple[str, str], Implementation] = {}
    for c in cells:
        r = c.record
        key = (str(r.get("adapter")), str(r.get("implementation")))
        if key not in rows:
            rows[key] = Implementation(
                adapter=key[0],
                name=key[1],
                op=str(r.get("op") or ""),
                framework=str(r.get("framework") or ""),
                versions=[],
                anchor=anchor("impl", *key),
            )
        impl = rows[key]
        impl.cells[c.column] = c
        if r.get("op") and not impl.op:
            impl.op = str(r["op"])
        version = str(r.get("framework_version"))
        if version not in impl.versions:
            impl.versions.append(version)
    groups: dict[str, list[Implementation]] = {}
    for impl in rows.values():
        groups.setdefault(impl.adapter, []).append(impl)
    out = []
    for adapter in sorted(groups):
        impls = sorted(groups[adapter], key=lambda i: (_rank(i.op, OP_ORDER), i.name))
        versions = sorted({v for i in impls for v in i.versions})
        out.append(AdapterGroup(adapter, impls[0].framework, versions, impls))
    return out


def columns(cells: list[Cell]) -> list[Column]:
    return sorted({c.column for c in cells}, key=column_sort_key)


def dtype_spans(cols: list[Column]) -> list[tuple[str, int]]:
    """Consecutive columns of one dtype: (dtype, how many) for a grouped header."""
    spans: list[tuple[str, int]] = []
    for dtype, _, _ in cols:
        if spans and spans[-1][0] == dtype:
            spans[-1] = (dtype, spans[-1][1] + 1)
        else:
            spans.append((dtype, 1))
    return spans


@dataclass
class UlpEntry:
    """One cell of the max-ULP table: the worst over devices and modes of one dtype."""

    value: float | None
    ratio: float | None
    where: str
    verdict: str


def ulp_table(groups: list[AdapterGroup]) -> tuple[list[str], list[tuple[Implementation, dict]]]:
    """libm-test-ulps in spirit: per implementation and dtype, the largest strict ULP."""
    dtypes = sorted(
        {c.column[0] for g in groups for i in g.implementations for c in i.cells.values()},
        key=lambda d: _rank(d, DTYPE_ORDER),
    )
    rows = []
    for g in groups:
        for impl in g.implementations:
            entries: dict[str, UlpEntry] = {}
            for dtype in dtypes:
                judged = [
                    c
                    for c in impl.ordered_cells
                    if c.column[0] == dtype and c.max_ulp is not None and c.examples > 0
                ]
                if not judged:
                    continue
                top = max(judged, key=lambda c: c.max_ulp or 0.0)
                ratios = [c.max_ratio for c in judged if c.max_ratio is not None]
                entries[dtype] = UlpEntry(
                    top.max_ulp,
                    max(ratios, default=None),
                    f"{top.column[1]} · {top.column[2]}",
                    top.verdict,
                )
            rows.append((impl, entries))
    return dtypes, rows


def summary(cells: list[Cell]) -> dict[str, Any]:
    """Counts for the page's opening lines."""
    verdicts = Counter(c.verdict for c in cells)
    return {
        "cells": len(cells),
        "verdicts": sorted(verdicts.items(), key=lambda kv: severity(kv[0])),
        "unexpected": sum(1 for c in cells if c.record.get("unexpected")),
        "known": sum(1 for c in cells if c.known_only),
        "implementations": len(
            {(c.record.get("adapter"), c.record.get("implementation")) for c in cells}
        ),
        "adapters": len({c.record.get("adapter") for c in cells}),
    }
