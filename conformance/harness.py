"""Runs cells: draws inputs, calls the adapter, asks the reference, judges, records.

A cell is implementation × dtype × device × mode. The harness knows no framework: it
talks to `conformance_adapters.base.Adapter` and turns what comes back into one record per cell
(`conformance.results`). Inputs are the named corpus (`cases`) plus Hypothesis draws
(`strategies`) that depend only on the seed and the profile, never on a framework's
answers, so two framework versions are compared on identical inputs; the targeted
phase (`hypothesis.target` on the budget ratio) then climbs toward each cell's worst.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings, target
from hypothesis import seed as hypothesis_seed

from conformance import batching, coverage, known, metamorphic, strategies
from conformance.defaults import check_defaults
from conformance.drawing import (
    Profile,
    corpus_inputs,
    declared,
    drawn_inputs,
    options_for,
    surface,
)
from conformance.dtypes import as_dtype
from conformance.inputs import Input, inputs_digest
from conformance.judge import (
    REFERENCE_SECONDS,
    Finding,
    Judgement,
    Verdict,
    judge,
    worst,
)
from conformance.misuse import run_misuse
from conformance.record import CellResult, cell_record
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Call, Implementation, UnsupportedCall


def run_inputs(
    adapter: Adapter,
    impl: Implementation,
    items: list[Input],
    device: str,
    mode: str,
    seed: int,
    result: CellResult,
) -> None:
    """Run and judge `items`, stacking row-wise inputs into as few calls as possible."""
    groups: dict[Any, list[Input]] = {}
    singles: list[list[Input]] = []
    for item in items:
        key = batching.batch_key(impl, item)
        if key is None:
            singles.append([item])
        else:
            groups.setdefault(key, []).append(item)
    limit = batching.GRADIENT_MAX_ELEMENTS if result.gradients and impl.differentiable else None
    batches = [chunk for group in groups.values() for chunk in batching.chunks(group, limit)]
    # Stacks that differ only in validity are the same program: give them one row count.
    rows: dict[Any, int] = {}
    for batch in batches:
        program = batching.batch_key(impl, batch[0])[:-1]  # type: ignore[index]
        rows[program] = max(rows.get(program, 0), batching.row_bucket(sum(len(i.x) for i in batch)))
    for batch in batches:
        count = rows[batching.batch_key(impl, batch[0])[:-1]]  # type: ignore[index]
        _run_batch(adapter, impl, batch, device, mode, seed, result, stacked=True, rows=count)
    for batch in singles:
        _run_batch(adapter, impl, batch, device, mode, seed, result)


def _run_batch(
    adapter: Adapter,
    impl: Implementation,
    batch: list[Input],
    device: str,
    mode: str,
    seed: int,
    result: CellResult,
    *,
    stacked: bool = False,
    rows: int | None = None,
) -> None:
    """One call: `batch` stacked (padded to `rows`, by default `row_bucket` rows, with
    copies of its rows) or its single input as is.

    An input re-run on its own (to attribute an error or a finding) is given `rows`, the
    row count of the call it came from: its own rows repeated make a call of a shape that
    is already compiled, instead of a new program per input."""
    options = batch[0].options
    alone = len(batch) == 1 and rows is None
    if stacked and alone and batching.row_bucket(len(batch[0].x)) == len(batch[0].x):
        stacked = False  # stacking would change nothing: the input as is
    x, labels = batching.stack(batch, rows) if stacked else (batch[0].x, batch[0].labels)
    invalid = batch[0].invalid
    cotangent = None
    if (
        result.gradients
        and not invalid
        and impl.differentiable
        and x.size <= batching.GRADIENT_MAX_ELEMENTS
    ):
        cotangent = batching.cotangent(impl, batch, x, seed, stacked)
    call = Call(x=x, labels=labels, options=options, device=device, mode=mode, cotangent=cotangent)
    try:
        outcome = adapter.run(impl, call)
    except UnsupportedCall as exc:
        result.unsupported.append(f"{batch[0].case}: {exc}")
        return
    result.calls += 1
    result.programs.add(outcome.program)
    result.call_s += outcome.seconds
    if outcome.error is not None and stacked and len(batch) > 1:
        for item in batch:  # attribute the error to the input(s) that cause it
            _run_batch(adapter, impl, [item], device, mode, seed, result, stacked=True, rows=len(x))
        return
    result.messages.update(outcome.warnings)
    if outcome.stderr.strip():
        result.messages.update(line for line in outcome.stderr.strip().splitlines()[-5:])
    error = None if outcome.error is None else f"{outcome.error.type}: {outcome.error.message}"
    if error:
        result.messages.add(error)
    slices = batching.rows_of(batch) if stacked else [None]
    # the call had only this input's rows (repeated): a reproducer can make the same call
    call_rows = len(x) if stacked and len(batch) == 1 and len(x) != len(batch[0].x) else None
    for item, rows_slice in zip(batch, slices, strict=True):
        value, grad, ct = outcome.value, outcome.grad, cotangent
        if rows_slice is not None:
            value = None if value is None else value[rows_slice]
            grad = None if grad is None else grad[rows_slice]
            ct = None if ct is None else ct[rows_slice]
        j = judge(
            impl.op,
            item.x,
            item.labels,
            options,
            value,
            grad,
            ct,
            error,
            bool(outcome.warnings),
            invalid=item.invalid,
            case=item.case,
        )
        returned = {
            "value": value,
            "grad": grad,
            "cotangent": ct,
            "output_dtype": outcome.output_dtype,
            "call_rows": call_rows,
        }
        if len(batch) > 1 and j.findings and not item.invalid:
            _attribute(adapter, impl, item, len(x), device, mode, seed, result, j)
        else:
            result.add(item, j, returned)


def _attribute(
    adapter: Adapter,
    impl: Implementation,
    item: Input,
    rows: int,
    device: str,
    mode: str,
    seed: int,
    result: CellResult,
    batched: Judgement,
) -> None:
    """Re-run an input that showed findings inside a batch of `rows` rows with only its own
    rows (repeated to the same shape: the same compiled program), so that a finding is
    attributed to the input that causes it; a finding that only the batch shows means the
    row's result depends on the other inputs' rows batched with it."""
    before = len(result.judgements)
    _run_batch(adapter, impl, [item], device, mode, seed, result, stacked=True, rows=rows)
    if len(result.judgements) == before:
        return
    alone = result.judgements[-1][1]
    if not alone.findings:
        kinds = ", ".join(sorted({f.kind for f in batched.findings}))
        alone.findings.append(
            Finding(
                Verdict.DIVERGENT,
                "batch-dependent",
                f"correct alone, but {kinds} when batched with other rows",
                item.case,
            )
        )


def targeted_search(
    adapter: Adapter,
    impl: Implementation,
    dtype: str,
    device: str,
    mode: str,
    profile: Profile,
    seed: int,
    result: CellResult,
) -> None:
    """Hypothesis' targeted phase: climb toward the largest budget ratio of this cell."""
    if profile.targeted <= 0:
        return
    strategy = strategies.examples(
        impl.op,
        dtype,
        surface(impl),
        dataclasses.replace(profile.menu, class_counts=None),
        invalid=False,
    )
    counter = [0]

    @hypothesis_seed(seed + 1)
    @settings(
        max_examples=profile.targeted,
        database=None,
        deadline=None,
        phases=[Phase.generate, Phase.target],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def climb(example: strategies.Example) -> None:
        counter[0] += 1
        item = Input(
            f"targeted-{counter[0]}",
            example.x,
            example.labels,
            options_for(impl, example.options),
            example.invalid,
        )
        before = len(result.judgements)
        _run_batch(adapter, impl, [item], device, mode, seed, result)
        if len(result.judgements) > before:
            ratio = result.judgements[-1][1].max_ratio
            target(min(ratio, 1e6) if np.isfinite(ratio) else 1e6, label="budget ratio")

    with strategies.without_local_constants():
        climb()


def gradient_mode(adapter: Adapter, impl: Implementation) -> str:
    """The mode whose cells judge gradients when a profile judges them once."""
    return adapter.gradient_mode if adapter.gradient_mode in impl.modes else impl.modes[0]


def misuse_dtype(impl: Implementation) -> str:
    """The dtype whose cells run the misuse scenarios when a profile runs them once."""
    return "float32" if "float32" in impl.dtypes else impl.dtypes[0]


def run_cell(
    adapter: Adapter,
    impl: Implementation,
    dtype: str,
    device: str,
    mode: str,
    profile: Profile,
    seed: int,
    deviations: list[known.KnownDeviation],
) -> dict[str, Any]:
    """Run one cell and return its results record."""
    started, reference_before = time.perf_counter(), REFERENCE_SECONDS[0]
    result = CellResult()
    result.gradients = not profile.gradients_once or mode == gradient_mode(adapter, impl)
    drawn = drawn_inputs(impl, dtype, profile, seed)
    items = corpus_inputs(impl, dtype) + drawn
    result.inputs_digest = inputs_digest(items)
    run_inputs(
        adapter, impl, items + metamorphic.variants(impl.op, drawn), device, mode, seed, result
    )
    metamorphic.check(impl.op, result.judgements)
    targeted_search(adapter, impl, dtype, device, mode, profile, seed, result)
    if profile.misuse_every_dtype or dtype == misuse_dtype(impl):
        opts = options_for(impl, {})
        result.misuse = run_misuse(adapter, impl, as_dtype(dtype), device, mode, opts)
    result.defaults = check_defaults(adapter, impl)
    result.reference_s = REFERENCE_SECONDS[0] - reference_before
    judged = [(item, returned["cotangent"] is not None) for item, _, returned in result.judgements]
    result.coverage = coverage.summary(impl.op, judged, declared(impl, profile))
    return cell_record(
        adapter,
        impl,
        dtype,
        device,
        mode,
        profile,
        seed,
        result,
        deviations,
        time.perf_counter() - started,
    )


__all__ = ["CellResult", "Verdict", "run_cell", "worst"]
