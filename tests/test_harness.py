"""The harness detects what it should: the exact adapter passes, broken ones are flagged."""

from __future__ import annotations

import os
import traceback

import numpy as np
import pytest
from harness_adapters import (
    ExactAdapter,
    ForgettingAdapter,
    MaskShapeChecked,
    RememberingAdapter,
    broken_adapters,
)
from option_confined import OPTION_CONFINED

from conformance import known
from conformance.drawing import PROFILES, drawn_inputs
from conformance.dtypes import FLOAT_DTYPES
from conformance.harness import run_cell
from conformance.ops import Op

QUICK = PROFILES["quick"]
EXACT = ExactAdapter()


def _cell(adapter, op: Op, dtype: str = "float32", mode: str = "eager") -> dict:
    impl = next(i for i in adapter.implementations() if i.op is op)
    return run_cell(adapter, impl, dtype, "cpu", mode, QUICK, 0, known.load())


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("op", list(Op), ids=[op.value for op in Op])
def test_the_exact_adapter_raises_no_false_alarm(op: Op, dtype: str) -> None:
    record = _cell(EXACT, op, dtype)
    assert record["findings"] == [], record["findings"]
    assert record["verdict"] == "pass"
    assert record["examples"] > 0
    assert record["max_ulp"] == 0  # correctly rounded everywhere


BROKEN = {**broken_adapters(), **OPTION_CONFINED}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_adapters_are_flagged_with_the_right_verdict(name: str) -> None:
    adapter, op, verdict, kind = BROKEN[name]
    mode = "compiled" if name == "compiled-only-error" else "eager"
    dtype = "float16" if name == "float32-output" else "float32"
    record = _cell(adapter, op, dtype, mode)
    kinds = {f["kind"] for f in record["findings"]}
    assert kinds & set(kind.split("|")), record["findings"]  # 'a|b': either kind
    assert verdict in {f["verdict"] for f in record["findings"]}
    assert record["unexpected"] is not None


def test_a_mode_only_fault_spares_the_other_mode() -> None:
    adapter, op, _, _ = BROKEN["compiled-only-error"]
    assert _cell(adapter, op, mode="eager")["verdict"] == "pass"


def test_a_size_only_fault_is_caught_by_the_large_vocabulary_case() -> None:
    adapter, op, _, _ = BROKEN["large-rows-only"]
    cases = {f["case"] for f in _cell(adapter, op)["findings"]}
    assert "large-vocabulary" in cases or any(c.startswith("drawn") for c in cases)


def test_drawn_inputs_depend_only_on_the_seed() -> None:
    impl = next(i for i in EXACT.implementations() if i.op is Op.SPARSE_SOFTMAX_CROSS_ENTROPY)
    first = drawn_inputs(impl, "bfloat16", QUICK, seed=3)
    again = drawn_inputs(impl, "bfloat16", QUICK, seed=3)
    other = drawn_inputs(impl, "bfloat16", QUICK, seed=4)
    assert len(first) >= QUICK.drawn  # coverage-guided drawing adds to them
    assert [a.x.tobytes() for a in first] == [b.x.tobytes() for b in again]
    assert [a.labels.tobytes() for a in first] == [b.labels.tobytes() for b in again]
    assert [a.x.tobytes() for a in first] != [b.x.tobytes() for b in other]


def test_known_deviations_are_reported_apart(tmp_path) -> None:
    adapter, op, _, _ = BROKEN["no-max-shift"]
    path = tmp_path / "known.toml"
    path.write_text(
        '[[deviation]]\nid = "no-shift"\nreason = "documented"\n'
        'link = "https://example.org"\nadapter = "no-max-shift"\n'
        'kind = "nan-where-defined"\n'
    )
    impl = next(i for i in adapter.implementations() if i.op is op)
    record = run_cell(adapter, impl, "float32", "cpu", "eager", QUICK, 0, known.load(path))
    marked = [f for f in record["findings"] if f["kind"] == "nan-where-defined"]
    assert marked and all(f["known"] == "no-shift" for f in marked)


def test_misuse_reactions_are_recorded() -> None:
    record = _cell(EXACT, Op.SPARSE_SOFTMAX_CROSS_ENTROPY)
    misuse = record["misuse"]
    assert misuse["probabilities-as-logits"]["reaction"] == "silent"
    assert misuse["probabilities-as-logits"]["relative_error"] > 0.1
    assert misuse["one-hot-into-sparse"]["reaction"] in {"raises", "silent", "warns"}


def _misuse(adapter, op: Op, mode: str = "eager") -> dict:
    return _cell(adapter, op, "float32", mode)["misuse"]


@pytest.mark.parametrize("op", [Op.SOFTMAX_CROSS_ENTROPY, Op.SIGMOID_CROSS_ENTROPY])
def test_an_activation_that_remembers_its_logits_is_told_apart(op: Op) -> None:
    """activation-output-as-logits: a loss that uses the remembered logits answers what
    the user meant (and warns); one that takes the probabilities computes a double softmax."""
    remembered = _misuse(RememberingAdapter(), op)["activation-output-as-logits"]
    assert remembered["reaction"] == "warns"
    assert "from_logits=True" in remembered["message"]
    assert remembered["relative_error"] < 1e-6
    forgotten = _misuse(ForgettingAdapter(), op)["activation-output-as-logits"]
    assert forgotten["reaction"] == "silent"
    assert forgotten["relative_error"] > 0.1
    assert "activation-output-as-logits" not in _misuse(EXACT, op)  # no activation layer


@pytest.mark.parametrize("op", [Op.SOFTMAX, Op.SPARSE_SOFTMAX_CROSS_ENTROPY])
def test_a_per_example_mask_given_as_a_per_class_mask(op: Op) -> None:
    """Broadcast over the class axis, the mask silently masks classes instead of examples;
    an API that checks the mask's shape raises."""
    broadcast = _misuse(EXACT, op)["per-example-mask-as-per-class"]
    assert broadcast["reaction"] == "silent"
    assert broadcast["relative_error"] > 0.1
    checked = _misuse(MaskShapeChecked(), op)["per-example-mask-as-per-class"]
    assert checked["reaction"] == "raises"
    assert "where has shape (5,)" in checked["message"]


def test_a_per_example_mask_matching_the_examples_is_no_misuse() -> None:
    """The yardstick: the loss of the kept examples is what the user meant, so an answer
    that masks examples (not classes) is 0 away from it."""
    from conformance.misuse import _KEPT, _relative_error

    meant = np.array([1.0, 2.0, 4.0])
    value = np.array([1.0, 2.0, 0.0, 4.0, 0.0])
    assert _relative_error(value, meant, _KEPT) == 0.0
    assert _relative_error(np.asarray(7.0 / 3), meant, _KEPT) == 0.0


def test_worst_input_is_stored_exactly() -> None:
    from conformance.results import decode_array

    adapter, op, _, _ = BROKEN["float16-intermediates"]
    record = _cell(adapter, op)
    worst = record["worst"]
    x = decode_array(worst["x"])
    assert x.dtype == np.float32
    assert "np.frombuffer" in worst["snippet"]


def test_a_row_poisoned_by_its_batch_is_found_and_attributed() -> None:
    adapter, op, _, _ = BROKEN["nan-poisons-batch"]
    findings = _cell(adapter, op)["findings"]
    assert any(f["kind"] == "batch-dependent" for f in findings), findings
    # the NaN case itself is still blamed on its own second row
    assert any(f["kind"] == "nan-where-defined" and f["case"] == "nan" for f in findings)


def _exact_thorough_cells(cell: tuple[str, str]) -> tuple[tuple[str, str], dict, int]:
    """Both modes of one implementation and dtype of the exact adapter, thorough profile (in a
    worker process: the second mode reuses the draws and the reference answers)."""
    name, dtype = cell
    impl = next(i for i in EXACT.implementations() if i.name == name)
    findings, examples, deviations = {}, 0, known.load()
    for mode in ("eager", "compiled"):
        try:
            record = run_cell(EXACT, impl, dtype, "cpu", mode, PROFILES["thorough"], 1, deviations)
        except Exception:  # the suite itself failed: a finding against us, and the sweep goes on
            findings[mode] = traceback.format_exc()
            continue
        examples += record["examples"]
        if record["findings"]:
            findings[mode] = record["findings"]
    return cell, findings, examples


@pytest.mark.slow
def test_no_false_alarm_over_a_hundred_thousand_examples() -> None:
    """The thorough profile (deterministic draws and targeted search) on the exact adapter:
    every op, every dtype, eager and compiled; run by `nox -s sweep`, one process per core."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    cells = [(impl.name, dtype) for impl in EXACT.implementations() for dtype in FLOAT_DTYPES]
    examples = 0
    false_alarms = {}
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        done = as_completed(pool.submit(_exact_thorough_cells, cell) for cell in cells)
        for cell, findings, n in (future.result() for future in done):
            examples += n
            print(f"{cell[0]} {cell[1]}: {n} examples, findings in {sorted(findings)}", flush=True)
            if findings:
                false_alarms[cell] = findings
                print(findings, flush=True)
    print(f"{2 * len(cells)} cells, {examples} examples, {len(false_alarms)} with false alarms")
    assert false_alarms == {}
    assert examples >= 100_000


def test_a_known_deviation_that_matches_nothing_is_reported_stale(tmp_path) -> None:
    from conformance.commands import stale_deviations

    path = tmp_path / "known.toml"
    path.write_text(
        '[[deviation]]\nid = "gone"\nreason = "fixed upstream"\n'
        'link = "https://example.org"\nadapter = "exact"\n'
    )
    record = _cell(EXACT, Op.SOFTMAX)
    assert any("'gone'" in line for line in stale_deviations([record], str(path)))
    assert stale_deviations([{**record, "adapter": "other"}], str(path)) == []


class _CountingAdapter(ExactAdapter):
    """The exact adapter, recording the shape of every call that could be stacked (inputs
    with array options, such as the misuse scenarios' masks, are called as they are)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[tuple[int, ...], bool]] = []
        self.options: list[dict] = []

    def run(self, impl, call):
        if call.options.get("where") is None:
            self.calls.append((call.x.shape, call.cotangent is not None))
            self.options.append(call.options)
        return super().run(impl, call)


def test_inputs_equal_in_meaning_batch_together_and_invalid_ones_apart() -> None:
    """A compiled cell pays a compilation per distinct call: inputs whose options mean the
    same ({} and {"axis": -1}) share a call, invalid rows only join invalid rows (a call
    that raises is re-run input by input), and stacks are padded to power-of-two rows."""
    from conformance.batching import batch_key, stack
    from conformance.inputs import Input

    impl = next(i for i in EXACT.implementations() if i.op is Op.SPARSE_SOFTMAX_CROSS_ENTROPY)
    x, y = np.zeros((3, 4), np.float32), np.array([0, 1, 2])
    plain = Input("a", x, y, {})
    spelled = Input("b", x, y, {"axis": -1, "label_smoothing": 0.0})
    invalid = Input("c", x, np.array([0, 1, 7]), {}, invalid=True)
    assert batch_key(impl, plain) == batch_key(impl, spelled) != batch_key(impl, invalid)
    stacked, labels = stack([plain, spelled])
    assert stacked.shape == (8, 4) and labels is not None and labels.shape == (8,)
    adapter = _CountingAdapter()
    impl = next(i for i in adapter.implementations() if i.op is Op.SOFTMAX)
    record = run_cell(adapter, impl, "float32", "cpu", "compiled", QUICK, 0, known.load())
    assert record["verdict"] == "pass" and record["examples"] >= 40
    stacked = [
        shape
        for (shape, _), opts in zip(adapter.calls, adapter.options, strict=True)
        if len(shape) == 2 and opts.get("axis", -1) in (-1, 1)
    ]
    rows = [shape[0] for shape in stacked]
    assert all(r & (r - 1) == 0 for r in rows if r), rows
    assert stacked and len(adapter.calls) < record["examples"] * 0.75, adapter.calls


def test_re_runs_reuse_the_shape_of_their_batch() -> None:
    """An input re-run to attribute a finding gets only its own rows, repeated to its batch's
    row count: the same shapes as a cell without findings (no new compiled program), and
    the worst input records the call's row count for its reproducer."""
    from conformance.results import decode_array

    broken, op, _, _ = BROKEN["nan-poisons-batch"]
    shapes: dict[str, list[tuple[int, ...]]] = {"exact": [], "broken": []}

    def counting(adapter, key):
        class Counting(type(adapter)):
            def run(self, impl, call):
                shapes[key].append(call.x.shape)
                return super().run(impl, call)

        return Counting()

    _cell(counting(EXACT, "exact"), op, "float32", "compiled")
    record = _cell(counting(broken, "broken"), op, "float32", "compiled")
    assert len(shapes["broken"]) > len(shapes["exact"])  # findings were re-run
    assert set(shapes["broken"]) == set(shapes["exact"])
    worst = record["worst"]
    assert worst["call_rows"] and worst["call_rows"] > decode_array(worst["x"]).shape[0]
    assert f"np.resize(x, ({worst['call_rows']}, *x.shape[1:]))" in worst["snippet"]


def test_an_inputs_cotangent_does_not_depend_on_its_batch() -> None:
    """Gradients are judged with a cotangent drawn from the input's own bytes and the seed:
    batched, padded or alone, an input gets the same one (a re-run that drew a new one could
    make a gradient finding vanish and be called batch-dependent)."""
    from conformance.batching import cotangent, stack
    from conformance.inputs import Input

    impl = next(i for i in EXACT.implementations() if i.op is Op.SOFTMAX)
    a = Input("a", np.arange(6, dtype=np.float32).reshape(2, 3), None, {})
    b = Input("b", np.ones((3, 3), np.float32), None, {})
    x, _ = stack([a, b], 8)
    both = cotangent(impl, [a, b], x, 0, stacked=True)
    alone = cotangent(impl, [a], stack([a], 8)[0], 0, stacked=True)
    assert both.shape == x.shape and np.array_equal(both[:2], alone[:2])
    assert np.array_equal(cotangent(impl, [a], a.x, 0, stacked=False), both[:2])
    assert not np.array_equal(cotangent(impl, [a], a.x, 1, stacked=False), both[:2])
    assert np.array_equal(both[5:8], both[0:3])  # padding repeats rows as x's do


def test_the_quick_profile_judges_each_gradient_and_misuse_once() -> None:
    """Gradients in the adapter's gradient_mode only, misuse scenarios in float32 only."""
    adapter = _CountingAdapter()
    adapter.gradient_mode = "compiled"
    eager = _cell(adapter, Op.SOFTMAX, "float32", "eager")
    compiled = _cell(adapter, Op.SOFTMAX, "float32", "compiled")
    assert (eager["gradients"], compiled["gradients"]) == (False, True)
    sparse = Op.SPARSE_SOFTMAX_CROSS_ENTROPY
    assert _cell(EXACT, sparse, "float16")["misuse"] == {}
    assert _cell(EXACT, sparse, "float32")["misuse"]
    ci = PROFILES["ci"]
    impl = next(i for i in EXACT.implementations() if i.op is sparse)
    assert run_cell(EXACT, impl, "float16", "cpu", "eager", ci, 0, [])["misuse"]


CONFINED_TO = {
    "axis": ["non-last-axis-as-last", "tuple-axis-first-only"],
    "where": [
        "uniform-over-fully-masked",
        "mask-as-lowest-logit",
        "nan-gradient-behind-mask",
        "fully-masked-by-class-order",
        "fully-masked-by-sign",
    ],
    "scale": ["zero-scale-kept"],
    "class_weights": ["class-weights-ignored", "weighted-mean-by-count"],
    "ignore_index": ["ignored-counted-in-mean"],
    "label_smoothing": ["smoothing-over-the-others"],
    "reduction": ["sum-is-a-mean", "weighted-mean-by-count", "ignored-counted-in-mean"],
}
"""Which option each option-confined broken implementation breaks."""


def test_every_option_and_family_has_a_broken_implementation_the_quick_run_flags() -> None:
    """The proof of issue 14: each option, and each op family, has at least one broken
    implementation confined to it (each is flagged by the quick profile above)."""
    from conformance.ops import CATALOG, Option

    assert set(CONFINED_TO) == {o.value for o in Option}
    named = {n for names in CONFINED_TO.values() for n in names}
    assert named <= set(BROKEN)
    families = {CATALOG[op].family for _, op, _, _ in BROKEN.values()}
    assert families == {spec.family for spec in CATALOG.values()}


def test_a_record_counts_its_calls_and_programs() -> None:
    """Stacking makes fewer calls than inputs; equal calls share a program."""
    record = _cell(EXACT, Op.SOFTMAX)
    assert 0 < record["programs"] <= record["calls"] < record["examples"]
    assert record["call_s"] >= 0.0
