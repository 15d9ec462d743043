"""What every adapter shares that is not the interface: capturing warnings and native
stderr around a call, exact numpy casts, cheap installation checks (no imports) and the
CPU the kernels run on."""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.metadata
import importlib.util
import io
import os
import platform
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conformance.dtypes import as_dtype

# ----------------------------------------------------------------------------- calls


def passed(**keywords: Any) -> dict[str, Any]:
    """The keyword arguments a call sets (None: left out), so that a release without the
    keyword still runs the calls that do not use it (snippets: `kw={option?}`)."""
    return {k: v for k, v in keywords.items() if v is not None}


def unless_last(axis: Any) -> Any:
    """None for the last axis (every API's default: left out of the call), else `axis`."""
    return None if axis == -1 else axis


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


# ----------------------------------------------------------------------------- the CPU

_VECTOR_ISA = re.compile(
    r"(sse4_2|avx|avx2|fma|f16c|avx512\w*|amx\w*|avx_vnni\w*|avx_ne_convert|asimd\w*|"
    r"sve\w*|fphp|bf16|i8mm|sme(?!p)\w*)"
)
"""The instruction sets that CPU kernels dispatch on (oneDNN, XLA:CPU, Eigen, ATen)."""


@functools.lru_cache(maxsize=1)
def cpu_info() -> tuple[str, tuple[str, ...]]:
    """(model name, every flag) of this machine's first CPU, from /proc/cpuinfo (Linux);
    elsewhere platform.processor() and no flags."""
    model, flags = "", ()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "CPU part") and not model:
                model = value.strip()
            elif key in ("flags", "Features"):
                flags = tuple(value.split())
                break
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def cpu_description() -> str:
    """The CPU model and its vector instruction sets, e.g. 'AMD EPYC; avx avx2 avx512f fma':
    kernels chosen by instruction set can give other bits (and other special values) on
    another CPU, so every record says which one it ran on."""
    model, flags = cpu_info()
    isa = sorted(f for f in flags if _VECTOR_ISA.fullmatch(f))
    return f"{platform.machine()} {model}; {' '.join(isa)}".strip()
