"""The on-disk cache: Hypothesis draws shared by every worker, and the compilers' caches.

Nothing here is needed for correctness. Draws are a pure function of (seed, op, dtype,
options, profile, the strategies' code, the Hypothesis and numpy versions), so the first
worker that draws a family stores it and the others read it back; compilers (XLA under
JAX and TensorFlow) keep their executables. Files are `.npz` read with
`allow_pickle=False` plus JSON, written to a temporary name and renamed (atomic, so
parallel workers never read half a file). `CONFORMANCE_CACHE_DIR` moves the cache;
`CONFORMANCE_CACHE_DIR=off` disables it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
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
    """A short digest of this machine's CPU (architecture and instruction-set flags):
    compiled executables are kept apart per CPU, so a cache restored on another machine
    (a CI cache) never hands it code for instructions it lacks."""
    h = hashlib.sha256(f"{platform.machine()}|{platform.processor()}".encode())
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features", "model name")):
                h.update(line.encode())
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    return h.hexdigest()[:12]


def _code_digest() -> str:
    from conformance import strategies

    h = hashlib.sha256(Path(strategies.__file__).read_bytes() + Path(__file__).read_bytes())
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
            meta = json.loads(bytes(data["meta"]).decode())
            out = []
            for i, m in enumerate(meta):
                x = _restore(data[f"x{i}"], m["x"])
                labels = _restore(data[f"labels{i}"], m["labels"]) if m["labels"] else None
                options = {
                    k: tuple(v) if isinstance(v, list) else v for k, v in m["options"].items()
                }
                out.append(Example(x, labels, options, m["invalid"]))
            return tuple(out)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def store_examples(key: str, examples: tuple[Example, ...]) -> None:
    """Store draws (options must be JSON: the strategies draw no array options)."""
    folder = cache_dir("draws")
    if folder is None:
        return
    arrays: dict[str, np.ndarray] = {}
    meta = []
    for i, e in enumerate(examples):
        arrays[f"x{i}"] = _bits(e.x)
        if e.labels is not None:
            arrays[f"labels{i}"] = _bits(e.labels)
        meta.append(
            {
                "x": dtype_name(e.x.dtype),
                "labels": None if e.labels is None else dtype_name(e.labels.dtype),
                "options": e.options,
                "invalid": e.invalid,
            }
        )
    try:
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    except TypeError:
        return  # an option that is not JSON: not cached
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getvalue())
        os.replace(tmp, folder / f"{key}.npz")
    except OSError:
        pass
