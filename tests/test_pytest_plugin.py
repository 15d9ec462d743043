"""The pytest plugin: cells as items, options that cannot clash with other plugins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def _pytest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "CONFORMANCE_CACHE_DIR": "off"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=TESTS.parent,
        timeout=600,
    )


def test_cells_of_a_named_adapter_run_as_items() -> None:
    done = _pytest(
        "--pyargs",
        "conformance",
        "--conformance-adapter",
        "harness_adapters:ExactAdapter",
        "--conformance-dtype",
        "float32",
        "--conformance-mode",
        "eager",
        "-k",
        "exact.log_softmax",
        "-q",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout


def test_every_option_the_plugin_adds_is_prefixed() -> None:
    """A plugin's options join every pytest run in the environment: a bare `--adapter`
    would clash with any other plugin that chose the same name."""
    help_text = _pytest("--help").stdout
    section = help_text.split("logit-conformance cells:")[1].split("\n\n")[0]
    options = [w for w in section.split() if w.startswith("--")]
    assert options and all(o.startswith("--conformance-") for o in options), options
    assert _pytest("--adapter", "x", "--co", "-q").returncode != 0
