"""Throughput of the exact reference (elements of x per second, one thread).

    python benchmarks/reference.py [--repeat N] [--quick]

Float32 inputs exercise tier 1 (float64 arithmetic), float64 inputs tier 2 (longdouble).
Gradients (on 64x1000) use random cotangents, as the harness does. Float64 gradients are
slow: elements that cancel by more than 2**7 send their rows to mpmath (docs/reference.md).
BLAS/OpenMP threads are pinned to one before numpy is imported.
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from conformance import reference  # noqa: E402
from conformance.ops import Op  # noqa: E402

SHAPES = ((1000, 1000), (64, 100_000))
OPS = (
    Op.SOFTMAX,
    Op.LOG_SOFTMAX,
    Op.LOGSUMEXP,
    Op.SOFTMAX_CROSS_ENTROPY,
    Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
)


def _inputs(op: Op, shape: tuple[int, int], dtype: type, rng: np.random.Generator):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    if op is Op.SOFTMAX_CROSS_ENTROPY:
        t = rng.random(shape).astype(dtype)
        return x, t / t.sum(axis=-1, keepdims=True)
    if op is Op.SPARSE_SOFTMAX_CROSS_ENTROPY:
        return x, rng.integers(0, shape[-1], size=shape[0])
    return x, None


def measure(op: Op, shape: tuple[int, int], dtype: type, repeat: int, grad: bool = False) -> float:
    """Best-of-`repeat` elements per second of evaluate (or vjp when `grad`)."""
    rng = np.random.default_rng(0)
    x, labels = _inputs(op, shape, dtype, rng)
    out_shape = reference.evaluate(op, x, labels).value.shape
    cot = rng.standard_normal(out_shape) + 0.5  # as the harness draws them
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        if grad:
            reference.vjp(op, x, labels, cotangent=cot)
        else:
            reference.evaluate(op, x, labels)
        best = min(best, time.perf_counter() - t0)
    return x.size / best


GRAD_SHAPE = (64, 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="only 1000x1000, no gradients")
    args = parser.parse_args()
    shapes = SHAPES[:1] if args.quick else SHAPES
    print(f"{'op':30} {'shape':>10} {'dtype':>8} {'M elements/s':>13}")
    for op in OPS:
        for shape in shapes:
            for dtype in (np.float32, np.float64):
                v = measure(op, shape, dtype, args.repeat)
                print(
                    f"{op.value:30} {'x'.join(map(str, shape)):>10} {np.dtype(dtype).name:>8} "
                    f"{v / 1e6:13.2f}",
                    flush=True,
                )
    if args.quick:
        return
    print(f"\ngradients (vjp, random cotangent), {GRAD_SHAPE[0]}x{GRAD_SHAPE[1]}:")
    for op in OPS:
        for dtype in (np.float32, np.float64):
            v = measure(op, GRAD_SHAPE, dtype, args.repeat, grad=True)
            print(
                f"{op.value:30} {'x'.join(map(str, GRAD_SHAPE)):>10} "
                f"{np.dtype(dtype).name:>8} {v / 1e6:13.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
