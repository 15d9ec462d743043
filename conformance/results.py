"""The record of a run: versioned JSON Lines, one record per cell, append-only.

Records are data, never code: arrays are stored as their exact bytes (base64, little
endian) with dtype name and shape and decoded with `np.frombuffer`; nothing is
unpickled or evaluated. A torn last line (a run killed mid-write) is set aside, not fatal.
"""

from __future__ import annotations

import base64
import gzip
import json
import lzma
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conformance.dtypes import as_dtype

SCHEMA = "logit-conformance/result/1"
"""The schema of every record; a reader refuses records of any other schema."""

_ARRAY_DTYPES = ("float16", "bfloat16", "float32", "float64", "int32", "int64", "bool", "uint8")


class ResultsError(ValueError):
    """A results file that cannot be read as results (named, with the reason)."""


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """An array as exact bytes: {'dtype', 'shape', 'data' (base64 of little-endian C order)}."""
    a = np.asarray(a)
    name = a.dtype.name
    if name not in _ARRAY_DTYPES:
        raise ValueError(f"cannot store arrays of dtype {name}")
    data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
    return {"dtype": name, "shape": list(a.shape), "data": base64.b64encode(data).decode("ascii")}


def decode_array(obj: dict[str, Any]) -> np.ndarray:
    """The array `encode_array` stored, bit for bit."""
    name = obj.get("dtype")
    if name not in _ARRAY_DTYPES:
        raise ResultsError(f"unknown array dtype {name!r}")
    dtype = as_dtype(name).newbyteorder("<")
    shape = tuple(int(n) for n in obj["shape"])
    data = base64.b64decode(obj["data"], validate=True)
    flat = np.frombuffer(data, dtype=dtype)
    if flat.size != int(np.prod(shape, dtype=np.int64)):
        raise ResultsError(
            f"array data holds {flat.size} values, shape {shape} needs more or fewer"
        )
    return flat.reshape(shape).astype(as_dtype(name))


@dataclass
class ReadReport:
    """What reading a results file found besides records."""

    records: list[dict[str, Any]] = field(default_factory=list)
    torn_lines: list[int] = field(default_factory=list)
    """1-based numbers of lines that were not complete JSON (a killed writer's last line)."""


_OPENERS: dict[str, Any] = {".xz": lzma.open, ".gz": gzip.open}
"""Results files may be compressed (committed baselines are .jsonl.xz): read by suffix."""


def read_records(path: str | os.PathLike[str]) -> ReadReport:
    """All records of a JSONL results file; raises ResultsError for a file that is not one."""
    report = ReadReport()
    p = Path(path)
    opener = _OPENERS.get(p.suffix, open)
    try:
        with opener(p, "rt", encoding="utf-8") as f:
            text = f.read()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ResultsError(f"{p}: cannot read ({reason})") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{p}: not a text file") from None
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) and line.startswith("{"):
                # torn: a record cut short by an interrupted write (no newline yet)
                report.torn_lines.append(number)
                continue
            raise ResultsError(f"{p}:{number}: not JSON") from None
        if not isinstance(record, dict) or "schema" not in record:
            raise ResultsError(f"{p}:{number}: not a logit-conformance record")
        if record["schema"] != SCHEMA:
            raise ResultsError(f"{p}:{number}: schema {record['schema']!r}, expected {SCHEMA!r}")
        report.records.append(record)
    return report


class ResultsWriter:
    """Appends records to a JSONL file, one line each, flushed and fsynced per record."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        self._file = self.path.open("a", encoding="utf-8")

    def _repair_torn_tail(self) -> None:
        """Cut an incomplete last line so new records start on a line of their own."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        with self.path.open("r+b") as f:
            f.truncate(keep)

    def write(self, record: dict[str, Any]) -> None:
        record = {"schema": SCHEMA, **record}
        self._file.write(json.dumps(record, sort_keys=True, allow_nan=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cell_key(record: dict[str, Any]) -> tuple[str, ...]:
    """The identity of a cell: adapter, implementation, dtype, device, mode."""
    return tuple(
        str(record.get(k)) for k in ("adapter", "implementation", "dtype", "device", "mode")
    )


_FRAME = re.compile(r'File "([^"]+)", line \d+')
"""A frame of a Python traceback, as a dead worker's last words quote it."""


def crashed_in_the_suite(record: dict[str, Any]) -> bool:
    """The cell's worker died of an exception the suite's own code raised (the innermost
    frame its last words quote is a module of `conformance/`): a bug of the suite, not of
    the framework (NumPy 1's promotion in `errors._ordinal` killed every float64 cell of
    jax 0.4.38 that way)."""
    if record.get("verdict") != "crashed":
        return False
    for finding in record.get("findings") or []:
        frames = _FRAME.findall(str(finding.get("detail", "")))
        if frames and Path(frames[-1]).parent.name == "conformance":
            return True
    return False


def fails_on_our_call(record: dict[str, Any]) -> bool:
    """Every input of the cell raised, or its worker died in the suite's own code: the
    suite's call failing (an option the release lacks, a wrong spelling, a NumPy the suite
    mishandles), not a finding about the framework."""
    findings = record.get("findings") or []
    raised = {f["case"] for f in findings if f.get("kind") == "raised"}
    return crashed_in_the_suite(record) or (
        record.get("verdict") == "error"
        and record.get("examples", 0) > 0
        and len(raised) >= record["examples"]
    )


def merge(paths: Iterable[str | os.PathLike[str]]) -> Iterator[dict[str, Any]]:
    """Records of several shards, each cell once (a later shard's record of a cell wins)."""
    by_cell: dict[tuple[str, ...], dict[str, Any]] = {}
    for path in paths:
        for record in read_records(path).records:
            by_cell[cell_key(record)] = record
    yield from sorted(by_cell.values(), key=cell_key)


def write_atomically(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Write a whole results file through a temporary file and a rename: never half-written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps({"schema": SCHEMA, **record}, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(target)
