"""The live progress of a run and the summary table at its end (rich, on stderr)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conformance.judge import Verdict

if TYPE_CHECKING:
    from conformance.consistency import Disagreement

_STYLE = {
    "pass": "green",
    "inaccurate": "yellow",
    "divergent": "magenta",
    "error": "red",
    "unsupported": "dim",
    "crashed": "bold red",
    "timeout": "bold red",
}


TABLE_WIDTH = 132
"""Narrower than this, the summary table would cut names and headers ("kera…"): lines."""


class RunDisplay:
    """Progress bars per adapter while a run goes; `summary()` afterwards."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RunDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def update(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            name = str(data.get("adapter", "?"))
            if event == "skipped":
                self.console.print(f"[dim]skipped {escape(name)}: {escape(str(data['reason']))}")
            elif event == "plan":
                self._tasks[name] = self.progress.add_task(
                    escape(name), total=data["cells"], status=""
                )
            elif event == "record" and name in self._tasks:
                verdict = data.get("verdict", "?")
                status = (
                    ""
                    if verdict == "pass"
                    else escape(f"{verdict}: {data.get('implementation')} {data.get('dtype')}")
                )
                self.progress.update(self._tasks[name], advance=1, status=status[:40])

    def summary(
        self,
        records: list[dict[str, Any]],
        outcomes: list[Any],
        out: Path,
        disagreements: Sequence[Disagreement] = (),
    ) -> None:
        by_adapter: dict[str, Counter[str]] = {}
        versions: dict[str, str] = {}
        unexpected: Counter[str] = Counter()
        for r in records:
            by_adapter.setdefault(r["adapter"], Counter())[r["verdict"]] += 1
            versions[r["adapter"]] = str(r.get("framework_version"))
            unexpected[r["adapter"]] += bool(r.get("unexpected"))
        if self.console.is_terminal and self.console.width >= TABLE_WIDTH:
            self.console.print(_table(by_adapter, versions, unexpected))
        else:  # a CI log or a narrow terminal: a plain line per adapter, nothing cut
            for line in summary_lines(by_adapter, versions, unexpected):
                self.console.print(escape(line), soft_wrap=True, highlight=False)
        for outcome in outcomes:
            if outcome.skipped:
                self.console.print(
                    f"[dim]{escape(outcome.adapter)}: not run ({escape(outcome.skipped)})"
                )
            for crash in outcome.crashes:
                self.console.print(f"[bold red]crashed[/] {escape(crash)}")
        total = sum(unexpected.values())
        self.console.print(
            f"{len(records)} cells, {total} with unexpected findings; results in {escape(str(out))}"
        )
        if disagreements:
            fresh = [d for d in disagreements if not d.known]
            example = (fresh or list(disagreements))[0]
            self.console.print(
                f"{len(disagreements)} answers depend on the mode, device or spelling"
                f" ({len(fresh)} unexpected), e.g. {escape(example.adapter)}"
                f" {escape(example.implementation)}"
                f" {example.dtype}: {escape(example.describe())}"
            )


def _table(
    by_adapter: dict[str, Counter[str]], versions: dict[str, str], unexpected: Counter[str]
) -> Table:
    table = Table(title="conformance run", show_lines=False)
    table.add_column("adapter", overflow="fold")
    table.add_column("version", overflow="fold")
    for verdict in Verdict:
        table.add_column(verdict.value, justify="right", style=_STYLE[verdict.value])
    table.add_column("unexpected", justify="right")
    for name, counts in by_adapter.items():
        table.add_row(
            escape(name),
            escape(versions[name]),
            *(str(counts.get(v.value, "")) for v in Verdict),
            str(unexpected[name] or ""),
        )
    return table


def summary_lines(
    by_adapter: dict[str, Counter[str]], versions: dict[str, str], unexpected: Counter[str]
) -> list[str]:
    """The summary as plain lines: 'keras-jax 3.15.1: 40 pass, 2 error; 2 unexpected'."""
    lines = []
    for name, counts in by_adapter.items():
        verdicts = ", ".join(f"{counts[v.value]} {v.value}" for v in Verdict if counts[v.value])
        tail = f"; {unexpected[name]} unexpected" if unexpected[name] else ""
        lines.append(f"{name} {versions[name]}: {verdicts}{tail}")
    return lines
