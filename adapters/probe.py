"""Ask an adapter, in this process, what it really has: `python -m conformance_adapters.probe NAME`.

Prints one JSON object: availability (after importing the framework), version, devices,
mode availability and the environment that changes numerics. `conformance list --probe`
runs one such process per adapter, with the adapter's `process_env()` set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from conformance_adapters.base import Adapter
from conformance_adapters.registry import get_adapter


def probe(adapter: Adapter) -> dict[str, Any]:
    """What the adapter reports once its framework is imported (never raises)."""
    out: dict[str, Any] = {"adapter": adapter.name}
    ok, reason = adapter.availability()
    if ok:
        try:
            adapter._import()
            out["devices"] = adapter.devices()
            out["environment"] = adapter.environment()
        except Exception as exc:
            ok, reason = False, f"importing the framework failed: {type(exc).__name__}: {exc}"
    out.update(
        available=ok, reason=reason, version=adapter.version(), modes=adapter.mode_availability()
    )
    return out


def probe_in_subprocess(name: str, timeout_s: float = 180.0) -> dict[str, Any]:
    """`probe` in a fresh interpreter with the adapter's process_env (never raises)."""
    try:
        env = {**os.environ, **get_adapter(name).process_env()}
        done = subprocess.run(
            [sys.executable, "-m", "conformance_adapters.probe", name],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except Exception as exc:
        return {"adapter": name, "available": False, "reason": f"probe failed: {exc}"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {
            "adapter": name,
            "available": False,
            "reason": f"probe exited {done.returncode}: {tail}",
        }
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m conformance_adapters.probe ADAPTER", file=sys.stderr)
        return 2
    print(json.dumps(probe(get_adapter(args[0])), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
