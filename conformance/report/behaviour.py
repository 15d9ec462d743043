"""Behaviour tables of the report: special values, invalid-input reactions, from_logits
misuse, known deviations and the environments of the runs."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from conformance.consistency import Disagreement
from conformance.diff import special_signature
from conformance.report.model import OP_ORDER, AdapterGroup, Cell, Implementation, _rank

CASE_ORDER = ("fully-masked", "partly-masked", "plus-inf", "two-plus-inf", "nan", "empty-axis")
MESSAGE_LIMIT = 400


def _all(groups: list[AdapterGroup]) -> list[Implementation]:
    return [i for g in groups for i in g.implementations]


def case_reasons() -> dict[str, str]:
    """Corpus case id -> why it is in the corpus (empty when the corpus cannot be loaded)."""
    try:
        from conformance.cases import cases_for
        from conformance.ops import Op
    except Exception:  # the report must render even where the corpus does not import
        return {}
    reasons: dict[str, str] = {}
    for op in Op:
        try:
            for case in cases_for(op):
                reasons.setdefault(case.id, case.why)
        except Exception:
            continue
    return reasons


@dataclass
class SpecialValue:
    """What some cells of one implementation returned for one case (one nan/inf pattern)."""

    text: str
    signature: str
    cells: str
    every_text: str
    """Each cell's own summary, for the title attribute."""
    odd: bool = False


@dataclass
class SpecialTable:
    op: str
    cases: list[str]
    rows: list[tuple[Implementation, dict[str, list[SpecialValue]]]]
    disputed: list[str] = field(default_factory=list)


def _representative(cells: list[Cell]) -> Cell:
    return next((c for c in cells if c.column[0] == "float32"), cells[0])


def special_tables(groups: list[AdapterGroup]) -> list[SpecialTable]:
    """Per op: implementations × special-value cases; odd answers marked where they disagree."""
    by_op: dict[str, list[Implementation]] = {}
    for impl in _all(groups):
        if any(c.record.get("special") for c in impl.cells.values()):
            by_op.setdefault(impl.op, []).append(impl)
    tables = []
    for op in sorted(by_op, key=lambda o: _rank(o, OP_ORDER)):
        cases: set[str] = set()
        rows = []
        for impl in by_op[op]:
            values: dict[str, list[SpecialValue]] = {}
            for case in {k for c in impl.cells.values() for k in c.record.get("special") or {}}:
                cases.add(case)
                groups_: dict[str, list[Cell]] = {}
                for c in impl.ordered_cells:
                    text = (c.record.get("special") or {}).get(case)
                    if text is not None:
                        groups_.setdefault(special_signature(str(text)), []).append(c)
                values[case] = [
                    SpecialValue(
                        text=str(_representative(cs).record["special"][case]),
                        signature=sig,
                        cells=impl.where(cs),
                        every_text="\n".join(
                            f"{c.column_label}: {c.record['special'][case]}" for c in cs
                        ),
                    )
                    for sig, cs in groups_.items()
                ]
            rows.append((impl, values))
        ordered = sorted(cases, key=lambda c: _rank(c, CASE_ORDER))
        table = SpecialTable(op, ordered, rows)
        for case in ordered:
            votes = Counter(
                sig for _, values in rows for sig in {v.signature for v in values.get(case, [])}
            )
            if len(votes) < 2:
                continue
            table.disputed.append(case)
            top = votes.most_common()
            majority = top[0][0] if top[0][1] > top[1][1] else None
            for _, values in rows:
                for v in values.get(case, []):
                    v.odd = v.signature != majority
        tables.append(table)
    return tables


@dataclass
class ConsistencyRow:
    """Disagreements of one implementation and case that read alike across dtypes."""

    adapter: str
    implementation: str
    dtypes: list[str]
    axis: str
    fixed: str
    what: str
    case: str
    answers: dict[str, str]
    """Side -> the answer of the row's representative dtype (float32 where it has one)."""
    known: str | None


def consistency_rows(found: list[Disagreement]) -> list[ConsistencyRow]:
    """One row per implementation, case and answer pattern; its dtypes listed together."""
    rows: dict[tuple[Any, ...], ConsistencyRow] = {}
    for d in found:
        pattern = tuple(sorted((k, special_signature(v)) for k, v in d.answers.items()))
        key = (d.adapter, d.implementation, d.axis, d.fixed, d.what, d.case, pattern, d.known)
        row = rows.get(key)
        if row is None:
            rows[key] = ConsistencyRow(
                d.adapter,
                d.implementation,
                [d.dtype],
                d.axis,
                d.fixed,
                d.what,
                d.case,
                dict(d.answers),
                d.known,
            )
            continue
        row.dtypes.append(d.dtype)
        if d.dtype == "float32":
            row.answers = dict(d.answers)
    return list(rows.values())


def _tally(reactions: list[str]) -> str:
    counts = Counter(reactions)
    if len(counts) == 1:
        return next(iter(counts))
    return " · ".join(f"{r} {n}" for r, n in sorted(counts.items()))


def reaction_table(groups: list[AdapterGroup]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Invalid-input reactions: implementations × named cases (+ 'drawn', all draws)."""
    named: set[str] = set()
    rows = []
    for impl in _all(groups):
        per_case: dict[str, list[str]] = {}
        for c in impl.ordered_cells:
            for case, reaction in (c.record.get("reactions") or {}).items():
                column = "drawn" if str(case).startswith(("drawn", "targeted")) else str(case)
                per_case.setdefault(column, []).append(str(reaction))
        if per_case:
            named.update(k for k in per_case if k != "drawn")
            tallies = {
                k: (_tally(v), any(r.startswith("silent") for r in v)) for k, v in per_case.items()
            }
            rows.append((impl, tallies))
    cols = sorted(named)
    if any("drawn" in t for _, t in rows):
        cols.append("drawn")
    return cols, rows


@dataclass
class MisuseRow:
    impl: Implementation
    scenario: str
    reaction: str
    cells: str
    all_cells: bool
    relative_error: str
    message: str
    gradient: str = "—"
    """The gradient's relative error against the meant gradient (where the scenario compares
    it), and how many of its entries vanished."""


def _span(values: list[float]) -> str:
    """'—', one value, or 'min – max' over the cells."""
    if not values:
        return "—"
    if max(values) / max(min(values), 1e-300) < 1.01:
        return f"{max(values):.3g}"
    return f"{min(values):.3g} – {max(values):.3g}"


def _gradient_text(entries: list[dict[str, Any]]) -> str:
    errors = [
        float(e["gradient_relative_error"])
        for e in entries
        if e.get("gradient_relative_error") is not None
    ]
    if not errors:  # not compared, or no gradient ('raises: ...')
        reactions = sorted(
            {str(e["gradient_reaction"]) for e in entries if e.get("gradient_reaction")}
        )
        return "; ".join(reactions) or "—"
    vanished = max(int(e.get("vanished") or 0) for e in entries)
    entries_text = (
        f" · {vanished} entr{'y' if vanished == 1 else 'ies'} exactly 0" if vanished else ""
    )
    return _span(errors) + entries_text


def misuse_rows(groups: list[AdapterGroup]) -> tuple[list[MisuseRow], dict[str, str]]:
    """Per implementation and scenario, one row per distinct reaction; scenario descriptions."""
    rows: list[MisuseRow] = []
    descriptions: dict[str, str] = {}
    for impl in _all(groups):
        scenarios: dict[str, dict[str, list[tuple[Cell, dict[str, Any]]]]] = {}
        judged = [c for c in impl.ordered_cells if c.record.get("misuse")]
        for c in judged:
            for scenario, entry in c.record["misuse"].items():
                entry = entry or {}
                if entry.get("description"):
                    descriptions.setdefault(str(scenario), str(entry["description"]))
                reaction = str(entry.get("reaction"))
                scenarios.setdefault(str(scenario), {}).setdefault(reaction, []).append((c, entry))
        for scenario in sorted(scenarios):
            for reaction, items in sorted(scenarios[scenario].items()):
                errors = [
                    float(e["relative_error"])
                    for _, e in items
                    if e.get("relative_error") is not None
                ]
                rel = _span(errors)
                messages = sorted({str(e.get("message") or "") for _, e in items} - {""})
                message = messages[0] if messages else ""
                if len(message) > MESSAGE_LIMIT:
                    message = message[:MESSAGE_LIMIT] + " …"
                if len(messages) > 1:
                    message += f" (+{len(messages) - 1} other message(s))"
                where = impl.where([c for c, _ in items])
                all_cells = len(items) == len(judged)
                gradient = _gradient_text([e for _, e in items])
                rows.append(
                    MisuseRow(impl, scenario, reaction, where, all_cells, rel, message, gradient)
                )
    return rows, descriptions


def known_findings(cells: list[Cell]) -> list[tuple[Cell, dict[str, Any], dict[str, str]]]:
    """Findings marked as known deviations, with the entry's reason and link where known."""
    try:
        from conformance import known

        entries = {
            e.id: {"reason": e.reason, "link": e.link if e.link.startswith("https://") else ""}
            for e in known.load()
        }
    except Exception:  # a broken deviations file must not stop the report
        entries = {}
    return [
        (c, f, entries.get(str(f["known"]), {}))
        for c in cells
        for f in c.record.get("findings") or []
        if f.get("known")
    ]


@dataclass
class Run:
    """The environment of one adapter's records."""

    adapter: str
    framework: str
    versions: list[str]
    profiles: list[str]
    seeds: list[str]
    common: list[tuple[str, str]]
    """Environment entries every record of the adapter shares."""
    variants: list[list[tuple[str, str]]]
    """What else some records had (one list per distinct environment)."""
    cells: int
    duration_s: float


def runs(cells: list[Cell]) -> list[Run]:
    by_adapter: dict[str, list[Cell]] = {}
    for c in cells:
        by_adapter.setdefault(str(c.record.get("adapter")), []).append(c)
    out = []
    for adapter, cs in sorted(by_adapter.items()):
        envs: dict[str, list[tuple[str, str]]] = {}
        for c in cs:
            env = c.record.get("environment") or {}
            if env:
                items = sorted((str(k), str(v)) for k, v in env.items())
                envs.setdefault(json.dumps(items), items)
        shared = set.intersection(*(set(e) for e in envs.values())) if envs else set()
        common = sorted(shared)
        out.append(
            Run(
                adapter=adapter,
                framework=str(cs[0].record.get("framework") or ""),
                versions=sorted({str(c.record.get("framework_version")) for c in cs}),
                profiles=sorted({str(c.record.get("profile")) for c in cs}),
                seeds=sorted({str(c.record.get("seed")) for c in cs}),
                common=common,
                variants=[[kv for kv in env if kv not in common] for env in envs.values()],
                cells=len(cs),
                duration_s=sum(float(c.record.get("duration_s") or 0.0) for c in cs),
            )
        )
    return out
