"""The `conformance` command: subcommands over argparse.

    conformance list [--json] [--probe] [--adapter NAME|MODULE:ATTR ...]

`list` is static by default: it imports no framework (availability means 'installed', and
devices are guessed without the framework); `--probe` asks each adapter in a fresh process
of its own (Keras backends cannot share one), in parallel.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Command = Callable[[argparse.Namespace], int]


def _adapters(names: Sequence[str]) -> list[tuple[str, Any, str]]:
    """(name, adapter or None, load error) for the named adapters (default: all)."""
    from conformance_adapters.registry import AdapterLoadError, adapter_names, get_adapter

    found = []
    for name in names or adapter_names():
        try:
            found.append((name, get_adapter(name), ""))
        except AdapterLoadError as exc:
            found.append((name, None, str(exc)))
    return found


def list_rows(names: Sequence[str] = (), probe: bool = False) -> list[dict[str, Any]]:
    """One row per adapter × implementation (an adapter that fails to load: one row)."""
    loaded = _adapters(names)
    probed: dict[str, dict[str, Any]] = {}
    if probe:
        from conformance_adapters.probe import probe_in_subprocess

        live = [a.name for _, a, _ in loaded if a is not None]
        with ThreadPoolExecutor(max_workers=max(1, min(len(live), os.cpu_count() or 1))) as ex:
            probed = dict(zip(live, ex.map(probe_in_subprocess, live), strict=True))
    rows: list[dict[str, Any]] = []
    for name, adapter, error in loaded:
        if adapter is None:
            rows.append(
                {
                    "adapter": name,
                    "framework": None,
                    "version": None,
                    "implementation": None,
                    "op": None,
                    "dtypes": [],
                    "devices": [],
                    "modes": [],
                    "available": False,
                    "reason": error,
                }
            )
            continue
        info = probed.get(adapter.name)
        if info is None:
            available, reason = adapter.availability()
            devices, mode_reasons = adapter.static_devices(), adapter.mode_availability()
        else:
            available, reason = info["available"], info["reason"]
            devices = info.get("devices", [])
            mode_reasons = info.get("modes", adapter.mode_availability())
        for impl in adapter.implementations():
            usable = [m for m in impl.modes if not mode_reasons.get(m)]
            rows.append(
                {
                    "adapter": adapter.name,
                    "framework": adapter.framework,
                    "version": adapter.version(),
                    "implementation": impl.name,
                    "op": impl.op.value,
                    "dtypes": list(impl.dtypes),
                    "devices": devices if available else [],
                    "modes": usable if available else [],
                    "unavailable_modes": {
                        m: mode_reasons[m] for m in impl.modes if mode_reasons.get(m)
                    },
                    "available": bool(available and usable),
                    "reason": reason if not available else ("" if usable else "no usable mode"),
                    "options": sorted(o.value for o in impl.options),
                    "reductions": [r.value for r in impl.reductions],
                    "axes": impl.axes.value,
                    "label_dtype": impl.label_dtype,
                    "differentiable": impl.differentiable,
                    "notes": impl.notes,
                    "docs_url": impl.docs_url,
                    "probed": info is not None,
                }
            )
    return rows


def _print_table(rows: list[dict[str, Any]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is a dependency, but keep `list` working without it
        for r in rows:
            state = "yes" if r["available"] else f"no ({r['reason']})"
            print(
                f"{r['adapter']}\t{r['implementation']}\t{r['op']}\t"
                f"{','.join(r['dtypes'])}\t{','.join(r['modes'])}\t{state}"
            )
        return
    table = Table(title="Adapters and implementations")
    for col in ("adapter", "implementation", "op", "dtypes", "modes", "available"):
        table.add_column(col, overflow="fold")
    short = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}
    previous = None
    for r in rows:
        who = (
            ""
            if r["adapter"] == previous
            else (f"{r['adapter']} {r['version'] or ''}\n[dim]{' '.join(r['devices'])}[/dim]")
        )
        previous = r["adapter"]
        state = "[green]yes[/green]" if r["available"] else f"[red]no[/red]: {r['reason']}"
        table.add_row(
            who,
            r["implementation"] or "-",
            r["op"] or "-",
            " ".join(short.get(d, d) for d in r["dtypes"]),
            " ".join(r["modes"]),
            state,
            end_section=False,
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def defaults_markdown(names: Sequence[str] = ()) -> str:
    """The defaults table (`conformance.defaults`) of every available adapter, as Markdown."""
    from conformance.defaults import check_defaults
    from conformance.report.defaults_table import defaults_table, markdown

    records = [
        {
            "adapter": adapter.name,
            "implementation": impl.name,
            "framework": adapter.framework,
            "framework_version": adapter.version(),
            "defaults": check_defaults(adapter, impl),
        }
        for _, adapter, _ in _adapters(names)
        if adapter is not None and adapter.availability()[0]
        for impl in adapter.implementations()
    ]
    return markdown(*defaults_table(records))


def cmd_list(args: argparse.Namespace) -> int:
    """Print every adapter and implementation with its availability."""
    if args.defaults:
        sys.stdout.write(defaults_markdown(args.adapter))
        return 0
    rows = list_rows(args.adapter, probe=args.probe)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_table(rows)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block), exit status 2 as before."""

    def error(self, message: str) -> Any:  # argparse's signature: NoReturn
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="conformance",
        description="Judge frameworks' softmax, log_softmax, logsumexp and cross-entropy"
        " against an exact reference.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("list", help="adapters and implementations, with availability")
    p.add_argument("--json", action="store_true", help="a JSON list, one object per row")
    p.add_argument(
        "--probe",
        action="store_true",
        help="import each framework in its own process to confirm availability,"
        " devices and modes (slower)",
    )
    p.add_argument(
        "--defaults",
        action="store_true",
        help="each API's documented parameter defaults, checked against the installed"
        " release's signature, as a Markdown table",
    )
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME|MODULE:ATTR",
        help="only these adapters (built-in, entry point or import path); repeatable",
    )
    p.set_defaults(func=cmd_list)
    from conformance.commands import add_commands

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `conformance` script."""
    args = build_parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
