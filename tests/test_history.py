"""`conformance history`: real runs dressed as releases of one framework.

Release "1.0" is the exact implementation, "1.1" a broken one under the same cell names
(softmax without the max shift), "1.2" the exact one again: the history must date the
finding from 1.1 to its fix in 1.2, and say nothing about identical releases.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest
from harness_adapters import ExactAdapter, broken_adapters

from conformance import cli, history
from conformance.drawing import PROFILES
from conformance.harness import run_cell
from conformance.ops import Op
from conformance.results import ResultsError, write_atomically

PROFILE = dataclasses.replace(PROFILES["quick"], drawn=4)
SOFTMAX = "exact/exact.softmax/float32/cpu/eager"


def _cells(adapter) -> list[dict[str, Any]]:
    out = []
    for op in (Op.SOFTMAX, Op.LOG_SOFTMAX):
        impl = next(i for i in adapter.implementations() if i.op is op)
        out.append(run_cell(adapter, impl, "float32", "cpu", "eager", PROFILE, 0, []))
    return out


@pytest.fixture(scope="module")
def answers() -> dict[str, list[dict[str, Any]]]:
    exact = _cells(ExactAdapter())
    broken = _cells(broken_adapters()["no-max-shift"][0])
    for good, bad in zip(exact, broken, strict=True):  # the broken one under exact's names
        bad |= {k: good[k] for k in ("adapter", "implementation", "framework", "suite")}
    return {"exact": exact, "broken": broken}


def _release(tmp: Path, version: str, records: list[dict[str, Any]], **edit: Any) -> Path:
    path = tmp / f"demo-{version}.jsonl"
    rows = [copy.deepcopy(r) | {"framework_version": version} | edit for r in records]
    for r in rows:
        r["environment"] = dict(r.get("environment") or {}, demo=version)
    write_atomically(path, rows)
    return path


def test_a_finding_is_dated_from_the_release_that_brought_it_to_its_fix(
    answers, tmp_path: Path
) -> None:
    paths = [
        _release(tmp_path, "1.0", answers["exact"]),
        _release(tmp_path, "1.1", answers["broken"]),
        _release(tmp_path, "1.2", answers["exact"]),
    ]
    h = history.build(paths)
    assert [r.label for r in h.releases] == ["1.0", "1.1", "1.2"]
    assert [r.versions["demo"] for r in h.releases] == ["1.0", "1.1", "1.2"]
    rows = history.regressions(h)
    assert ("exact/exact.softmax", "float32/cpu/eager", "nan-where-defined", "1.1", "1.2") in rows
    assert all(since == "1.1" and fixed == "1.2" for *_, since, fixed in rows)
    cell = next(c for c in h.cells if c.cell == SOFTMAX)
    verdicts = [(e.index, e.category) for e in cell.events if e.category in ("worse", "better")]
    assert verdicts == [(1, "worse"), (2, "better")]
    assert {e.category for e in cell.events if e.index == 1} >= {"growth", "special"}
    assert all(r.own_failures == () for r in h.releases)
    text = history.markdown(h)
    assert "| exact/exact.softmax | float32/cpu/eager | nan-where-defined | 1.1 | 1.2 |" in text


def test_identical_releases_show_nothing_changed(answers, tmp_path: Path) -> None:
    paths = [_release(tmp_path, v, answers["exact"]) for v in ("1.0", "1.1", "1.2")]
    h = history.build(paths)
    assert h.changed() == [] and history.regressions(h) == [] and history.moved(h) == []
    assert not h.notes
    assert "## Unexpected findings: where they appeared and where they went (0)" in (
        history.markdown(h)
    )


def test_a_finding_present_throughout_is_said_to_be(answers, tmp_path: Path) -> None:
    paths = [_release(tmp_path, v, answers["broken"]) for v in ("1.0", "1.1")]
    rows = history.regressions(history.build(paths))
    assert rows and all(
        since == "already in 1.0 (the oldest run)" and fixed == "still in the newest"
        for *_, since, fixed in rows
    )


def test_a_cell_missing_from_the_next_release_is_not_called_fixed(answers, tmp_path) -> None:
    paths = [
        _release(tmp_path, "1.0", answers["broken"]),
        _release(tmp_path, "1.1", answers["broken"][1:]),
    ]
    rows = history.regressions(history.build(paths))
    gone = [r for r in rows if r[0] == "exact/exact.softmax"]
    assert gone and all(fixed == "unknown: not run in 1.1" for *_, fixed in gone)


def test_cells_failing_on_our_call_and_a_changed_suite_are_said(answers, tmp_path: Path) -> None:
    failing = copy.deepcopy(answers["exact"])
    first = failing[0]
    first |= {"verdict": "error", "unexpected": "error", "examples": 1}
    first["findings"] = [{"case": "drawn-0", "kind": "raised", "detail": "TypeError: kw"}]
    older = _release(tmp_path, "1.0", failing, suite={"version": "0", "code": "aaaa"})
    h = history.build([older, _release(tmp_path, "1.1", answers["exact"])])
    assert h.releases[0].own_failures == (SOFTMAX,)
    assert h.releases[1].own_failures == ()
    assert any("versions of the suite" in n for n in h.notes)
    assert any(c.category == "whose" and "suite" in c.message for c in h.steps[0])


def test_the_page_escapes_what_frameworks_wrote(answers, tmp_path: Path) -> None:
    hostile = copy.deepcopy(answers["broken"])
    for r in hostile:
        for f in r["findings"]:
            f["kind"] = "<img src=x onerror=alert(1)>|"
    paths = [_release(tmp_path, "1.0", answers["exact"]), _release(tmp_path, "1.1", hostile)]
    h = history.build(paths)
    page = history.render_html(h)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;|" in page
    assert 'http-equiv="Content-Security-Policy"' in page
    assert "\\|" in history.markdown(h)  # a | in a finding does not split the Markdown cell


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_the_command(answers, tmp_path: Path) -> None:
    one = _release(tmp_path, "1.0", answers["exact"])
    two = _release(tmp_path, "1.1", answers["broken"])
    code, _, err = _cli("history", str(one))
    assert code == 2 and "at least two releases" in err
    code, out, _ = _cli("history", str(one), str(two))
    assert code == 0 and out.startswith("# Release history: numpy 1.0 to 1.1")
    html, md = tmp_path / "h" / "demo.html", tmp_path / "h" / "demo.md"
    code, out, err = _cli("history", str(one), str(two), "--html", str(html), "--markdown", str(md))
    assert code == 0 and not out and html.is_file() and md.read_text().startswith("# Release")
    with pytest.raises(ResultsError):
        history.build([one])


def test_a_release_where_the_suite_crashed_judges_nothing(answers, tmp_path: Path) -> None:
    """A worker killed by the suite's own exception is not the framework's crash, and what
    the next release shows is not dated from it (jax 0.4.38 under NumPy 1)."""
    crashed = copy.deepcopy(answers["broken"])
    frame = 'File "/src/conformance/errors.py", line 75, in _ordinal; TypeError: right_shift'
    for r in crashed:
        r |= {"verdict": "crashed", "findings": [{"kind": "crashed", "detail": frame}]}
    paths = [
        _release(tmp_path, "1.0", crashed),
        _release(tmp_path, "1.1", answers["broken"]),
    ]
    h = history.build(paths)
    assert len(h.releases[0].own_failures) == len(crashed)
    rows = history.regressions(h)
    assert rows and not any(kind == "crashed" for _, _, kind, *_ in rows)
    assert all(since == "1.1 (not judged in 1.0)" for _, _, _, since, _ in rows)
