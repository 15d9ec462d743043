"""Coverage: what an implementation declares is drawn, in every profile.

An option the catalog declares but no draw sets is a silent hole: nothing it breaks is
ever caught. These tests fail when any implementation of any adapter (installed or not:
declarations import no framework) declares a feature a profile's draws never make.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from harness_adapters import ExactAdapter

from conformance import coverage, drawing, harness
from conformance.inputs import Input
from conformance.ops import Op, Reduction
from conformance_adapters.registry import BUILTIN, get_adapter

THOROUGH_DRAWS = 200
"""The thorough profile's menu with fewer draws (coverage-guided drawing tops them up)."""


def _profiles() -> list[drawing.Profile]:
    out = []
    for profile in drawing.PROFILES.values():
        if profile.drawn > THOROUGH_DRAWS:
            profile = dataclasses.replace(profile, drawn=THOROUGH_DRAWS)
        out.append(profile)
    return out


def _declarations() -> list[tuple[str, object]]:
    """(adapter name, implementation) of every adapter's distinct declaration."""
    adapters = [("exact", ExactAdapter())] + [(name, get_adapter(name)) for name in BUILTIN]
    seen: dict[tuple, tuple[str, object]] = {}
    for name, adapter in adapters:
        try:
            impls = adapter.implementations()
        except Exception as exc:  # pragma: no cover - a declaration must not need its framework
            pytest.fail(f"{name}: implementations() failed: {exc}")
        for impl in impls:
            key = (impl.op, drawing.surface(impl), impl.dtypes[:1])
            seen.setdefault(key, (f"{name}:{impl.name}", impl))
    return list(seen.values())


DECLARATIONS = _declarations()


@pytest.mark.parametrize("profile", _profiles(), ids=lambda p: p.name)
@pytest.mark.parametrize("named", DECLARATIONS, ids=lambda n: n[0])
def test_every_declared_feature_is_drawn(named, profile, monkeypatch) -> None:
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", "off")
    _, impl = named
    dtype = "float32" if "float32" in impl.dtypes else impl.dtypes[0]
    drawn = drawing.drawn_inputs(impl, dtype, profile, seed=0)
    shown = set().union(*(coverage.features(impl.op, item) for item in drawn))
    missing = drawing.declared(impl, profile) - shown
    assert not missing, f"declared but never drawn in {profile.name}: {sorted(missing)}"
    assert len(drawn) >= profile.drawn


def test_declarations_span_the_options_table() -> None:
    """Some implementation declares each catalog option with more than its default, so the
    test above holds every option to being drawn."""
    from conformance.ops import Option

    declared = set().union(*(impl.options for _, impl in DECLARATIONS))
    assert declared == set(Option)


def test_features_name_axes_masks_weights_and_reductions() -> None:
    x = np.zeros((3, 4, 1), np.float32)
    mask = np.ones((3, 4, 1), bool)
    mask[0] = False  # a fully masked row
    mask[1, 0] = False  # a partly masked row
    x[1, 0] = np.inf  # behind the mask
    item = Input("a", x, None, {"axis": 1, "where": mask})
    shown = coverage.features(Op.SOFTMAX, item)
    assert {
        "rank:3",
        "axis:non-last",
        "axis:followed-by-size-1",
        "where:partly-masked",
        "where:fully-masked-row",
        "where:hidden-nonfinite",
        "nonfinite",
    } <= shown
    assert "where:broadcast" not in shown
    labels = np.array([-100, -100, -100])
    weighted = Input(
        "b",
        np.zeros((3, 5), np.float32),
        labels,
        {
            "axis": -1,
            "ignore_index": -100,
            "class_weights": np.array([0, 1, 1, 1, 1], np.float32),
            "reduction": Reduction.WEIGHTED_MEAN,
        },
    )
    shown = coverage.features(Op.SPARSE_SOFTMAX_CROSS_ENTROPY, weighted)
    assert {
        "axis:last",
        "ignore_index:all",
        "class_weights:zero",
        "reduction:weighted_mean",
    } <= shown
    assert "class_weights:set" not in shown  # every example ignored: no weight is used
    assert coverage.features(
        Op.LOGSUMEXP, Input("c", np.zeros((0, 2)), None, {"axis": (0, 1)})
    ) >= {
        "empty",
        "axis:tuple",
    }


def test_a_cell_record_names_what_it_judged_and_what_it_never_drew() -> None:
    from conformance import known

    adapter = ExactAdapter()
    impl = next(i for i in adapter.implementations() if i.op is Op.SPARSE_SOFTMAX_CROSS_ENTROPY)
    record = harness.run_cell(
        adapter, impl, "float32", "cpu", "eager", drawing.PROFILES["quick"], 0, known.load()
    )
    cov = record["coverage"]
    assert cov["not_drawn"] == []
    assert cov["exercised"]["reduction:weighted_mean"][0] > 0
    assert cov["exercised"]["axis:non-last"][1] > 0  # judged with a gradient too
    summary = coverage.summary(impl.op, [], drawing.declared(impl, drawing.PROFILES["quick"]))
    assert "ignore_index:all" in summary["not_drawn"]
