"""The quick profile over every installed framework: wall time, examples per second per
framework, and the share of time spent in the reference.

    python benchmarks/quick_run.py                 # cold: an empty cache directory
    python benchmarks/quick_run.py --warm          # the user's cache (a second run)
    python benchmarks/quick_run.py --results FILE  # only summarise an existing results file

A cold run starts from an empty cache (`conformance.cache`: the Hypothesis draws, the
reference answers, the executables of JAX and TensorFlow's XLA); a warm run is what a
developer sees from the second run on, and what CI sees when it keeps the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def summarise(path: Path) -> list[dict[str, object]]:
    """Per adapter: cells run, examples judged, framework calls and distinct programs
    (compilations, for compiled modes) per cell, seconds in cells and in the reference."""
    rows: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("verdict") == "unsupported":
            continue
        row = rows[record["adapter"]]
        row["cells"] += 1
        row["examples"] += record.get("examples") or 0
        row["seconds"] += record.get("duration_s") or 0.0
        row["reference"] += record.get("reference_s") or 0.0
        row["calls"] += record.get("calls") or 0
        row["programs"] += record.get("programs") or 0
    return [
        {
            "adapter": name,
            "cells": int(r["cells"]),
            "examples": int(r["examples"]),
            "cell_seconds": round(r["seconds"], 1),
            "examples_per_s": round(r["examples"] / r["seconds"], 1) if r["seconds"] else None,
            "calls_per_cell": round(r["calls"] / r["cells"], 1),
            "programs_per_cell": round(r["programs"] / r["cells"], 1),
            "reference_share": round(r["reference"] / r["seconds"], 3) if r["seconds"] else None,
        }
        for name, r in sorted(rows.items())
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", action="store_true", help="use the user's cache")
    parser.add_argument("--results", type=Path, help="summarise this results file only")
    parser.add_argument("run_args", nargs="*", help="extra `conformance run` arguments")
    args = parser.parse_args(argv)
    wall = None
    out = args.results
    if out is None:
        tmp = Path(tempfile.mkdtemp(prefix="quick-run-"))
        out = tmp / "results.jsonl"
        env = dict(os.environ)
        if not args.warm:
            env["CONFORMANCE_CACHE_DIR"] = str(tmp / "cache")
        command = ["conformance", "run", "--out", str(out), *args.run_args]
        started = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - started
    rows = summarise(out)
    total = sum(float(r["cell_seconds"]) for r in rows)  # type: ignore[arg-type]
    print(
        f"{'adapter':24} {'cells':>5} {'examples':>8} {'cell s':>8} {'ex/s':>7} {'ref':>6}"
        f" {'calls/cell':>10} {'programs/cell':>13}"
    )
    for r in rows:
        share = r["reference_share"]
        print(
            f"{r['adapter']:24} {r['cells']:>5} {r['examples']:>8} {r['cell_seconds']:>8} "
            f"{r['examples_per_s']!s:>7} {'' if share is None else f'{share:.0%}':>6}"
            f" {r['calls_per_cell']:>10} {r['programs_per_cell']:>13}"
        )
    print(f"cell seconds in all: {total:.0f}" + ("" if wall is None else f"; wall: {wall:.0f} s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
