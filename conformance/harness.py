"""Runs cells: draws inputs, calls the adapter, asks the reference, judges, records.

A cell is implementation × dtype × device × mode. The harness knows no framework: it
talks to `conformance_adapters.base.Adapter` and turns what comes back into one record per cell
(`conformance.results`). Inputs are the named corpus (`cases`) plus Hypothesis draws
(`strategies`) that depend only on the seed and the profile, never on a framework's
answers, so two framework versions are compared on identical inputs; the targeted
phase (`hypothesis.target` on the budget ratio) then climbs toward each cell's worst.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings, target
from hypothesis import seed as hypothesis_seed

from conformance import batching, cache, cases, coverage, known, metamorphic, strategies
from conformance.dtypes import as_dtype
from conformance.judge import (
    REFERENCE_SECONDS,
    Finding,
    Judgement,
    Verdict,
    judge,
    worst,
)
from conformance.misuse import run_misuse
from conformance.ops import CATALOG, LabelKind, Op, Option, Reduction
from conformance.record import CellResult, Input, cell_record
from conformance_adapters.base import Adapter
from conformance_adapters.interface import Axes, Call, Implementation, UnsupportedCall


@dataclass(frozen=True)
class Profile:
    """How hard a run looks."""

    name: str
    drawn: int
    """Deterministic Hypothesis draws per cell."""
    targeted: int
    """Targeted-search examples per cell (hypothesis.target on the budget ratio)."""
    menu: strategies.Menu
    """The ranks and sizes draws take. Every profile draws every option an implementation
    declares; the menus only keep compiled cells to few programs."""
    gradients_once: bool = False
    """Judge gradients in one mode per implementation and dtype (the adapter's
    `gradient_mode`) instead of in every mode. A backward pass compiles per shape (about a
    second under XLA), so the quick profile takes each gradient once; ci and thorough judge
    them in every mode."""
    misuse_every_dtype: bool = True
    """Run the misuse scenarios in every dtype, or only in `misuse_dtype(impl)`: an API's
    reaction to a misuse is a property of the API, and each scenario is another shape."""


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick",
        drawn=8,
        targeted=0,
        menu=strategies.Menu(
            max_rank=4,
            min_rank=1,
            class_counts=(3, 1000),
            batch_sizes=(1, 2, 4, 1, 2, 4, 0),
            label_smoothings=(0.1,),
        ),
        gradients_once=True,
        misuse_every_dtype=False,
    ),
    "ci": Profile(
        "ci",
        drawn=200,
        targeted=40,
        menu=strategies.Menu(max_rank=4, class_counts=(1, 2, 3, 7, 64, 1000, 32768)),
    ),
    "thorough": Profile("thorough", drawn=2000, targeted=400, menu=strategies.Menu()),
}


def declared(impl: Implementation, profile: Profile) -> frozenset[str]:
    """The input features `impl` declares that `profile`'s draws can make."""
    return _wanted(impl.op, surface(impl), profile.menu)


def _wanted(op: Op, drawn_surface: strategies.Surface, menu: strategies.Menu) -> frozenset[str]:
    return coverage.declared(
        op,
        drawn_surface.options,
        drawn_surface.axes,
        drawn_surface.reductions,
        range(menu.min_rank, menu.max_rank + 1),
        0 in menu.batch_sizes and menu.max_rank >= 2,
    )


def surface(impl: Implementation) -> strategies.Surface:
    """What the draws for `impl` cover: every option, axis form and reduction it declares."""
    return strategies.Surface(impl.options, impl.axes, impl.reductions)


def options_for(impl: Implementation, options: dict[str, Any]) -> dict[str, Any]:
    """The catalog options of an input, adjusted to what `impl` can express."""
    opts = dict(options)
    spec = CATALOG[impl.op]
    if spec.labels is LabelKind.BINARY:
        opts["axis"] = None if impl.axes is Axes.ELEMENTWISE else opts.get("axis", -1)
    if (spec.reduces_axis and spec.labels is not LabelKind.NONE) or spec.labels is LabelKind.BINARY:
        reduction = Reduction(opts.get("reduction", Reduction.NONE))
        if reduction not in impl.reductions:
            reduction = impl.reductions[0]
        opts["reduction"] = reduction
    return {k: v for k, v in opts.items() if Option(k) in impl.options or k == "axis"}


def corpus_inputs(impl: Implementation, dtype: str) -> list[Input]:
    """The named cases of the implementation's op that apply to `dtype`."""
    out = []
    dt = as_dtype(dtype)
    for case in cases.cases_for(impl.op):
        if dtype not in case.dtypes:
            continue
        with np.errstate(over="ignore"):
            x = case.x.astype(dt)
        labels = case.labels
        if labels is not None and CATALOG[impl.op].labels is not LabelKind.INTEGER:
            labels = labels.astype(dt)
        out.append(
            Input(case.id, x, labels, options_for(impl, case.options), case.invalid, case.why)
        )
    return out


def drawn_inputs(impl: Implementation, dtype: str, profile: Profile, seed: int) -> list[Input]:
    """`profile.drawn` Hypothesis draws, a function of (seed, op, dtype, options) only."""
    found = _draw(impl.op, dtype, surface(impl), profile, seed)
    return [
        Input(f"drawn-{i}", e.x, e.labels, options_for(impl, e.options), e.invalid)
        for i, e in enumerate(found)
    ]


@functools.lru_cache(maxsize=64)
def _draw(
    op: Op,
    dtype: str,
    drawn_surface: strategies.Surface,
    profile: Profile,
    seed: int,
) -> tuple[strategies.Example, ...]:
    """The draws themselves, cached in memory (every mode and device of a cell family
    shares them) and on disk (every worker, every framework, every later run)."""
    key = cache.draws_key(op.value, dtype, drawn_surface, profile, seed)
    stored = cache.load_examples(key)
    if stored is not None:
        return stored
    strategy = strategies.examples(op, dtype, drawn_surface, profile.menu)
    wanted = dict.fromkeys(_wanted(op, drawn_surface, profile.menu), COVERAGE_MIN)
    found: list[strategies.Example] = []
    pool: list[tuple[strategies.Example, frozenset[str]]] = []
    available: dict[str, int] = dict.fromkeys(wanted, 0)
    seen: set[str] = set()

    @hypothesis_seed(seed)
    @settings(
        max_examples=max(profile.drawn * 16, COVERAGE_DRAWS),
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: strategies.Example) -> None:
        if len(found) >= profile.drawn and all(available[f] >= n for f, n in wanted.items()):
            raise _Covered  # raised before this example is looked at: Hypothesis replays it
        digest = inputs_digest([Input("", example.x, example.labels, example.options)])
        if digest in seen:  # Hypothesis repeats itself; a repeat shows nothing new
            return
        seen.add(digest)
        shows = coverage.features(op, example)
        if len(found) < profile.drawn:
            found.append(example)
            for feature in shows & wanted.keys():
                wanted[feature] -= 1
                if not wanted[feature]:
                    del wanted[feature]
                    del available[feature]
            return
        useful = shows & wanted.keys()
        if useful:
            pool.append((example, frozenset(useful)))
            for feature in useful:
                available[feature] += 1

    with (
        strategies.without_local_constants(),
        contextlib.suppress(_Covered),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # Hypothesis' repr of the example that stopped it
        collect()
    found += _fewest_covering(pool, wanted)
    drawn = tuple(found)
    cache.store_examples(key, drawn)
    return drawn


def _fewest_covering(
    pool: list[tuple[strategies.Example, frozenset[str]]], wanted: dict[str, int]
) -> list[strategies.Example]:
    """Greedy set multicover: repeatedly the candidate that shows the most features still
    wanted (the earliest on ties), until each is shown its count or nothing helps. Every
    chosen example is another call (under compilation, another program), so the fewest
    examples that show everything keep a compiled cell cheap; greedy is within a factor
    ln(features) of the fewest."""
    wanted = dict(wanted)
    chosen: list[strategies.Example] = []
    remaining = list(pool)
    while wanted and remaining:
        scores = [len(useful & wanted.keys()) for _, useful in remaining]
        best = max(range(len(remaining)), key=scores.__getitem__)
        if not scores[best]:
            break
        example, useful = remaining.pop(best)
        chosen.append(example)
        for feature in useful & wanted.keys():
            wanted[feature] -= 1
            if not wanted[feature]:
                del wanted[feature]
    return chosen


COVERAGE_DRAWS = 1024
"""Coverage-guided drawing: past `profile.drawn` examples, draws go on (up to this many,
or 16 times `drawn`) into a pool of candidates until the pool shows every declared feature
`COVERAGE_MIN` times more than the first draws did; the fewest candidates that do are kept
(`_fewest_covering`), so that every cell judges every option value and input class its
implementation declares, whatever the profile's size (tests/test_coverage.py holds every
implementation to it)."""
COVERAGE_MIN = 3
"""Examples per declared feature: one can be a degenerate instance (all weights zero, a
batch whose every label is the same class) where a wrong implementation agrees."""


class _Covered(Exception):
    """Every declared feature has been drawn: stop drawing."""


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


def inputs_digest(items: list[Input]) -> str:
    """A digest of a cell's inputs (corpus and draws: exact bytes, labels, options), so
    that `conformance diff` can show two runs were given identical inputs."""
    h = hashlib.sha256()
    for item in items:
        h.update(item.case.encode() + b"\0" + str(item.invalid).encode())
        for a in (item.x, item.labels, *(item.options[k] for k in sorted(item.options))):
            if isinstance(a, np.ndarray):
                h.update(f"{a.dtype.name}{a.shape}".encode() + np.ascontiguousarray(a).tobytes())
            else:
                h.update(repr(a).encode())
        h.update(repr(sorted(item.options)).encode())
    return h.hexdigest()[:16]


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


__all__ = ["PROFILES", "CellResult", "Input", "Profile", "Verdict", "run_cell", "worst"]
