"""A framework's release history: how every cell changed from release to release.

`conformance history R1.jsonl R2.jsonl ...` takes one results file per release, oldest
first (`nox -s history` writes them), and says, per cell, where an unexpected finding first
appeared and where it went away, and where accuracy, special values or reactions moved.
Consecutive releases are compared by `conformance.diff`, the same rules as a regression
diff; what differs between two runs besides the release (the suite's code, the machine,
the inputs drawn) is said next to the step, because it makes a change the suite's or the
machine's rather than the framework's.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance import diff as diffs
from conformance.results import ResultsError, cell_key, fails_on_our_call

_VERSION = re.compile(r"^\d+(\.\d+)+")
_NOT_DISTRIBUTIONS = {"version", "adapter", "framework", "machine", "processor"}
EVENT_CATEGORIES = (
    "worse",
    "better",
    "growth",
    "shrink",
    "special",
    "misuse",
    "reaction",
    "defaults",
)
"""The per-cell changes a history shows (notes and known-only moves are left to the diff)."""


@dataclass(frozen=True)
class Step:
    """One cell in one release."""

    verdict: str
    unexpected: str | None
    max_ulp: float | None
    max_budget_ratio: float | None
    findings: tuple[str, ...]
    """Kinds of the unexpected findings, each once."""

    @property
    def flagged(self) -> bool:
        return bool(self.findings) or self.unexpected is not None

    def kinds(self) -> tuple[str, ...]:
        """The unexpected findings' kinds (the unexpected verdict when none is itemised)."""
        if self.findings:
            return self.findings
        return (str(self.unexpected),) if self.unexpected is not None else ()

    def short(self) -> str:
        """'pass 3' / 'fail: nan-where-finite' : the verdict and what it rests on."""
        if self.flagged:
            return f"{self.verdict}: {', '.join(self.findings) or self.unexpected}"
        if self.max_ulp is not None:
            return f"{self.verdict} {diffs.fmt(self.max_ulp)}"
        return self.verdict


@dataclass(frozen=True)
class Event:
    """A change of one cell between release `index - 1` and release `index`."""

    index: int
    category: str
    message: str
    regression: bool


@dataclass(frozen=True)
class Span:
    """Releases `first`..`last` (indices) in which a cell had an unexpected finding of one kind."""

    first: int
    last: int
    kind: str
    ended: str
    """'fixed' (the next release has the cell without it), 'absent' (the next release has
    no such cell: nothing is known), 'open' (still in the newest release)."""


@dataclass
class CellHistory:
    cell: str
    steps: list[Step | None]
    """One per release; None where the release has no such cell, or the suite's call failed
    there (`results.fails_on_our_call`): nothing is known of the framework."""
    events: list[Event] = field(default_factory=list)

    def spans(self) -> list[Span]:
        """Per finding kind, the maximal runs of releases that show it, oldest first."""
        kinds = dict.fromkeys(k for s in self.steps if s for k in s.kinds())
        out = []
        for kind in kinds:
            start = None
            for i, step in enumerate([*self.steps, None]):
                if step is not None and kind in step.kinds():
                    start = i if start is None else start
                elif start is not None:
                    ended = (
                        "open" if i == len(self.steps) else "absent" if step is None else "fixed"
                    )
                    out.append(Span(start, i - 1, kind, ended))
                    start = None
        return sorted(out, key=lambda s: (s.first, s.last, s.kind))


@dataclass(frozen=True)
class Release:
    label: str
    path: str
    cells: int
    verdicts: dict[str, int]
    versions: dict[str, str]
    """Versions of the distributions the records' environments name (framework, companions)."""
    suites: tuple[str, ...]
    own_failures: tuple[str, ...]
    """Cells where every input raised: the suite's call failing on this release."""


@dataclass
class History:
    framework: str
    releases: list[Release]
    cells: list[CellHistory]
    steps: list[list[diffs.Change]]
    """Per transition i (release i -> i + 1): the changes that concern whole adapters
    (versions, whose change it is, inputs, machine)."""
    notes: list[str]

    def changed(self) -> list[CellHistory]:
        """Cells with at least one event, or flagged in some release."""
        return [c for c in self.cells if c.events or c.spans()]


def _step(record: dict[str, Any]) -> Step:
    kinds = dict.fromkeys(
        str(f.get("kind")) for f in record.get("findings") or [] if not f.get("known")
    )
    return Step(
        verdict=str(record.get("verdict")),
        unexpected=record.get("unexpected"),
        max_ulp=diffs._number(record.get("max_ulp")),
        max_budget_ratio=diffs._number(record.get("max_budget_ratio")),
        findings=tuple(kinds),
    )


def _versions(records: list[dict[str, Any]]) -> dict[str, str]:
    found: dict[str, set[str]] = {}
    for r in records:
        for key, value in (r.get("environment") or {}).items():
            if key in _NOT_DISTRIBUTIONS or "." in key or not isinstance(value, str):
                continue
            if _VERSION.match(value):
                found.setdefault(key, set()).add(value)
    return {k: ", ".join(sorted(v)) for k, v in sorted(found.items())}


def _label(records: list[dict[str, Any]], path: str) -> str:
    counted = Counter(str(r.get("framework_version")) for r in records)
    return counted.most_common(1)[0][0] if counted else os.path.basename(path)


def _release(path: str, records: list[dict[str, Any]]) -> Release:
    return Release(
        label=_label(records, path),
        path=path,
        cells=len(records),
        verdicts=dict(sorted(Counter(str(r.get("verdict")) for r in records).items())),
        versions=_versions(records),
        suites=tuple(sorted({s for r in records if (s := diffs._suite(r))})),
        own_failures=tuple(diffs.cell_name(r) for r in records if fails_on_our_call(r)),
    )


def build(paths: Sequence[str | os.PathLike[str]]) -> History:
    """The history of the releases in `paths` (one results file each, oldest first)."""
    if len(paths) < 2:
        raise ResultsError("a history needs the results of at least two releases")
    runs: list[list[dict[str, Any]]] = []
    notes: list[str] = []
    for path in paths:
        records, torn = diffs.load_cells([path])
        if not records:
            raise ResultsError(f"{path}: no records")
        runs.append(records)
        notes += torn
    releases = [_release(os.fspath(p), r) for p, r in zip(paths, runs, strict=True)]
    frameworks = sorted({str(r.get("framework")) for run in runs for r in run})
    keys = sorted({cell_key(r) for run in runs for r in run})
    by_key = [{cell_key(r): r for r in run} for run in runs]
    cells = {
        "/".join(k): CellHistory(
            "/".join(k),
            [
                _step(run[k]) if k in run and not fails_on_our_call(run[k]) else None
                for run in by_key
            ],
        )
        for k in keys
    }
    steps: list[list[diffs.Change]] = []
    for i in range(1, len(runs)):
        changes = diffs.diff(runs[i - 1], runs[i]).changes
        steps.append([c for c in changes if c.cell not in cells])
        for c in changes:
            if c.cell in cells and c.category in EVENT_CATEGORIES:
                cells[c.cell].events.append(Event(i, c.category, c.message, c.regression))
    suites = {s for r in releases for s in r.suites}
    if len(suites) > 1:
        notes.append(
            f"the releases were judged by {len(suites)} versions of the suite "
            f"({', '.join(sorted(suites))}): a change may be the suite's; rerun them from "
            "one checkout"
        )
    return History(", ".join(frameworks), releases, list(cells.values()), steps, notes)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def clean(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    return [
        "| " + " | ".join(map(clean, header)) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(map(clean, row)) + " |" for row in rows),
    ]


def _span_text(h: History, span: Span, cell: CellHistory) -> tuple[str, str]:
    labels = [r.label for r in h.releases]
    since = f"already in {labels[0]} (the oldest run)" if span.first == 0 else labels[span.first]
    if span.first > 0 and cell.steps[span.first - 1] is None:
        since += f" (not judged in {labels[span.first - 1]})"
    fixed = {
        "open": "still in the newest",
        "absent": f"unknown: not run in {labels[min(span.last + 1, len(labels) - 1)]}",
    }.get(span.ended, labels[min(span.last + 1, len(labels) - 1)])
    return since, fixed


def _grouped(rows: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Rows whose first field is a cell name, merged over the cells of one implementation
    that agree on every other field: (adapter/implementation, 'dtype/device/mode, ...', ...)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for cell, *rest in rows:
        adapter, impl, variant = cell.split("/", 2)
        groups.setdefault((f"{adapter}/{impl}", *rest), []).append(variant)
    return [(key[0], ", ".join(sorted(v)), *key[1:]) for key, v in groups.items()]


def regressions(h: History) -> list[tuple[str, ...]]:
    """(adapter/implementation, its cells, finding kind, first release with it, release that
    fixed it): the findings that came or went first, then those present throughout."""
    out = []
    for c in h.changed():
        for span in c.spans():
            since, fixed = _span_text(h, span, c)
            out.append((c.cell, span.kind, since, fixed))
    rows = _grouped(out)
    return sorted(rows, key=lambda r: r[3].startswith("already") and r[4].startswith("still"))


def moved(h: History) -> list[tuple[str, ...]]:
    """(adapter/implementation, its cells, release, category, message) of each change other
    than a verdict's."""
    labels = [r.label for r in h.releases]
    return _grouped(
        [
            (c.cell, labels[e.index], e.category, e.message)
            for c in h.cells
            for e in c.events
            if e.category not in ("worse", "better")
        ]
    )


def whose(h: History) -> list[tuple[str, str, str]]:
    """(step, adapter, message): what differs between two runs besides the answers."""
    labels = [r.label for r in h.releases]
    return [
        (f"{labels[i]} -> {labels[i + 1]}", c.cell, c.message)
        for i, changes in enumerate(h.steps)
        for c in changes
        if c.category in ("whose", "note")
    ]


def distributions(h: History) -> list[str]:
    """The distributions whose versions some release records."""
    return sorted({k for r in h.releases for k in r.versions})


def markdown(h: History) -> str:
    """The history as Markdown: releases, where findings came and went, what moved."""
    labels = [r.label for r in h.releases]
    names = distributions(h)
    lines = [
        f"# Release history: {h.framework} {labels[0]} to {labels[-1]}",
        "",
        f"{len(labels)} releases, oldest first; each run in its own environment "
        "(`nox -s history`), cells compared release to release by the rules of "
        "`conformance diff`.",
        "",
    ]
    for n in h.notes:
        lines += [f"> Note: {n}", ""]
    lines += ["", "## Releases", ""]
    verdicts = sorted({v for r in h.releases for v in r.verdicts})
    lines += _table(
        ["release", *names, "cells", *verdicts, "cells failing on our call"],
        [
            [
                r.label,
                *(r.versions.get(n, "—") for n in names),
                str(r.cells),
                *(str(r.verdicts.get(v, 0)) for v in verdicts),
                str(len(r.own_failures)),
            ]
            for r in h.releases
        ],
    )
    rows = regressions(h)
    lines += ["", f"## Unexpected findings: where they appeared and where they went ({len(rows)})"]
    lines += [""]
    header = ["implementation", "cells", "finding", "since", "fixed in"]
    lines += _table(header, rows) if rows else ["None."]
    rows = [(i, c, r, diffs.CATEGORIES.get(k, k), t) for i, c, r, k, t in moved(h)]
    lines += ["", f"## Accuracy, special values and reactions that moved ({len(rows)})", ""]
    header = ["implementation", "cells", "in", "what", "change"]
    lines += _table(header, rows) if rows else ["None."]
    others = whose(h)
    if others:
        lines += ["", "## What else changed between the runs", ""]
        lines += _table(["step", "adapter", "what"], others)
    changed = h.changed()
    lines += ["", f"## Timeline of the cells that changed or were flagged ({len(changed)})", ""]
    lines += _table(
        ["cell", *labels],
        [[c.cell, *(s.short() if s else "—" for s in c.steps)] for c in changed],
    )
    return "\n".join(lines) + "\n"


def render_html(h: History) -> str:
    """The history as one self-contained HTML page (the report's style; everything escaped)."""
    from conformance.report import render_page

    return render_page(
        "history.html.j2",
        {
            "h": h,
            "labels": [r.label for r in h.releases],
            "names": distributions(h),
            "verdicts": sorted({v for r in h.releases for v in r.verdicts}),
            "spans": regressions(h),
            "moved": moved(h),
            "whose": whose(h),
            "changed": h.changed(),
            "categories": diffs.CATEGORIES,
        },
    )


__all__ = [
    "CellHistory",
    "Event",
    "History",
    "Release",
    "Span",
    "Step",
    "build",
    "markdown",
    "render_html",
]
