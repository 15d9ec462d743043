"""Regression detection: two runs of one version diff clean; each kind of regression exits 1
with a line naming the cell; an improvement alone exits 0."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest
from harness_adapters import ExactAdapter, broken_adapters

from conformance.diff import diff, diff_command, ratio_grew, special_signature, ulp_grew
from conformance.drawing import PROFILES
from conformance.harness import run_cell
from conformance.ops import Op
from conformance.results import ResultsError, ResultsWriter

PROFILE = dataclasses.replace(PROFILES["quick"], drawn=4)
SOFTMAX = "exact/exact.softmax/float32/cpu/eager"
SPARSE = "exact/exact.sparse_softmax_cross_entropy/float32/cpu/eager"


def _run() -> list[dict[str, Any]]:
    """A small real run: exact softmax and sparse cross-entropy, and a broken softmax."""
    exact, broken = ExactAdapter(), broken_adapters()["float16-intermediates"][0]
    cells = [(exact, Op.SOFTMAX), (exact, Op.SPARSE_SOFTMAX_CROSS_ENTROPY), (broken, Op.SOFTMAX)]
    records = []
    for adapter, op in cells:
        impl = next(i for i in adapter.implementations() if i.op is op)
        records.append(run_cell(adapter, impl, "float32", "cpu", "eager", PROFILE, 0, []))
    return records


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same run twice, into two files."""
    out = tmp_path_factory.mktemp("diff")
    paths = (out / "first.jsonl", out / "second.jsonl")
    for path in paths:
        with ResultsWriter(path) as writer:
            for record in _run():
                writer.write(record)
    return paths


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _changed(runs: tuple[Path, Path], tmp_path: Path, edit) -> tuple[int, str]:
    """Diff the first run against a copy of it edited by `edit(records_by_cell)`."""
    records = copy.deepcopy(_records(runs[0]))
    by_cell = {
        "/".join(str(r[k]) for k in ("adapter", "implementation", "dtype", "device", "mode")): r
        for r in records
    }
    edit(by_cell)
    current = tmp_path / "current.jsonl"
    current.write_text("".join(json.dumps(r) + "\n" for r in by_cell.values()))
    out = io.StringIO()
    code = diff_command([runs[0]], [current], out=out)
    return code, out.getvalue()


def _line(text: str, *words: str) -> str:
    lines = [ln for ln in text.splitlines() if all(w in ln for w in words)]
    assert lines, f"no line with {words} in:\n{text}"
    return lines[0]


def test_two_runs_of_the_same_version_diff_clean(runs: tuple[Path, Path]) -> None:
    out = io.StringIO()
    assert diff_command([runs[0]], [runs[1]], out=out) == 0, out.getvalue()
    assert "no regressions" in out.getvalue()
    assert diff(_records(runs[0]), _records(runs[1])).changes == []


def test_a_worse_verdict_is_a_regression(runs, tmp_path: Path) -> None:
    def edit(cells):
        cells[SOFTMAX].update(verdict="inaccurate", unexpected="inaccurate")

    code, text = _changed(runs, tmp_path, edit)
    assert code == 1
    assert "pass -> inaccurate" in _line(text, SOFTMAX)
    assert "REGRESSION new failures" in text


def test_a_special_value_change_is_a_regression(runs, tmp_path: Path) -> None:
    def edit(cells):
        cells[SOFTMAX]["special"]["plus-inf"] = "nan nan"

    code, text = _changed(runs, tmp_path, edit)
    assert code == 1
    assert "plus-inf" in _line(text, SOFTMAX, "'1 0' -> 'nan nan'")


def test_error_growth_beyond_noise_is_a_regression(runs, tmp_path: Path) -> None:
    def edit(cells):
        cells[SOFTMAX]["max_ulp"] = 40.0

    code, text = _changed(runs, tmp_path, edit)
    assert code == 1
    assert "max ULP 0 -> 40" in _line(text, SOFTMAX)


def test_growth_within_noise_is_not(runs, tmp_path: Path) -> None:
    def edit(cells):
        cells[SOFTMAX]["max_ulp"] = 2.0
        cells[SOFTMAX]["max_budget_ratio"] *= 1.5

    code, text = _changed(runs, tmp_path, edit)
    assert code == 0, text


def test_a_disappeared_cell_is_a_regression(runs, tmp_path: Path) -> None:
    def edit(cells):
        del cells[SPARSE]

    code, text = _changed(runs, tmp_path, edit)
    assert code == 1
    assert "gone: float32/cpu/eager" in _line(text, "exact/exact.sparse_softmax_cross_entropy")


def test_misuse_and_invalid_input_reaction_changes(runs, tmp_path: Path) -> None:
    def misuse(cells):
        cells[SPARSE]["misuse"]["probabilities-as-logits"]["reaction"] = "raises"

    code, text = _changed(runs, tmp_path, misuse)
    assert code == 1 and "silent -> raises" in _line(text, SPARSE, "probabilities-as-logits")

    def silent(cells):
        cells[SPARSE]["reactions"]["label-negative"] = "silent"

    code, text = _changed(runs, tmp_path, silent)
    assert code == 1 and "raises -> silent" in _line(text, SPARSE, "label-negative")


def test_an_improvement_alone_passes(runs, tmp_path: Path) -> None:
    broken = "float16-intermediates/exact.softmax/float32/cpu/eager"
    records = _records(runs[0])
    assert next(r for r in records if broken.startswith(r["adapter"]))["verdict"] != "pass"

    def edit(cells):
        cell = cells[broken]
        cell.update(verdict="pass", unexpected=None, findings=[], max_ulp=0.0)
        cell["max_budget_ratio"] = 0.01
        cell["framework_version"] = "99.0"
        cells[SPARSE]["reactions"]["drawn-0"] = "raises"

    code, text = _changed(runs, tmp_path, edit)
    assert code == 0, text
    assert "-> pass" in _line(text, broken, "->")
    assert "framework versions" in text and "99.0" in text


def test_an_appeared_cell_is_not_a_regression(runs, tmp_path: Path) -> None:
    def edit(cells):
        new = copy.deepcopy(cells[SOFTMAX])
        new["dtype"] = "float64"
        cells["new"] = new

    code, text = _changed(runs, tmp_path, edit)
    assert code == 0 and "new: float64/cpu/eager" in text


def test_unreadable_files_raise_results_error(runs, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\nmore\n")
    with pytest.raises(ResultsError):
        diff_command([bad], [runs[0]], out=io.StringIO())
    with pytest.raises(ResultsError):
        diff_command([runs[0]], [tmp_path / "missing.jsonl"], out=io.StringIO())


def test_noise_rules() -> None:
    assert not ulp_grew(3.0, 5.0) and ulp_grew(3.0, 6.0)  # max(2 ULP, 25 %)
    assert not ulp_grew(100.0, 125.0) and ulp_grew(100.0, 126.0)
    assert ulp_grew(1.0, float("inf")) and not ulp_grew(None, 5.0)
    assert ratio_grew(0.9, 1.1) and not ratio_grew(1.5, 2.5)  # crossing the budget
    assert ratio_grew(0.2, 0.5) and not ratio_grew(0.01, 0.05)  # > 2x, to at least 0.1
    assert special_signature("nan 0.268941 -inf 0") == "nan x -inf 0"
    assert special_signature("0.269043 0 0.730957") == special_signature("0.268941 0 0.731059")


def test_identical_inputs_are_recorded_and_a_change_of_inputs_is_noted(runs) -> None:
    first, second = (_records(p) for p in runs)
    assert all(r["inputs"] for r in first)
    assert [r["inputs"] for r in first] == [r["inputs"] for r in second]
    changed = copy.deepcopy(second)
    changed[0]["inputs"] = "0" * 16
    notes = [c for c in diff(first, changed).changes if c.category == "note"]
    assert any("inputs differ" in c.message for c in notes)


def test_a_cell_that_judged_no_values_has_no_error_growth(runs) -> None:
    """A baseline cell that raised throughout (0 elements judged) compared with a working one
    is a verdict change, not error growth from 0."""
    first, second = (_records(p) for p in runs)
    old, new = copy.deepcopy(first[0]), copy.deepcopy(second[0])
    old.update(verdict="error", elements=0, max_ulp=0.0, max_budget_ratio=0.0)
    new.update(max_ulp=1e9, max_budget_ratio=0.5)
    categories = {c.category for c in diff([old], [new]).changes}
    assert "growth" not in categories
    assert "better" in categories


def test_runs_on_another_cpu_are_noted(runs) -> None:
    """oneDNN, XLA:CPU and Eigen choose kernels by instruction set: a diff across CPUs says so
    (TensorFlow's float16 softmax gives [nan, 0] for [inf, 0] on one CPU, [nan, nan] on one
    with AVX-512), and the same CPU on both sides says nothing."""
    first, second = (copy.deepcopy(_records(p)) for p in runs)
    for records, cpu in ((first, "x86_64 A; avx avx2"), (second, "x86_64 B; avx avx2 avx512f")):
        for r in records:
            r.setdefault("environment", {})["cpu"] = cpu
    notes = [c for c in diff(first, second).changes if "another CPU" in c.message]
    assert notes and notes[0].category == "note" and not notes[0].regression
    assert "avx512f" in notes[0].message
    assert not [c for c in diff(first, copy.deepcopy(first)).changes if "CPU" in c.message]


def test_the_diff_says_whose_change_it_is(runs, tmp_path: Path) -> None:
    records = _records(runs[0])
    assert all(r["suite"]["code"] for r in records)  # every record names its suite

    def suite_changed(cells):
        cells[SOFTMAX].update(verdict="inaccurate", unexpected="inaccurate")
        for r in cells.values():
            r["suite"] = {**r["suite"], "code": "another"}

    _, text = _changed(runs, tmp_path, suite_changed)
    whose = _line(text, "exact:", "suite (")
    assert "another" in whose and "framework" not in whose

    def framework_changed(cells):
        cells[SOFTMAX].update(verdict="inaccurate", unexpected="inaccurate")
        for r in cells.values():
            r["framework_version"] = "9.9"
            r["environment"] = {**r["environment"], "cpu": "another CPU"}

    _, text = _changed(runs, tmp_path, framework_changed)
    whose = _line(text, "exact:", "framework (")
    assert "-> 9.9" in whose and "machine (" in whose and "suite" not in whose

    def nothing_else(cells):
        cells[SOFTMAX].update(verdict="inaccurate", unexpected="inaccurate")

    _, text = _changed(runs, tmp_path, nothing_else)
    assert "nothing recorded differs" in _line(text, "exact:")
