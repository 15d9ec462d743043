"""Hypothesis profiles, and the tests' hands off the user's files.

CI (`CI` set, as `.ci/run` does) runs derandomized: the same examples every run, so a red CI
means the code changed, not that a new draw got lucky. Elsewhere the draws explore (and
failures are saved in .hypothesis/ and replayed first).

The tests never use the user's cache: unless `CONFORMANCE_CACHE_DIR` is set by the caller,
the session (and every process it starts) caches in a temporary folder removed at the end.
And they never touch `reports/`: the session fails if any file there changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPORTS = Path(__file__).resolve().parents[1] / "reports"
_CACHE: str | None = None
_REPORTS_BEFORE: dict[str, str] = {}


def reports_snapshot(folder: Path = REPORTS) -> dict[str, str]:
    """Every file under `folder`: its relative path -> the digest of its bytes."""
    if not folder.is_dir():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def pytest_configure(config: pytest.Config) -> None:
    global _CACHE
    if "CONFORMANCE_CACHE_DIR" not in os.environ:
        _CACHE = tempfile.mkdtemp(prefix="conformance-test-cache-")
        os.environ["CONFORMANCE_CACHE_DIR"] = _CACHE
    _REPORTS_BEFORE.update(reports_snapshot())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _CACHE is not None:
        shutil.rmtree(_CACHE, ignore_errors=True)
    after = reports_snapshot()
    changed = sorted(
        k for k in set(after) | set(_REPORTS_BEFORE) if after.get(k) != _REPORTS_BEFORE.get(k)
    )
    if changed and not hasattr(session.config, "workerinput"):  # the controller judges
        session.config.get_terminal_writer().line(
            f"ERROR: the tests changed the user's files in {REPORTS}: {', '.join(changed)}",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
