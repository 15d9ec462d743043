"""Self-consistency: answers that change with the mode (or device) are found, named and
classified; an implementation that answers alike everywhere raises nothing."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from harness_adapters import ExactAdapter, _silent_labels

from conformance import known
from conformance.consistency import disagreements
from conformance.drawing import PROFILES
from conformance.harness import run_cell
from conformance.ops import Op

QUICK = PROFILES["quick"]
ROOT = Path(__file__).resolve().parent.parent


class CompiledZeroWhereUndefined(ExactAdapter):
    """Compiled, 0 where eager (and the reference) have NaN: the inputs where mathematics
    gives no value (two +inf, a NaN input), so each cell passes on its own."""

    name = "compiled-zero-where-undefined"

    def forward(self, impl, x, labels, options, mode):
        out = super().forward(impl, x, labels, options, mode)
        if mode == "compiled":
            out = np.where(np.isnan(out.astype(np.float64)), np.asarray(0, out.dtype), out)
        return out


class CompiledSilentLabels(ExactAdapter):
    """Eager raises on out-of-range labels; compiled clips them silently."""

    name = "compiled-silent-labels"

    def forward(self, impl, x, labels, options, mode):
        if mode == "compiled" and impl.op is Op.SPARSE_SOFTMAX_CROSS_ENTROPY:
            return _silent_labels(x, labels, **options)
        return super().forward(impl, x, labels, options, mode)


def _records(adapter, op: Op, dtype: str = "float32") -> list[dict]:
    impl = next(i for i in adapter.implementations() if i.op is op)
    return [run_cell(adapter, impl, dtype, "cpu", m, QUICK, 0, []) for m in ("eager", "compiled")]


def test_an_implementation_that_answers_alike_in_every_mode_has_no_disagreement() -> None:
    records = _records(ExactAdapter(), Op.SOFTMAX) + _records(
        ExactAdapter(), Op.SPARSE_SOFTMAX_CROSS_ENTROPY
    )
    assert disagreements(records, []) == []


def test_a_special_value_that_depends_on_the_mode_is_found() -> None:
    records = _records(CompiledZeroWhereUndefined(), Op.SOFTMAX)
    assert [r["verdict"] for r in records] == ["pass", "pass"]  # alone, each cell is fine
    found = disagreements(records, [])
    assert "two-plus-inf" in {d.case for d in found}, found
    d = next(d for d in found if d.case == "two-plus-inf")
    assert (d.axis, d.fixed, d.what, d.kind) == ("mode", "cpu", "special value", "mode-dependent")
    assert "nan" in d.answers["eager"] and "nan" not in d.answers["compiled"]
    assert d.known is None


def test_a_run_with_a_mode_dependent_answer_exits_1(tmp_path) -> None:
    """Every cell passes; the disagreement between them alone fails the run."""
    out = tmp_path / "r.jsonl"
    args = ["run", "--adapter", f"{__name__}:CompiledZeroWhereUndefined", "--dtype", "float32"]
    proc = subprocess.run(
        [sys.executable, "-m", "conformance.cli", *args, "--out", str(out), "--jobs", "1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])},
        capture_output=True,
        text=True,
        timeout=600,
    )
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["verdict"] for r in records} == {"pass"}
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "depend on the mode, device or spelling" in proc.stdout + proc.stderr


def test_an_invalid_input_reaction_that_depends_on_the_mode_is_found() -> None:
    found = disagreements(_records(CompiledSilentLabels(), Op.SPARSE_SOFTMAX_CROSS_ENTROPY), [])
    reactions = {d.case: d.answers for d in found if d.what == "invalid-input reaction"}
    assert reactions, found
    assert all(a["eager"] == "raises" for a in reactions.values())
    assert all(a["compiled"].startswith("silent-") for a in reactions.values())


def test_a_known_deviation_classifies_a_disagreement(tmp_path) -> None:
    path = tmp_path / "known.toml"
    path.write_text(
        '[[deviation]]\nid = "xla-nan"\nreason = "documented"\nlink = "https://example.org"\n'
        'adapter = "compiled-zero-where-undefined"\nkind = "mode-dependent"\n'
        'mode = "compiled,eager"\n'
    )
    found = disagreements(_records(CompiledZeroWhereUndefined(), Op.SOFTMAX), known.load(path))
    assert found and all(d.known == "xla-nan" for d in found)


def test_devices_are_compared_in_each_mode() -> None:
    """CPU against CUDA (records as a GPU run writes them); crashed cells say nothing."""
    cpu = _records(ExactAdapter(), Op.SOFTMAX)[0]
    cuda = copy.deepcopy(cpu)
    cuda["device"] = "cuda"
    cuda["special"]["plus-inf"] = "nan nan"
    found = disagreements([cpu, cuda], [])
    assert [(d.axis, d.fixed, d.case) for d in found] == [("device", "eager", "plus-inf")]
    assert found[0].answers == {"cpu": cpu["special"]["plus-inf"], "cuda": "nan nan"}
    crashed = {**cuda, "verdict": "crashed"}
    assert disagreements([cpu, crashed], []) == []


class TwoSpellings(ExactAdapter):
    """Two spellings of softmax: the exact one, and one that gives 0 where it gives NaN
    (in every mode, so no mode disagrees: only the spellings do)."""

    name = "two-spellings"

    def _implementations(self):
        impls = [i for i in super()._implementations() if i.op is Op.SOFTMAX]
        return [*impls, dataclasses.replace(impls[0], name="exact.softmax-nan-as-zero")]

    def forward(self, impl, x, labels, options, mode):
        out = super().forward(impl, x, labels, options, mode)
        if impl.name.endswith("nan-as-zero"):
            out = np.where(np.isnan(out.astype(np.float64)), np.asarray(0, out.dtype), out)
        return out


def test_spellings_of_one_op_that_answer_differently_are_found() -> None:
    adapter = TwoSpellings()
    records = [
        run_cell(adapter, impl, "float32", "cpu", mode, QUICK, 0, [])
        for impl in adapter.implementations()
        for mode in ("eager", "compiled")
    ]
    found = disagreements(records, [])
    assert found and {d.axis for d in found} == {"spelling"}, found
    d = next(d for d in found if d.case == "two-plus-inf" and d.fixed == "cpu, eager")
    assert (d.implementation, d.kind) == ("softmax", "spelling-dependent")
    assert set(d.answers) == {"exact.softmax", "exact.softmax-nan-as-zero"}
    assert d.coordinates()["implementation"] == "exact.softmax,exact.softmax-nan-as-zero"
    assert {(d.coordinates()["device"], d.coordinates()["mode"]) for d in found} == {
        ("cpu", "eager"),
        ("cpu", "compiled"),
    }
    assert disagreements(records[:2], []) == []  # one spelling alone agrees with itself


def test_the_shipped_entries_classify_optax_spellings_as_documented() -> None:
    """optax documents that only its safe spelling takes 0 log 0 = 0 at a -inf logit."""
    coordinates = {
        "adapter": "jax",
        "implementation": "optax.safe_softmax_cross_entropy,optax.softmax_cross_entropy",
        "dtype": "float32",
        "device": "cpu",
        "mode": "eager",
        "kind": "spelling-dependent",
        "case": "partly-masked",
    }
    assert known.classify(known.load(), coordinates) == "optax-safe-spelling-at-minus-inf"
    assert known.classify(known.load(), {**coordinates, "case": "plus-inf"}) is None
