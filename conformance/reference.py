"""The exact reference: the value every catalog operation should have.

`evaluate(op, x, labels, **options)` gives float64 values of a catalog op on exactly
taken inputs (any float dtype, bfloat16 included), and `vjp(...)` the gradient of
sum(cotangent * op(x, ...)) with respect to x (logits or probabilities). Where
mathematics gives no value the result is NaN and `Exact.undefined` says why.

Accuracy, per output element (proofs and measurements: docs/reference.md):

* the *target* is x's dtype (or `target=`); for float16, bfloat16 and float32 targets the
  error is at most 2**-8 ULP of the target (tier 1: float64 with stable formulas, a few
  float64 ULP where nothing cancels);
* for float64 targets the error is below 1 float64 ULP (tier 2: longdouble, then tier
  2b: double-double; bound <= 0.25 ULP before the final rounding);
* rows whose a-priori bound misses the tolerance go up a tier, finally to mpmath
  intervals with Ziv's loop (correctly rounded). `_precision.USE_LONGDOUBLE = False`
  skips longdouble, as on platforms whose longdouble is plain double;
  `_precision.USE_DOUBLE_DOUBLE = False` skips double-double.
"""

from __future__ import annotations

import functools

import numpy as np

from conformance import _reference_binary, _reference_losses
from conformance import _reference_kernels as K
from conformance._reference_core import Exact, Undefined, tiered
from conformance._reference_kernels import Rows
from conformance._reference_rows import RowView, canonical_rows, exact_f64, normalize_axes
from conformance.dtypes import FloatFormat, float_format
from conformance.ops import (
    OPTION_DEFAULTS,
    Family,
    LabelKind,
    Op,
    Option,
    Reduction,
    family,
    is_default,
    spec,
)

__all__ = ["Exact", "Undefined", "evaluate", "log_softmax", "logsumexp", "softmax", "vjp"]

_SOFTMAX_LIKE = family(Family.SOFTMAX_LIKE)
_DEFAULTS: dict[str, object] = {**OPTION_DEFAULTS, "target": None}
"""The catalog's options (`ops.OPTIONS`) and the accuracy target."""


def evaluate(
    op: Op | str,
    x: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    axis: int | tuple[int, ...] | None = -1,
    where: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    label_smoothing: float = 0.0,
    class_weights: np.ndarray | None = None,
    ignore_index: int | None = None,
    reduction: Reduction | str = Reduction.NONE,
    target: str | np.dtype | None = None,
) -> Exact:
    """The exact value of `op` on exactly-taken inputs (any float dtype, bf16 included).

    axis: the class axis (softmax-like ops: an int, a tuple of ints or None for all
    axes; binary losses: None for element-wise losses, an int to average over it).
    where: boolean mask broadcastable to x; False entries take no part. scale:
    logsumexp's factors b >= 0 (b = 0 removes a term). target: the dtype whose accuracy
    is needed (default: x's dtype). Special values: docs/reference.md."""
    opts = {
        "axis": axis,
        "where": where,
        "scale": scale,
        "label_smoothing": label_smoothing,
        "class_weights": class_weights,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "target": target,
    }
    return _dispatch(op, x, labels, None, opts)


def vjp(
    op: Op | str,
    x: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    cotangent: np.ndarray,
    **options: object,
) -> Exact:
    """The exact gradient of sum(cotangent * op(x, labels, **options)) with respect to x.

    `cotangent` has the shape of the op's output (0-d for a reduced loss) and takes the
    same options as `evaluate`. The gradient is the limit of the finite formula at -inf
    logits (0 for softmax, -c_j for cross-entropy); masked entries get 0."""
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown options: {sorted(unknown)}")
    opts = {**_DEFAULTS, **options}
    return _dispatch(op, x, labels, np.asarray(cotangent), opts)


def softmax(
    x: np.ndarray, axis: int | tuple[int, ...] = -1, *, where: np.ndarray | None = None
) -> np.ndarray:
    return evaluate(Op.SOFTMAX, x, axis=axis, where=where).value


def log_softmax(
    x: np.ndarray, axis: int | tuple[int, ...] = -1, *, where: np.ndarray | None = None
) -> np.ndarray:
    return evaluate(Op.LOG_SOFTMAX, x, axis=axis, where=where).value


def logsumexp(
    x: np.ndarray, axis: int | tuple[int, ...] = -1, *, where: np.ndarray | None = None
) -> np.ndarray:
    return evaluate(Op.LOGSUMEXP, x, axis=axis, where=where).value


# ---------------------------------------------------------------- inputs
def target_format(x: object, target: object) -> FloatFormat:
    """The format whose ULPs the accuracy guarantee is stated in."""
    return _format_of(
        np.dtype(target)
        if target is not None and not isinstance(target, str)
        else target
        if target is not None
        else np.asarray(x).dtype
    )


@functools.lru_cache(maxsize=64)
def _format_of(dt: object) -> FloatFormat:
    try:
        fmt = float_format(dt)
    except (TypeError, ValueError):
        return float_format(np.float64)
    return fmt if fmt.precision <= 53 else float_format(np.float64)


def _check_options(op: Op, opts: dict[str, object]) -> None:
    allowed = spec(op).options
    for name in OPTION_DEFAULTS:
        if not is_default(name, opts[name]) and Option(name) not in allowed:
            raise ValueError(f"{op} takes no {name}= option")


def _dispatch(
    op: Op | str, x: object, labels: object, cot: np.ndarray | None, opts: dict[str, object]
) -> Exact:
    op = Op(op)
    _check_options(op, opts)
    fmt = target_format(x, opts["target"])
    xs = exact_f64(x)
    if op in _SOFTMAX_LIKE:
        return _softmax_like(op, xs, fmt, cot, opts)
    if spec(op).labels is LabelKind.BINARY:
        return _reference_binary.binary(op, xs, labels, fmt, cot, opts)
    return _reference_losses.loss(op, xs, labels, fmt, cot, opts)


# ---------------------------------------------------------------- softmax family
def _softmax_like(
    op: Op, x: np.ndarray, fmt: FloatFormat, cot: np.ndarray | None, opts: dict[str, object]
) -> Exact:
    view = RowView(x.shape, normalize_axes(opts["axis"], x.ndim))
    xr = view.rows(x)
    R, Kc = xr.shape
    if opts["where"] is None and opts["scale"] is None and Kc and np.isfinite(xr).all():
        fast = _softmax_fast(op, xr, view, fmt, cot)
        if fast is not None:
            return fast
    part = (
        np.ones_like(xr, dtype=bool)
        if opts["where"] is None
        else view.rows(np.asarray(opts["where"], dtype=bool))
    )
    b = None
    if opts["scale"] is not None:
        b = view.rows(exact_f64(opts["scale"], "scale"))
        if (b < 0).any():
            raise ValueError("logsumexp scale factors must be >= 0")
        part = part & (b != 0)
    xe = np.where(part, xr, -np.inf)
    if b is not None:  # +inf factors: an infinite term unless exp(x) = 0 (then inf * 0)
        binf = np.isinf(b) & part
        xe = np.where(binf & ~np.isnan(xe) & (xe > -np.inf), np.inf, xe)
        xe = np.where(np.isnan(b) & part, np.nan, xe)
    cr = canonical_rows(xe)
    codes = np.zeros(R, dtype=np.uint8)
    codes[cr["nan"]] = Undefined.NAN_INPUT
    lse_fwd = op is Op.LOGSUMEXP and cot is None
    if b is not None:
        ind = (np.isinf(b) & part & ((xe == -np.inf) | (cot is not None))).any(axis=1)
        codes[(codes == 0) & ind] = Undefined.INDETERMINATE_INF
    if not lse_fwd:
        codes[(codes == 0) & (cr["pinf"] >= 2)] = Undefined.INDETERMINATE_INF
        codes[(codes == 0) & (cr["nfin"] == 0)] = Undefined.FULLY_MASKED
    g_rows = None
    if cot is not None:
        if op is Op.LOGSUMEXP:
            g_rows = np.broadcast_to(view.batch(exact_f64(cot, "cotangent"))[:, None], xr.shape)
        else:
            g_rows = np.where(part, view.rows(exact_f64(cot, "cotangent")), 0.0)
        gnan = (np.isnan(g_rows) & part).any(axis=1)
        ginf = (np.isinf(g_rows) & part).any(axis=1)
        codes = np.where((codes == 0) & gnan, np.uint8(Undefined.NAN_INPUT), codes)
        codes = np.where((codes == 0) & ginf, np.uint8(Undefined.INDETERMINATE_INF), codes)
    reg = (codes == 0) & (cr["nfin"] > 0)
    if lse_fwd:
        reg &= cr["pinf"] == 0
    rows = Rows({"x": cr["x"][reg], "fin": cr["fin"][reg], "m": cr["m"][reg], "k": cr["k"][reg]})
    if b is not None:
        rows.a["b"] = np.where(cr["fin"][reg], b[reg], 0.0)
    if g_rows is not None:
        rows.a["g"] = np.ascontiguousarray(g_rows[reg])
        rows.a["g_row"] = np.ascontiguousarray(g_rows[reg][:, 0]) if Kc else np.zeros(0)
    kernel, zero, n_out = _SOFTMAX_KERNELS[(op, cot is not None, b is not None)]
    n_out = Kc if n_out is None else n_out
    hi, _, _ = tiered(kernel, rows, n_out, fmt, zero)
    if op is Op.LOGSUMEXP and cot is None:
        out = np.full(R, np.nan)
        out[reg] = hi[:, 0]
        out[(codes == 0) & (cr["pinf"] > 0)] = np.inf
        out[(codes == 0) & (cr["pinf"] == 0) & (cr["nfin"] == 0)] = -np.inf
        out[codes != 0] = np.nan
        return Exact(out.reshape(view.batch_shape), codes.reshape(view.batch_shape))
    out = np.full((R, Kc), np.nan)
    out[reg] = hi
    out[~part & (codes == 0)[:, None]] = -np.inf if op is Op.LOG_SOFTMAX and cot is None else 0.0
    out[codes != 0] = np.nan
    full_codes = np.ascontiguousarray(np.broadcast_to(codes[:, None], out.shape))
    return Exact(view.unrows(out), view.unrows(full_codes))


def _softmax_fast(
    op: Op, xr: np.ndarray, view: RowView, fmt: FloatFormat, cot: np.ndarray | None
) -> Exact | None:
    """Rows without any special value: no masks, no patching, no copies."""
    rows = Rows({"x": xr, "m": xr.max(axis=1), "k": xr.argmax(axis=1)})
    if cot is not None:
        g = exact_f64(cot, "cotangent")
        g = view.batch(g)[:, None] if op is Op.LOGSUMEXP else view.rows(g)
        if not np.isfinite(g).all():
            return None
        rows.a["g"] = g
        rows.a["g_row"] = g[:, 0]
    kernel, zero, n_out = _SOFTMAX_KERNELS[(op, cot is not None, False)]
    hi, _, _ = tiered(kernel, rows, xr.shape[1] if n_out is None else n_out, fmt, zero)
    if op is Op.LOGSUMEXP and cot is None:
        return Exact(hi.reshape(view.batch_shape), np.zeros(view.batch_shape, dtype=np.uint8))
    return Exact(view.unrows(hi), np.zeros(view.shape, dtype=np.uint8))


_SOFTMAX_KERNELS = {
    (Op.SOFTMAX, False, False): (K.softmax, None, None),
    (Op.LOG_SOFTMAX, False, False): (K.log_softmax, None, None),
    (Op.LOGSUMEXP, False, False): (K.logsumexp, None, 1),
    (Op.LOGSUMEXP, False, True): (K.logsumexp_scaled, None, 1),
    (Op.SOFTMAX, True, False): (K.softmax_vjp, K.softmax_vjp_zero, None),
    (Op.LOG_SOFTMAX, True, False): (K.log_softmax_vjp, K.log_softmax_vjp_zero, None),
    (Op.LOGSUMEXP, True, False): (K.logsumexp_vjp, None, None),
    (Op.LOGSUMEXP, True, True): (K.logsumexp_vjp, None, None),
}
