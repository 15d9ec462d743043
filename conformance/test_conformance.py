"""Collected by `pytest --pyargs conformance --conformance-adapter ...`: one item per cell."""

from __future__ import annotations

import pytest

from conformance.pytest_plugin import check_cell


def test_cell(request: pytest.FixtureRequest, conformance_cell: object) -> None:
    check_cell(request.config, conformance_cell)
