"""The reproducer of every built-in implementation (`conformance/snippets.py`) is runnable code
in the framework's own API that computes exactly what the adapter computes.

For each installed adapter, one fresh subprocess (this file run as a script) executes every
snippet first, before anything imported the framework (so the snippet's own environment
lines take effect: KERAS_BACKEND, TF_ENABLE_ONEDNN_OPTS, jax_enable_x64), then runs the
same calls through `adapter.run`. The printed output must equal the adapter's value bit for
bit: both run the same deterministic CPU kernels on the same inputs in the same process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from adapter_smoke import make_call

from conformance.ops import Option, Reduction
from conformance.snippets import snippet
from conformance_adapters.base import Adapter
from conformance_adapters.common import module_installed
from conformance_adapters.interface import Call, Implementation
from conformance_adapters.registry import BUILTIN, get_adapter

_ROOT = Path(__file__).resolve().parent.parent
_SET_BY_SNIPPETS = ("KERAS_BACKEND", "JAX_ENABLE_X64", "TF_ENABLE_ONEDNN_OPTS")
"""Left out of the subprocess' environment: the snippets must set what they need."""
TIMEOUT_S = 300
PARALLEL = int(os.environ.get("CONFORMANCE_TEST_WORKERS", min(2, os.cpu_count() or 1)))
LONGEST_FIRST = (
    "jax",
    "keras-jax",
    "keras-tensorflow",
    "jax-x32",
    "tensorflow",
    "tensorflow-onednn-off",
    "keras-torch",
    "torch",
    "onnxruntime",
    "scipy",
)
"""The built-in adapters by how long their subprocess takes (JAX compiles every eager op):
the order they start in, and are tested in."""


def _last_axis(call: Call) -> Call:
    """The call with the class axis (1) moved last and axis=-1 (torch moves it back)."""
    options = dict(call.options)
    options["axis"] = -1
    for key in ("where", "scale"):
        if isinstance(options.get(key), np.ndarray):
            options[key] = np.moveaxis(options[key], 1, -1)
    labels = call.labels
    if labels is not None and labels.shape == call.x.shape:
        labels = np.moveaxis(labels, 1, -1)
    return dataclasses.replace(call, x=np.moveaxis(call.x, 1, -1), labels=labels, options=options)


def cases(adapter: Adapter) -> list[tuple[Implementation, Call]]:
    """Each implementation with every option set, in float32 (and bfloat16 where declared;
    else its own dtypes) and each usable mode; then in eager mode: each reduction once per
    adapter (one mapping), `where` alone, the class axis last (torch moves it), and one
    float64 call."""
    usable = adapter.mode_availability()
    out: list[tuple[Implementation, Call]] = []
    reductions: set[Reduction] = set()
    for impl in adapter.implementations():
        dtypes = [d for d in ("float32", "bfloat16") if d in impl.dtypes] or list(impl.dtypes)
        first = impl.reductions[0]
        for dtype in dtypes:
            for mode in (m for m in impl.modes if not usable.get(m)):
                out.append((impl, make_call(impl, dtype, mode, full=True, reduction=first)))
        dtype = dtypes[0]
        for r in sorted(set(impl.reductions) - reductions - {first}):
            out.append((impl, make_call(impl, dtype, "eager", full=True, reduction=r)))
        reductions |= set(impl.reductions)
        if Option.WHERE in impl.options:
            out.append((impl, make_call(impl, dtype, "eager", masked=True)))
        call = make_call(impl, dtype, "eager", full=True, reduction=first)
        if call.options.get("axis") == 1:
            out.append((impl, _last_axis(call)))
    wide = [i for i in adapter.implementations() if "float64" in i.dtypes]
    if wide and not any(c.x.dtype == np.float64 for _, c in out):  # JAX's x64 shows here
        impl = wide[0]
        out.append(
            (impl, make_call(impl, "float64", "eager", full=True, reduction=impl.reductions[0]))
        )
    return out


def _parse(printed: str) -> np.ndarray:
    """The snippet's last printed line: (nested lists of) Python floats."""
    line = printed.strip().splitlines()[-1]
    value = eval(line, {"__builtins__": {}, "nan": math.nan, "inf": math.inf})
    return np.asarray(value, np.float64)


def test_every_builtin_implementation_has_a_snippet() -> None:
    assert sorted(LONGEST_FIRST) == sorted(BUILTIN)
    for name in BUILTIN:
        adapter = get_adapter(name)
        for impl in adapter.implementations():
            assert impl.snippet, f"{name}: {impl.name} has no snippet"
            for mode in impl.modes:
                assert adapter.snippet_wrapper(mode), f"{name}: no snippet for {mode}"


def test_snippet_without_template_is_a_comment() -> None:
    from fake_adapters import FakeAdapter

    adapter = FakeAdapter()
    impl = adapter.implementations()[0]
    text = snippet(adapter, impl, np.ones((2, 3), np.float32), None, {"axis": -1}, "eager")
    assert "np.frombuffer" in text and text.rstrip().splitlines()[-1].startswith("#")


def test_a_call_of_repeated_rows_is_rebuilt_by_the_snippet() -> None:
    """The harness may call an input with its rows repeated (batching.stack); the
    reproducer rebuilds exactly that call."""
    from fake_adapters import FakeAdapter

    from conformance.batching import stack
    from conformance.inputs import Input

    adapter = FakeAdapter()
    impl = adapter.implementations()[0]
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    text = snippet(adapter, impl, x, None, {"axis": -1}, "eager", rows=8)
    namespace: dict[str, Any] = {}
    exec(compile(text, "<snippet>", "exec"), namespace)
    want, _ = stack([Input("a", x, None, {})], 8)
    assert namespace["x"].shape == (8, 2) and np.array_equal(namespace["x"], want)


@dataclasses.dataclass
class Run:
    """One adapter's subprocess: its cases, their snippets, what they printed, the outcomes."""

    cases: list[tuple[Implementation, Call]]
    snippets: list[str]
    printed: list[str] = dataclasses.field(default_factory=list)
    outcomes: list[Any] = dataclasses.field(default_factory=list)
    error: str = ""


def _missing(name: str) -> list[str]:
    return [m for m in get_adapter(name).modules if not module_installed(m)]


def _run(name: str, folder: Path, env: dict[str, str]) -> Run:
    adapter = get_adapter(name)
    todo = cases(adapter)
    run = Run(todo, [snippet(adapter, i, c.x, c.labels, dict(c.options), c.mode) for i, c in todo])
    job = {"adapter": name, "snippets": run.snippets, "calls": [(i.name, c) for i, c in todo]}
    (folder / "job.pkl").write_bytes(pickle.dumps(job))
    proc = subprocess.run(
        [sys.executable, __file__, str(folder)],
        cwd=_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    if proc.returncode != 0:
        run.error = f"exit {proc.returncode}:\n{proc.stderr[-8000:]}"
        return run
    done = pickle.loads((folder / "done.pkl").read_bytes())
    run.printed, run.outcomes = done["printed"], done["outcomes"]
    return run


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Run]]]:
    """The selected adapters' subprocesses, started together, PARALLEL at a time."""
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_snippets_compute_what_the_adapter_computes"
    }
    env = {k: v for k, v in os.environ.items() if k not in _SET_BY_SNIPPETS}
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny inputs; the test machine has 2 cores
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    if "JAX_COMPILATION_CACHE_DIR" not in env:  # the JAX adapters share their compilations
        env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax-cache"))
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="snippets")
    futures = {
        name: pool.submit(_run, name, tmp_path_factory.mktemp(name), env)
        for name in LONGEST_FIRST
        if name in selected and not _missing(name)
    }
    yield futures
    pool.shutdown(wait=False, cancel_futures=True)


@pytest.mark.parametrize("name", LONGEST_FIRST)
def test_snippets_compute_what_the_adapter_computes(
    name: str, runs: dict[str, Future[Run]]
) -> None:
    missing = _missing(name)
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    run = runs[name].result(timeout=2 * TIMEOUT_S)
    assert not run.error, run.error
    failures = []
    for (impl, call), text, printed, outcome in zip(
        run.cases, run.snippets, run.printed, run.outcomes, strict=True
    ):
        where = f"{impl.name} {call.x.dtype.name} {call.mode} {dict(call.options)}"
        assert outcome.error is None, f"{where}: the adapter failed: {outcome.error}"
        want = np.asarray(outcome.value, np.float64)
        try:
            got = _parse(printed)
        except Exception as exc:
            failures.append(f"{where}: {type(exc).__name__}: {exc}\n{printed}\n{text}")
            continue
        if got.shape != want.shape or not np.array_equal(got.view(np.uint64), want.view(np.uint64)):
            failures.append(f"{where}:\n got {got!r}\nwant {want!r}\n{text}")
    assert not failures, f"{len(failures)} of {len(run.cases)} differ:\n" + "\n".join(failures[:3])


def _run_job(folder: Path) -> None:
    """In the subprocess: every snippet (before any framework import), then the adapter."""
    job = pickle.loads((folder / "job.pkl").read_bytes())
    printed = []
    for text in job["snippets"]:
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(text, "<snippet>", "exec"), {"__name__": "__main__"})
        except Exception as exc:
            buf.write(f"\nraised {type(exc).__name__}: {exc}")
        printed.append(buf.getvalue())
    adapter = get_adapter(job["adapter"])
    available, reason = adapter.availability()
    assert available, f"after the snippets ran: {reason}"
    outcomes: list[Any] = [adapter.run(adapter.implementation(i), c) for i, c in job["calls"]]
    done = {"printed": printed, "outcomes": outcomes}
    (folder / "done.pkl").write_bytes(pickle.dumps(done))


if __name__ == "__main__":
    _run_job(Path(sys.argv[1]))
