"""Adapters that fail the way frameworks do: each faults on `exact.softmax` only.

Used by tests/test_reliability.py through `conformance run --adapter tests.fault_adapters:X`;
every other cell of the adapter must still complete.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import Any

from tests.harness_adapters import ExactAdapter

FAULTY = "exact.softmax"


class _Faulty(ExactAdapter):
    def fault(self) -> None:
        raise NotImplementedError

    def forward(self, impl: Any, x: Any, labels: Any, options: Any, mode: str) -> Any:
        if impl.name == FAULTY:
            self.fault()
        return super().forward(impl, x, labels, options, mode)


class AbortAdapter(_Faulty):
    name = "fault-abort"

    def fault(self) -> None:
        os.abort()


class SegfaultAdapter(_Faulty):
    name = "fault-segfault"

    def fault(self) -> None:
        ctypes.string_at(0)


class HangAdapter(_Faulty):
    name = "fault-hang"

    def fault(self) -> None:
        while True:
            time.sleep(0.05)


class SigkillAdapter(_Faulty):
    name = "fault-sigkill"

    def fault(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class RunawayAllocationAdapter(_Faulty):
    """Allocates until the worker's memory limit (CONFORMANCE_WORKER_MEMORY_GB) stops it."""

    name = "fault-allocation"

    def fault(self) -> None:
        hoard = []
        while True:
            hoard.append(bytearray(1 << 28))


class SlowAdapter(ExactAdapter):
    """Correct, but each call sleeps: gives a test time to kill the runner mid-run."""

    name = "slow-exact"

    def forward(self, impl: Any, x: Any, labels: Any, options: Any, mode: str) -> Any:
        time.sleep(0.02)
        return super().forward(impl, x, labels, options, mode)
