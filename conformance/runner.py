"""Runs adapters in worker processes and writes one record per cell as cells finish.

One worker per adapter (a framework, or a Keras backend, is fixed per process), up to
`jobs` at once. A worker that dies or exceeds the cell timeout costs only the cell it
was on: that cell is recorded `crashed` with the worker's last words, and a fresh worker
takes the remaining cells.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.judge import Verdict
from conformance.provenance import suite_identity
from conformance.results import ResultsWriter
from conformance_adapters.registry import AdapterLoadError, get_adapter

CellKey = tuple[str, str, str, str]


@dataclass
class RunOptions:
    """What `conformance run` was asked for."""

    adapters: list[str]
    profile: str = "quick"
    seed: int = 0
    dtypes: list[str] | None = None
    devices: list[str] | None = None
    modes: list[str] | None = None
    apis: list[str] | None = None
    """Shell-style patterns of implementation names (`--api`); None: every one."""
    shard: tuple[int, int] | None = None
    jobs: int = 2
    cell_timeout_s: float = 600.0
    known: str | None = None
    threads: int = 1
    """Threads per worker for the frameworks' CPU kernels (the environment can override)."""
    skip: dict[str, set[CellKey]] = field(default_factory=dict)
    """Per adapter, cells already in the results file (`--resume`)."""


def thread_env(threads: int) -> dict[str, str]:
    """Environment that caps the frameworks' CPU thread pools: with one worker per core,
    more threads only oversubscribe (a tiny torch softmax took 8 ms with two threads on a
    loaded 2-core machine, 4 us with one)."""
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": n,
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}",
    }


@dataclass
class AdapterOutcome:
    adapter: str
    skipped: str = ""
    records: int = 0
    crashes: list[str] = field(default_factory=list)


Progress = Callable[[str, dict[str, Any]], None]


def _crashed_record(
    adapter: str,
    framework: str,
    version: str | None,
    key: CellKey,
    verdict: str,
    words: str,
    seed: int,
    profile: str,
    duration: float,
) -> dict[str, Any]:
    impl, dtype, device, mode = key
    return {
        "framework": framework,
        "framework_version": version,
        "adapter": adapter,
        "implementation": impl,
        "op": None,
        "dtype": dtype,
        "device": device,
        "mode": mode,
        "verdict": verdict,
        "unexpected": verdict,
        "examples": 0,
        "max_ulp": None,
        "max_budget_ratio": None,
        "findings": [
            {"verdict": verdict, "kind": verdict, "case": "-", "detail": words, "known": None}
        ],
        "special": {},
        "reactions": {},
        "unsupported": [],
        "worst": None,
        "messages": [words] if words else [],
        "environment": {},
        "suite": suite_identity(),
        "seed": seed,
        "profile": profile,
        "duration_s": round(duration, 3),
    }


class _Worker:
    """One worker process and a thread that turns its protocol lines into a queue."""

    def __init__(self, job: dict[str, Any], env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conformance.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            bufsize=1,
        )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=30)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except json.JSONDecodeError:
                self.stderr_tail.append(line.rstrip())
        self.events.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail.append(line.rstrip())

    def last_words(self) -> str:
        code = self.proc.poll()
        status = "" if code is None else f"exit status {code}"
        if code is not None and code < 0:
            status = f"killed by signal {-code}"
        tail = [ln for ln in self.stderr_tail if ln.strip()][-6:]
        return "; ".join(filter(None, [status, *tail]))[-2000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _same_api(hung: CellKey, planned: list[CellKey], done: set[CellKey]) -> list[CellKey]:
    """The cells still to run of the implementation whose cell `hung` hung."""
    return [k for k in planned if k[0] == hung[0] and k not in done and k != hung]


def run_adapter(
    name: str, options: RunOptions, writer: ResultsWriter, lock: threading.Lock, progress: Progress
) -> AdapterOutcome:
    """Run every selected cell of one adapter, surviving crashes and hangs of its workers."""
    result = AdapterOutcome(name)
    try:
        adapter = get_adapter(name)
    except AdapterLoadError as exc:
        result.skipped = str(exc)
        progress("skipped", {"adapter": name, "reason": result.skipped})
        return result
    available, reason = adapter.availability()
    if not available:
        result.skipped = reason
        progress("skipped", {"adapter": name, "reason": reason})
        return result
    env = {**thread_env(options.threads), **os.environ, **adapter.process_env()}
    done: set[CellKey] = set(options.skip.get(adapter.name, set()))
    planned: list[CellKey] | None = None
    while True:
        job = {
            "adapter": name,
            "profile": options.profile,
            "seed": options.seed,
            "dtypes": options.dtypes,
            "devices": options.devices,
            "modes": options.modes,
            "apis": options.apis,
            "shard": options.shard,
            "known": options.known,
            "skip": sorted(done),
        }
        worker = _Worker(job, env)
        current: CellKey | None = None
        started = time.monotonic()
        finished = False
        while True:
            timeout = options.cell_timeout_s if current else options.cell_timeout_s + 120
            try:
                event = worker.events.get(timeout=timeout)
            except queue.Empty:
                event = {"event": "timeout"}
            kind = None if event is None else event["event"]
            if kind == "plan":
                if planned is None:
                    planned = [tuple(k) for k in event["cells"]]
                    progress(
                        "plan",
                        {"adapter": name, "cells": len([k for k in planned if k not in done])},
                    )
            elif kind == "start":
                current, started = tuple(event["cell"]), time.monotonic()
            elif kind == "record":
                with lock:
                    writer.write(event["record"])
                done.add(tuple(event["cell"]))
                result.records += 1
                progress("record", event["record"])
                current = None
            elif kind == "done":
                finished = True
                break
            else:  # the worker died (None) or hung (timeout)
                verdict = Verdict.CRASHED.value
                hung = kind == "timeout"
                worker.kill()
                words = worker.last_words()
                if hung:
                    words = f"no answer for {options.cell_timeout_s:.0f} s (killed); {words}"
                if current is None:
                    result.skipped = f"worker failed outside any cell: {words}"
                    progress("skipped", {"adapter": name, "reason": result.skipped})
                    return result

                def lost(key: CellKey, verdict: str, words: str, seconds: float) -> None:
                    """Record a cell the worker did not finish (or was not given)."""
                    record = _crashed_record(
                        adapter.name,
                        adapter.framework,
                        adapter.version(),
                        key,
                        verdict,
                        words,
                        options.seed,
                        options.profile,
                        seconds,
                    )
                    with lock:
                        writer.write(record)
                    done.add(key)
                    result.records += 1
                    progress("record", record)

                lost(
                    current,
                    Verdict.TIMEOUT.value if hung else verdict,
                    words,
                    time.monotonic() - started,
                )
                result.crashes.append(f"{'/'.join(current)}: {words}")
                if hung:
                    for key in _same_api(current, planned or [], done):
                        lost(
                            key,
                            Verdict.TIMEOUT.value,
                            f"not called: {current[0]} hung in {'/'.join(current[1:])}"
                            f" (no answer for {options.cell_timeout_s:.0f} s); an API that"
                            " hangs is not called again in this run",
                            0.0,
                        )
                break
        worker.kill()
        if finished or (planned is not None and all(k in done for k in planned)):
            return result


def _cost(name: str) -> float:
    """The adapter's expected run time (`Adapter.cost`); 0 for one that does not load."""
    try:
        return float(get_adapter(name).cost)
    except AdapterLoadError:
        return 0.0


def run(options: RunOptions, out: Path, progress: Progress) -> list[AdapterOutcome]:
    """Run every adapter of `options`, `options.jobs` workers at a time, into `out`."""
    lock = threading.Lock()
    outcomes: list[AdapterOutcome] = []
    with ResultsWriter(out) as writer:
        pending = sorted(options.adapters, key=_cost, reverse=True)  # longest first
        threads: list[threading.Thread] = []
        results: dict[str, AdapterOutcome] = {}

        def work() -> None:
            while True:
                with lock:
                    if not pending:
                        return
                    name = pending.pop(0)
                results[name] = run_adapter(name, options, writer, lock, progress)

        for _ in range(max(1, options.jobs)):
            t = threading.Thread(target=work, daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        outcomes = [results[name] for name in options.adapters if name in results]
    return outcomes
