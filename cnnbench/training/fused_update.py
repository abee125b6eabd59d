"""The optimizer update of the captured step, written with ``torch._foreach_*`` ops.

torch's own ``SGD.step`` turns a tensor learning rate into a host number (a sync, illegal
while a CUDA graph is captured), so :class:`~cnnbench.training.captured_step.StepEngine`
updates the weights with these functions instead. They read the learning rate and
momentum/betas from 0-dim device tensors and update the optimizer's own ``state`` in
torch's layout (SGD ``momentum_buffer``; Adam ``step``/``exp_avg``/``exp_avg_sq``), so a
checkpoint resumes in either mode. Tests check them against ``torch.optim`` step for step.

Example:
    >>> import torch
    >>> p = torch.nn.Parameter(torch.ones(2))
    >>> opt = torch.optim.SGD([p], lr=0.5, momentum=0.0)
    >>> update(opt, [[p]], [torch.ones(2)], [{"lr": torch.tensor(0.5), "momentum": torch.tensor(0.0)}])
    >>> p.data
    tensor([0.5000, 0.5000])
"""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def clip(grads: list[torch.Tensor], value: float, algorithm: str) -> None:
    """In-place clipping with no host sync: ``clip_grad_norm_`` / ``clip_grad_value_`` math."""
    if algorithm == "value":
        torch._foreach_clamp_min_(grads, -value)
        torch._foreach_clamp_max_(grads, value)
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    coef = torch.clamp(value / (total + 1e-6), max=1.0)
    torch._foreach_mul_(grads, coef)


@torch.no_grad()
def update(
    optimizer: torch.optim.Optimizer,
    groups: list[list[torch.Tensor]],
    grads: list[torch.Tensor | None],
    hyper: list[dict[str, torch.Tensor]],
) -> None:
    """One ``optimizer.step()`` from ``grads``, reading lr/momentum/betas from ``hyper``;
    parameters whose gradient is None are skipped, as ``torch.optim`` skips them."""
    start = 0
    for group, all_params, h in zip(optimizer.param_groups, groups, hyper):
        pairs = [(p, g) for p, g in zip(all_params, grads[start : start + len(all_params)]) if g is not None]
        start += len(all_params)
        if not pairs:
            continue
        params, g = [p for p, _ in pairs], [g for _, g in pairs]
        states = [optimizer.state[p] for p in params]
        if type(optimizer) is torch.optim.SGD:
            _sgd(group, params, g, states, h)
        else:
            _adam(group, params, g, states, h, decoupled=type(optimizer) is torch.optim.AdamW)


def _sgd(
    group: dict[str, Any],
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: list[dict[str, Any]],
    h: dict[str, torch.Tensor],
) -> None:
    # torch.optim.SGD: g += wd·p; buf = m·buf + g (buf starts at g: the same as from 0);
    # nesterov: g += m·buf, else g = buf; p -= lr·g
    if group["weight_decay"] != 0:
        grads = list(torch._foreach_add(grads, params, alpha=group["weight_decay"]))
    if group["momentum"] != 0:
        bufs = [s["momentum_buffer"] for s in states]
        torch._foreach_mul_(bufs, h["momentum"])
        torch._foreach_add_(bufs, grads)
        grads = list(torch._foreach_add(grads, torch._foreach_mul(bufs, h["momentum"]))) if group["nesterov"] else bufs
    torch._foreach_sub_(params, torch._foreach_mul(grads, h["lr"]))


def _adam(
    group: dict[str, Any],
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: list[dict[str, Any]],
    h: dict[str, torch.Tensor],
    decoupled: bool,
) -> None:
    # torch.optim.Adam/AdamW (capturable form): bias corrections from the step tensor
    lr, beta1, beta2, wd = h["lr"], h["beta1"], h["beta2"], group["weight_decay"]
    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1.0)
    if wd != 0:
        if decoupled:
            torch._foreach_mul_(params, 1 - lr * wd)
        else:
            grads = list(torch._foreach_add(grads, params, alpha=wd))
    exp_avg = [s["exp_avg"] for s in states]
    exp_avg_sq = [s["exp_avg_sq"] for s in states]
    # foreach lerp/addcmul take a tensor weight only as a host number (a sync): use mul/add
    torch._foreach_mul_(exp_avg, beta1)
    torch._foreach_add_(exp_avg, torch._foreach_mul(grads, 1 - beta1))
    torch._foreach_mul_(exp_avg_sq, beta2)
    torch._foreach_addcmul_(exp_avg_sq, torch._foreach_mul(grads, 1 - beta2), grads)
    step = steps[0]  # every parameter of a group steps together
    bias1 = 1 - torch.pow(beta1, step)
    bias2_sqrt = torch.sqrt(1 - torch.pow(beta2, step))
    step_size = lr / bias1
    denom = torch._foreach_div(torch._foreach_sqrt(exp_avg_sq), bias2_sqrt)
    torch._foreach_add_(denom, group["eps"])
    torch._foreach_sub_(params, torch._foreach_mul(torch._foreach_div(exp_avg, denom), step_size))
