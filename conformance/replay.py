"""`conformance replay`: re-run the stored worst input of a cell and judge it again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from conformance.batching import repeat_rows
from conformance.results import ResultsError, decode_array, read_records
from conformance.usage import UsageError


def _options(stored: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in stored.items():
        if isinstance(value, dict) and "array" in value:
            out[key] = decode_array(value["array"])
        elif key == "axis" and isinstance(value, list):
            out[key] = tuple(value)
        else:
            out[key] = value
    return out


def find_record(path: Path, cell: str | None) -> dict[str, Any]:
    """The record named by 'adapter/implementation/dtype/device/mode' (or a unique prefix);
    without a name, the first record with an unexpected finding."""
    try:
        records = read_records(path).records
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    candidates = [r for r in records if r.get("worst")]
    if cell:
        matches = [
            r
            for r in candidates
            if "/".join(
                str(r[k]) for k in ("adapter", "implementation", "dtype", "device", "mode")
            ).startswith(cell)
        ]
    else:
        matches = [r for r in candidates if r.get("unexpected")] or candidates[:1]
    if not matches:
        raise UsageError(f"no cell {cell!r} with a stored input in {path}")
    if cell and len(matches) > 1:
        names = ", ".join(
            "/".join(str(r[k]) for k in ("adapter", "implementation", "dtype", "device", "mode"))
            for r in matches[:5]
        )
        raise UsageError(f"{cell!r} matches {len(matches)} cells: {names} ...")
    return matches[0]


def replay(path: Path, cell: str | None) -> int:
    """Re-run one stored input; exit 1 when it still shows a finding."""
    record = find_record(Path(path), cell)
    from conformance_adapters.interface import Call
    from conformance_adapters.registry import get_adapter

    adapter = get_adapter(record["adapter"])
    available, reason = adapter.availability()
    if not available:
        raise UsageError(f"adapter {record['adapter']} is not available here: {reason}")
    os.environ.update(adapter.process_env())
    from conformance.judge import judge

    worst = record["worst"]
    impl = adapter.implementation(record["implementation"])
    x = decode_array(worst["x"])
    labels = decode_array(worst["labels"]) if worst.get("labels") else None
    cotangent = decode_array(worst["cotangent"]) if worst.get("cotangent") else None
    options = _options(worst["options"])
    rows = worst.get("call_rows")  # the call repeated the input's rows to this many
    pad = (lambda a: a) if not rows else (lambda a: repeat_rows(a, rows))
    outcome = adapter.run(
        impl,
        Call(
            x=pad(x),
            labels=None if labels is None else pad(labels),
            options=options,
            device=record["device"],
            mode=record["mode"],
            cotangent=None if cotangent is None else pad(cotangent),
        ),
    )
    if rows:  # judge the input's own rows
        outcome.value = None if outcome.value is None else outcome.value[: len(x)]
        outcome.grad = None if outcome.grad is None else outcome.grad[: len(x)]
    error = None if outcome.error is None else f"{outcome.error.type}: {outcome.error.message}"
    invalid = worst.get("verdict") == "error" and worst["case"] in record.get("reactions", {})
    j = judge(
        impl.op,
        x,
        labels,
        options,
        outcome.value,
        outcome.grad,
        cotangent,
        error,
        bool(outcome.warnings),
        invalid=invalid,
        case=worst["case"],
    )
    print(
        f"{record['adapter']} {impl.name} {record['dtype']} {record['device']} "
        f"{record['mode']}  case {worst['case']}"
    )
    with np.printoptions(precision=17, threshold=20):
        print("returned:", outcome.value if outcome.value is not None else error)
    print(
        f"verdict now: {j.verdict}  (stored: {worst['verdict']}), max ULP {j.max_ulp:.0f}, "
        f"budget ratio {j.max_ratio:.3g}"
    )
    for f in j.findings:
        print(f"  {f.verdict}: {f.kind}: {f.detail}")
    print("\nreproducer:\n" + worst["snippet"])
    return 1 if j.findings else 0
