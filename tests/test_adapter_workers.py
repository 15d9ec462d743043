"""Adapters smoke-tested in worker subprocesses (`adapter_cases.py`), as the harness runs
them, with their `process_env()`: keras-* need one process per backend, jax-x32 and
tensorflow-onednn-off read their settings at import, and jax / tensorflow are here to spread
XLA compiles over the CPUs. Adapters that can share a process share one (one import of
the framework): a group's environment is its members' process_env where they agree.

The workers start when this module is imported (at collection), longest first, as many at
a time as there are CPUs (at most 2), so that they run while the in-process tests
(test_adapter_scipy.py, test_adapter_torch.py, ...) do; each test waits for its own.
"""

from __future__ import annotations

import atexit
import os
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from conformance_adapters.common import module_installed
from conformance_adapters.registry import get_adapter

WORKER_GROUPS = (
    ("jax", "jax-x32"),
    ("keras-jax",),
    ("tensorflow", "keras-tensorflow"),
    ("tensorflow-onednn-off",),
    ("keras-torch",),
)
"""Longest first. jax and jax-x32 set x64 per call, so they share a process (jax-x32 then
finds jax's programs in the XLA cache) with JAX_ENABLE_X64 left unset."""
PARALLEL = int(os.environ.get("CONFORMANCE_TEST_WORKERS", min(2, os.cpu_count() or 1)))
TIMEOUT_S = 900
_CASES = Path(__file__).with_name("adapter_cases.py")
_ROOT = Path(__file__).resolve().parent.parent
_PROCS: list[subprocess.Popen[str]] = []
_JAX_CACHE = tempfile.TemporaryDirectory(prefix="conformance-jax-cache-")
"""A persistent XLA compilation cache shared by this session's JAX workers only."""
_LOCK = threading.Lock()


def _installed(group: tuple[str, ...]) -> tuple[bool, str]:
    missing = {m for name in group for m in get_adapter(name).modules if not module_installed(m)}
    return (False, f"{', '.join(sorted(missing))} not installed") if missing else (True, "")


def group_env(group: tuple[str, ...]) -> dict[str, str]:
    """The members' process_env where those that set a variable agree (else it is unset)."""
    envs = [get_adapter(name).process_env() for name in group]
    out = {}
    for key in {k for e in envs for k in e}:
        values = {e[key] for e in envs if key in e}
        if len(values) == 1:
            out[key] = values.pop()
    return out


_FAST_XLA = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
"""XLA compiles dominate the jax/tensorflow workers; unoptimized code is fine for smoke tests
(the harness runs with the user's XLA_FLAGS). CONFORMANCE_TEST_XLA_FLAGS overrides it."""


def _run_worker(group: tuple[str, ...]) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_X64", "KERAS_BACKEND")}
    env.update(group_env(group), CONFORMANCE_TEST_ADAPTERS=",".join(group))
    if "XLA_FLAGS" not in os.environ:
        env["XLA_FLAGS"] = os.environ.get("CONFORMANCE_TEST_XLA_FLAGS", _FAST_XLA)
    env.setdefault("OMP_NUM_THREADS", "1")  # workers share the CPUs; tiny inputs
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        env.update(
            JAX_COMPILATION_CACHE_DIR=_JAX_CACHE.name,
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
            JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        )
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(_CASES)]
    with _LOCK:
        proc = subprocess.Popen(
            cmd, cwd=_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        _PROCS.append(proc)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return -1, f"worker timed out after {TIMEOUT_S} s\n{out}"
    return proc.returncode, out


def test_group_env_keeps_what_members_agree_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", "off")
    assert group_env(("jax", "jax-x32")) == {}
    assert group_env(("jax", "keras-jax")) == {"KERAS_BACKEND": "jax", "JAX_ENABLE_X64": "1"}
    assert group_env(("tensorflow-onednn-off",))["TF_ENABLE_ONEDNN_OPTS"] == "0"


def _stop_all() -> None:
    _POOL.shutdown(wait=False, cancel_futures=True)
    with _LOCK:
        for proc in _PROCS:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    _JAX_CACHE.cleanup()


_POOL = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="adapter-worker")
_FUTURES: dict[tuple[str, ...], Future[tuple[int, str]]] = {
    group: _POOL.submit(_run_worker, group) for group in WORKER_GROUPS if _installed(group)[0]
}
atexit.register(_stop_all)


@pytest.mark.parametrize("group", WORKER_GROUPS, ids="+".join)
def test_adapters_in_worker(group: tuple[str, ...]) -> None:
    installed, reason = _installed(group)
    if not installed:
        pytest.skip(reason)
    name = "+".join(group)
    rc, out = _FUTURES[group].result(timeout=TIMEOUT_S + 60)
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    assert rc == 0, f"{name} worker failed (exit {rc}):\n{out[-12000:]}"
    if not re.search(r"\d+ passed", summary):
        skipped = [ln for ln in out.splitlines() if ln.startswith("SKIPPED")]
        pytest.skip(f"{name}: {skipped[0] if skipped else summary}")
