"""What every adapter shares that is not the interface: capturing warnings and native
stderr around a call, exact numpy casts, and cheap installation checks (no imports)."""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import importlib.util
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.dtypes import as_dtype

# ----------------------------------------------------------------------------- capture

_TMP_FILES: list[Any] = []
"""One reusable temporary file per nesting depth of `capture()` (closed at exit)."""
_CAPTURE_DEPTH = 0


@atexit.register
def _close_tmp_files() -> None:
    while _TMP_FILES:
        _TMP_FILES.pop().close()


@dataclass
class Captured:
    """Filled in when a `capture()` block ends."""

    warnings: list[str] = field(default_factory=list)
    stderr: str = ""


@contextlib.contextmanager
def capture() -> Iterator[Captured]:
    """Record Python warnings, sys.stderr and native writes to fd 2 inside the block."""
    global _CAPTURE_DEPTH
    box = Captured()
    depth = _CAPTURE_DEPTH
    if len(_TMP_FILES) <= depth:
        _TMP_FILES.append(tempfile.TemporaryFile())
    tmp = _TMP_FILES[depth]
    tmp.seek(0)
    tmp.truncate()
    py_err = io.StringIO()
    _flush_stderr()
    try:
        saved: int | None = os.dup(2)
        os.dup2(tmp.fileno(), 2)
    except OSError:  # no fd 2 to redirect: capture Python-level text only
        saved = None
    _CAPTURE_DEPTH += 1
    try:
        with warnings.catch_warnings(record=True) as records, contextlib.redirect_stderr(py_err):
            warnings.simplefilter("always")
            yield box
            box.warnings = [f"{w.category.__name__}: {w.message}" for w in records]
    finally:
        _CAPTURE_DEPTH -= 1
        _flush_stderr()
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        native = tmp.read().decode("utf-8", errors="replace")
        box.stderr = native + py_err.getvalue()


def _flush_stderr() -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    with contextlib.suppress(Exception):
        sys.__stderr__.flush()  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- numpy side


def exact_cast(a: np.ndarray, dtype: str | np.dtype) -> tuple[np.ndarray, bool]:
    """`a` in `dtype` (C-contiguous copy) and whether every value survived unchanged."""
    target = as_dtype(dtype)
    out = np.array(a, dtype=target, order="C", copy=True)
    if a.dtype == target:
        return out, True
    if target.kind in "iub":
        return out, bool(np.array_equal(out, a))
    back = out.astype(np.float64)
    src = np.asarray(a, dtype=np.float64)
    same = (back == src) | (np.isnan(back) & np.isnan(src))
    return out, bool(same.all())


def nvidia_gpu_present() -> bool:
    """A cheap check (no framework import) that this machine has an NVIDIA GPU."""
    return os.path.exists("/dev/nvidiactl") or os.path.isdir("/proc/driver/nvidia/gpus")


def distribution_version(*names: str) -> str | None:
    """The installed version of the first of `names` that is installed."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def module_installed(name: str) -> bool:
    """Whether `import name` can find the module (nothing is imported)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
