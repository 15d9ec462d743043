"""Judging one outcome against the reference: accuracy, special values, dtype, reaction.

Knows no framework: it compares numpy arrays an adapter returned with what
`reference` and `budget` say, and classifies what it finds.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance import cache, reference
from conformance.budget import budget_ratio, error_bound, vjp_error_bound
from conformance.dtypes import dtype_name
from conformance.errors import flushed, strict_ulp
from conformance.ops import CATALOG, LabelKind, Op


class Verdict(enum.StrEnum):
    """The verdict of an example or a cell, from best to worst."""

    PASS = "pass"
    INACCURATE = "inaccurate"
    """Over the error budget."""
    DIVERGENT = "divergent"
    """Special values, shape or dtype differ from the reference's defined answer."""
    ERROR = "error"
    """Raised where a value was due, or silent where invalid input should raise."""
    UNSUPPORTED = "unsupported"
    CRASHED = "crashed"
    """The worker died on this cell (segfault, abort, out of memory)."""
    TIMEOUT = "timeout"
    """The worker gave no answer within the cell timeout and was killed."""


SEVERITY = {v: i for i, v in enumerate(Verdict)}
"""Higher is worse; a cell's verdict is its worst example's."""


def worst(verdicts: list[Verdict]) -> Verdict:
    return max(verdicts, key=SEVERITY.__getitem__, default=Verdict.PASS)


@dataclass
class Finding:
    """One thing found wrong on one input."""

    verdict: Verdict
    kind: str
    """A short machine name: 'over-budget', 'nan-where-defined', 'raised', 'silent-invalid',
    'dtype', 'shape', 'gradient-over-budget', ..."""
    detail: str
    case: str
    """The input's id (corpus id or 'drawn-N')."""


@dataclass
class Judgement:
    """What one input showed."""

    findings: list[Finding] = field(default_factory=list)
    max_ulp: float = 0.0
    """Largest strict-ULP distance over defined elements (value and gradient)."""
    max_ratio: float = 0.0
    """Largest budget ratio over defined elements (value and gradient)."""
    flushed: int = 0
    special: str | None = None
    """For inputs with special values or undefined results: what came back, summarised."""
    reaction: str | None = None
    """For invalid inputs: 'raises', 'warns', 'silent-nonfinite' (answers NaN or inf: a
    user can notice) or 'silent-finite' (answers a plausible number: nobody notices)."""
    elements: int = 0

    @property
    def verdict(self) -> Verdict:
        return worst([f.verdict for f in self.findings])


def summarise_values(a: np.ndarray | None, limit: int = 8) -> str:
    """A short, stable text of an output for the special-value matrix ('nan inf 1 0 ...')."""
    if a is None:
        return "—"
    flat = np.asarray(a, dtype=np.float64).reshape(-1)
    parts = [f"{v:.6g}" for v in flat[:limit]]
    return " ".join(parts) + (" …" if flat.size > limit else "")


ACCEPTABLE_EMPTY: dict[Op, tuple[float, ...]] = {
    Op.SOFTMAX: (0.0,),
    Op.LOG_SOFTMAX: (0.0, -np.inf),
}
"""What an op may return, besides NaN, for an element mathematics leaves without a value
because nothing takes part (a fully masked row, a mean over no weight): no probability on
a masked entry (softmax 0, log-softmax 0 or log 0), a loss over nothing 0. Anything else
(1/K spread over masked entries, a finite loss of masked logits) is a finding. Gradients
there may be 0 or NaN."""
_LOSS_EMPTY = (0.0,)


def _undefined_unacceptable(
    computed: np.ndarray,
    exact: reference.Exact,
    options: dict[str, Any],
    allowed: tuple[float, ...],
    op: Op,
) -> np.ndarray:
    """Elements with no value in mathematics whose answer is not an acceptable one."""
    codes = exact.undefined
    judged = codes == reference.Undefined.NO_WEIGHT
    reduced = CATALOG[op].labels is not LabelKind.NONE and options.get("reduction", "none") != (
        "none"
    )
    if not reduced:  # a reduction over a fully masked row: as documented, not judged
        judged |= codes == reference.Undefined.FULLY_MASKED
    if not judged.any():
        return judged
    c = computed.astype(np.float64)
    ok = np.isnan(c) | np.isin(c, allowed)
    return judged & ~ok


def _compare(
    computed: np.ndarray,
    exact: reference.Exact,
    bound: np.ndarray,
    dtype: str,
    judgement: Judgement,
    case: str,
    gradient: bool,
    op: Op,
    options: dict[str, Any],
) -> None:
    """Accuracy and special-value agreement of `computed` against `exact`, into `judgement`."""
    what, kind = ("gradient: ", "gradient-") if gradient else ("", "")
    if computed.shape != exact.value.shape:
        judgement.findings.append(
            Finding(
                Verdict.DIVERGENT,
                f"{kind}shape",
                f"{what or 'output '}shape {computed.shape}, expected {exact.value.shape}",
                case,
            )
        )
        return
    defined = exact.undefined == reference.Undefined.DEFINED
    c = computed.astype(np.float64)
    r = exact.value
    allowed = (0.0,) if gradient else ACCEPTABLE_EMPTY.get(op, _LOSS_EMPTY)
    unacceptable = _undefined_unacceptable(computed, exact, options, allowed, op)
    if unacceptable.any():
        idx = np.flatnonzero(unacceptable.reshape(-1))[0]
        why = reference.Undefined(exact.undefined.reshape(-1)[idx]).name.lower()
        judgement.findings.append(
            Finding(
                Verdict.DIVERGENT,
                f"{kind}undefined-unacceptable",
                f"{what}{c.reshape(-1)[idx]:.17g} at flat index {idx}, where nothing takes part "
                f"({why}): acceptable are NaN and {' and '.join(f'{v:g}' for v in allowed)}",
                case,
            )
        )
    nan_where_defined = defined & np.isnan(c)
    if nan_where_defined.any():
        idx = np.flatnonzero(nan_where_defined.reshape(-1))[0]
        judgement.findings.append(
            Finding(
                Verdict.DIVERGENT,
                f"{kind}nan-where-defined",
                f"{what}NaN at flat index {idx}, the reference gives {r.reshape(-1)[idx]:.17g}",
                case,
            )
        )
    inf_mismatch = defined & ~np.isnan(c) & (np.isinf(c) | np.isinf(r)) & (c != r)
    ratio = np.where(defined, budget_ratio(computed, r, bound, dtype), 0.0)
    ratio = np.where(inf_mismatch | nan_where_defined, 0.0, ratio)
    if inf_mismatch.any():
        infinite_ok = np.isinf(c) & (budget_ratio(computed, r, bound, dtype) == 0)
        bad = inf_mismatch & ~infinite_ok
        if bad.any():
            idx = np.flatnonzero(bad.reshape(-1))[0]
            judgement.findings.append(
                Finding(
                    Verdict.DIVERGENT,
                    f"{kind}infinity",
                    f"{what}{c.reshape(-1)[idx]:.17g} at flat index {idx}, the reference gives "
                    f"{r.reshape(-1)[idx]:.17g}",
                    case,
                )
            )
    ulps = np.where(
        defined & ~nan_where_defined & ~inf_mismatch, strict_ulp(computed, r, dtype), 0.0
    )
    if ulps.size:
        judgement.max_ulp = max(judgement.max_ulp, float(np.max(ulps)))
        judgement.max_ratio = max(judgement.max_ratio, float(np.max(ratio)))
    judgement.flushed += int((flushed(computed, r, dtype) & defined).sum())
    judgement.elements += int(defined.sum())
    if ratio.size and float(np.max(ratio)) > 1.0:
        idx = int(np.argmax(ratio.reshape(-1)))
        judgement.findings.append(
            Finding(
                Verdict.INACCURATE,
                f"{kind}over-budget",
                f"{what}{c.reshape(-1)[idx]:.17g} vs exact {r.reshape(-1)[idx]:.17g}: "
                f"{ratio.reshape(-1)[idx]:.3g}x the budget, {ulps.reshape(-1)[idx]:.0f} ULP",
                case,
            )
        )


def _limit_elements(
    op: Op,
    x: np.ndarray,
    labels: np.ndarray | None,
    options: dict[str, Any],
    cotangent: np.ndarray | None,
) -> np.ndarray | None:
    """Output elements that depend on an infinite logit (None when there are none).

    The reference gives such elements their limit (softmax([inf, 0]) -> [1, 0]), but IEEE
    arithmetic gives inf - inf = NaN, and frameworks differ: there the suite records what
    came back (the special-value matrix) instead of judging it. -inf (masking) is judged.
    """
    x64 = x.astype(np.float64)
    infinite = np.isinf(x64) if CATALOG[op].labels is LabelKind.BINARY else np.isposinf(x64)
    if not infinite.any():
        return None
    probe = np.where(infinite, np.nan, x64)
    if cotangent is None:
        marked = reference.evaluate(op, probe, labels, **options)
    else:
        marked = reference.vjp(op, probe, labels, cotangent=cotangent, **options)
    return marked.undefined == reference.Undefined.NAN_INPUT


def _as_observed(exact: reference.Exact, limits: np.ndarray | None) -> reference.Exact:
    """`exact` with the elements in `limits` made undefined (recorded, not judged)."""
    if limits is None:
        return exact
    limits = limits & (exact.undefined == reference.Undefined.DEFINED)
    return reference.Exact(
        np.where(limits, np.nan, exact.value),
        np.where(limits, np.uint8(reference.Undefined.NAN_INPUT), exact.undefined),
    )


@dataclass(frozen=True)
class Expected:
    """What the reference says of one input: the exact answer (elements that depend on a
    +inf logit made undefined: recorded, not judged) and the absolute error budget."""

    exact: reference.Exact
    bound: np.ndarray


_MEMO: OrderedDict[bytes, Expected] = OrderedDict()
_MEMO_BYTES = [0]
REFERENCE_SECONDS = [0.0]
"""Seconds this process spent computing reference answers and budgets (memo misses)."""
MEMO_LIMIT_BYTES = 256 * 2**20
"""The reference's answers are kept (least recently used out past this size): every mode
and every implementation of an op judges the same inputs, so each is computed once."""


def input_key(op: Op, arrays: list[Any], options: dict[str, Any]) -> bytes:
    """A digest of an input (arrays by dtype, shape and bytes; options by value)."""
    h = hashlib.blake2b(op.value.encode(), digest_size=20)
    for a in [*arrays, *(options[k] for k in sorted(options))]:
        if isinstance(a, np.ndarray):
            h.update(f"|{a.dtype.str}{a.shape}|".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update(f"|{type(a).__name__}:{a!r}|".encode())
    h.update(repr(sorted(options)).encode())
    return h.digest()


def expected(
    op: Op,
    x: np.ndarray,
    labels: np.ndarray | None,
    options: dict[str, Any],
    cotangent: np.ndarray | None = None,
) -> Expected:
    """The reference's value (or, given `cotangent`, its VJP) and budget, memoized."""
    key = input_key(op, [x, labels, cotangent], options)
    hit = _MEMO.get(key)
    if hit is not None:
        _MEMO.move_to_end(key)
        return hit
    started = time.perf_counter()
    store = cache.answer_store()
    stored = None if store is None else store.get(key)
    if stored is not None:
        value, undefined, bound = stored
        want = Expected(reference.Exact(value, undefined), bound)
    else:
        if cotangent is None:
            exact = reference.evaluate(op, x, labels, **options)
            bound = error_bound(op, x, labels, **options)
        else:
            exact = reference.vjp(op, x, labels, cotangent=cotangent, **options)
            bound = vjp_error_bound(op, x, labels, cotangent=cotangent, **options)
        limits = _limit_elements(op, x, labels, options, cotangent)
        want = Expected(_as_observed(exact, limits), np.asarray(bound, dtype=np.float64))
        if store is not None:
            store.put(key, [want.exact.value, want.exact.undefined, want.bound])
    for a in (want.exact.value, want.exact.undefined, want.bound):
        if isinstance(a, np.ndarray) and a.flags.writeable:
            a.flags.writeable = False  # shared by every later judgement of this input
    _MEMO[key] = want
    _MEMO_BYTES[0] += want.exact.value.nbytes * 2 + np.asarray(bound).nbytes
    while _MEMO_BYTES[0] > MEMO_LIMIT_BYTES and len(_MEMO) > 1:
        _, old = _MEMO.popitem(last=False)
        _MEMO_BYTES[0] -= old.exact.value.nbytes * 2 + np.asarray(old.bound).nbytes
    REFERENCE_SECONDS[0] += time.perf_counter() - started
    return want


def finite_answer(value: np.ndarray | None) -> bool:
    """Whether an answer to an invalid input is all finite: a plausible wrong result, not
    the NaN or inf that a user (or a training loop's NaN check) would notice."""
    return value is not None and bool(np.isfinite(np.asarray(value, dtype=np.float64)).all())


def silent_reaction(value: np.ndarray | None) -> str:
    """'silent-finite' (unnoticeable) or 'silent-nonfinite' (NaN or inf somewhere)."""
    return "silent-finite" if finite_answer(value) else "silent-nonfinite"


def judge(
    op: Op,
    x: np.ndarray,
    labels: np.ndarray | None,
    options: dict[str, Any],
    value: np.ndarray | None,
    grad: np.ndarray | None,
    cotangent: np.ndarray | None,
    error: str | None,
    warned: bool,
    *,
    invalid: bool,
    case: str,
) -> Judgement:
    """Judge one call's result: `value`/`grad` (None when `error` says it raised)."""
    j = Judgement()
    dtype = dtype_name(x.dtype)
    if invalid:
        j.reaction = "raises" if error else ("warns" if warned else silent_reaction(value))
        if not error:
            looks = (
                "a finite answer that looks like a result"
                if finite_answer(value)
                else "NaN or inf, which a user can notice"
            )
            j.findings.append(
                Finding(
                    Verdict.ERROR,
                    "silent-invalid",
                    f"returned {summarise_values(value, 4)} for invalid input instead of raising"
                    f" ({looks})",
                    case,
                )
            )
        return j
    if error:
        j.findings.append(Finding(Verdict.ERROR, "raised", error, case))
        return j
    assert value is not None
    if dtype_name(value.dtype) != dtype:
        j.findings.append(
            Finding(
                Verdict.DIVERGENT,
                "dtype",
                f"returned {dtype_name(value.dtype)} for {dtype} input",
                case,
            )
        )
    want = expected(op, x, labels, options)
    if (want.exact.undefined != reference.Undefined.DEFINED).any() or not np.isfinite(
        x.astype(np.float64)
    ).all():
        j.special = summarise_values(value)
    _compare(value, want.exact, want.bound, dtype, j, case, gradient=False, op=op, options=options)
    if grad is not None and cotangent is not None:
        want_grad = expected(op, x, labels, options, cotangent)
        _compare(
            grad, want_grad.exact, want_grad.bound, dtype, j, case, True, op=op, options=options
        )
    return j
