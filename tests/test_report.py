"""The HTML report: rendered from a real (small) run, escaped, self-contained, and opened in
headless Chromium (skipped where there is none), which also takes the README screenshot."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness_adapters import ExactAdapter, broken_adapters

from conformance import known
from conformance.drawing import PROFILES
from conformance.harness import run_cell
from conformance.ops import Op
from conformance.report import build_context, render, write_report
from conformance.results import ResultsError, ResultsWriter
from conformance.runner import _crashed_record
from conformance_adapters.registry import get_adapter

ROOT = Path(__file__).resolve().parents[1]
INJECT = "<script>alert(1)</script>"
PROFILE = dataclasses.replace(PROFILES["quick"], drawn=4)
"""The quick profile with fewer draws: the report needs real records, not many of them."""


class Hostile(ExactAdapter):
    """Exact, except that softmax has a hostile name and raises a hostile message."""

    name = "hostile"

    def _implementations(self) -> list[Any]:
        return [
            dataclasses.replace(i, name=INJECT) if i.op is Op.SOFTMAX else i
            for i in super()._implementations()
        ]

    def forward(self, impl: Any, x: Any, labels: Any, options: Any, mode: str) -> Any:
        if impl.op is Op.SOFTMAX:
            raise ValueError(INJECT)
        return super().forward(impl, x, labels, options, mode)


def _cell(adapter: Any, op: Op, dtype: str, mode: str, deviations: list[Any]) -> dict[str, Any]:
    impl = next(i for i in adapter.implementations() if i.op is op)
    return run_cell(adapter, impl, dtype, "cpu", mode, PROFILE, 0, deviations)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results.jsonl (exact, broken, scipy, a crash, a known deviation) and hostile.jsonl."""
    out = tmp_path_factory.mktemp("report")
    deviations_file = out / "known.toml"
    deviations_file.write_text(
        '[[deviation]]\nid = "no-shift-nan"\nreason = "documented overflow"\n'
        'link = "https://example.org/docs"\nadapter = "no-max-shift"\nkind = "nan-where-defined"\n'
    )
    deviations = known.load(deviations_file)
    broken = broken_adapters()
    exact = ExactAdapter()
    plan: list[tuple[Any, Op, str, str]] = [
        (exact, Op.SOFTMAX, "float32", "eager"),
        (exact, Op.SOFTMAX, "float16", "eager"),
        (exact, Op.SPARSE_SOFTMAX_CROSS_ENTROPY, "float32", "eager"),
        (broken["no-max-shift"][0], Op.SOFTMAX, "float32", "eager"),
        (broken["float16-intermediates"][0], Op.SOFTMAX, "float32", "eager"),
        (
            broken["silent-out-of-range-labels"][0],
            Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
            "float32",
            "eager",
        ),
        (broken["compiled-only-error"][0], Op.LOG_SOFTMAX, "float32", "eager"),
        (broken["compiled-only-error"][0], Op.LOG_SOFTMAX, "float32", "compiled"),
    ]
    scipy = get_adapter("scipy")
    if scipy.availability()[0]:
        plan += [(scipy, Op.SOFTMAX, "float32", "eager"), (scipy, Op.LOGSUMEXP, "float16", "eager")]
    with ResultsWriter(out / "results.jsonl") as writer:
        for adapter, op, dtype, mode in plan:
            writer.write(_cell(adapter, op, dtype, mode, deviations))
        writer.write(
            _crashed_record(
                "fault-abort",
                "numpy",
                "2.0",
                ("exact.softmax", "float32", "cpu", "eager"),
                "crashed",
                "killed by signal 6",
                0,
                PROFILE.name,
                0.5,
            )
        )
    with ResultsWriter(out / "hostile.jsonl") as writer:
        writer.write(_cell(Hostile(), Op.SOFTMAX, "float32", "eager", []))
    return out


@pytest.fixture(scope="module")
def page(run_dir: Path) -> str:
    return render([run_dir / "results.jsonl"])


def test_every_section_is_there(page: str, run_dir: Path) -> None:
    for section in (
        "matrix",
        "ulps",
        "implementations",
        "special",
        "consistency",
        "reactions",
        "misuse",
        "known",
        "environment",
    ):
        assert f'<section id="{section}"' in page
    for name in ("exact.softmax", "exact.sparse_softmax_cross_entropy", "no-max-shift"):
        assert name in page
    # verdicts carry a symbol and a word, not only a colour
    assert re.search(r'class="v pass"><a [^>]*title="[^"]*max strict ULP[^"]*">✓', page)
    assert '✗<span class="w"> error' in page and '‼<span class="w"> crashed' in page
    # reproducer and replay command of a failing cell
    results = html.escape(str(run_dir / "results.jsonl"))
    assert f"conformance replay {results} " in page
    assert "silent-out-of-range-labels/exact.sparse_softmax_cross_entropy/float32/cpu/eager" in page
    assert '<pre class="snippet"' in page and "np.frombuffer" in page
    assert '<svg class="hist"' in page and '<svg class="ratio"' in page


def test_behaviour_sections_have_the_records_contents(run_dir: Path) -> None:
    ctx = build_context([run_dir / "results.jsonl"])
    special_ops = {t.op for t in ctx["special_tables"]}
    assert "softmax" in special_ops
    softmax = next(t for t in ctx["special_tables"] if t.op == "softmax")
    assert {"fully-masked", "plus-inf"} <= set(softmax.cases)
    assert "plus-inf" in softmax.disputed  # no-max-shift returns NaN where others do not
    silent = [t for _, t in ctx["reaction_rows"] if t.get("label-out-of-range", ("",))[0]]
    assert any(
        t["label-out-of-range"][0].startswith("silent-") and t["label-out-of-range"][1]
        for t in silent
    )
    assert {r.scenario for r in ctx["misuse_rows"]} >= {"probabilities-as-logits"}
    assert [f.get("known") for _, f, _ in ctx["known"]] and all(
        f["known"] == "no-shift-nan" for _, f, _ in ctx["known"]
    )
    assert {run.adapter for run in ctx["runs"]} >= {"exact", "no-max-shift", "fault-abort"}


def test_framework_text_is_escaped(run_dir: Path) -> None:
    page = render([run_dir / "hostile.jsonl"])
    assert INJECT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the exception message
    assert "&lt;script&gt;alert(<wbr>1)&lt;/script&gt;" in page  # the implementation name
    assert page.count("<script") == 1  # the page's own filter script, nothing else


def test_the_page_is_self_contained(page: str) -> None:
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"\ssrc=", page)
    assert "@import" not in page and "url(" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in html.unescape(page)


def test_regression_section_against_a_baseline(run_dir: Path, tmp_path: Path) -> None:
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    for r in records:  # the baseline had exact softmax float32 passing ... and now it errors
        if r["adapter"] == "exact" and r["op"] == "softmax" and r["dtype"] == "float32":
            r.update(verdict="error", unexpected="error")
    current = tmp_path / "current.jsonl"
    current.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "index.html"
    write_report([current], out, baseline=[run_dir / "results.jsonl"])
    text = out.read_text()
    assert 'id="regressions"' in text and "exact/exact.softmax/float32/cpu/eager" in text
    assert "pass -&gt; error" in text


def test_a_file_that_is_not_results_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n{}\n")
    with pytest.raises(ResultsError):
        write_report([bad], tmp_path / "out.html")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


def _browse(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    browser = _chromium()
    assert browser is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run(
        [browser, *flags, *extra, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


needs_chromium = pytest.mark.skipif(
    _chromium() is None, reason="no headless Chromium here (Debian: apt-get install -y chromium)"
)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@needs_chromium
def test_the_report_works_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    index = tmp_path / "index.html"
    write_report([run_dir / "results.jsonl"], index)
    shot = tmp_path / "screenshot.png"
    dom = _browse(
        index, tmp_path / "profile", "--dump-dom", f"--screenshot={shot}", "--window-size=1280,2000"
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console(dom.stderr) == []  # no script error, no CSP violation
    assert 'data-js="ready"' in dom.stdout  # the inline script ran under the page's CSP
    assert 'id="matrix-table"' in dom.stdout and 'id="controls"' in dom.stdout
    assert 'id="controls" hidden' not in dom.stdout  # the script revealed the filter
    assert shot.stat().st_size > 10_000
    if os.environ.get("CONFORMANCE_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, ROOT / "docs" / "report-screenshot.png")


@needs_chromium
def test_injected_markup_stays_text_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    index = tmp_path / "hostile.html"
    write_report([run_dir / "hostile.jsonl"], index)
    dom = _browse(index, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console(dom.stderr) == []
    assert INJECT not in dom.stdout and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom.stdout
    assert dom.stdout.count("<script") == 1


def test_mode_dependent_answers_are_listed_once_per_pattern(tmp_path: Path) -> None:
    """The self-consistency section: an implementation whose compiled mode answers
    otherwise on two dtypes gives one row per case, listing both dtypes."""
    from test_consistency import CompiledZeroWhereUndefined

    adapter = CompiledZeroWhereUndefined()
    with ResultsWriter(tmp_path / "r.jsonl") as writer:
        for dtype in ("float16", "float32"):
            for mode in ("eager", "compiled"):
                writer.write(_cell(adapter, Op.SOFTMAX, dtype, mode, []))
    ctx = build_context([tmp_path / "r.jsonl"])
    rows = {r.case: r for r in ctx["disagreements"]}
    assert "two-plus-inf" in rows, rows
    row = rows["two-plus-inf"]
    assert row.dtypes == ["float16", "float32"] and row.axis == "mode" and not row.known
    assert "nan" in row.answers["eager"] and "nan" not in row.answers["compiled"]
    page = render([tmp_path / "r.jsonl"])
    assert "Answers that depend on the mode, device or spelling" in page
    assert "float16, float32" in page


def test_coverage_names_what_was_judged_and_what_was_never_drawn(
    page: str, run_dir: Path, tmp_path: Path
) -> None:
    assert "Coverage of exact.sparse_softmax_cross_entropy" in page
    assert "<code>reduction:weighted_mean&amp;class_weights:set</code>" in page
    assert "every declared one drawn" in page
    record = json.loads((run_dir / "results.jsonl").read_text().splitlines()[0])
    record["coverage"]["not_drawn"] = ["where:<b>hidden</b>"]
    with ResultsWriter(tmp_path / "r.jsonl") as writer:
        writer.write(record)
    holed = render([tmp_path / "r.jsonl"])
    assert "1 declared but never drawn" in holed
    assert "<code>where:&lt;b&gt;hidden&lt;/b&gt;</code>" in holed
