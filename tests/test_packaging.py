"""What the install puts into site-packages: import names no other distribution uses."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_the_wheel_installs_no_generic_top_level_name(wheel_names) -> None:
    """PyPI's `adapters` package owns the top-level name `adapters`: the folder adapters/
    installs as `conformance_adapters` (pyproject.toml, package-dir)."""
    top = {n.split("/")[0] for n in wheel_names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"conformance", "conformance_adapters"}, top


def test_the_wheel_carries_the_adapters_and_the_report_templates(wheel_names) -> None:
    assert "conformance_adapters/registry.py" in wheel_names
    assert any(n.startswith("conformance/report/templates/") for n in wheel_names)
    assert "conformance/known_deviations.toml" in wheel_names or any(
        n.endswith(".toml") for n in wheel_names if n.startswith("conformance/")
    )
