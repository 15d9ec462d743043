"""A run survives what frameworks do: crashes, hangs, kill -9 of the runner, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import runner
from conformance.results import read_records

ROOT = Path(__file__).resolve().parent.parent
OPS = 9  # one exact implementation per catalog op


@pytest.fixture(autouse=True)
def _importable_test_adapters(monkeypatch) -> None:
    """The fault adapters are loaded as `tests.fault_adapters`, from the repository root
    (the `pytest` script, unlike `python -m pytest`, does not put the cwd on sys.path)."""
    monkeypatch.syspath_prepend(str(ROOT))


def _run(adapter: str, out: Path, timeout: float = 20.0, **extra) -> list[dict]:
    settings = {"dtypes": ["float32"], "modes": ["eager"], "jobs": 1, **extra}
    options = runner.RunOptions(adapters=[adapter], cell_timeout_s=timeout, **settings)
    runner.run(options, out, lambda event, data: None)
    report = read_records(out)
    assert not report.torn_lines
    return report.records


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> float:
    """One healthy run of the same cells first, so that the draws and reference answers are
    cached: the short cell timeouts below then only have to outlast a cell's framework calls,
    not a cold cache (the session's cache starts empty, tests/conftest.py). Returns a cell
    timeout derived from that run: five times its slowest cell, at least 15 s (a loaded
    machine makes every cell slower, and a healthy cell must not time out)."""
    import sys

    sys.path.insert(0, str(ROOT))
    folder = tmp_path_factory.mktemp("warm")
    try:
        options = runner.RunOptions(
            adapters=["tests.harness_adapters:ExactAdapter"],
            dtypes=["float32", "float16", "bfloat16"],
            modes=["eager"],
            cell_timeout_s=600.0,
            jobs=1,
        )
        runner.run(options, folder / "cold.jsonl", lambda e, d: None)
        options.dtypes = ["float32"]  # the cells the faults run, now warm: how long they take
        runner.run(options, folder / "warm.jsonl", lambda e, d: None)
    finally:
        sys.path.remove(str(ROOT))
    slowest = max(r["duration_s"] for r in read_records(folder / "warm.jsonl").records)
    return max(15.0, 5 * slowest)


FAULTS = {
    "AbortAdapter": ("crashed", "signal 6"),
    "SegfaultAdapter": ("crashed", "signal 11"),
    "SigkillAdapter": ("crashed", "signal 9"),
    "HangAdapter": ("timeout", "no answer"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_costs_only_its_cell(
    fault: str, tmp_path: Path, monkeypatch, warm_cache: float
) -> None:
    monkeypatch.chdir(ROOT)
    verdict, words = FAULTS[fault]
    started = time.monotonic()
    # the timeout only has to catch the hang; healthy cells take about a second
    records = _run(f"tests.fault_adapters:{fault}", tmp_path / "r.jsonl", timeout=warm_cache)
    assert len(records) == OPS  # every cell recorded, the faulty one included
    bad = [r for r in records if r["verdict"] != "pass"]
    assert [(r["implementation"], r["verdict"]) for r in bad] == [("exact.softmax", verdict)]
    assert words in bad[0]["findings"][0]["detail"]
    assert time.monotonic() - started < 300 + warm_cache  # one timeout at most


def test_an_api_that_hangs_is_not_called_again(
    tmp_path: Path, monkeypatch, warm_cache: float
) -> None:
    """Its other cells are recorded as timeouts at once, not each after its own timeout."""
    monkeypatch.chdir(ROOT)
    records = _run(
        "tests.fault_adapters:HangAdapter",
        tmp_path / "r.jsonl",
        timeout=warm_cache,
        dtypes=["float32", "float16", "bfloat16"],
    )
    hung = [r for r in records if r["implementation"] == "exact.softmax"]
    assert sorted(r["dtype"] for r in hung) == ["bfloat16", "float16", "float32"]
    assert all(r["verdict"] == "timeout" for r in hung)
    assert sum("not called" in r["findings"][0]["detail"] for r in hung) == 2
    assert all(r["verdict"] == "pass" for r in records if r["implementation"] != "exact.softmax")


@pytest.mark.usefixtures("warm_cache")
def test_a_runaway_allocation_is_contained(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("CONFORMANCE_WORKER_MEMORY_GB", "2")
    records = _run(
        "tests.fault_adapters:RunawayAllocationAdapter", tmp_path / "r.jsonl", timeout=20.0
    )
    assert len(records) == OPS
    bad = [r for r in records if r["verdict"] != "pass"]
    assert [r["implementation"] for r in bad] == ["exact.softmax"]
    assert bad[0]["verdict"] in {"error", "crashed", "timeout"}


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", *args],
        cwd=kwargs.pop("cwd", ROOT),
        capture_output=True,
        text=True,
        timeout=600,
        **kwargs,
    )


def _cells(path: Path) -> dict[tuple, tuple]:
    return {
        (r["implementation"], r["dtype"]): (
            r["verdict"],
            r["examples"],
            r["max_ulp"],
            (r.get("worst") or {}).get("x"),
        )
        for r in read_records(path).records
    }


def test_kill_dash_nine_then_resume_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    args = [
        "run",
        "--adapter",
        "tests.fault_adapters:SlowAdapter",
        "--dtype",
        "float32",
        "--dtype",
        "float16",
        "--mode",
        "eager",
        "--jobs",
        "1",
    ]
    whole = tmp_path / "whole.jsonl"
    assert _cli(*args, "--out", str(whole)).returncode == 0
    cut = tmp_path / "cut.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "conformance.cli", *args, "--out", str(cut)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if cut.exists() and len(read_records(cut).records) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = read_records(cut)
    assert 3 <= len(partial.records) < 2 * OPS
    with cut.open("a") as f:
        f.write('{"schema": "logit-conformance/result/1", "adapter": "slow-ex')  # a torn tail
    resumed = _cli(*args, "--out", str(cut), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _cells(cut) == _cells(whole)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--framework", "no-such-framework"], "unknown framework"),
        (["run", "--adapter", "no_such_module:Thing"], "cannot import module"),
        (
            ["run", "--adapter", "conformance.ops:Op"],
            "expected a conformance_adapters.base.Adapter",
        ),
        (["run", "--shard", "3/2"], "--shard"),
        (["run", "--dtype", "float8"], "--dtype"),
        (["run", "--out", "/proc/forbidden/results.jsonl"], "cannot write"),
        (["replay", "/no/such/file.jsonl"], "cannot read"),
        (["merge", "-o", "x.jsonl", str(ROOT / "README.md")], "not JSON"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
