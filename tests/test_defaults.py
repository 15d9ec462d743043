"""The defaults-and-signatures check: every shipped API documents the defaults of the options
it takes, the pinned releases have them, and a release that changes one is told apart."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from harness_adapters import ExactAdapter

from conformance.defaults import CONCEPTS, check_defaults, concept, disagreements
from conformance.diff import diff
from conformance.drawing import PROFILES
from conformance.harness import run_cell
from conformance.ops import Op
from conformance.report.defaults_table import defaults_table
from conformance.report.model import load
from conformance.results import ResultsWriter
from conformance_adapters.interface import Implementation
from conformance_adapters.registry import all_adapters
from conformance_adapters.signatures import ABSENT, parameter_defaults

SHIPPED = [a for a in all_adapters() if a.availability()[0]]


def _loss(x: Any, labels: Any, *, axis: int = -1, reduction: str = "sum") -> Any:
    """A loss whose installed default reduction is 'sum'."""
    return x


class DefaultsAdapter(ExactAdapter):
    """The exact sparse loss, documented as defaulting to 'mean' and to an ignore index the
    installed `_loss` does not have."""

    name = "defaults"

    def __init__(self, installed: Any = _loss) -> None:
        super().__init__()
        self.installed = installed

    def _implementations(self) -> list[Implementation]:
        impl = next(
            i for i in super()._implementations() if i.op is Op.SPARSE_SOFTMAX_CROSS_ENTROPY
        )
        documented = {"axis": -1, "reduction": "mean", "ignore_index": -100}
        return [dataclasses.replace(impl, name="defaults.loss", defaults=documented)]

    def installed_defaults(self, impl: Implementation) -> dict[str, str] | None:
        return parameter_defaults(self.installed)


@pytest.mark.parametrize("adapter", SHIPPED, ids=lambda a: a.name)
def test_every_api_documents_the_default_of_every_option_it_takes(adapter: Any) -> None:
    """A declared option without its documented default is a hole in the defaults table."""
    for impl in adapter.implementations():
        documented = {concept(p) for p in impl.defaults}
        missing = {o.value for o in impl.options} - documented
        assert not missing, f"{impl.name} documents no default for {sorted(missing)}"


@pytest.mark.parametrize("adapter", SHIPPED, ids=lambda a: a.name)
def test_the_pinned_releases_have_the_documented_defaults(adapter: Any) -> None:
    for impl in adapter.implementations():
        entry = check_defaults(adapter, impl)
        unread = [p["parameter"] for p in entry["parameters"] if p["installed"] is None]
        assert not unread, f"{impl.name}: the signature of {entry['api']} cannot be read"
        assert not disagreements(entry), f"{impl.name}: {disagreements(entry)}"


def test_a_changed_or_missing_default_is_a_disagreement() -> None:
    adapter = DefaultsAdapter()
    entry = check_defaults(adapter, adapter.implementations()[0])
    got = {p["parameter"]: (p["installed"], p["agrees"]) for p in entry["parameters"]}
    assert got == {
        "axis": ("-1", True),
        "reduction": ("'sum'", False),
        "ignore_index": (str(ABSENT), False),
    }
    assert [p["concept"] for p in disagreements(entry)] == ["reduction", "ignore_index"]


def test_every_parameter_name_means_one_concept() -> None:
    names = [n for names in CONCEPTS.values() for n in names]
    assert len(names) == len(set(names))
    assert concept("dim") == "axis" and concept("noop_with_empty_axes") == "noop_with_empty_axes"


def _record(installed: Any) -> dict[str, Any]:
    adapter = DefaultsAdapter(installed)
    profile = dataclasses.replace(PROFILES["quick"], drawn=2)
    return run_cell(
        adapter, adapter.implementations()[0], "float32", "cpu", "eager", profile, 0, []
    )


def _mean_loss(x: Any, labels: Any, *, axis: int = -1, reduction: str = "mean") -> Any:
    return x


def test_a_release_that_changes_a_default_is_a_regression_once_per_api() -> None:
    old, new = _record(_mean_loss), _record(_loss)
    other = copy.deepcopy(new) | {"mode": "compiled"}
    changes = diff([old, copy.deepcopy(old) | {"mode": "compiled"}], [new, other]).changes
    found = [c for c in changes if c.category == "defaults"]
    assert [c.message for c in found] == ["default reduction='mean' -> reduction='sum'"]
    assert found[0].regression
    assert not [c for c in diff([old], [copy.deepcopy(old)]).changes if c.category == "defaults"]
    gone = _record(lambda x, labels, *, reduction="sum": x)  # no axis parameter
    appeared = [c for c in diff([gone], [new]).changes if "axis" in c.message]
    assert [(c.category, c.regression) for c in appeared] == [("note", False)]
    removed = [c for c in diff([new], [gone]).changes if "axis" in c.message]
    assert [(c.category, c.message) for c in removed] == [
        ("defaults", "default axis=-1 -> axis=absent")
    ]


def test_the_report_tabulates_the_defaults_by_concept(tmp_path: Any) -> None:
    path = tmp_path / "r.jsonl"
    with ResultsWriter(path) as w:
        w.write(_record(_loss))
    columns, rows = defaults_table(c.record for c in load([path]).cells)
    assert columns == ["axis", "reduction", "ignore_index"]
    (row,) = rows
    assert row.adapters == ["defaults"]
    assert [d.text for d in row.by_concept["reduction"]] == ["reduction='mean'"]
    assert [d.installed for d in row.disagreements] == ["'sum'", "absent"]


def test_the_docs_table_is_the_generated_one() -> None:
    """docs/defaults.md holds `conformance list --defaults` of the pinned releases."""
    missing = sorted({a.framework for a in all_adapters()} - {a.framework for a in SHIPPED})
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    from conformance.cli import defaults_markdown

    text = (Path(__file__).parents[1] / "docs" / "defaults.md").read_text(encoding="utf-8")
    committed = text.split("<!-- defaults-table -->\n")[1].split("<!-- /defaults-table -->")[0]
    assert committed == defaults_markdown(), "regenerate: conformance list --defaults"


def test_a_signature_that_cannot_be_read_leaves_the_check_unknown() -> None:
    class Unreadable(DefaultsAdapter):
        def installed_defaults(self, impl: Implementation) -> dict[str, str] | None:
            raise RuntimeError("an older release laid its modules out otherwise")

    adapter = Unreadable()
    entry = check_defaults(adapter, adapter.implementations()[0])
    assert {(p["installed"], p["agrees"]) for p in entry["parameters"]} == {(None, None)}
    assert not disagreements(entry)
