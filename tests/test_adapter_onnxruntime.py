"""Smoke tests of the onnxruntime adapter: every declared cell, and every option once."""

from __future__ import annotations

import pytest
from adapter_smoke import cells, check_cell, check_options

from conformance_adapters.registry import get_adapter

ADAPTER = get_adapter("onnxruntime")
_AVAILABLE, _REASON = ADAPTER.availability()
pytestmark = pytest.mark.skipif(not _AVAILABLE, reason=_REASON)


@pytest.mark.parametrize(("impl", "dtype", "mode"), cells(ADAPTER))
def test_cell(impl: str, dtype: str, mode: str) -> None:
    check_cell(ADAPTER, impl, dtype, mode)


@pytest.mark.parametrize("impl", [i.name for i in ADAPTER.implementations()])
def test_options(impl: str) -> None:
    check_options(ADAPTER, impl)
