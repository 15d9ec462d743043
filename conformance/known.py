"""Known deviations: documented framework behaviour, reviewed, with a reason and a link.

A finding that matches an entry is reported apart from unexpected findings and does not
fail a run. An entry that matched nothing in a run is reported as stale, so the file
shrinks when frameworks change (as array-api-tests does with its xfails file).
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

MATCH_FIELDS = ("adapter", "implementation", "dtype", "device", "mode", "kind", "case")


@dataclass(frozen=True)
class KnownDeviation:
    """One reviewed entry: glob patterns over a finding's coordinates, and why."""

    id: str
    reason: str
    link: str
    patterns: dict[str, str]

    def matches(self, coordinates: dict[str, str]) -> bool:
        return all(
            fnmatch.fnmatchcase(str(coordinates.get(key, "")), pattern)
            for key, pattern in self.patterns.items()
        )


def load(path: str | Path | None = None) -> list[KnownDeviation]:
    """The entries of a known-deviations TOML file (default: the one shipped with the suite)."""
    if path is None:
        text = resources.files("conformance").joinpath("known_deviations.toml").read_text()
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    entries = []
    for raw in data.get("deviation", []):
        missing = [k for k in ("id", "reason", "link") if not raw.get(k)]
        if missing:
            raise ValueError(f"known deviation {raw.get('id', '?')!r} lacks {missing}")
        unknown = set(raw) - {"id", "reason", "link", *MATCH_FIELDS}
        if unknown:
            raise ValueError(f"known deviation {raw['id']!r}: unknown fields {sorted(unknown)}")
        patterns = {k: str(raw[k]) for k in MATCH_FIELDS if k in raw}
        entries.append(KnownDeviation(raw["id"], raw["reason"], raw["link"], patterns))
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise ValueError("known deviation ids must be unique")
    return entries


def classify(entries: list[KnownDeviation], coordinates: dict[str, Any]) -> str | None:
    """The id of the first entry matching a finding's coordinates, or None."""
    for entry in entries:
        if entry.matches(coordinates):
            return entry.id
    return None
