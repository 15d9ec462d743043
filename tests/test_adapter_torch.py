"""Smoke tests of the torch adapter: every declared cell, and every option once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from adapter_smoke import cells, check_cell, check_options

from conformance_adapters.registry import get_adapter

ADAPTER = get_adapter("torch")
_AVAILABLE, _REASON = ADAPTER.availability()
pytestmark = pytest.mark.skipif(not _AVAILABLE, reason=_REASON)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny inputs: torch's thread pool only waits for a busy CPU (ms per call)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("impl", "dtype", "mode"), cells(ADAPTER))
def test_cell(impl: str, dtype: str, mode: str) -> None:
    check_cell(ADAPTER, impl, dtype, mode)


@pytest.mark.parametrize("impl", [i.name for i in ADAPTER.implementations()])
def test_options(impl: str) -> None:
    check_options(ADAPTER, impl)
