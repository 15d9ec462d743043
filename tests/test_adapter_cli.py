"""`conformance list`: static rows (no framework imported), JSON fields, probing."""

from __future__ import annotations

import json

import pytest
from fake_adapters import FakeAdapter, NotInstalledAdapter

from conformance.cli import list_rows, main
from conformance_adapters.probe import probe, probe_in_subprocess

FIELDS = {
    "adapter",
    "framework",
    "version",
    "implementation",
    "op",
    "dtypes",
    "devices",
    "modes",
    "available",
    "reason",
}


def test_list_json_has_every_adapter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert FIELDS <= set(rows[0])
    adapters = {r["adapter"] for r in rows}
    assert {
        "scipy",
        "torch",
        "tensorflow",
        "jax",
        "jax-x32",
        "keras-tensorflow",
        "keras-jax",
        "keras-torch",
    } <= adapters
    torch_rows = [r for r in rows if r["adapter"] == "torch"]
    assert all("compiled" not in r["modes"] for r in torch_rows)
    assert all("opt-in" in r["unavailable_modes"]["compiled"] for r in torch_rows)


def test_list_table_and_third_party(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--adapter", "fake_adapters:FakeAdapter", "--adapter", "nope"]) == 0
    out = capsys.readouterr().out
    assert "fake.softmax" in out and "unknown adapter 'nope'" in out


def test_rows_of_an_unavailable_adapter() -> None:
    rows = list_rows(["fake_adapters:NotInstalledAdapter"])
    assert rows and not any(r["available"] for r in rows)
    assert all("not installed" in r["reason"] and r["modes"] == [] for r in rows)


def test_probe_reports_devices_and_environment() -> None:
    info = probe(FakeAdapter())
    assert info["available"] and info["devices"] == ["cpu"]
    assert info["environment"]["adapter"] == "fake"
    assert not probe(NotInstalledAdapter())["available"]


def test_probe_in_a_subprocess() -> None:
    info = probe_in_subprocess("scipy")
    assert info["available"], info
    assert info["devices"] == ["cpu"] and "scipy" in info["environment"]
    assert not probe_in_subprocess("no-such-adapter")["available"]
