"""The error budget: what a correct stable implementation in the dtype under test guarantees.

For every catalog operation (and its gradient) this module returns, per output
element, an absolute error bound derived from the error analysis of the standard
stable algorithm (max shift, exp, sum, divide / log) carried out entirely in the
target dtype T with unit roundoff u = 2**-p. docs/error-model.md derives each formula.
The assumptions, stated once:

* every +, -, *, / is correctly rounded in T (relative error <= u);
* exp, log and log1p are faithful to ELEMENTARY_ULPS ulps, i.e. relative error <= F*u
  with F = 2 * ELEMENTARY_ULPS (one ulp is at most 2u relative);
* a sum of n terms, in any order, has relative error <= (n - 1) u (Higham, Accuracy
  and Stability of Numerical Algorithms, 2nd ed., eq. 4.4): the worst case, so no
  summation order a framework may pick is ever a false alarm;
* results and intermediates below the normal range may be flushed to zero (FTZ back
  ends) when `allow_flush` is true, and underflowing terms lose up to one subnormal each.

First-order bounds (terms in u**2 dropped): each is a bound in exact arithmetic on the
quantities of the true inputs, evaluated here in float64 (a bound needs no more).
The budget depends only on the inputs, never on what a framework returned.
"""

from __future__ import annotations

import numpy as np

from conformance.dtypes import FloatFormat, float_format
from conformance.errors import round_to
from conformance.ops import Family, Op, Reduction, family

ELEMENTARY_ULPS = 2.0
"""exp, log and log1p are assumed faithful within this many ULPs (a vectorised libm's)."""
F = 2.0 * ELEMENTARY_ULPS
"""The same assumption as a relative error in units of u."""

_SOFTMAX_LIKE = family(Family.SOFTMAX_LIKE)
_FROM_LOGITS = family(Family.FROM_LOGITS)
_BINARY = family(Family.BINARY)


def _sum_error(n: int | np.ndarray) -> np.ndarray:
    """sigma(n): a sum of n terms has relative error <= sigma(n) * u (any order)."""
    return np.maximum(np.asarray(n, dtype=np.float64) - 1.0, 0.0)


def _gamma(k: np.ndarray, u: float) -> np.ndarray:
    """Higham's gamma_k / u = k / (1 - k u): k first-order roundings, second order included."""
    with np.errstate(all="ignore"):
        return np.where(k * u < 1.0, k / (1.0 - k * u), np.inf)


def _to_rows(a: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """Move the class axis (or axes) last and flatten to (batch, classes)."""
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    axes = tuple(int(ax) % a.ndim for ax in axes) if a.ndim else ()
    moved = np.moveaxis(a, axes, tuple(range(a.ndim - len(axes), a.ndim)))
    classes = int(np.prod([a.shape[ax] for ax in axes], dtype=np.int64))
    return (
        moved.reshape(-1, classes)
        if classes
        else moved.reshape(int(np.prod(moved.shape[: a.ndim - len(axes)])), 0)
    )


class _Softmax:
    """A row-wise softmax in float64 and its first-order error terms (in units of u)."""

    def __init__(self, rows: np.ndarray, scale: np.ndarray | None, u: float):
        with np.errstate(all="ignore"):
            self.n = rows.shape[1]
            finite_max = (
                np.where(np.isneginf(rows), -np.inf, rows).max(axis=1, keepdims=True)
                if self.n
                else np.full((rows.shape[0], 1), -np.inf)
            )
            m = np.where(np.isfinite(finite_max), finite_max, 0.0)
            self.d = rows - m
            e = np.exp(self.d)
            # exp(d (1 + delta)) = exp(d) exp(d delta): the rounding of x - max costs
            # expm1(|d| u) relative, |d| u to first order.
            rel_e = np.expm1(np.abs(self.d) * u) / u + F
            if scale is not None:
                e = e * scale
                rel_e = rel_e + 1.0
            self.e = e
            self.s = e.sum(axis=1, keepdims=True)
            self.p = np.where(self.s > 0, e / self.s, 0.0)
            self.log_s = np.log(self.s)
            self.present = np.isfinite(self.d) & (e != 0 if scale is not None else True)
            self.lsm = np.where(self.present, self.d - self.log_s, -np.inf)
            weighted = np.where(self.p > 0, rel_e * self.p, 0.0).sum(axis=1, keepdims=True)
            self.rel_s = _gamma(weighted + _sum_error(self.n), u)
            """Relative error of the sum S, in units of u."""
            self.rel_e = rel_e
            self.lse = m + self.log_s

    def softmax_bound(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.where(self.p > 0, self.p * (self.rel_e + self.rel_s + 1.0), 0.0)

    def log_softmax_bound(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.where(
                self.present,
                np.abs(self.d) + self.rel_s + F * np.abs(self.log_s) + np.abs(self.lsm),
                0.0,
            )

    def logsumexp_bound(self) -> np.ndarray:
        return (self.rel_s + F * np.abs(self.log_s) + np.abs(self.lse))[:, 0]


def _slack(fmt: FloatFormat, terms: int, allow_flush: bool) -> float:
    """Absolute slack for underflow: a subnormal per term, the normal range when FTZ is allowed."""
    return (terms + 1) * fmt.smallest_subnormal + (fmt.smallest_normal if allow_flush else 0.0)


def _class_coefficients(
    op: Op,
    rows_shape: tuple[int, int],
    labels: np.ndarray | None,
    axis: int,
    label_smoothing: float,
    class_weights: np.ndarray | None,
    ignore_index: int | None,
    part: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float]:
    """a_j = w_j * t'_j per row and class (smoothed labels times class weights; 0 where a
    class is masked out by `part`), and the per-example weight of a weighted mean: w_y for
    integer labels (0 when ignored), sum_j w_j t_j over the unmasked classes for dense
    labels (the reference's denominators, before smoothing); and the relative error of the
    sum of those weights, in units of u (dense: b*k products and terms)."""
    batch, k = rows_shape
    eps = float(label_smoothing)
    weights = np.ones(k) if class_weights is None else np.asarray(class_weights, np.float64)
    if op in (Op.SPARSE_SOFTMAX_CROSS_ENTROPY, Op.SPARSE_PROBABILITY_CROSS_ENTROPY):
        y = np.asarray(labels).reshape(-1).astype(np.int64)
        ignored = (y == ignore_index) if ignore_index is not None else np.zeros(batch, bool)
        valid = (y >= 0) & (y < k) & ~ignored
        t = np.zeros((batch, k))
        t[np.flatnonzero(valid), y[valid]] = 1.0
        t = (1.0 - eps) * t + eps / max(k, 1)
        t[ignored | ~valid] = 0.0
        example_weight = np.where(valid, weights[np.clip(y, 0, max(k - 1, 0))] if k else 0.0, 0.0)
        weight_error = float(_sum_error(batch))
    else:
        raw = _to_rows(np.asarray(labels, np.float64), axis)
        t = (1.0 - eps) * raw + eps / max(k, 1)
        with np.errstate(all="ignore"):
            products = np.where(part, weights * raw, 0.0)
        example_weight = products.sum(axis=1) if k else np.zeros(batch)
        weight_error = float(batch * k)
    return np.where(part, weights * t, 0.0), example_weight, weight_error


def _reduce(
    losses: np.ndarray,
    bounds: np.ndarray,
    reduction: Reduction,
    example_weight: np.ndarray,
    weight_error: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reduced value, its bound, per-example coefficient of the reduction).

    `weight_error`: relative error of example_weight.sum() in units of u (default: a sum
    of b exact weights)."""
    b = losses.size
    with np.errstate(all="ignore"):
        if reduction is Reduction.NONE:
            return losses, bounds, np.ones(b)
        total = np.abs(losses).sum()
        bound = bounds.sum() + _sum_error(b) * total
        if reduction is Reduction.SUM:
            return losses.sum(), bound, np.ones(b)
        if reduction in (Reduction.MEAN, Reduction.SUM_OVER_BATCH_SIZE):
            value = losses.sum() / b
            return value, bound / b + abs(value), np.full(b, 1.0 / max(b, 1))
        weight = example_weight.sum()
        value = losses.sum() / weight
        den = _sum_error(b) if weight_error is None else weight_error
        return value, bound / weight + (den + 1.0) * abs(value), np.full(b, 1.0 / weight)


def _prepare(op: Op, x: np.ndarray, axis, where, scale, u: float):
    """Rows of x (masked entries -inf), the row softmax quantities and the output shape."""
    x64 = np.asarray(x).astype(np.float64)
    if where is not None:
        x64 = np.where(np.asarray(where, bool), x64, -np.inf)
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    keep = tuple(n for ax, n in enumerate(x64.shape) if ax not in {a % x64.ndim for a in axes})
    rows = _to_rows(x64, axis)
    sc = (
        None
        if scale is None
        else _to_rows(np.broadcast_to(np.asarray(scale, np.float64), x64.shape), axis)
    )
    if sc is not None:  # a zero factor removes its term: it must not set the row's shift
        rows = np.where(sc != 0, rows, -np.inf)
    return rows, _Softmax(rows, sc, u), keep


def error_bound(
    op: Op | str,
    x: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    dtype: str | np.dtype | None = None,
    axis: int | tuple[int, ...] | None = -1,
    where: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    label_smoothing: float = 0.0,
    class_weights: np.ndarray | None = None,
    ignore_index: int | None = None,
    reduction: Reduction | str = Reduction.NONE,
    allow_flush: bool = True,
) -> np.ndarray:
    """Absolute error bound of each output element of `op` computed stably in `dtype`.

    `dtype` defaults to x's dtype. Same arguments as `reference.evaluate`.
    """
    op, reduction = Op(op), Reduction(reduction)
    fmt = float_format(x.dtype if dtype is None else dtype)
    u = fmt.unit_roundoff
    if op in _BINARY:
        _, bounds, _ = _binary(op, x, labels, axis, label_smoothing, reduction)
        return u * bounds + _slack(fmt, 2, allow_flush)
    rows, sm, keep = _prepare(op, x, axis, where, scale, u)
    slack = _slack(fmt, rows.shape[1], allow_flush)
    if op in _SOFTMAX_LIKE:
        if op is Op.SOFTMAX:
            bound = sm.softmax_bound()
        elif op is Op.LOG_SOFTMAX:
            bound = sm.log_softmax_bound()
        else:
            return (u * sm.logsumexp_bound() + slack).reshape(keep)
        return _from_rows(u * bound + slack, x.shape, axis)
    _, bounds, *_ = _loss_rows(
        op,
        x,
        labels,
        rows,
        sm,
        axis,
        label_smoothing,
        class_weights,
        ignore_index,
        reduction,
        where,
    )
    return (u * np.asarray(bounds) + slack).reshape(keep if reduction is Reduction.NONE else ())


def _from_rows(rows: np.ndarray, shape: tuple[int, ...], axis) -> np.ndarray:
    """Inverse of _to_rows for softmax-shaped outputs."""
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    axes = tuple(int(ax) % len(shape) for ax in axes) if shape else ()
    moved_shape = [n for ax, n in enumerate(shape) if ax not in axes] + [shape[ax] for ax in axes]
    moved = rows.reshape(moved_shape)
    return np.moveaxis(moved, tuple(range(len(shape) - len(axes), len(shape))), axes)


def _loss_rows(
    op, x, labels, rows, sm, axis, label_smoothing, class_weights, ignore_index, reduction, where
):
    """Per-example losses and bounds (units of u), reduced; plus coefficients for the VJP."""
    # a masked class takes no part, its label term included
    part = (
        np.ones(rows.shape, bool)
        if where is None
        else _to_rows(np.broadcast_to(np.asarray(where, bool), x.shape), axis)
    )
    a, example_weight, weight_error = _class_coefficients(
        op, rows.shape, labels, axis, label_smoothing, class_weights, ignore_index, part
    )
    with np.errstate(all="ignore"):
        if op in _FROM_LOGITS:
            lsm = np.where(a != 0, sm.lsm, 0.0)
            terms = np.abs(a * lsm)
            per_class = np.abs(a) * np.where(a != 0, sm.log_softmax_bound(), 0.0)
        else:
            p = rows
            logp = np.where(a != 0, np.log(p), 0.0)
            terms = np.abs(a * logp)
            per_class = np.abs(a) * F * np.abs(logp)
        losses = -(np.where(a != 0, a * (lsm if op in _FROM_LOGITS else logp), 0.0)).sum(axis=1)
        bounds = per_class.sum(axis=1) + (_sum_error(rows.shape[1]) + 3.0) * terms.sum(axis=1)
    value, bound, coefficient = _reduce(losses, bounds, reduction, example_weight, weight_error)
    coefficient_error = weight_error if reduction is Reduction.WEIGHTED_MEAN else 0.0
    return value, bound, coefficient, a, coefficient_error


def _binary(op, x, labels, axis, label_smoothing, reduction):
    """Element-wise binary losses, their bounds (units of u), and the per-element coefficient."""
    x64 = np.asarray(x).astype(np.float64)
    z = (1.0 - label_smoothing) * np.asarray(labels).astype(np.float64) + label_smoothing / 2.0
    with np.errstate(all="ignore"):
        if op is Op.SIGMOID_CROSS_ENTROPY:
            lp = np.log1p(np.exp(-np.abs(x64)))
            loss = np.maximum(x64, 0) - x64 * z + lp
            bound = 3.0 * np.abs(x64) * (1.0 + np.abs(z)) + 2.0 * F * lp + np.abs(loss)
        else:
            log_p, log_q = np.log(x64), np.log1p(-x64)
            tp = np.where(z != 0, z * log_p, 0.0)
            tq = np.where(z != 1, (1.0 - z) * log_q, 0.0)
            loss = -(tp + tq)
            bound = (F + 1.0) * (np.abs(tp) + np.abs(tq)) + np.abs(1.0 - z) + 3.0 * np.abs(loss)
    coefficient = np.ones_like(x64)
    if axis is not None:
        k = x64.shape[axis]
        loss = loss.mean(axis=axis)
        bound = bound.mean(axis=axis) + (_sum_error(k) + 1.0) * np.abs(loss)
        coefficient = coefficient / k
    flat_loss, flat_bound = loss.reshape(-1), bound.reshape(-1)
    value, reduced_bound, reduction_coefficient = _reduce(
        flat_loss, flat_bound, reduction, np.ones(flat_loss.size)
    )
    coefficient = coefficient * (reduction_coefficient[0] if flat_loss.size else 1.0)
    if reduction is Reduction.NONE:
        return loss, bound, coefficient
    return value, reduced_bound, coefficient


def vjp_error_bound(
    op: Op | str,
    x: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    cotangent: np.ndarray,
    dtype: str | np.dtype | None = None,
    axis: int | tuple[int, ...] | None = -1,
    where: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    label_smoothing: float = 0.0,
    class_weights: np.ndarray | None = None,
    ignore_index: int | None = None,
    reduction: Reduction | str = Reduction.NONE,
    allow_flush: bool = True,
) -> np.ndarray:
    """Absolute error bound of each element of the gradient of sum(cotangent * op(x, ...)).

    The gradient is taken with respect to x, by the standard formulas (p*(g - <g, p>),
    g - p*sum(g), p*sum(a) - a, sigmoid(x) - z, ...) evaluated in `dtype` from a forward
    pass that meets `error_bound`.
    """
    op, reduction = Op(op), Reduction(reduction)
    fmt = float_format(x.dtype if dtype is None else dtype)
    u = fmt.unit_roundoff
    g = np.asarray(cotangent).astype(np.float64)
    with np.errstate(all="ignore"):
        if op in _BINARY:
            bound = _binary_vjp_bound(op, x, labels, g, axis, label_smoothing, reduction)
            return u * bound + _slack(fmt, 2, allow_flush)
        rows, sm, keep = _prepare(op, x, axis, where, scale, u)
        n = rows.shape[1]
        a_p = sm.softmax_bound()
        if op is Op.SOFTMAX:
            gr = _to_rows(np.broadcast_to(g, x.shape), axis)
            s = (gr * sm.p).sum(axis=1, keepdims=True)
            a_s = (np.abs(gr) * a_p).sum(axis=1, keepdims=True) + _sum_error(n) * np.abs(
                gr * sm.p
            ).sum(axis=1, keepdims=True)
            centred = np.abs(gr - s)
            bound = a_p * centred + sm.p * (a_s + centred) + sm.p * centred
        elif op is Op.LOG_SOFTMAX:
            gr = _to_rows(np.broadcast_to(g, x.shape), axis)
            total = gr.sum(axis=1, keepdims=True)
            r = gr - sm.p * total
            bound = (
                a_p * np.abs(total)
                + sm.p * _sum_error(n) * np.abs(gr).sum(axis=1, keepdims=True)
                + 2.0 * (np.abs(sm.p * total) + np.abs(r))
            )
        elif op is Op.LOGSUMEXP:
            gr = np.broadcast_to(g, keep).reshape(-1, 1)
            bound = np.abs(gr) * a_p + np.abs(gr * sm.p)
        else:
            _, _, coefficient, a, coefficient_error = _loss_rows(
                op,
                x,
                labels,
                rows,
                sm,
                axis,
                label_smoothing,
                class_weights,
                ignore_index,
                reduction,
                where,
            )
            c = (np.broadcast_to(g, keep).reshape(-1) * coefficient)[:, None]
            batch_error = max(float(_sum_error(rows.shape[0])), coefficient_error) + 2.0
            if op in _FROM_LOGITS:
                sa = a.sum(axis=1, keepdims=True)
                r = c * (sm.p * sa - a)
                bound = np.abs(c) * (
                    a_p * np.abs(sa)
                    + sm.p * _sum_error(n) * np.abs(a).sum(axis=1, keepdims=True)
                    + 2.0 * (np.abs(sm.p * sa) + np.abs(a))
                )
            else:
                r = np.where(a != 0, -c * a / rows, 0.0)
                bound = 3.0 * np.abs(r)
            bound = bound + batch_error * np.abs(r)
        if where is not None:
            bound = np.where(_to_rows(np.asarray(where, bool), axis), bound, 0.0)
    return _from_rows(u * bound + _slack(fmt, n, allow_flush), x.shape, axis)


def _binary_vjp_bound(op, x, labels, g, axis, label_smoothing, reduction):
    x64 = np.asarray(x).astype(np.float64)
    z = (1.0 - label_smoothing) * np.asarray(labels).astype(np.float64) + label_smoothing / 2.0
    _, _, coefficient = _binary(op, x, labels, axis, label_smoothing, reduction)
    if reduction is Reduction.NONE and axis is not None:
        g = np.expand_dims(g, axis)
    c = np.broadcast_to(g, x64.shape) * coefficient
    if op is Op.SIGMOID_CROSS_ENTROPY:
        sig = 1.0 / (1.0 + np.exp(-x64))
        r = c * (sig - z)
        bound = np.abs(c) * ((F + 2.0) * sig + np.abs(z) + np.abs(sig - z))
    else:
        r = c * (-z / x64 + (1.0 - z) / (1.0 - x64))
        bound = np.abs(c) * (3.0 * np.abs(z / x64) + 4.0 * np.abs((1.0 - z) / (1.0 - x64)))
    return bound + (_sum_error(x64.size) + 2.0) * np.abs(r)


def budget_ratio(
    computed: np.ndarray, exact: np.ndarray, bound: np.ndarray, dtype: str | np.dtype
) -> np.ndarray:
    """|computed - exact| / bound: <= 1 is within what the stable algorithm guarantees
    (float64: less the reference's own 1 ULP).

    Equal specials (same infinity, NaN where the reference is NaN) and an infinity where
    the exact value rounds to it give 0; any other special mismatch gives inf.
    """
    fmt = float_format(dtype)
    with np.errstate(over="ignore"):  # a wider output cast to the dtype may overflow: inf
        c = np.asarray(computed).astype(fmt.dtype).astype(np.float64)
    r = np.asarray(exact, dtype=np.float64)
    rounded = round_to(r, fmt.dtype).astype(np.float64)
    special = ~np.isfinite(c) | ~np.isfinite(r)
    agree = (np.isnan(c) & np.isnan(r)) | (np.isinf(c) & ((c == r) | (c == rounded)))
    # The reference is a float64 value within 1 float64 ULP of the truth: judged in float64,
    # that ULP is the reference's, not the framework's (a correctly rounded m + log(s) can
    # sit one ULP from the rounded reference with a true error under the bound).
    with np.errstate(all="ignore"):
        slack = np.spacing(np.abs(r)) if fmt.dtype == np.float64 else 0.0
        distance = np.maximum(np.abs(c - r) - slack, 0.0)
        ratio = np.where(c == r, 0.0, distance / np.asarray(bound, dtype=np.float64))
    return np.where(special, np.where(agree, 0.0, np.inf), ratio)
