"""Per-call overhead of each adapter on a small input, eager and compiled.

    python benchmarks/adapters.py [--adapter NAME ...] [--repeat N] [--shape 8x16]

Each adapter runs in a fresh process with its `process_env()` (Keras backends cannot share
one). Per implementation and mode it prints the median wall time of:
  run      `Adapter.run` (numpy in, numpy out: conversions, capture of warnings and fd 2,
           option checks, cache lookup) - what the harness pays per call;
  +grad    the same with a cotangent (value and VJP);
  native   the cached compiled/eager callable alone on native inputs, result synced;
so run - native is the adapter's own overhead. The first call (trace/compile) is reported
separately as `first`.

Small inputs make intra-op thread pools a cost: on a busy 2-core machine torch's default
two threads take ~8 ms per softmax of 8x16 (waiting for a scheduler tick) against ~4 us
with one. `--threads N` sets OMP_NUM_THREADS / torch / TF thread counts in the workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from conformance.ops import Op
from conformance_adapters.base import Adapter
from conformance_adapters.common import capture
from conformance_adapters.interface import ARRAY_OPTIONS, Call, Implementation
from conformance_adapters.registry import adapter_names, get_adapter

OPS = (Op.SOFTMAX, Op.SPARSE_SOFTMAX_CROSS_ENTROPY)


def _median_us(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def _call(impl: Implementation, shape: tuple[int, int], mode: str, grad: bool) -> Call:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    labels = rng.integers(0, shape[1], shape[0]) if impl.op is not Op.SOFTMAX else None
    options: dict[str, Any] = {"axis": -1}
    out_shape = shape if impl.op is Op.SOFTMAX else shape[:1]
    ct = np.ones(out_shape, np.float32) if grad else None
    return Call(x, labels, options, "cpu", mode, ct)


def bench_adapter(adapter: Adapter, shape: tuple[int, int], repeat: int) -> list[dict[str, Any]]:
    """Timings of the first implementation of each op in OPS, per usable mode."""
    rows = []
    modes = adapter.mode_availability()
    for op in OPS:
        impl = next((i for i in adapter.implementations() if i.op is op), None)
        if impl is None:
            continue
        for mode in impl.modes:
            if modes.get(mode):
                continue
            row: dict[str, Any] = {
                "adapter": adapter.name,
                "implementation": impl.name,
                "mode": mode,
            }
            for grad in (False, True) if impl.differentiable else (False,):
                call = _call(impl, shape, mode, grad)
                t = time.perf_counter()
                out = adapter.run(impl, call)
                first = (time.perf_counter() - t) * 1e6
                if out.error is not None:
                    row["error"] = f"{out.error.type}: {out.error.message}"
                    break
                for _ in range(3):
                    adapter.run(impl, call)
                key = "grad_us" if grad else "run_us"
                row[key] = _median_us(lambda i=impl, c=call: adapter.run(i, c), repeat)
                row["first_grad_us" if grad else "first_us"] = first
                if not grad:
                    row["native_us"] = _native_us(adapter, impl, call, repeat)
            rows.append(row)
    return rows


def _native_us(adapter: Adapter, impl: Implementation, call: Call, repeat: int) -> float:
    """The cached callable alone (the most recently used one is this call's)."""
    runner = next(reversed(adapter._cache.values()))
    arrays = {k: None for k in impl.option_names if k in ARRAY_OPTIONS}
    with adapter._device_scope(call.device):
        x = adapter._to_native(call.x, call.device)
        labels = None
        if call.labels is not None:
            labels = adapter._to_native(call.labels.astype(str(impl.label_dtype)), call.device)

        def once() -> None:
            value, _ = runner(x, labels, arrays, None)
            adapter._to_numpy(value)

        return _median_us(once, repeat)


def _capture_us(repeat: int) -> float:
    def once() -> None:
        with capture():
            pass

    return _median_us(once, repeat)


def _worker(name: str, shape: tuple[int, int], repeat: int) -> None:
    adapter = get_adapter(name)
    ok, reason = adapter.availability()
    if not ok:
        print(json.dumps({"adapter": name, "error": reason}))
        return
    adapter._import()
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and "torch" in adapter.modules:
        import torch

        torch.set_num_threads(int(threads))
    for row in bench_adapter(adapter, shape, repeat):
        print(json.dumps(row))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", action="append", default=[])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--shape", default="8x16")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads in the workers (default: the frameworks' own)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = tuple(int(n) for n in args.shape.split("x"))
    assert len(shape) == 2
    if args.worker:
        _worker(args.worker, shape, args.repeat)  # type: ignore[arg-type]
        return 0
    print(
        f"capture() alone: {_capture_us(args.repeat):.0f} us; float32 input {args.shape},"
        f" median of {args.repeat} calls, microseconds; threads: {args.threads or 'default'}"
    )
    header = (
        f"{'adapter':<22} {'implementation':<55} {'mode':<13} {'run':>8} {'native':>8}"
        f" {'+grad':>8} {'first':>10}"
    )
    print(header)
    print("-" * len(header))
    for name in args.adapter or adapter_names():
        env = {**os.environ, **get_adapter(name).process_env()}
        if args.threads:
            env.update(
                OMP_NUM_THREADS=str(args.threads),
                MKL_NUM_THREADS=str(args.threads),
                TF_NUM_INTRAOP_THREADS=str(args.threads),
            )
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                name,
                "--shape",
                args.shape,
                "--repeat",
                str(args.repeat),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        if done.returncode != 0 or not lines:
            tail = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{name:<22} failed: {tail}")
            continue
        for line in lines:
            r = json.loads(line)
            if "implementation" not in r or "error" in r:
                print(f"{name:<22} {r.get('implementation', '')} {r.get('error', '')}")
                continue
            grad = f"{r['grad_us']:8.0f}" if "grad_us" in r else f"{'-':>8}"
            print(
                f"{r['adapter']:<22} {r['implementation']:<55} {r['mode']:<13}"
                f" {r['run_us']:8.0f} {r['native_us']:8.0f} {grad} {r['first_us']:10.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
