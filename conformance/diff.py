"""Regression detection: two runs compared cell by cell (`conformance diff BASELINE CURRENT`).

A cell is identified by adapter, implementation, dtype, device and mode. Deterministic draws
depend only on seed and profile, so two runs of one implementation give identical numbers;
the noise thresholds below only keep a small, harmless change of algorithm from failing CI.
See docs/report.md for the rules.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from conformance.judge import SEVERITY, Verdict
from conformance.results import ResultsError, cell_key, read_records
from conformance_adapters.signatures import ABSENT

ULP_NOISE_ABS = 2.0
"""max strict ULP may grow by max(2 ULP, 25 %) before it counts as growth."""
ULP_NOISE_REL = 0.25
RATIO_GROWTH = 2.0
"""max budget ratio growth counts when it crosses 1, or grows more than 2x to at least 0.1."""
RATIO_FLOOR = 0.1
MISUSE_REL_NOISE = 0.01
"""A silent misuse answer's relative error change below 1 % (relative) is not reported."""

REACTION_RANK = {"raises": 0, "warns": 1, "silent": 2, "silent-nonfinite": 2, "silent-finite": 3}
"""For invalid input, raising is right; a move down this list is a regression."""

CATEGORIES: dict[str, str] = {
    "whose": "whose change it is (what differs between the two runs)",
    "worse": "new failures (verdict got worse)",
    "growth": "error growth beyond noise",
    "special": "special-value behaviour changed",
    "misuse": "from_logits misuse reaction changed",
    "reaction": "invalid-input reaction changed",
    "defaults": "a parameter's default changed in the installed release",
    "disappeared": "cells disappeared",
    "better": "verdict improved",
    "known": "verdict changed within known deviations",
    "shrink": "error shrank beyond noise",
    "special-values": "special-value numbers changed (same nan/inf/zero pattern)",
    "appeared": "cells appeared",
    "version": "framework versions",
    "note": "notes",
}
"""Categories in the order they are printed; "worse" to "disappeared" can be regressions."""


@dataclass(frozen=True)
class Change:
    """One difference between baseline and current."""

    category: str
    cell: str
    """'adapter/implementation/dtype/device/mode', or an adapter name for version changes."""
    message: str
    regression: bool


@dataclass
class Diff:
    """All changes between two sets of records."""

    changes: list[Change] = field(default_factory=list)
    baseline_cells: int = 0
    current_cells: int = 0
    compared: int = 0

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]

    def by_category(self) -> list[tuple[str, list[Change]]]:
        """Changes grouped by category, in `CATEGORIES` order, empty groups left out."""
        groups = [(cat, [c for c in self.changes if c.category == cat]) for cat in CATEGORIES]
        return [(cat, changes) for cat, changes in groups if changes]


def cell_name(record: dict[str, Any]) -> str:
    """The cell id used by `conformance replay`: adapter/implementation/dtype/device/mode."""
    return "/".join(cell_key(record))


def load_cells(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of several files, each cell once (a later file wins), and notes on torn lines."""
    by_cell: dict[tuple[str, ...], dict[str, Any]] = {}
    notes: list[str] = []
    for path in paths:
        read = read_records(path)
        if read.torn_lines:
            lines = ", ".join(map(str, read.torn_lines))
            notes.append(f"{path}: incomplete line {lines} set aside (interrupted run?)")
        for record in read.records:
            by_cell[cell_key(record)] = record
    return sorted(by_cell.values(), key=cell_key), notes


def special_signature(summary: str | None) -> str:
    """The shape of a special-value summary: 'nan', 'inf', '-inf', '0' kept, finite -> 'x'."""
    if summary is None:
        return "absent"
    tokens = []
    for token in summary.split():
        try:
            v = float(token)
        except ValueError:
            tokens.append(token)  # '—' (no value), '…' (truncated)
            continue
        if math.isnan(v):
            tokens.append("nan")
        elif math.isinf(v):
            tokens.append("inf" if v > 0 else "-inf")
        else:
            tokens.append("0" if v == 0 else "x")
    return " ".join(tokens)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def fmt(value: float | None) -> str:
    """A compact number for humans: integers as such, large or small values in e-notation."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == int(value) and abs(value) < 1e7:
        return str(int(value))
    return f"{value:.3g}"


def _severity(verdict: Any) -> int:
    try:
        return SEVERITY[Verdict(verdict)]
    except ValueError:
        return len(SEVERITY)  # an unknown verdict counts as worst


def ulp_grew(old: float | None, new: float | None) -> bool:
    """max strict ULP grew beyond noise: more than max(2 ULP, 25 %)."""
    if old is None or new is None or math.isnan(new):
        return False
    return new > old + max(ULP_NOISE_ABS, ULP_NOISE_REL * old)


def ratio_grew(old: float | None, new: float | None) -> bool:
    """max budget ratio crossed 1, or grew more than 2x to at least 0.1."""
    if old is None or new is None or math.isnan(new):
        return False
    return (old <= 1.0 < new) or (new > RATIO_GROWTH * old and new >= RATIO_FLOOR)


def _first_finding(record: dict[str, Any]) -> str:
    for f in record.get("findings") or []:
        if not f.get("known"):
            return f" ({f.get('kind')} at case {f.get('case')})"
    return ""


def _verdicts(cell: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    v0, v1 = old.get("verdict"), new.get("verdict")
    if v0 == v1:
        return []
    text = f"{v0} -> {v1}"
    if _severity(v1) < _severity(v0):
        return [Change("better", cell, text, False)]
    u0, u1 = old.get("unexpected") or "pass", new.get("unexpected") or "pass"
    if _severity(u1) <= _severity(u0):
        return [Change("known", cell, f"{text} (known deviations only)", False)]
    return [Change("worse", cell, text + _first_finding(new), True)]


def _inputs(cell: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Whether both runs were given identical inputs (records since `inputs` was added)."""
    a, b = old.get("inputs"), new.get("inputs")
    if not a or not b or a == b:
        return []
    text = "inputs differ (another suite version or strategy?): error numbers are not comparable"
    return [Change("note", cell, text, False)]


def _errors(cell: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out: list[Change] = []
    if not old.get("elements", 1) or not new.get("elements", 1):
        return out  # one side judged no values (it raised throughout): nothing to compare
    pairs = (
        ("max ULP", "max_ulp", ulp_grew),
        ("max budget ratio", "max_budget_ratio", ratio_grew),
    )
    for label, key, grew in pairs:
        a, b = _number(old.get(key)), _number(new.get(key))
        if grew(a, b):
            out.append(Change("growth", cell, f"{label} {fmt(a)} -> {fmt(b)}", True))
        elif grew(b, a):
            out.append(Change("shrink", cell, f"{label} {fmt(a)} -> {fmt(b)}", False))
    return out


def _specials(cell: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out: list[Change] = []
    s0, s1 = old.get("special") or {}, new.get("special") or {}
    for case in sorted(set(s0) | set(s1)):
        a, b = s0.get(case), s1.get(case)
        if a == b:
            continue
        text = f"case {case}: {a!r} -> {b!r}"
        if a is None:
            out.append(Change("special-values", cell, f"case {case} new: {b!r}", False))
        elif special_signature(a) != special_signature(b):
            out.append(Change("special", cell, text, True))
        else:
            out.append(Change("special-values", cell, text, False))
    return out


def _misuse(cell: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out: list[Change] = []
    m0, m1 = old.get("misuse") or {}, new.get("misuse") or {}
    for scenario in sorted(set(m0) | set(m1)):
        a, b = m0.get(scenario) or {}, m1.get(scenario) or {}
        r0, r1 = a.get("reaction"), b.get("reaction")
        if r0 != r1:
            if r0 is None:
                out.append(Change("note", cell, f"misuse {scenario} new: {r1}", False))
            else:
                out.append(Change("misuse", cell, f"{scenario}: {r0} -> {r1}", True))
            continue
        e0, e1 = _number(a.get("relative_error")), _number(b.get("relative_error"))
        if e0 is not None and e1 is not None and not math.isclose(e0, e1, rel_tol=MISUSE_REL_NOISE):
            text = f"{scenario}: silent answer's relative error {e0:.3g} -> {e1:.3g}"
            out.append(Change("note", cell, text, False))
    return out


def _reactions(cell: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out: list[Change] = []
    r0, r1 = old.get("reactions") or {}, new.get("reactions") or {}
    for case in sorted(set(r0) | set(r1)):
        a, b = r0.get(case), r1.get(case)
        if a == b or a is None or b is None:
            continue  # a case that is new or gone is a corpus change, not a reaction change
        if a == "silent" and b.startswith("silent-"):
            continue  # results from before 'silent' was told apart by what it answered
        if REACTION_RANK.get(b, 4) > REACTION_RANK.get(a, 4):
            out.append(Change("reaction", cell, f"case {case}: {a} -> {b}", True))
        else:
            out.append(Change("note", cell, f"invalid input {case}: {a} -> {b}", False))
    return out


def _runs(records: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Per adapter: the sorted framework versions, profiles and seeds of its records."""
    seen: dict[str, set[tuple[str, str, str]]] = {}
    for r in records:
        item = (str(r.get("framework_version")), str(r.get("profile")), str(r.get("seed")))
        seen.setdefault(str(r.get("adapter")), set()).add(item)
    return {k: tuple(sorted({"/".join(i) for i in v})) for k, v in seen.items()}


def _run_changes(baseline: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[Change]:
    out: list[Change] = []
    old, new = _runs(baseline), _runs(current)
    for adapter in sorted(set(old) & set(new)):
        v0 = sorted({s.split("/")[0] for s in old[adapter]})
        v1 = sorted({s.split("/")[0] for s in new[adapter]})
        if v0 != v1:
            out.append(Change("version", adapter, f"{', '.join(v0)} -> {', '.join(v1)}", False))
        p0 = sorted({s.split("/", 1)[1] for s in old[adapter]})
        p1 = sorted({s.split("/", 1)[1] for s in new[adapter]})
        if p0 != p1:
            text = (
                f"profile/seed {', '.join(p0)} -> {', '.join(p1)}: different inputs, "
                "error numbers are not comparable"
            )
            out.append(Change("note", adapter, text, False))
        c0, c1 = _cpus(baseline, adapter), _cpus(current, adapter)
        if c0 and c1 and c0 != c1:
            text = (
                f"ran on another CPU ({' | '.join(sorted(c0))} -> {' | '.join(sorted(c1))}):"
                " kernels chosen by instruction set can change bits and special values, so"
                " a change may be the machine's, not the release's"
            )
            out.append(Change("note", adapter, text, False))
    return out


def _values(records: list[dict[str, Any]], adapter: str, read: Any) -> set[str]:
    """What `read(record)` says over an adapter's records (None: not recorded)."""
    return {str(v) for r in records if r.get("adapter") == adapter and (v := read(r)) is not None}


def _suite(record: dict[str, Any]) -> str | None:
    suite = record.get("suite") or {}
    return f"{suite['version']}+{suite['code']}" if suite.get("code") else None


def _whose(baseline: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[Change]:
    """Per adapter, which of framework, suite and machine differ between the runs (shown
    for adapters with a change, or whose sources moved), so that a regression reads as the
    framework's, the suite's (an adapter, the catalog, the draws) or the machine's; nothing
    differing but the answers points at nondeterminism."""
    out = []
    readers = {
        "framework": lambda r: r.get("framework_version"),
        "suite": _suite,
        "machine": lambda r: (r.get("environment") or {}).get("cpu"),
    }
    for adapter in sorted(
        {r.get("adapter") for r in baseline} & {r.get("adapter") for r in current}
    ):
        moved = []
        for what, read in readers.items():
            a, b = _values(baseline, adapter, read), _values(current, adapter, read)
            if a and b and a != b:
                moved.append(f"{what} ({', '.join(sorted(a))} -> {', '.join(sorted(b))})")
            elif bool(a) != bool(b):
                moved.append(f"{what} (recorded on one side only)")
        text = "; ".join(moved) if moved else "nothing recorded differs (framework, suite, machine)"
        out.append(Change("whose", str(adapter), text, False))
    return out


def _cpus(records: list[dict[str, Any]], adapter: str) -> set[str]:
    """The CPUs an adapter's records say they ran on (records since `cpu` was added)."""
    return {
        str(r["environment"]["cpu"])
        for r in records
        if r.get("adapter") == adapter and (r.get("environment") or {}).get("cpu")
    }


def _presence(
    missing: list[tuple[str, ...]], category: str, regression: bool, verb: str
) -> list[Change]:
    """One line per implementation whose cells all went (or came), else one per cell."""
    by_impl: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for key in missing:
        by_impl.setdefault(key[:2], []).append(key)
    out = []
    for impl, keys in sorted(by_impl.items()):
        cells = ", ".join("/".join(k[2:]) for k in keys)
        out.append(Change(category, "/".join(impl), f"{verb}: {cells}", regression))
    return out


def _defaults(old: dict[Any, dict[str, Any]], new: dict[Any, dict[str, Any]]) -> list[Change]:
    """Parameter defaults that changed, once per implementation (on its first common
    cell): the installed release's (a regression: every caller that leaves it out may get
    another answer; a parameter that appeared is a note), or only the suite's documented
    value (a note)."""
    out: list[Change] = []
    seen: set[tuple[str, str]] = set()
    for key in sorted(set(old) & set(new)):
        if key[:2] in seen:
            continue
        seen.add(key[:2])
        rows = [
            {p["parameter"]: p for p in (r.get("defaults") or {}).get("parameters") or []}
            for r in (old[key], new[key])
        ]
        for name in sorted(set(rows[0]) & set(rows[1])):
            a, b = rows[0][name], rows[1][name]
            cell = "/".join(key)
            was, now = a.get("installed"), b.get("installed")
            if was != now and None not in (was, now):
                if was == ABSENT:  # a new parameter: callers that leave it out keep theirs
                    out.append(Change("note", cell, f"new parameter {name}={now}", False))
                else:
                    text = f"default {name}={was} -> {name}={now}"
                    out.append(Change("defaults", cell, text, True))
            elif a.get("documented") != b.get("documented"):
                text = f"documented default {name}={a['documented']} -> {b['documented']}"
                out.append(Change("note", cell, text, False))
    return out


def diff(baseline: list[dict[str, Any]], current: list[dict[str, Any]]) -> Diff:
    """Every change from `baseline` to `current` records, cell by cell."""
    old = {cell_key(r): r for r in baseline}
    new = {cell_key(r): r for r in current}
    result = Diff(baseline_cells=len(old), current_cells=len(new))
    changes = _run_changes(baseline, current)
    for key in sorted(set(old) & set(new)):
        result.compared += 1
        cell, a, b = "/".join(key), old[key], new[key]
        for check in (_inputs, _verdicts, _errors, _specials, _misuse, _reactions):
            changes.extend(check(cell, a, b))
    changes += _defaults(old, new)
    gone = [k for k in sorted(old) if k not in new]
    came = [k for k in sorted(new) if k not in old]
    changes += _presence(gone, "disappeared", True, "gone")
    changes += _presence(came, "appeared", False, "new")
    touched = {c.cell.split("/")[0] for c in changes}
    changes += [
        w
        for w in _whose(baseline, current)
        if w.cell in touched or not w.message.startswith("nothing")
    ]
    order = list(CATEGORIES)
    result.changes = sorted(changes, key=lambda c: (order.index(c.category), c.cell))
    return result


def format_text(result: Diff, header: str = "") -> str:
    """The diff as text for CI logs: one line per change, grouped, regressions first."""
    lines = [header] if header else []
    lines.append(
        f"cells: {result.baseline_cells} in baseline, {result.current_cells} in current, "
        f"{result.compared} compared"
    )
    for category, changes in result.by_category():
        flag = "REGRESSION " if any(c.regression for c in changes) else ""
        lines.append(f"{flag}{CATEGORIES[category]} ({len(changes)}):")
        lines.extend(f"  {c.cell}: {c.message}" for c in changes)
    n = len(result.regressions)
    cells = len({c.cell for c in result.regressions})
    lines.append(f"result: {n} regression(s) in {cells} cell(s)" if n else "result: no regressions")
    return "\n".join(lines) + "\n"


def diff_command(
    baseline: list[os.PathLike[str] | str],
    current: list[os.PathLike[str] | str],
    out: TextIO = sys.stdout,
) -> int:
    """`conformance diff`: print the changes; 1 on a regression, else 0 (ResultsError raised
    for unreadable files)."""
    old, notes0 = load_cells(baseline)
    new, notes1 = load_cells(current)
    if not old and not new:
        raise ResultsError("no records in either side of the diff")
    names = f"{', '.join(map(str, baseline))} -> {', '.join(map(str, current))}"
    result = diff(old, new)
    for note in notes0 + notes1:
        out.write(f"warning: {note}\n")
    out.write(format_text(result, header=f"conformance diff {names}"))
    return 1 if result.regressions else 0


__all__ = ["Change", "Diff", "ResultsError", "diff", "diff_command", "format_text", "load_cells"]
