"""conformance/display.py: the run summary, in a terminal and in a CI log."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from conformance.display import RunDisplay

LONG = "keras-tensorflow-xla-with-a-long-name"
RECORDS = [
    {"adapter": LONG, "framework_version": "3.15.1", "verdict": v, "unexpected": u}
    for v, u in [("pass", 0), ("pass", 0), ("inaccurate", 3), ("error", 1), ("unsupported", 0)]
] + [{"adapter": "scipy", "framework_version": "1.16.2", "verdict": "pass", "unexpected": 0}]


def _summary(terminal: bool, width: int = 80) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    RunDisplay(console).summary(RECORDS, [], Path("reports/results.jsonl"))
    return out.getvalue()


def test_a_ci_log_names_every_adapter_in_full_and_cuts_nothing() -> None:
    text = _summary(terminal=False, width=80)
    assert "…" not in text
    assert f"{LONG} 3.15.1: 2 pass, 1 inaccurate, 1 error, 1 unsupported; 2 unexpected" in text
    assert "scipy 1.16.2: 1 pass\n" in text
    assert "6 cells, 2 with unexpected findings" in text


def test_a_narrow_terminal_gets_the_lines() -> None:
    assert f"{LONG} 3.15.1: 2 pass" in _summary(terminal=True, width=80)


def test_a_wide_terminal_gets_the_table_with_nothing_cut() -> None:
    text = _summary(terminal=True, width=140)
    assert "…" not in text and LONG in text
    assert "conformance run" in text and "inaccurate" in text
    assert "keras-tensorflow" in text
