"""A cell's inputs: one corpus case or draw, and the digest that identifies a list of them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Input:
    """One input of a cell: a corpus case or a draw."""

    case: str
    x: np.ndarray
    labels: np.ndarray | None
    options: dict[str, Any]
    invalid: bool = False
    why: str = ""


def inputs_digest(items: list[Input]) -> str:
    """A digest of a cell's inputs (corpus and draws: exact bytes, labels, options), so
    that `conformance diff` can show two runs were given identical inputs."""
    h = hashlib.sha256()
    for item in items:
        h.update(item.case.encode() + b"\0" + str(item.invalid).encode())
        for a in (item.x, item.labels, *(item.options[k] for k in sorted(item.options))):
            if isinstance(a, np.ndarray):
                h.update(f"{a.dtype.name}{a.shape}".encode() + np.ascontiguousarray(a).tobytes())
            else:
                h.update(repr(a).encode())
        h.update(repr(sorted(item.options)).encode())
    return h.hexdigest()[:16]
