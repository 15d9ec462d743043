"""Real bugs of real releases (`conformance/real_bugs.toml`) and the suite's verdict on each:
the bad release must be flagged on the cells of the buggy API where the fixed one is not, and
neither may have a cell that fails on the suite's own call. `nox -s real-bugs` installs each
pair and runs both releases; `python -m conformance.bug_pairs run ID ...` runs and judges one,
`python -m conformance.bug_pairs table` prints the docs table (docs/real-bugs.md)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.results import fails_on_our_call, read_records
from conformance_adapters.interface import api_selected

PAIRS_FILE = Path(__file__).with_name("real_bugs.toml")
VERDICTS_FILE = Path(__file__).resolve().parent.parent / "baselines" / "real-bugs.json"
"""The verdicts of the last full `nox -s real-bugs` (reports/real-bugs/verdicts.json, copied
and committed); absent from an installed wheel."""
_FIELDS = ("id", "framework", "api", "bad", "fixed", "link", "what", "reproducer")


@dataclass(frozen=True)
class BugPair:
    """One bug: the release that has it, the release that fixed it, and how to see it."""

    id: str
    framework: str
    """The regression lane that installs it (noxfile.REGRESSION_LANES)."""
    api: str
    """Implementation-name pattern of the buggy API (`conformance run --api`)."""
    bad: str
    fixed: str
    link: str
    what: str
    reproducer: str
    adapters: tuple[str, ...] = ()
    """Adapters to run (default: the lane's framework family)."""
    pins: dict[str, str] = field(default_factory=dict)
    """Extra pins for both environments (e.g. a jax era for an optax pair)."""
    dtypes: tuple[str, ...] = ()
    """Dtypes to run (default: all): a faster run where the bug is dtype-blind."""


def load(path: Path = PAIRS_FILE) -> list[BugPair]:
    """The pairs table; a ValueError names a missing or unknown field."""
    with path.open("rb") as f:
        rows = tomllib.load(f).get("pair", [])
    pairs = []
    for row in rows:
        missing = [k for k in _FIELDS if not row.get(k)]
        unknown = set(row) - set(BugPair.__dataclass_fields__)
        if missing or unknown:
            raise ValueError(
                f"{path}: pair {row.get('id')!r}: missing {missing}, unknown {unknown}"
            )
        pairs.append(
            BugPair(
                **{
                    **row,
                    "adapters": tuple(row.get("adapters", ())),
                    "dtypes": tuple(row.get("dtypes", ())),
                }
            )
        )
    ids = [p.id for p in pairs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate pair ids")
    return pairs


def load_verdicts(path: Path = VERDICTS_FILE) -> dict[str, dict[str, Any]]:
    """Measured verdicts by pair id ({} when none were committed)."""
    return json.loads(path.read_text()) if path.exists() else {}


def run_arguments(pair: BugPair) -> list[str]:
    """`conformance run` arguments for one side of a pair (quick profile, seed 0)."""
    args = ["--profile", "quick", "--seed", "0", "--api", pair.api]
    for adapter in pair.adapters:
        args += ["--framework", adapter]
    if not pair.adapters:
        args += ["--framework", pair.framework]
    for dtype in pair.dtypes:
        args += ["--dtype", dtype]
    return args


@dataclass
class PairVerdict:
    """What the suite said about one pair."""

    caught: bool
    signal: list[str]
    """'cell: kind [on case]' findings the bad release has and the fixed one lacks (by
    input when both judged the same inputs, else by kind)."""
    bad_cells: int
    fixed_cells: int
    fixed_flagged: list[str]
    """'cell: kind' unexpected findings left on the fixed release (other issues)."""
    own_failures: list[str]
    """Cells where every input raised: the suite's call failing, not a finding."""
    suites: list[str] = field(default_factory=list)
    """The suite code digests the two runs recorded: one, unless the suite changed between."""

    @property
    def status(self) -> str:
        if self.own_failures:
            return "our call fails"
        if len(self.suites) > 1:
            return "suite changed between the runs"
        if not self.bad_cells or not self.fixed_cells:
            return "not run"
        return "caught" if self.caught else "missed"


def _cell(record: dict[str, Any]) -> str:
    return "/".join(record[k] for k in ("adapter", "implementation", "dtype", "mode"))


def _findings(record: dict[str, Any], by_case: bool) -> set[str]:
    """'cell: kind' (with ' on case' when both releases judged identical inputs) of each
    finding that is not a reviewed known deviation."""
    return {
        f"{_cell(record)}: {f['kind']}" + (f" on {f['case']}" if by_case else "")
        for f in record.get("findings", [])
        if not f.get("known")
    }


def judge(pair: BugPair, bad: list[dict[str, Any]], fixed: list[dict[str, Any]]) -> PairVerdict:
    """Caught: on a cell of the API both releases have, the bad release has a finding the
    fixed one lacks: on the same input when both judged identical inputs (the inputs digest),
    else of a kind the fixed cell does not show at all."""

    def mine(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            r
            for r in records
            if api_selected(r["implementation"], [pair.api])
            and (not pair.adapters or r["adapter"] in pair.adapters)
            and r.get("verdict") != "unsupported"
        ]

    bad_cells, fixed_cells = mine(bad), mine(fixed)
    fixed_by_cell = {_cell(r): r for r in fixed_cells}
    signal: set[str] = set()
    for r in bad_cells:
        other = fixed_by_cell.get(_cell(r))
        if other is not None:  # the same inputs on both sides: compare input by input
            by_case = bool(r.get("inputs")) and r.get("inputs") == other.get("inputs")
            signal |= _findings(r, by_case) - _findings(other, by_case)
    fixed_kinds = set().union(*(_findings(r, False) for r in fixed_cells))
    return PairVerdict(
        caught=bool(signal),
        signal=sorted(signal),
        bad_cells=len(bad_cells),
        fixed_cells=len(fixed_cells),
        fixed_flagged=sorted(fixed_kinds),
        suites=sorted({str((r.get("suite") or {}).get("code")) for r in bad_cells + fixed_cells}),
        own_failures=sorted(
            f"{side}: {_cell(r)}"
            for side, cells in (("bad", bad_cells), ("fixed", fixed_cells))
            for r in cells
            if fails_on_our_call(r)
        ),
    )


def table(pairs: list[BugPair], verdicts: dict[str, dict[str, Any]] | None = None) -> str:
    """The Markdown table of the pairs (and, when given, the suite's measured verdicts)."""
    verdicts = verdicts or {}
    lines = [
        "| pair | API | bad → fixed | what goes wrong | upstream | suite |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in pairs:
        v = verdicts.get(p.id, {})
        status = v.get("status", "not run")
        if v.get("signal"):
            status += f" ({v['signal'][0].split(': ', 1)[1].split(' on ')[0]})"
        lines.append(
            f"| `{p.id}` | `{p.api}` | {p.framework} {p.bad} → {p.fixed} | {p.what} "
            f"| [link]({p.link}) | {status} |"
        )
    return "\n".join(lines) + "\n"


def run_pair(pair: BugPair, bins: dict[str, Path], out: Path) -> PairVerdict:
    """Both releases of `pair` (their environments' bin folders), same inputs, then judged."""
    results = {}
    for side, bindir in bins.items():
        results[side] = out / f"{pair.id}-{side}.jsonl"
        command = [str(bindir / "conformance"), "run", *run_arguments(pair)]
        print("$", " ".join(command), file=sys.stderr, flush=True)
        done = subprocess.run([*command, "--out", str(results[side])], check=False)
        if done.returncode not in (0, 1):  # 1: findings
            raise SystemExit(f"{pair.id} {side}: conformance run exited {done.returncode}")
    return judge(pair, read_records(results["bad"]).records, read_records(results["fixed"]).records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.bug_pairs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one pair in its two environments and judge it")
    run.add_argument("id")
    run.add_argument("--bad-bin", type=Path, required=True)
    run.add_argument("--fixed-bin", type=Path, required=True)
    run.add_argument("--out", type=Path, required=True, help="folder for the results files")
    run.add_argument("--verdicts", type=Path, help="JSON file to add this verdict to")
    show = sub.add_parser("table", help="the docs table")
    show.add_argument("--verdicts", type=Path)
    args = parser.parse_args(argv)
    pairs = {p.id: p for p in load()}
    if args.command == "table":
        verdicts = load_verdicts(args.verdicts) if args.verdicts else load_verdicts()
        print(table(list(pairs.values()), verdicts), end="")
        return 0
    pair = pairs[args.id]
    args.out.mkdir(parents=True, exist_ok=True)
    verdict = run_pair(pair, {"bad": args.bad_bin, "fixed": args.fixed_bin}, args.out)
    summary = {"status": verdict.status, "bad": pair.bad, "fixed": pair.fixed, **vars(verdict)}
    print(json.dumps(summary, indent=1))
    if args.verdicts:
        stored = json.loads(args.verdicts.read_text()) if args.verdicts.exists() else {}
        stored[pair.id] = summary
        args.verdicts.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
    return 0 if verdict.status == "caught" else 1


if __name__ == "__main__":
    sys.exit(main())
