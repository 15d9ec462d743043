"""conformance/drawing.py: draws that depend only on their key, and the fewest that cover."""

from __future__ import annotations

from harness_adapters import ExactAdapter

from conformance import drawing
from conformance.inputs import Input, inputs_digest
from conformance.ops import Op

QUICK = drawing.PROFILES["quick"]
EXACT = ExactAdapter()


def test_draws_do_not_depend_on_the_modules_a_process_loaded(tmp_path, monkeypatch) -> None:
    """Hypothesis mixes literals of loaded local modules into its draws; an adapter's
    module must not change the inputs another worker would draw for the same seed."""
    import importlib
    import sys

    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", "off")
    draw = drawing._draw.__wrapped__  # past the in-memory cache
    impl = next(i for i in EXACT.implementations() if i.op is Op.SPARSE_SOFTMAX_CROSS_ENTROPY)
    args = (impl.op, "float32", drawing.surface(impl), QUICK, 0)
    before = inputs_digest(
        [Input(str(i), e.x, e.labels, e.options, e.invalid) for i, e in enumerate(draw(*args))]
    )
    literals = ", ".join(f"{v!r}" for v in (3.5, -2.75, 1e4, 65504.0, 7, 2, 1, 0.1, -1e30, 999))
    (tmp_path / "odd_constants.py").write_text(f"VALUES = [{literals}]\nNAME = 'odd'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("odd_constants")
    try:
        after = inputs_digest(
            [Input(str(i), e.x, e.labels, e.options, e.invalid) for i, e in enumerate(draw(*args))]
        )
    finally:
        sys.modules.pop("odd_constants", None)
    assert after == before


def test_coverage_keeps_the_fewest_candidates_that_show_every_feature() -> None:
    pool = [
        ("a", frozenset({"x"})),
        ("b", frozenset({"y"})),
        ("c", frozenset({"x", "y", "z"})),
        ("d", frozenset({"z"})),
        ("e", frozenset({"x", "z"})),
    ]
    assert drawing._fewest_covering(pool, {"x": 2, "y": 1, "z": 2}) == ["c", "e"]
    assert drawing._fewest_covering(pool, {"w": 1}) == []
    assert drawing._fewest_covering(pool, {"y": 2}) == ["b", "c"]
