"""The regression lane's version-pin table (noxfile.py): what each release would install."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def noxfile() -> ModuleType:
    pytest.importorskip("nox")
    spec = importlib.util.spec_from_file_location("_noxfile_under_test", ROOT / "noxfile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _pinned() -> dict[str, str]:
    text = (ROOT / "constraints" / "cpu.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, flags=re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): v for name, v in pins}


def _names(lines: list[str]) -> set[str]:
    return {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() for line in lines}


def test_an_old_jax_gets_numpy_1_and_its_own_companions(noxfile: ModuleType) -> None:
    args, constraints = noxfile.regression_install("jax", "0.4.30")
    assert args[:2] == ["-e", "."]
    for req in ("jax[cpu]==0.4.30", "numpy==1.26.4", "scipy==1.12.0", "ml_dtypes==0.4.1"):
        assert req in args
    assert "optax==0.2.5" in args
    names = _names(constraints)
    assert not names & {"jax", "jaxlib", "numpy", "scipy", "ml-dtypes", "optax"}
    assert {"hypothesis", "mpmath", "jinja2"} <= names  # the suite's own deps stay pinned


def test_the_pinned_release_of_every_lane_installs_constraints_cpu_txt(
    noxfile: ModuleType,
) -> None:
    pinned = _pinned()
    distribution = {"jax": "jax", "tensorflow": "tensorflow-cpu", "keras": "keras"}
    for framework in noxfile.REGRESSION_LANES:
        release = pinned[distribution.get(framework, framework)].removesuffix("+cpu")
        _, constraints = noxfile.regression_install(framework, release)
        lane = noxfile.REGRESSION_LANES[framework]
        assert lane.row(framework, release) == {}, framework
        dropped = set(pinned) - _names(constraints)
        assert dropped == {re.sub(r"[-_.]+", "-", n).lower() for n in lane.controls} & set(pinned)


def test_rows_are_oldest_first(noxfile: ModuleType) -> None:
    from packaging.version import Version

    for lane in noxfile.REGRESSION_LANES.values():
        firsts = [Version(first) for first, _ in lane.companions]
        assert firsts == sorted(firsts)


@pytest.mark.parametrize(
    ("framework", "release", "message"),
    [
        ("torch", "2.12.0", "only 2.13.0"),
        ("jax", "0.3.25", "older than the pin table"),
        ("mxnet", "1.9.1", "unknown framework"),
        ("jax", "latest", "not a version"),
    ],
)
def test_releases_the_table_cannot_install_are_refused(
    noxfile: ModuleType, framework: str, release: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        noxfile.regression_install(framework, release)


def test_history_takes_releases_oldest_first_then_run_options(noxfile: ModuleType) -> None:
    args = ["jax", "0.4.38", "0.5.3", "0.10.2", "--dtype", "float32"]
    assert noxfile.history_arguments(args) == ("jax", ["0.4.38", "0.5.3", "0.10.2"], args[4:])
    for bad in ([], ["jax", "0.5.3"], ["nope", "1", "2"], ["jax", "0.5.3", "0.4.38"]):
        with pytest.raises(ValueError, match=r"usage|oldest first"):
            noxfile.history_arguments(bad)
    with pytest.raises(ValueError, match="each once"):
        noxfile.history_arguments(["jax", "0.5.3", "0.5.3"])
