"""The on-disk cache: Hypothesis draws and reference answers shared by every worker, and
the compilers' caches.

Nothing here is needed for correctness. Draws are a pure function of (seed, op, dtype,
options, profile, the strategies' code, the Hypothesis and numpy versions), so the first
worker that draws a family stores it and the others read it back; compilers (XLA under
JAX and TensorFlow) keep their executables. Draw files are `.npz` read with
`allow_pickle=False` plus JSON, written to a temporary name and renamed (atomic, so
parallel workers never read half a file). Reference answers are a pure function of the
input bytes, the options and the reference's own code: `AnswerStore` keeps them in one
SQLite file per version of that code (raw array bytes with dtype and shape; loading
executes nothing). `CONFORMANCE_CACHE_DIR` moves the cache; `=off` disables it.

The cache is bounded (a thorough sweep draws inputs of 100,000 classes; unbounded, its
draws and answers filled 44 GB): a draw file over `MAX_DRAW_FILE` or an answer over
`MAX_ANSWER` is not kept, the draws folder keeps its most recently used files within
`DRAWS_BUDGET`, an answer store stops growing at `ANSWERS_BUDGET`, and of the stores of
other versions of the reference only the most recently used one is kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import sqlite3
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from conformance.dtypes import as_dtype, dtype_name

if TYPE_CHECKING:
    from conformance.strategies import Example

_OFF = ("off", "0", "none", "")
_MIB = 1 << 20
MAX_DRAW_FILE = 64 * _MIB
"""Draws of one family larger than this are drawn again rather than kept."""
DRAWS_BUDGET = 2048 * _MIB
"""The draws folder keeps its most recently used files within this size."""
MAX_ANSWER = 1 * _MIB
"""A larger reference answer is computed again when needed (cheap per byte) rather than kept."""
ANSWERS_BUDGET = 2048 * _MIB
"""An answer store takes no new answers beyond this size."""


def cache_dir(kind: str) -> Path | None:
    """The cache folder for `kind` ("draws", or a compiler's, then per `machine_tag`),
    created; None when the cache is off or cannot be written."""
    setting = os.environ.get("CONFORMANCE_CACHE_DIR")
    if setting is not None and setting.strip().lower() in _OFF:
        return None
    if setting:
        root = Path(setting)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "logit-conformance"
    path = root / kind
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path


def machine_tag() -> str:
    """A short digest of this machine's CPU (architecture, model and instruction-set flags):
    compiled executables are kept apart per CPU, so a cache restored on another machine
    (a CI cache) never hands it code for instructions it lacks."""
    from conformance_adapters.common import cpu_info

    model, flags = cpu_info()
    text = f"{platform.machine()}|{platform.processor()}|{model}|{' '.join(flags)}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _code_digest() -> str:
    """The code the draws depend on: the strategies, what decides which draws are kept
    (coverage-guided drawing: `coverage`, `drawing._draw`) and how they are stored. Read as
    files beside this one, not imported: the cache sits below the harness."""
    h = hashlib.sha256()
    for name in ("strategies.py", "coverage.py", "drawing.py", "inputs.py"):
        h.update(Path(__file__).with_name(name).read_bytes())
    h.update(Path(__file__).read_bytes())
    for dist in ("hypothesis", "numpy"):
        h.update(f"{dist}={metadata.version(dist)}".encode())
    return h.hexdigest()[:16]


def draws_key(*parts: Any) -> str:
    """A file name for the draws identified by `parts` (reprs of plain values)."""
    text = "\x1f".join(repr(p) for p in (*parts, _code_digest()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _bits(a: np.ndarray) -> np.ndarray:
    """`a` as unsigned integers of its width (bfloat16 has no portable .npy form)."""
    return np.array(a, order="C", copy=True).view(f"u{a.dtype.itemsize}")  # 0-d stays 0-d


def _restore(bits: np.ndarray, dtype: str) -> np.ndarray:
    return bits.view(as_dtype(dtype))


def load_examples(key: str) -> tuple[Example, ...] | None:
    """The stored draws under `key`, or None (absent, unreadable, or the cache is off)."""
    from conformance.strategies import Example

    folder = cache_dir("draws")
    if folder is None:
        return None
    path = folder / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            os.utime(path)  # recently used: pruned last
            meta = json.loads(bytes(data["meta"]).decode())
            out = []
            for i, m in enumerate(meta):
                x = _restore(data[f"x{i}"], m["x"])
                labels = _restore(data[f"labels{i}"], m["labels"]) if m["labels"] else None
                options = {
                    k: _restore(data[f"option{i}.{k}"], v["array"])
                    if isinstance(v, dict)
                    else tuple(v)
                    if isinstance(v, list)
                    else v
                    for k, v in m["options"].items()
                }
                out.append(Example(x, labels, options, m["invalid"]))
            return tuple(out)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def store_examples(key: str, examples: tuple[Example, ...]) -> None:
    """Store draws: arrays (inputs, labels, array options) by their bits, the rest as JSON."""
    folder = cache_dir("draws")
    if folder is None:
        return
    arrays: dict[str, np.ndarray] = {}
    meta = []
    for i, e in enumerate(examples):
        arrays[f"x{i}"] = _bits(e.x)
        if e.labels is not None:
            arrays[f"labels{i}"] = _bits(e.labels)
        options: dict[str, Any] = {}
        for k, v in e.options.items():
            if isinstance(v, np.ndarray):
                arrays[f"option{i}.{k}"] = _bits(v)
                options[k] = {"array": dtype_name(v.dtype)}
            else:
                options[k] = v
        meta.append(
            {
                "x": dtype_name(e.x.dtype),
                "labels": None if e.labels is None else dtype_name(e.labels.dtype),
                "options": options,
                "invalid": e.invalid,
            }
        )
    try:
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    except TypeError:
        return  # an option that is not JSON: not cached
    if sum(a.nbytes for a in arrays.values()) > MAX_DRAW_FILE:
        return
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getvalue())
        os.replace(tmp, folder / f"{key}.npz")
    except OSError:
        return
    prune(folder, DRAWS_BUDGET)


def prune(folder: Path, budget: int, pattern: str = "*.npz") -> None:
    """Remove the least recently used files matching `pattern` until the rest fit `budget`."""
    entries = []
    for path in folder.glob(pattern):
        try:
            st = path.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= budget:
            break
        try:
            path.unlink()
            total -= size
        except OSError:
            pass


# ---------------------------------------------------------------- reference answers
_REFERENCE_CODE = (
    "_dd.py",
    "_precision.py",
    "_reference_binary.py",
    "_reference_core.py",
    "_reference_kernels.py",
    "_reference_losses.py",
    "_reference_rows.py",
    "budget.py",
    "cache.py",  # how an answer is stored and read back
    "dtypes.py",
    "errors.py",
    "judge.py",
    "ops.py",
    "reference.py",
)
"""The modules whose code decides a reference answer, its error budget and its storage."""


def reference_digest() -> str:
    """A digest of what decides a stored answer: the reference's code, the numpy, mpmath
    and ml_dtypes versions, and this machine's long double (the reference's tier 2)."""
    folder = Path(__file__).parent
    h = hashlib.sha256()
    for name in _REFERENCE_CODE:
        h.update(name.encode() + (folder / name).read_bytes())
    for dist in ("numpy", "mpmath", "ml_dtypes"):
        h.update(f"{dist}={metadata.version(dist)}".encode())
    h.update(repr(np.finfo(np.longdouble)).encode())
    return h.hexdigest()[:16]


class AnswerStore:
    """Arrays by key in one SQLite file, shared by parallel workers (write-ahead log) and
    kept for later runs. A value is a JSON header (dtype and shape of each array) and the
    arrays' raw bytes; any database error turns the store off for the process."""

    def __init__(self, path: Path, budget: int = ANSWERS_BUDGET) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")  # a cache: a lost write is recomputed
        self._db.execute("CREATE TABLE IF NOT EXISTS answer (key BLOB PRIMARY KEY, data BLOB)")
        self._budget = budget

    def get(self, key: bytes) -> list[np.ndarray] | None:
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT data FROM answer WHERE key = ?", (key,)).fetchone()
            return None if row is None else _unpack(row[0])
        except (sqlite3.Error, ValueError, TypeError, KeyError):
            self._db = None
            return None

    def put(self, key: bytes, arrays: list[np.ndarray]) -> None:
        if self._db is None or sum(a.nbytes for a in arrays) > MAX_ANSWER:
            return
        try:
            if self.path.stat().st_size >= self._budget:  # the file every worker writes to
                return
            self._db.execute(
                "INSERT OR IGNORE INTO answer (key, data) VALUES (?, ?)", (key, _pack(arrays))
            )
        except (sqlite3.Error, OSError):
            self._db = None


def _pack(arrays: list[np.ndarray]) -> bytes:
    arrays = [np.asarray(a, order="C") for a in arrays]  # 0-d stays 0-d (not ascontiguousarray)
    header = json.dumps([[a.dtype.str, list(a.shape)] for a in arrays]).encode()
    return len(header).to_bytes(4, "little") + header + b"".join(a.tobytes() for a in arrays)


def _unpack(data: bytes) -> list[np.ndarray]:
    size = int.from_bytes(data[:4], "little")
    out, offset = [], 4 + size
    for dtype, shape in json.loads(data[4 : 4 + size]):
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise ValueError("object arrays are never stored")
        count = int(np.prod(shape))
        out.append(np.frombuffer(data, dt, count, offset).reshape(shape))  # read-only
        offset += count * dt.itemsize
    return out


_ANSWERS: list[AnswerStore | None] = []


def answer_store() -> AnswerStore | None:
    """This process' store of reference answers (opened once), or None when off."""
    if not _ANSWERS:
        folder = cache_dir("reference")
        store = None
        if folder is not None:
            path = folder / f"answers-{reference_digest()}.sqlite"
            _drop_old_stores(folder, keep=path)
            try:
                store = AnswerStore(path)
            except (sqlite3.Error, OSError):
                store = None
        _ANSWERS.append(store)
    return _ANSWERS[0]


def _drop_old_stores(folder: Path, keep: Path) -> None:
    """Stores of other versions of the reference are never read by this one: keep the most
    recently used of them (switching between two checkouts) and remove the rest."""

    def last_used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:  # removed meanwhile by another worker
            return 0.0

    others = sorted(
        (p for p in folder.glob("answers-*.sqlite") if p != keep), key=last_used, reverse=True
    )
    for old in others[1:]:
        for path in (old, old.with_name(old.name + "-wal"), old.with_name(old.name + "-shm")):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
