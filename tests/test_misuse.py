"""from_logits misuse and the default path: the scenarios measure what the user meant.

The default path (an activation layer, then the probability loss) is judged by value and by
gradient with respect to the logits. A loss that clips the probability, as Keras does on the
JAX and PyTorch backends, answers a finite loss and a gradient of exactly 0 on a
confidently wrong example; an unclipped one answers what the fused loss would."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conformance.drawing import options_for
from conformance.misuse import SCENARIOS, run_misuse
from conformance.ops import Op
from conformance_adapters.interface import Axes, Implementation
from conformance_adapters.registry import get_adapter

TORCH = get_adapter("torch")
_AVAILABLE, _REASON = TORCH.availability()


def _probability_ce(clip: float) -> Any:
    def loss(p: Any, labels: Any, **options: Any) -> Any:
        import torch

        picked = p.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
        return -torch.log(picked.clamp(min=clip)) if clip else -torch.log(picked)

    return loss


class SoftmaxThenProbabilityLoss(type(TORCH)):  # type: ignore[misc]
    """A torch-backed framework whose activation layer is a softmax and whose sparse
    probability loss clips p at `clip` (0: no clipping)."""

    name = "softmax-then-probability-loss"

    def __init__(self, clip: float) -> None:
        super().__init__()
        self.clip = clip

    def activation_layer(self, op: Op) -> Any:
        import torch

        return lambda x, axis: torch.softmax(x, dim=axis)

    def _implementations(self) -> list[Implementation]:
        return [
            Implementation(
                "sparse_probability_ce",
                Op.SPARSE_PROBABILITY_CROSS_ENTROPY,
                _probability_ce(self.clip),
                axes=Axes.LAST,
                label_dtype="int64",
            )
        ]


def _default_path(clip: float) -> dict[str, Any]:
    adapter = SoftmaxThenProbabilityLoss(clip)
    impl = adapter.implementations()[0]
    misuse = run_misuse(adapter, impl, np.dtype("float32"), "cpu", "eager", options_for(impl, {}))
    return misuse["default-path"]


@pytest.mark.skipif(not _AVAILABLE, reason=_REASON)
def test_a_clipping_probability_loss_is_told_apart_on_the_default_path() -> None:
    clipped = _default_path(1e-7)
    assert clipped["reaction"] == "silent"
    assert clipped["relative_error"] > 0.4  # -log(1e-7) = 16.1 where the loss is 30
    assert clipped["gradient_relative_error"] > 0.99
    assert clipped["vanished"] == 2  # the wrong example: its label and its logit 30
    exact = _default_path(0.0)
    assert exact["relative_error"] < 1e-6
    assert exact["gradient_relative_error"] < 1e-5
    assert exact["vanished"] == 0


def test_the_default_path_needs_an_activation_layer_and_a_probability_loss() -> None:
    scenario = next(s for s in SCENARIOS if s.id == "default-path")
    impls = {i.op: i for i in get_adapter("scipy").implementations()}
    assert not any(scenario.applies(get_adapter("scipy"), i) for i in impls.values())


@pytest.mark.skipif(not _AVAILABLE, reason=_REASON)
def test_torch_binary_cross_entropy_after_a_sigmoid_is_judged_on_the_default_path() -> None:
    """nn.Sigmoid then BCELoss: sigmoid(30) rounds to 1 in float32 and the log is clamped at
    -100, so the loss is 100 where the fused loss is 30 and the gradient is exactly 0."""
    impl = next(i for i in TORCH.implementations() if i.op is Op.BINARY_CROSS_ENTROPY)
    got = run_misuse(TORCH, impl, np.dtype("float32"), "cpu", "eager", options_for(impl, {}))
    entry = got["default-path"]
    assert entry["reaction"] == "silent" and entry["relative_error"] > 2
    assert entry["gradient_relative_error"] > 0.99 and entry["vanished"] >= 1
    logits_impl = next(i for i in TORCH.implementations() if i.op is Op.SIGMOID_CROSS_ENTROPY)
    assert "default-path" not in run_misuse(
        TORCH, logits_impl, np.dtype("float32"), "cpu", "eager", options_for(logits_impl, {})
    )
