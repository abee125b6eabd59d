"""The captured step's fused update against ``torch.optim`` in float64, at a constant learning rate.

In float32 the engine and ``torch.optim`` round differently (foreach mul/add where torch
uses lerp, ``1 - beta1`` on the device): Adam amplifies those last-bit differences in
weights whose gradient is near zero, so a float32 comparison drifts (issue 17 saw 2.4e-3
in 12 steps). In float64 the rounding is ~1e-16, so any formula difference (a missing bias
correction, L2 where AdamW decays, eps in the wrong place) stands out by orders of
magnitude. The step runs through :class:`~cnnbench.training.captured_step.StepEngine` itself, on a real
LeNet-5 whose gradients depend on the weights the previous steps produced.
"""

from __future__ import annotations

import copy

import pytest
import torch

from cnnbench.models import create_model
from cnnbench.training.captured_step import StepEngine


@pytest.mark.parametrize(
    ("optimizer", "lr"),
    [("sgd", 0.05), ("adam", 1e-3), ("adamw", 1e-3)],
)
def test_engine_update_equals_torch_optim_in_float64_at_a_constant_lr(optimizer: str, lr: float) -> None:
    torch.manual_seed(0)
    # weight decay on the weight group only (the model's groups); SGD is Nesterov with momentum 0.9
    ours = create_model("lenet5", optimizer=optimizer, lr=lr, weight_decay=5e-2, scheduler="none").double()
    ref = copy.deepcopy(ours)
    start = [p.detach().clone() for p in ours.parameters()]
    engine = StepEngine(ours, ours.configure_optimizers(), capture=False)
    opt_ref = ref.configure_optimizers()
    gen = torch.Generator().manual_seed(1)
    moved = 0.0
    for _ in range(14):
        x = torch.randn(8, 1, 32, 32, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 10, (8,), generator=gen)
        loss = engine.run(x, y)
        opt_ref.zero_grad()
        ref_loss = ref.loss(ref(x), y)
        ref_loss.backward()
        opt_ref.step()
        assert float(loss) == pytest.approx(float(ref_loss.detach()), abs=1e-6)  # the engine logs float32
    for a, b, a0 in zip(ours.parameters(), ref.parameters(), start):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
        moved = max(moved, float((b - a0).abs().max()))
    assert moved > lr  # the weights really moved: equal after real steps, not before any
    state = engine.optimizer.state[next(ours.parameters())]
    if optimizer != "sgd":  # the step counter torch.optim reads for its bias corrections
        assert float(state["step"]) == 14.0
