"""Turning a cell's judgements into its results record (the schema of `conformance.results`)."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from conformance import known
from conformance.inputs import Input
from conformance.judge import Finding, Judgement, Verdict, worst
from conformance.ops import Reduction
from conformance.provenance import suite_identity
from conformance.results import encode_array
from conformance.snippets import snippet
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Implementation

if TYPE_CHECKING:
    from conformance.drawing import Profile

MAX_FINDINGS = 25
MAX_MESSAGES = 20


@dataclass
class CellResult:
    """What a cell accumulates while it runs."""

    judgements: list[tuple[Input, Judgement, dict[str, Any]]] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    messages: set[str] = field(default_factory=set)
    misuse: dict[str, dict[str, Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    """`conformance.defaults.check_defaults` of the implementation."""
    inputs_digest: str = ""
    """`inputs.inputs_digest` of the corpus and drawn inputs (targeted ones excluded)."""
    reference_s: float = 0.0
    """Seconds spent in the reference (answers another cell computed are reused)."""
    gradients: bool = True
    """Whether this cell judges gradients (see Profile.gradients_once)."""
    coverage: dict[str, Any] = field(default_factory=dict)
    """`coverage.summary` of the judged inputs."""
    calls: int = 0
    """Framework calls made (stacked inputs are one call)."""
    programs: set[str] = field(default_factory=set)
    """Distinct programs among those calls (`Outcome.program`): what a compiled mode
    traces and compiles, each once."""
    call_s: float = 0.0
    """Seconds inside the framework calls (conversions included)."""

    def add(self, item: Input, j: Judgement, returned: dict[str, Any]) -> None:
        self.judgements.append((item, j, returned))


def json_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options as JSON: enums by value, tuples as lists, arrays as exact bytes."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, np.ndarray):
            out[key] = {"array": encode_array(value)}
        elif isinstance(value, Reduction):
            out[key] = value.value
        elif isinstance(value, tuple):
            out[key] = list(value)
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def _worst_item(result: CellResult) -> tuple[Input, Judgement, dict[str, Any]] | None:
    """The input to reproduce: the worst verdict, then the largest budget ratio."""
    if not result.judgements:
        return None
    severity = list(Verdict)
    return max(
        result.judgements,
        key=lambda t: (severity.index(t[1].verdict), min(t[1].max_ratio, 1e300)),
    )


def _encode_optional(a: np.ndarray | None) -> dict[str, Any] | None:
    return None if a is None else encode_array(np.asarray(a))


def cell_record(
    adapter: Adapter,
    impl: Implementation,
    dtype: str,
    device: str,
    mode: str,
    profile: Profile,
    seed: int,
    result: CellResult,
    deviations: list[known.KnownDeviation],
    duration: float,
) -> dict[str, Any]:
    """The results record of one cell."""
    coordinates = {
        "adapter": adapter.name,
        "implementation": impl.name,
        "dtype": dtype,
        "device": device,
        "mode": mode,
    }
    findings: list[dict[str, Any]] = []
    unexpected: list[Verdict] = []
    known_verdicts: list[Verdict] = []
    seen: set[tuple[str, str]] = set()
    for _, j, _ in result.judgements:
        for f in j.findings:
            deviation = known.classify(deviations, {**coordinates, "kind": f.kind, "case": f.case})
            (known_verdicts if deviation else unexpected).append(f.verdict)
            if (f.kind, f.case) in seen or len(findings) >= MAX_FINDINGS:
                continue
            seen.add((f.kind, f.case))
            findings.append(_finding_json(f, deviation))
    judged = [j for _, j, _ in result.judgements]
    verdict = worst(unexpected + known_verdicts)
    if not judged and result.unsupported:
        verdict = Verdict.UNSUPPORTED
    worst_item = _worst_item(result)
    return {
        "framework": adapter.framework,
        "framework_version": adapter.version(),
        **coordinates,
        "op": impl.op.value,
        "verdict": verdict.value,
        "unexpected": worst(unexpected).value if unexpected else None,
        "examples": len(judged),
        "inputs": result.inputs_digest,
        "gradients": result.gradients,
        "elements": sum(j.elements for j in judged),
        "max_ulp": max((j.max_ulp for j in judged), default=0.0),
        "max_budget_ratio": max((j.max_ratio for j in judged), default=0.0),
        "flushed": sum(j.flushed for j in judged),
        "ulp_histogram": _histogram([j.max_ulp for j in judged]),
        "findings": findings,
        "special": {
            i.case: j.special
            for i, j, _ in result.judgements
            if j.special is not None and not i.case.startswith(("drawn", "targeted"))
        },
        "reactions": {i.case: j.reaction for i, j, _ in result.judgements if j.reaction},
        "misuse": result.misuse,
        "defaults": result.defaults,
        "coverage": result.coverage,
        "unsupported": sorted(set(result.unsupported))[:MAX_FINDINGS],
        "worst": None if worst_item is None else _worst_json(adapter, impl, mode, worst_item),
        "messages": sorted(result.messages)[:MAX_MESSAGES],
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
        },
        "profile": profile.name,
        "seed": seed,
        "suite": suite_identity(),
        "duration_s": round(duration, 4),
        "reference_s": round(result.reference_s, 4),
        "calls": result.calls,
        "programs": len(result.programs),
        "call_s": round(result.call_s, 4),
    }


def _finding_json(f: Finding, deviation: str | None) -> dict[str, Any]:
    return {
        "verdict": f.verdict.value,
        "kind": f.kind,
        "case": f.case,
        "detail": f.detail,
        "known": deviation,
    }


_BINS = (0, 1, 2, 4, 8, 16, 64, 256, 1024, 2**16, 2**32)


def _histogram(values: list[float]) -> dict[str, int]:
    """Counts of per-input max strict ULP in bins [0], (0, 1], (1, 2], ... (inf)."""
    counts: dict[str, int] = {}
    for v in values:
        label = next((f"<={b}" for b in _BINS if v <= b), ">2^32")
        counts[label] = counts.get(label, 0) + 1
    return counts


def _worst_json(
    adapter: Adapter,
    impl: Implementation,
    mode: str,
    item: tuple[Input, Judgement, dict[str, Any]],
) -> dict[str, Any]:
    inp, j, returned = item
    return {
        "case": inp.case,
        "verdict": j.verdict.value,
        "max_ulp": j.max_ulp,
        "max_budget_ratio": j.max_ratio,
        "x": encode_array(inp.x),
        "labels": _encode_optional(inp.labels),
        "options": json_options(inp.options),
        "cotangent": _encode_optional(returned.get("cotangent")),
        "value": _encode_optional(returned.get("value")),
        "grad": _encode_optional(returned.get("grad")),
        "output_dtype": returned.get("output_dtype"),
        "call_rows": returned.get("call_rows"),
        "snippet": snippet(
            adapter, impl, inp.x, inp.labels, inp.options, mode, returned.get("call_rows")
        ),
    }
