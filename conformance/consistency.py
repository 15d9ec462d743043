"""Self-consistency: one implementation, the same inputs, another mode or device; one op,
another spelling of it in the same framework.

Each cell is judged against the reference on its own; this module compares the cells of one
implementation and dtype with each other (and the spellings of one op that one adapter
offers: `torch.softmax` and `torch.nn.functional.softmax`, `keras.ops.softmax` and
`keras.layers.Softmax`), where the reference cannot settle it or where the
difference is itself the news: the pattern of NaN, infinities and zeros a corpus case gives
(`special`: a masked row, `+inf`, NaN) and the reaction to an invalid named case (raises /
silent). `softmax([inf, 0])` that is `[nan, 0]` eagerly and `[nan, nan]` under XLA, or labels
out of range that raise eagerly and give NaN when compiled, are code that changes behaviour
when a user adds `jit`; a user who switches spellings gets the same surprise. Both sides ran
the same corpus, so any difference is real.

Derived from the records of a run, never stored: shards, `--resume` and merged files give the
same answer, and a cell's own verdict stays what its inputs earned.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance import known
from conformance.diff import special_signature

AXES: dict[str, tuple[tuple[str, ...], str]] = {
    "mode": (("implementation", "device"), "mode"),
    "device": (("implementation", "mode"), "device"),
    "spelling": (("op", "device", "mode"), "implementation"),
}
"""The compared axis -> (the record keys held fixed besides adapter and dtype, the one that
varies). Spellings are compared where the op, device and mode are the same."""


@dataclass(frozen=True)
class Disagreement:
    """One implementation answering one case differently in two or more modes (devices)."""

    adapter: str
    implementation: str
    dtype: str
    """The implementation whose modes (devices) disagree; for 'spelling', the op."""
    axis: str
    """'mode' (eager vs compiled on one device), 'device' (cpu vs cuda in one mode) or
    'spelling' (the implementations of one op, on one device in one mode)."""
    fixed: str
    """The device the modes were compared on, the mode the devices were compared in, or
    'device, mode' for spellings."""
    what: str
    """'special value' or 'invalid-input reaction'."""
    case: str
    answers: dict[str, str] = field(hash=False)
    """Mode (device) -> what it answered."""
    known: str | None = None

    @property
    def kind(self) -> str:
        return f"{self.axis}-dependent"

    def coordinates(self) -> dict[str, str]:
        """What a known-deviations entry matches: `mode` (`device`, `implementation`) lists
        the disagreeing ones, comma-separated and sorted, e.g. 'compiled-xla,eager'."""
        held, varying_key = AXES[self.axis]
        fixed = dict(zip(held, [self.implementation, *self.fixed.split(", ")], strict=True))
        fixed.pop("op", None)  # not a coordinate of findings: the implementation names it
        return {
            "adapter": self.adapter,
            "dtype": self.dtype,
            **fixed,
            varying_key: ",".join(sorted(self.answers)),
            "kind": self.kind,
            "case": self.case,
        }

    def describe(self) -> str:
        answers = "; ".join(f"{k}: {v}" for k, v in sorted(self.answers.items()))
        return f"{self.what} of case {self.case} depends on the {self.axis} ({answers})"


def _named_reactions(record: dict[str, Any]) -> dict[str, str]:
    return {
        str(case): str(reaction)
        for case, reaction in (record.get("reactions") or {}).items()
        if not str(case).startswith(("drawn", "targeted"))
    }


def _specials(record: dict[str, Any]) -> dict[str, str]:
    return {str(case): str(text) for case, text in (record.get("special") or {}).items()}


def _compare(
    cells: dict[str, dict[str, Any]],
    answers_of: Callable[[dict[str, Any]], dict[str, str]],
    pattern: Callable[[str], str],
) -> Iterable[tuple[str, dict[str, str]]]:
    """Cases whose answers (`answers_of(record)`) differ in `pattern` between the cells."""
    per_case: dict[str, dict[str, str]] = defaultdict(dict)
    for key, record in cells.items():
        for case, answer in answers_of(record).items():
            per_case[case][key] = answer
    for case, answers in sorted(per_case.items()):
        if len(answers) > 1 and len({pattern(a) for a in answers.values()}) > 1:
            yield case, answers


COMPARED = (
    ("special value", _specials, special_signature),
    ("invalid-input reaction", _named_reactions, str),
)
"""What is compared: its name, its answers per case in a record, and what of an answer
counts (the NaN / inf / zero pattern of a special value; a reaction as it is)."""


def disagreements(
    records: list[dict[str, Any]], entries: list[known.KnownDeviation] | None = None
) -> list[Disagreement]:
    """Every mode-, device- and spelling-dependent answer among `records` (cells that ran:
    a cell that crashed or was unsupported says nothing), classified against known
    deviations."""
    entries = known.load() if entries is None else entries
    out = []
    for axis, (held, varying_key) in AXES.items():
        groups: dict[tuple[str, ...], dict[str, dict[str, Any]]] = defaultdict(dict)
        for r in records:
            if r.get("verdict") in ("unsupported", "crashed", "timeout"):
                continue
            key = (r["adapter"], r["dtype"], *(str(r.get(k)) for k in held))
            groups[key][r[varying_key]] = r
        for (adapter, dtype, first, *rest), cells in sorted(groups.items()):
            if len(cells) < 2:
                continue
            fixed = ", ".join(rest)
            for what, answers_of, pattern in COMPARED:
                for case, answers in _compare(cells, answers_of, pattern):
                    d = Disagreement(adapter, first, dtype, axis, fixed, what, case, answers)
                    out.append(_classified(d, entries))
    return out


def _classified(d: Disagreement, entries: list[known.KnownDeviation]) -> Disagreement:
    found = known.classify(entries, d.coordinates())
    return d if found is None else dataclasses.replace(d, known=found)


__all__ = ["Disagreement", "disagreements"]
