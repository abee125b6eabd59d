"""The captured step's optimizer update (``cnnbench.training.fused_update``) against
``torch.optim`` step for step, and its clipping against ``torch.nn.utils``."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cnnbench.training.captured_step import StepEngine
from cnnbench.training.fused_update import clip, update


# ----------------------------------------------------------------------------- the update
def _params(seed: int) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=gen)) for shape in ((5, 3), (3,), (4, 2, 2))]


def _schedule(step: int) -> tuple[float, float]:
    """A learning rate and momentum/beta1 that change every step, as OneCycle's do."""
    return 0.05 * (1 + step) / 4, 0.95 - 0.02 * step


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.SGD(
            [{"params": ps[:2], "weight_decay": 5e-4}, {"params": ps[2:], "weight_decay": 0.0}],
            lr=0.05,
            momentum=0.9,
            nesterov=True,
        ),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.0),
        lambda ps: torch.optim.Adam([{"params": ps[:2], "weight_decay": 1e-3}, {"params": ps[2:]}], lr=0.01),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.05),
    ],
    ids=["sgd-nesterov-groups", "sgd-momentum", "sgd-plain", "adam-l2", "adamw"],
)
def test_update_equals_torch_optim_step_for_step_with_scheduled_hyperparameters(make: Any) -> None:
    ours, ref = _params(0), _params(0)
    opt_ours, opt_ref = make(ours), make(ref)
    engine_groups = [list(g["params"]) for g in opt_ours.param_groups]
    names = ("lr", "momentum") if isinstance(opt_ours, torch.optim.SGD) else ("lr", "beta1", "beta2")
    hyper = [{n: torch.zeros(()) for n in names} for _ in opt_ours.param_groups]
    engine = StepEngine.__new__(StepEngine)  # only its state set-up, on these parameters
    engine.optimizer, engine.groups, engine.kind = opt_ours, engine_groups, type(opt_ours)
    engine._init_state()
    gen = torch.Generator().manual_seed(1)
    for step in range(6):
        lr, mom = _schedule(step)
        grads = [torch.randn(p.shape, generator=gen) for p in ours]
        for opt, h in ((opt_ours, hyper), (opt_ref, None)):
            for i, group in enumerate(opt.param_groups):
                group["lr"] = lr
                if "momentum" in group and group["momentum"] != 0:
                    group["momentum"] = mom
                if "betas" in group:
                    group["betas"] = (mom, 0.999)
                if h is not None:
                    h[i]["lr"].fill_(lr)
                    h[i].get("momentum", h[i].get("beta1")).fill_(group.get("momentum", mom))
                    if "beta2" in h[i]:
                        h[i]["beta2"].fill_(0.999)
        update(opt_ours, engine_groups, [g.clone() for g in grads], hyper)
        for p, g in zip(ref, grads):
            p.grad = g.clone()
        opt_ref.step()
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a.data, b.data, rtol=1e-5, atol=1e-6)
    # the optimizer state has torch's layout and values: a checkpoint resumes in either mode
    for a, b in zip(ours, ref):
        for key, value in opt_ref.state[b].items():
            torch.testing.assert_close(
                torch.as_tensor(opt_ours.state[a][key]).float(), torch.as_tensor(value).float(), rtol=1e-5, atol=1e-6
            )


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_clipping_equals_torch_nn_utils(algorithm: str) -> None:
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, 3, generator=gen) * 3, torch.randn(7, generator=gen)]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    if algorithm == "norm":
        torch.nn.utils.clip_grad_norm_(params, 0.5)
    else:
        torch.nn.utils.clip_grad_value_(params, 0.5)
    ours = [g.clone() for g in grads]
    clip(ours, 0.5, algorithm)
    for p, g in zip(params, ours):
        torch.testing.assert_close(g, p.grad)
