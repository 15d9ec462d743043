"""Which suite judged a record: its version and a digest of its code (the catalog, the
reference, the draws, the judge, the adapters), so that `conformance diff` can tell a change
of the suite from a change of the framework or of the machine."""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from pathlib import Path
from typing import Any

import conformance_adapters.interface

_PACKAGES = (Path(__file__).parent, Path(conformance_adapters.interface.__file__).parent)
_DATA = ("known_deviations.toml",)
"""Data that decides a verdict besides the code (the reviewed known deviations)."""


@functools.cache
def suite_identity() -> dict[str, Any]:
    """{'version': the installed logit-conformance version, 'code': a digest of every module
    of `conformance` and `conformance_adapters` and of the known deviations}."""
    h = hashlib.sha256()
    for folder in _PACKAGES:
        for path in sorted((*folder.glob("*.py"), *(folder / n for n in _DATA))):
            if path.is_file():
                h.update(f"{folder.name}/{path.name}".encode() + b"\0" + path.read_bytes())
    try:
        version = metadata.version("logit-conformance")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"version": version, "code": h.hexdigest()[:12]}
