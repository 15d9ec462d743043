"""The suite as pytest items: one test per cell of the adapters named with --conformance-adapter.

    pytest --pyargs conformance --conformance-adapter mypkg.adapter:MyAdapter [-k softmax]

so that -k, -x, pytest-xdist and JUnit XML work, and a framework's own test suite can
run the conformance checks on its adapter (as scikit-learn's `parametrize_with_checks`
does for estimators). Without --conformance-adapter the plugin does nothing. Every option it adds is
prefixed `--conformance-`: a plugin's options join every pytest run in the environment,
and a bare `--adapter` would clash with any other plugin that chose it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "logit-conformance cells")
    group.addoption(
        "--conformance-adapter",
        action="append",
        default=[],
        metavar="NAME_OR_PATH",
        help="run the conformance cells of this adapter (built-in name or"
        " module:attribute); repeatable",
    )
    group.addoption("--conformance-profile", default="quick", choices=("quick", "ci", "thorough"))
    group.addoption("--conformance-seed", type=int, default=0)
    group.addoption("--conformance-dtype", action="append", default=[])
    group.addoption("--conformance-mode", action="append", default=[])


def _cells(config: pytest.Config) -> list[Any]:
    from conformance.worker import plan
    from conformance_adapters.registry import get_adapter

    params = []
    for name in config.getoption("--conformance-adapter"):
        adapter = get_adapter(name)
        available, reason = adapter.availability()
        if not available:
            params.append(pytest.param(None, marks=pytest.mark.skip(reason=reason), id=name))
            continue
        os.environ.update(adapter.process_env())
        dtypes = config.getoption("--conformance-dtype") or None
        modes = config.getoption("--conformance-mode") or None
        for impl, dtype, device, mode in plan(adapter, dtypes, None, modes):
            cell = (adapter, impl, dtype, device, mode)
            params.append(
                pytest.param(cell, id=f"{adapter.name}/{impl.name}/{dtype}/{device}/{mode}")
            )
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_cell" in metafunc.fixturenames:
        cells = _cells(metafunc.config)
        if not cells:
            cells = [
                pytest.param(
                    None, marks=pytest.mark.skip(reason="no --adapter given"), id="no-adapter"
                )
            ]
        metafunc.parametrize("conformance_cell", cells)


def check_cell(config: pytest.Config, cell: Any) -> None:
    """Run one cell; fail with its unexpected findings."""
    from conformance import known
    from conformance.drawing import PROFILES
    from conformance.harness import run_cell

    adapter, impl, dtype, device, mode = cell
    reason = adapter.mode_availability().get(mode, "")
    if reason:
        pytest.skip(reason)
    record = run_cell(
        adapter,
        impl,
        dtype,
        device,
        mode,
        PROFILES[config.getoption("--conformance-profile")],
        config.getoption("--conformance-seed"),
        known.load(),
    )
    if not record["examples"] and record["unsupported"]:
        pytest.skip("; ".join(record["unsupported"][:3]))
    unexpected = [f for f in record["findings"] if not f["known"]]
    if unexpected:
        lines = [f"{f['verdict']}: {f['kind']} on {f['case']}: {f['detail']}" for f in unexpected]
        pytest.fail(
            f"{record['verdict']} ({len(unexpected)} findings)\n" + "\n".join(lines), pytrace=False
        )
