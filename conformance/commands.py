"""`conformance run`, `replay` and `merge`: argument handling, progress, summary, exit codes.

Exit codes: 0 everything passed or is a known deviation; 1 unexpected findings (or a
crashed cell); 2 usage errors, reported in one line without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.drawing import PROFILES
from conformance.dtypes import FLOAT_DTYPES
from conformance.usage import UsageError

if TYPE_CHECKING:
    from conformance import consistency, runner

DEFAULT_OUT = Path("reports") / "results.jsonl"


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--framework",
        action="append",
        default=[],
        metavar="NAME",
        help="a built-in adapter or family (torch, tensorflow, keras, jax, scipy);"
        " repeatable; default: every installed one",
    )
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="a third-party adapter by import path or entry-point name; repeatable",
    )
    p.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    p.add_argument(
        "--dtype",
        action="append",
        default=[],
        metavar="DTYPE",
        help=f"one of {', '.join(FLOAT_DTYPES)}; repeatable; default: all",
    )
    p.add_argument("--mode", choices=("eager", "compiled", "all"), default="all")
    p.add_argument(
        "--api",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only the implementations whose name matches (shell-style, e.g. 'optax.*',"
        " 'keras.ops.softmax'); repeatable; default: all",
    )
    p.add_argument("--profile", choices=tuple(PROFILES), default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.jsonl",
        help=f"results file (default {DEFAULT_OUT}; overwritten unless --resume)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the cells already in --out and run only the missing ones",
    )
    p.add_argument("--shard", default=None, metavar="I/N", help="run shard I of N (1-based)")
    p.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes at once (default: 2)",
    )
    p.add_argument("--cell-timeout", type=float, default=600.0, metavar="SECONDS")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per worker for the frameworks' kernels (default: 1)",
    )
    p.add_argument(
        "--known",
        default=None,
        metavar="FILE.toml",
        help="known-deviations file (default: the suite's reviewed one)",
    )


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 1/4") from None
    if not 1 <= index <= count:
        raise UsageError(f"--shard {text!r}: I must be between 1 and N")
    return index, count


def select_adapters(frameworks: list[str], paths: list[str]) -> list[str]:
    """Adapter names for --framework families and --adapter paths (validated)."""
    from conformance_adapters.registry import AdapterLoadError, adapter_names, get_adapter

    known = adapter_names()
    chosen: list[str] = []
    for name in frameworks:
        family = [n for n in known if n == name or n.startswith(f"{name}-")]
        if not family:
            raise UsageError(f"unknown framework {name!r}: choose from {', '.join(known)}")
        chosen += [n for n in family if n not in chosen]
    for path in paths:
        try:
            get_adapter(path)
        except AdapterLoadError as exc:
            raise UsageError(str(exc)) from None
        chosen.append(path)
    return chosen or known


def run_command(args: argparse.Namespace) -> int:
    """`conformance run`: every argument is validated before any file is touched; the
    previous results file (when not resuming) is kept beside the new one."""
    from conformance import consistency, known, runner
    from conformance.results import read_records

    out: Path = args.out or DEFAULT_OUT
    report = args.report or (None if args.out else DEFAULT_OUT.with_name("index.html"))
    options = _validated_run(args, out, report)
    if not args.resume:
        kept = _keep_previous(out)
        if kept is not None:
            print(f"previous results kept as {kept}", file=sys.stderr)
    from conformance.display import RunDisplay

    with RunDisplay() as display:
        outcomes = runner.run(options, out, display.update)
    records = read_records(out).records
    found = consistency.disagreements(records, known.load(args.known))
    display.summary(records, outcomes, out, found)
    if report is not None:
        from conformance.report import write_report

        write_report([out], report)
        print(f"report: {report}", file=sys.stderr)
    for line in stale_deviations(records, args.known, found):
        print(line, file=sys.stderr)
    failed = any(r.get("unexpected") for r in records) or any(not d.known for d in found)
    return 1 if failed else 0


def _validated_run(args: argparse.Namespace, out: Path, report: Path | None) -> runner.RunOptions:
    """The run's options (with the cells a resume skips), or a UsageError; changes no file."""
    from conformance import known, runner
    from conformance.results import ResultsError, read_records

    for dtype in args.dtype:
        if dtype not in FLOAT_DTYPES:
            raise UsageError(f"--dtype {dtype!r}: choose from {', '.join(FLOAT_DTYPES)}")
    if args.jobs < 1 or not args.cell_timeout > 0 or args.threads < 1:  # NaN is not > 0
        raise UsageError("--jobs, --threads and --cell-timeout must be positive")
    shard = parse_shard(args.shard)
    try:
        known.load(args.known)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise UsageError(f"--known {args.known}: {exc}") from None
    adapters = select_adapters(args.framework, args.adapter)
    _check_apis(args.api, adapters)
    for path in (out, report):
        if path is not None:
            _check_writable(path)
    if report is not None and report.resolve() == out.resolve():
        raise UsageError(f"--report {report}: the same file as --out")
    skip: dict[str, set[tuple[str, str, str, str]]] = {}
    if args.resume and out.exists():
        try:
            stored = read_records(out)
        except ResultsError as exc:
            raise UsageError(f"--resume: {exc}") from None
        for r in stored.records:
            key = (r["implementation"], r["dtype"], r["device"], r["mode"])
            skip.setdefault(r["adapter"], set()).add(key)
    options = runner.RunOptions(
        adapters=adapters,
        profile=args.profile,
        seed=args.seed,
        dtypes=args.dtype or None,
        devices=None if args.device == "all" else [args.device],
        modes=None if args.mode == "all" else [args.mode],
        apis=args.api or None,
        shard=shard,
        jobs=args.jobs,
        threads=args.threads,
        cell_timeout_s=args.cell_timeout,
        known=args.known,
        skip=skip,
    )
    return options


def _check_apis(patterns: list[str], adapters: list[str]) -> None:
    """Each --api pattern names an implementation of a chosen adapter (declarations import
    no framework, so this costs nothing)."""
    if not patterns:
        return
    from conformance_adapters.interface import api_selected
    from conformance_adapters.registry import get_adapter

    names = {impl.name for a in adapters for impl in get_adapter(a).implementations()}
    for pattern in patterns:
        if not any(api_selected(name, [pattern]) for name in names):
            raise UsageError(
                f"--api {pattern!r} matches no implementation of {', '.join(adapters)}"
                " (see the report's implementation names)"
            )


def previous_path(out: Path) -> Path:
    """Where a run keeps the results file it replaces: results.jsonl -> results.previous.jsonl."""
    return out.with_name(f"{out.stem}.previous{out.suffix}")


def _keep_previous(out: Path) -> Path | None:
    """Move an existing results file aside (replacing an older kept one); its new path."""
    if not out.exists():
        return None
    kept = previous_path(out)
    os.replace(out, kept)
    return kept


def stale_deviations(
    records: list[dict[str, Any]],
    path: str | None,
    found: list[consistency.Disagreement] | None = None,
) -> list[str]:
    """Warnings for known deviations that matched nothing among cells they cover (findings
    of the cells, or mode/device disagreements between them)."""
    import fnmatch

    from conformance import known

    used = {f.get("known") for r in records for f in r.get("findings", [])}
    used |= {d.known for d in found or [] if d.known}
    adapters = {r["adapter"] for r in records}
    lines = []
    for entry in known.load(path):
        pattern = entry.patterns.get("adapter", "*")
        in_scope = any(fnmatch.fnmatchcase(a, pattern) for a in adapters)
        if in_scope and entry.id not in used:
            lines.append(
                f"warning: known deviation {entry.id!r} matched nothing in this run;"
                " if the framework changed, remove it from the known-deviations file"
            )
    return lines


def _check_writable(path: Path) -> None:
    """A UsageError unless `path` can be written as a file. Changes nothing: the folders a
    writer will create are not created here; the nearest existing one takes a probe file."""
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a folder")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: {folder} is not a folder")
    probe = folder / f".{path.name}.probe"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def require_cells(paths: list[Path]) -> None:
    """A UsageError unless every file is a results file with at least one cell in it."""
    from conformance.results import ResultsError, read_records

    for path in paths:
        try:
            found = read_records(path)
        except ResultsError as exc:
            raise UsageError(str(exc)) from None
        if not found.records:
            raise UsageError(f"{path}: no cells in it (an empty or interrupted run?)")


def merge_command(args: argparse.Namespace) -> int:
    from conformance.results import ResultsError, merge, write_atomically

    if not args.files:
        raise UsageError("merge: give at least one results file")
    require_cells(args.files)
    try:
        records = list(merge(args.files))
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    _check_writable(args.out)
    write_atomically(args.out, [{k: v for k, v in r.items() if k != "schema"} for r in records])
    print(f"{len(records)} cells from {len(args.files)} files -> {args.out}")
    return 0


def replay_command(args: argparse.Namespace) -> int:
    from conformance.replay import replay

    return replay(args.results, args.cell)


def report_command(args: argparse.Namespace) -> int:
    from conformance.report import write_report
    from conformance.results import ResultsError

    if not args.results:
        raise UsageError("report: give at least one results file")
    require_cells([*args.results, *args.baseline])
    _check_writable(args.out)
    try:
        write_report(list(args.results), args.out, list(args.baseline) or None)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    print(f"report: {args.out}")
    return 0


def diff_cli(args: argparse.Namespace) -> int:
    from conformance.diff import diff_command
    from conformance.results import ResultsError

    require_cells([args.baseline, args.current])
    try:
        return diff_command([args.baseline], [args.current])
    except ResultsError as exc:
        raise UsageError(str(exc)) from None


def history_cli(args: argparse.Namespace) -> int:
    """Print a release history as Markdown; also write it with --markdown / --html."""
    from conformance import history
    from conformance.results import ResultsError

    require_cells(args.results)
    for out in (args.html, args.markdown):
        if out is not None:
            _check_writable(out)
    try:
        h = history.build(args.results)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    text = history.markdown(h)
    for out, content in ((args.markdown, text), (args.html, None)):
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(content if content is not None else history.render_html(h), "utf-8")
            print(f"history: {out}", file=sys.stderr)
    if args.markdown is None and args.html is None:
        sys.stdout.write(text)
    return 0


def add_commands(sub: Any) -> None:
    """Register run, report, diff, history, replay and merge on the `conformance` parser."""
    p = sub.add_parser("run", help="run the conformance cells and write results (+ report)")
    add_run_arguments(p)
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="FILE.html",
        help="also write the HTML report (default: reports/index.html when --out is not given)",
    )
    p.set_defaults(func=lambda a: main_guarded(run_command, a))
    p = sub.add_parser("report", help="one self-contained HTML report from results files")
    p.add_argument("results", nargs="*", type=Path, metavar="RESULTS.jsonl")
    p.add_argument("-o", "--out", type=Path, default=Path("reports") / "index.html")
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        type=Path,
        metavar="OLD.jsonl",
        help="add a regression section against these results",
    )
    p.set_defaults(func=lambda a: main_guarded(report_command, a))
    p = sub.add_parser("diff", help="compare two results files; exit 1 on a regression")
    p.add_argument("baseline", type=Path)
    p.add_argument("current", type=Path)
    p.set_defaults(func=lambda a: main_guarded(diff_cli, a))
    p = sub.add_parser(
        "history", help="how every cell changed over a framework's releases (oldest first)"
    )
    p.add_argument("results", nargs="+", type=Path, metavar="RELEASE.jsonl")
    p.add_argument("--html", type=Path, default=None, metavar="FILE.html")
    p.add_argument("--markdown", type=Path, default=None, metavar="FILE.md")
    p.set_defaults(func=lambda a: main_guarded(history_cli, a))
    p = sub.add_parser("replay", help="re-run the stored worst input of a cell")
    p.add_argument("results", type=Path, metavar="RESULTS.jsonl")
    p.add_argument(
        "cell",
        nargs="?",
        default=None,
        help="adapter/implementation/dtype/device/mode (a unique prefix);"
        " default: the first cell with an unexpected finding",
    )
    p.set_defaults(func=lambda a: main_guarded(replay_command, a))
    p = sub.add_parser("merge", help="join result shards into one file")
    p.add_argument("files", nargs="*", type=Path, metavar="SHARD.jsonl")
    p.add_argument("-o", "--out", type=Path, required=True)
    p.set_defaults(func=lambda a: main_guarded(merge_command, a))


def summarise(records: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Verdict counts per adapter."""
    table: dict[str, Counter[str]] = {}
    for r in records:
        table.setdefault(r["adapter"], Counter())[r["verdict"]] += 1
    return table


def main_guarded(handler: Any, args: argparse.Namespace) -> int:
    """Run a command; usage errors become one line on stderr and exit status 2."""
    try:
        return int(handler(args))
    except UsageError as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return 2
