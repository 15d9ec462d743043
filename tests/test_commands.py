"""conformance/commands.py: a bad command changes no file.

A property over argv: every subcommand with random combinations of good and bad option
values (at least one bad), missing and malformed files. Each must exit 2 with one line on
stderr, no traceback, and leave every file and folder of the working directory as it was.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import cli
from conformance.commands import previous_path
from conformance.results import SCHEMA

RECORD = {
    "schema": SCHEMA,
    "adapter": "exact",
    "implementation": "exact.softmax",
    "op": "softmax",
    "dtype": "float32",
    "device": "cpu",
    "mode": "eager",
    "verdict": "pass",
    "findings": [],
    "unexpected": 0,
}

GOOD, BAD = "good", "bad"
Choices = dict[str, tuple[list[list[str]], list[list[str]]]]
"""Per option: (good token lists, bad token lists); [] means 'not given'."""

RUN: Choices = {
    "framework": ([["--framework", "scipy"]], [["--framework", "no-such-framework"]]),
    "adapter": ([], [["--adapter", "no_such_module:X"], ["--adapter", "conformance.ops:Op"]]),
    "dtype": ([["--dtype", "float32"]], [["--dtype", "float8"]]),
    "mode": ([["--mode", "eager"]], [["--mode", "jit"]]),
    "api": ([["--api", "scipy.special.*"]], [["--api", "no.such.api*"]]),
    "device": ([["--device", "cpu"]], [["--device", "tpu"]]),
    "profile": ([["--profile", "quick"]], [["--profile", "nope"]]),
    "seed": ([["--seed", "3"]], [["--seed", "x"]]),
    "jobs": ([["--jobs", "1"]], [["--jobs", "0"], ["--jobs", "-1"]]),
    "threads": ([["--threads", "1"]], [["--threads", "0"]]),
    "cell-timeout": (
        [["--cell-timeout", "30"]],
        [["--cell-timeout", "0"], ["--cell-timeout", "-5"], ["--cell-timeout", "nan"]],
    ),
    "shard": (
        [["--shard", "1/2"]],
        [["--shard", s] for s in ("3/2", "0/1", "1/0", "x", "1/2/3", "-1/2")],
    ),
    "known": ([["--known", "good.toml"]], [["--known", "missing.toml"], ["--known", "bad.toml"]]),
    "resume": ([["--resume"]], []),
    "out": (
        [["--out", "reports/results.jsonl"], ["--out", "new/r.jsonl"]],
        [
            ["--out", "/proc/nope/r.jsonl"],
            ["--out", "a-folder"],
            ["--resume", "--out", "bad.jsonl"],
        ],
    ),
    "report": (
        [["--report", "new/r.html"]],
        [["--report", "/proc/nope/r.html"], ["--report", "a-folder"]],
    ),
    "unknown": ([], [["--bogus"]]),
}
REPORT: Choices = {
    "results": (
        [["reports/results.jsonl"]],
        [
            [],
            ["missing.jsonl"],
            ["bad.jsonl"],
            ["empty.jsonl"],
            ["reports/results.jsonl", "bad.jsonl"],
        ],
    ),
    "out": ([["-o", "new/r.html"]], [["-o", "/proc/nope/r.html"], ["-o", "a-folder"]]),
    "baseline": (
        [["--baseline", "reports/results.jsonl"]],
        [["--baseline", "bad.jsonl"], ["--baseline", "empty.jsonl"]],
    ),
}
MERGE: Choices = {
    "files": ([["reports/results.jsonl"]], [[], ["missing.jsonl"], ["bad.jsonl"], ["empty.jsonl"]]),
    "out": ([["-o", "new/m.jsonl"]], [[], ["-o", "/proc/nope/m.jsonl"], ["-o", "a-folder"]]),
}
DIFF: Choices = {
    "baseline": (
        [["reports/results.jsonl"]],
        [[], ["missing.jsonl"], ["bad.jsonl"], ["empty.jsonl"]],
    ),
    "current": ([["reports/results.jsonl"]], [["missing.jsonl"], ["bad.jsonl"], ["empty.jsonl"]]),
}
REPLAY: Choices = {
    "results": (
        [["reports/results.jsonl"]],
        [[], ["missing.jsonl"], ["bad.jsonl"], ["empty.jsonl"]],
    ),
    "cell": ([], [["no/such/cell"]]),
}
COMMANDS = {"run": RUN, "report": REPORT, "merge": MERGE, "diff": DIFF, "replay": REPLAY}
POSITIONAL = {"results", "files", "baseline", "current", "cell"}
"""Positional arguments keep their order; options are shuffled among them."""


@st.composite
def bad_commands(draw: st.DrawFn) -> list[str]:
    """argv of one subcommand in which at least one argument is bad."""
    command = draw(st.sampled_from(sorted(COMMANDS)))
    choices = COMMANDS[command]
    keys = [k for k, (_, bad) in choices.items() if bad]
    forced = draw(st.sampled_from(keys))
    positional: list[str] = []
    options: list[list[str]] = []
    for key, (good, bad) in choices.items():
        states = [BAD] if key == forced else ([GOOD, BAD] if bad else [GOOD])
        state = draw(st.sampled_from(states))
        pool = bad if state == BAD else (good or [[]])
        if key not in POSITIONAL and state == GOOD:
            pool = [[], *pool]  # a good option may also be left out
        tokens = draw(st.sampled_from(pool))
        if key == "current" and tokens and "baseline" in choices and not positional:
            tokens = []  # diff's second positional cannot come without the first
        (positional.extend if key in POSITIONAL else options.append)(tokens)
    options = draw(st.permutations(options))
    return [command, *[t for group in options for t in group], *positional]


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root: file contents, or None for a folder."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("user")
    (root / "reports").mkdir()
    (root / "reports" / "results.jsonl").write_text(json.dumps(RECORD) + "\n")
    (root / "reports" / "index.html").write_text("<!doctype html><title>the user's report</title>")
    (root / "bad.jsonl").write_text("this is not JSON\n")
    (root / "empty.jsonl").write_text("")
    (root / "good.toml").write_text("# no deviations\n")
    (root / "bad.toml").write_text("[[deviation]]\nid = 'x'\n")  # lacks reason and link
    (root / "a-folder").mkdir()
    return root


def _main(argv: list[str]) -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = cli.main(argv)
        except SystemExit as exc:  # argparse
            status = exc.code if isinstance(exc.code, int) else 2
    return status, stderr.getvalue()


@settings(max_examples=300, deadline=None)
@given(argv=bad_commands())
def test_a_bad_command_exits_2_in_one_line_and_changes_no_file(
    argv: list[str], workdir: Path
) -> None:
    before = _tree(workdir)
    with contextlib.chdir(workdir):
        status, stderr = _main(argv)
    assert status == 2, (argv, stderr)
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert _tree(workdir) == before, argv


def test_a_run_keeps_the_results_it_replaces(tmp_path: Path, monkeypatch) -> None:
    """A real run moves the previous results file aside instead of deleting it."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "reports" / "results.jsonl"
    out.parent.mkdir()
    out.write_text(json.dumps(RECORD) + "\n")
    argv = ["run", "--framework", "scipy", "--dtype", "float32", "--mode", "eager"]
    status, stderr = _main([*argv, "--shard", "1/8", "--out", str(out)])
    assert status in (0, 1), stderr
    assert previous_path(out).read_text() == json.dumps(RECORD) + "\n"
    assert "previous results kept as" in stderr
    assert out.read_text() != previous_path(out).read_text()
