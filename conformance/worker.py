"""A worker process: one adapter, imported once, running the cells the runner asks for.

Protocol: the runner writes one JSON job to stdin; the worker answers with JSON lines on a
private copy of its original stdout (its fd 1 is pointed at stderr, so a framework that
prints cannot corrupt the protocol): `plan` (every cell it will run), then per cell
`start` and `record`, then `done`. The runner isolates crashes: a worker that dies or hangs
costs the cell it was on, and a fresh worker resumes after it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from typing import Any, TextIO

from conformance import known
from conformance.drawing import PROFILES
from conformance.harness import run_cell
from conformance.judge import Verdict
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Implementation, api_selected
from conformance_adapters.registry import get_adapter

CellKey = tuple[str, str, str, str]
"""(implementation, dtype, device, mode)."""


def in_shard(adapter: str, key: CellKey, shard: tuple[int, int] | None) -> bool:
    """Whether a cell belongs to shard i of n (a stable hash, the same in every process)."""
    if shard is None:
        return True
    index, count = shard
    digest = zlib.crc32("\x1f".join((adapter, *key)).encode())
    return digest % count == index - 1


def plan(
    adapter: Adapter,
    dtypes: list[str] | None,
    devices: list[str] | None,
    modes: list[str] | None,
    apis: list[str] | None = None,
) -> list[tuple[Implementation, str, str, str]]:
    """Every cell of `adapter` within the filters: implementation × dtype × device × mode
    (`apis`: shell-style patterns of implementation names, e.g. 'optax.*')."""
    present = adapter.devices()
    cells = []
    for impl in adapter.implementations():
        if apis and not api_selected(impl.name, apis):
            continue
        for dtype in impl.dtypes:
            if dtypes and dtype not in dtypes:
                continue
            for device in present:
                if devices and device not in devices:
                    continue
                for mode in impl.modes:
                    if modes and mode not in modes and mode.split("-")[0] not in modes:
                        continue
                    cells.append((impl, dtype, device, mode))
    return cells


def unsupported_record(
    adapter: Adapter,
    impl: Implementation,
    dtype: str,
    device: str,
    mode: str,
    reason: str,
    seed: int,
    profile: str,
) -> dict[str, Any]:
    return {
        "framework": adapter.framework,
        "framework_version": adapter.version(),
        "adapter": adapter.name,
        "implementation": impl.name,
        "op": impl.op.value,
        "dtype": dtype,
        "device": device,
        "mode": mode,
        "verdict": Verdict.UNSUPPORTED.value,
        "unexpected": None,
        "examples": 0,
        "max_ulp": 0.0,
        "max_budget_ratio": 0.0,
        "findings": [],
        "special": {},
        "reactions": {},
        "unsupported": [reason],
        "worst": None,
        "messages": [],
        "environment": {},
        "seed": seed,
        "profile": profile,
        "duration_s": 0.0,
    }


def serve(job: dict[str, Any], out: TextIO) -> None:
    """Run `job` and report on `out`."""

    def say(event: str, **data: Any) -> None:
        out.write(json.dumps({"event": event, **data}, allow_nan=True) + "\n")
        out.flush()

    adapter = get_adapter(job["adapter"])
    profile = PROFILES[job["profile"]]
    seed = int(job["seed"])
    shard = tuple(job["shard"]) if job.get("shard") else None
    skip = {tuple(k) for k in job.get("skip", [])}
    deviations = known.load(job.get("known"))
    cells = [
        c
        for c in plan(
            adapter, job.get("dtypes"), job.get("devices"), job.get("modes"), job.get("apis")
        )
        if in_shard(adapter.name, (c[0].name, *c[1:]), shard)
    ]
    keys = [(impl.name, dtype, device, mode) for impl, dtype, device, mode in cells]
    environment = adapter.environment()
    say("plan", cells=keys, environment=environment)
    mode_reasons = adapter.mode_availability()
    for (impl, dtype, device, mode), key in zip(cells, keys, strict=True):
        if key in skip:
            continue
        say("start", cell=key, at=time.time())
        reason = mode_reasons.get(mode, "")
        if reason:
            record = unsupported_record(
                adapter, impl, dtype, device, mode, reason, seed, profile.name
            )
        else:
            record = run_cell(adapter, impl, dtype, device, mode, profile, seed, deviations)
        record["environment"] = {**environment, **record.get("environment", {})}
        say("record", cell=key, record=record)
    say("done")


MEMORY_ENV = "CONFORMANCE_WORKER_MEMORY_GB"
"""When set, the worker's address space is capped at this many GiB (RLIMIT_AS), so a runaway
allocation fails with MemoryError in that cell instead of exhausting the machine."""


def _limit_memory() -> None:
    limit = os.environ.get(MEMORY_ENV)
    if not limit:
        return
    import resource

    cap = int(float(limit) * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def main() -> None:
    _limit_memory()
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # framework prints go to stderr, never into the protocol
    sys.stdout = sys.stderr
    job = json.loads(sys.stdin.readline())
    serve(job, protocol)


if __name__ == "__main__":
    main()
