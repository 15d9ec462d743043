"""What a cell is given: the profiles, the named corpus and the coverage-guided draws.

The draws depend only on the seed, the profile, the op, the dtype and the surface an
implementation declares (its options, axis forms and reductions), never on a framework's
answers, so two framework versions are compared on identical inputs. Past the profile's
`drawn` examples, drawing goes on until every declared feature is shown (`COVERAGE_MIN`
times), keeping the fewest candidates that show them (`_fewest_covering`).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from conformance import cache, cases, coverage, strategies
from conformance.dtypes import as_dtype
from conformance.inputs import Input, inputs_digest
from conformance.ops import CATALOG, LabelKind, Op, Option, Reduction
from conformance_adapters.interface import Axes, Implementation


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
