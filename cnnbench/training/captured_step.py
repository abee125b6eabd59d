"""The captured training step: forward, backward and optimizer update as one CUDA-graph replay.

On a GPU a small CNN's step is a few hundred tiny kernels, and launching them from Python
costs more than running them: LeNet-5 at batch 128 spends most of an eager step waiting on
the host. Capturing the whole step once (``torch.cuda.CUDAGraph``) and replaying it turns
those launches into one. Everything the step reads that changes between steps lives in
tensors the graph reads in place:

* the batch: static input buffers, refilled with ``copy_`` before each replay;
* the learning rate and momentum/betas: 0-dim device tensors refreshed from the optimizer's
  param groups before each replay, so any torch LR scheduler (OneCycle cycles momentum too)
  works unchanged on the host and its values reach the graph;
* the optimizer state: the optimizer's own ``state`` tensors (SGD ``momentum_buffer``, Adam
  ``step``/``exp_avg``/``exp_avg_sq``), updated in place, so checkpoints have torch's layout
  and resume in either mode;
* running train loss/accuracy sums and a non-finite-loss flag: device tensors the graph
  adds to, read by the host only every ``log_every_n_steps`` (no sync in the steady state).

The optimizer update (SGD with Nesterov momentum, Adam, AdamW: the three ``ImageClassifier``
offers) lives in :mod:`cnnbench.training.fused_update`: torch's own SGD turns a tensor
learning rate into a host number (a sync, illegal during capture).

The model's side is a small hook (``ImageClassifier.step_engine``, see
:class:`cnnbench.models.base.StepEngineHook`): while a fit runs captured steps its
``training_step`` hands the batch to :meth:`StepEngine.run` and folds the engine's sums into
its own before logging or checkpointing (:meth:`StepEngine.read_and_reset`).

Where capture is not safe the fit runs Lightning's usual eager step and says why in one
line: no CUDA device, DDP (gradient all-reduce hooks), gradient accumulation, fp16 with a
dynamic loss scale, an optimizer this module does not implement, a model with its own
``training_step``, or a capture that fails (e.g. data-dependent control flow).

Example:
    >>> step = CapturedStep(mode="auto")  # a callback: L.Trainer(callbacks=[step])
    >>> step.mode
    'auto'
"""

from __future__ import annotations

import contextlib
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from cnnbench.core.choices import check_choice
from cnnbench.core.compat import require
from cnnbench.core.vocab import STEP_MODES, StepMode
from cnnbench.training.fused_update import clip, update
from cnnbench.training.resume import skip_lightning_backward

GRAPH_PRECISIONS = {"32-true": None, "32": None, "bf16-mixed": torch.bfloat16, "bf16-true": None}


def check_step_mode(mode: str) -> str:
    """Return ``mode`` if valid, else raise a ValueError listing the choices.

    Example:
        >>> check_step_mode("graph")
        'graph'
    """
    return check_choice(mode, STEP_MODES, "train_step")


def graph_blocker(trainer: L.Trainer, module: L.LightningModule, require_cuda: bool = True) -> str | None:
    """Why this fit cannot use a captured step, or None when it can.

    ``require_cuda=False`` asks only whether the step function applies (it runs on any
    device uncaptured; CPU tests use that)."""
    from cnnbench.models.base import ImageClassifier

    if not isinstance(module, ImageClassifier):
        return f"{type(module).__name__} is not a cnnbench ImageClassifier"
    if type(module).training_step is not ImageClassifier.training_step:
        return f"{type(module).__name__} has its own training_step"
    if not module.automatic_optimization:
        return "the model uses manual optimization"
    if require_cuda and trainer.strategy.root_device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if trainer.world_size > 1:
        return "multi-process training (DDP) all-reduces gradients outside the graph"
    if trainer.accumulate_grad_batches != 1:
        return "gradient accumulation (accumulate_grad_batches > 1)"
    precision = str(trainer.precision)
    if precision not in GRAPH_PRECISIONS:
        return f"precision {precision!r} (fp16 needs a dynamic loss scale; use bf16-mixed)"
    if len(trainer.optimizers) != 1:
        return f"{len(trainer.optimizers)} optimizers (one is supported)"
    blocker = optimizer_blocker(trainer.optimizers[0])
    if blocker:
        return blocker
    if trainer.gradient_clip_algorithm not in (None, "norm", "value"):
        return f"gradient clipping algorithm {trainer.gradient_clip_algorithm!r}"
    return None


def optimizer_blocker(optimizer: torch.optim.Optimizer) -> str | None:
    """Why :func:`update` cannot reproduce this optimizer, or None."""
    kind = type(optimizer)
    if kind not in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
        return f"optimizer {kind.__name__} (SGD, Adam and AdamW are captured)"
    for group in optimizer.param_groups:
        if group.get("maximize") or group.get("differentiable"):
            return "maximize/differentiable optimizer options"
        if kind is torch.optim.SGD and group.get("dampening", 0) != 0:
            return "SGD with dampening"
        if kind is not torch.optim.SGD and group.get("amsgrad"):
            return "Adam with amsgrad"
        if any(p.is_sparse for p in group["params"]):
            return "sparse gradients"
    return None


class StepEngine:
    """One training step of an ``ImageClassifier`` as a function of tensors, captured once.

    Args:
        module: The model (its ``forward`` and ``loss`` are the step).
        optimizer: A ``torch.optim.SGD``/``Adam``/``AdamW`` whose state this updates in place.
        clip_val: Gradient clipping value (None: off).
        clip_algorithm: ``norm`` (total 2-norm, as ``clip_grad_norm_``) or ``value``.
        autocast_dtype: Autocast dtype of the forward pass (bf16-mixed), or None.
        warmup: Eager steps before capture (cuDNN/cuBLAS pick algorithms and allocate).
        capture: Whether to capture at all; False runs the same function eagerly each step.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        clip_val: float | None = None,
        clip_algorithm: str | None = None,
        autocast_dtype: torch.dtype | None = None,
        warmup: int = 3,
        capture: bool = True,
    ) -> None:
        self.module, self.optimizer = module, optimizer
        # LR schedulers warn when optimizer.step() never ran; the update below is that step
        optimizer._opt_called = True  # type: ignore[attr-defined]
        self.clip_val = float(clip_val) if clip_val else None
        self.clip_algorithm = clip_algorithm or "norm"
        self.autocast_dtype = autocast_dtype
        self.warmup, self.capture = warmup, capture
        self.groups = [[p for p in g["params"] if p.requires_grad] for g in optimizer.param_groups]
        self.params = [p for group in self.groups for p in group]
        device = self.params[0].device
        self.device = device
        self.kind = type(optimizer)
        # hyperparameters a scheduler may change: lr, and momentum (SGD) or betas (Adam); float64
        # for a float64 model (float32 would round its lr and betas by ~1e-8), float32 otherwise
        dtype = torch.promote_types(self.params[0].dtype, torch.float32)
        self.hyper = [
            {name: torch.zeros((), device=device, dtype=dtype) for name in self._scheduled_names()}
            for _ in optimizer.param_groups
        ]
        self._hyper_host: list[dict[str, float]] = [{} for _ in optimizer.param_groups]
        self._init_state()
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.nonfinite = torch.zeros((), device=device, dtype=torch.bool)
        self.last_loss = torch.zeros((), device=device)
        self.steps = 0
        self.graph: Any = None
        self.failure: str | None = None
        self._static: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ state
    def _scheduled_names(self) -> tuple[str, ...]:
        return ("lr", "momentum") if self.kind is torch.optim.SGD else ("lr", "beta1", "beta2")

    def _init_state(self) -> None:
        """Create missing optimizer state in torch's layout, on the device (in-graph updates)."""
        for group, params in zip(self.optimizer.param_groups, self.groups):
            for p in params:
                state = self.optimizer.state[p]
                if self.kind is torch.optim.SGD:
                    if group["momentum"] != 0 and state.get("momentum_buffer") is None:
                        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    continue
                step = state.get("step")
                state["step"] = (
                    torch.zeros((), dtype=torch.float32, device=p.device)
                    if step is None
                    else torch.as_tensor(step, dtype=torch.float32).to(p.device)
                )
                for key in ("exp_avg", "exp_avg_sq"):
                    if state.get(key) is None:
                        state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def refresh_hyperparameters(self) -> None:
        """Copy the param groups' current lr/momentum/betas into the tensors the graph reads.

        ``fill_`` passes the value as a kernel argument: no host-device sync."""
        for group, tensors, seen in zip(self.optimizer.param_groups, self.hyper, self._hyper_host):
            values = {"lr": group["lr"]}
            if self.kind is torch.optim.SGD:
                values["momentum"] = group["momentum"]
            else:
                values["beta1"], values["beta2"] = group["betas"]
            for name, value in values.items():
                value = float(value)
                if seen.get(name) != value:
                    tensors[name].fill_(value)
                    seen[name] = value

    # ------------------------------------------------------------------ the step
    def step_body(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Forward, loss, gradients, clipping, update and running sums (what is captured)."""
        module: Any = self.module
        autocast = (
            # no cast cache: a weight cast cached before the capture would be replayed stale
            torch.autocast(self.device.type, dtype=self.autocast_dtype, cache_enabled=False)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            logits = module(x)
            loss = module.loss(logits, y)
        with torch.autocast(self.device.type, enabled=False):
            # a parameter the loss does not reach gets None and is left alone, as torch.optim does
            grads: list[torch.Tensor | None] = list(torch.autograd.grad(loss, self.params, allow_unused=True))
            if self.clip_val is not None:
                clip([g for g in grads if g is not None], self.clip_val, self.clip_algorithm)
            update(self.optimizer, self.groups, grads, self.hyper)
            loss = loss.detach().float()
            self.last_loss.copy_(loss)
            self.loss_sum.add_(loss)
            self.correct.add_((logits.detach().argmax(-1) == y).sum())
            self.nonfinite.logical_or_(~torch.isfinite(loss))

    def run(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One training step on this batch; returns the step's loss (a device tensor)."""
        self.refresh_hyperparameters()
        self.steps += 1
        static = self._static
        if self.graph is not None and static is not None and x.shape == static[0].shape and x.dtype == static[0].dtype:
            static[0].copy_(x)
            static[1].copy_(y)
            self.graph.replay()
        elif not self.capture or self.steps <= self.warmup or self.graph is not None:
            # warm-up, no capture, or an odd-shaped batch after capture: the same function eagerly
            self._eager(x, y)
        else:
            try:
                self._capture(x, y)
            except Exception as err:  # e.g. a host sync or data-dependent branch in the model
                self.graph, self._static, self.capture = None, None, False
                self.failure = f"capture failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
                rank_zero_info(f"training step: eager from step {self.steps} on ({self.failure})")
                self._eager(x, y)
        return self.last_loss

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.device.type != "cuda" or not self.capture:
            self.step_body(x, y)
            return
        # warm-up runs on a side stream, as torch.cuda.graphs' documentation prescribes
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self.step_body(x, y)
        torch.cuda.current_stream(self.device).wait_stream(side)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        static = (x.clone(), y.clone())
        graph = make_graph()
        with graph_context(graph):
            self.step_body(*static)
        self.graph, self._static = graph, static
        graph.replay()  # capturing ran nothing: this replay is the step of this batch

    def read_and_reset(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss sum, correct count) since the last reset, as new device tensors; zeroes the
        accumulators in place (the graph holds their addresses)."""
        loss, correct = self.loss_sum.clone(), self.correct.clone()
        self.loss_sum.zero_()
        self.correct.zero_()
        return loss, correct


# Indirection so CPU tests can stand in for CUDA graphs (a replay that re-runs the body).
def make_graph() -> Any:
    return torch.cuda.CUDAGraph()


def graph_context(graph: Any) -> Any:
    return torch.cuda.graph(graph)


class CapturedStep(Callback):
    """Run each training step as one CUDA-graph replay where that is safe.

    Args:
        mode: ``auto`` (captured on a single CUDA device when :func:`graph_blocker` finds
            nothing against it, else Lightning's eager step, saying why on a GPU), ``graph``
            (the same, but the reason is printed on any device) or ``eager`` (never capture).
        warmup: Eager steps before the capture.
        check_every: The host reads the non-finite-loss flag every this many steps.

    The model's ``training_step`` hands its batch to the engine (``module.step_engine``)
    and Lightning skips its own backward and ``optimizer.step``; step counters, LR
    schedulers (stepped by Lightning on the host), logging, checkpoints and resume are
    Lightning's as usual. Lightning's gradient hooks (``on_before_optimizer_step``,
    gradient-norm logging) do not see the captured gradients.
    """

    def __init__(self, mode: StepMode = "auto", warmup: int = 3, check_every: int = 25) -> None:
        require("torch", "the captured training step (torch._foreach updates with tensor hyperparameters)")
        self.mode = check_step_mode(mode)
        self.warmup, self.check_every = warmup, check_every
        self.engine: StepEngine | None = None
        self.reason: str | None = None
        #: after a fit with the engine: its step count and whether a graph was captured
        self.summary: dict[str, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.engine = None
        if self.mode == "eager":
            self.reason = "train_step='eager'"
            return
        capture = capture_enabled()
        self.reason = graph_blocker(trainer, pl_module, require_cuda=capture)
        if self.reason is not None:
            on_gpu = trainer.strategy.root_device.type == "cuda"
            if (on_gpu or self.mode == "graph") and trainer.is_global_zero:
                rank_zero_info(f"training step: eager ({self.reason})")
            return
        precision = str(trainer.precision)
        self.engine = StepEngine(
            pl_module,
            trainer.optimizers[0],
            clip_val=trainer.gradient_clip_val,
            clip_algorithm=trainer.gradient_clip_algorithm,
            autocast_dtype=GRAPH_PRECISIONS[precision],
            warmup=self.warmup,
            capture=capture,
        )
        pl_module.step_engine = self.engine  # type: ignore[assignment]
        skip_lightning_backward(trainer, True)  # the engine computes the gradients itself

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        engine = self.engine
        if engine is None or trainer.global_step % self.check_every:
            return
        if engine.nonfinite.item():
            from cnnbench.models.base import DivergedError

            raise DivergedError(
                f"training loss became NaN or infinite at or before step {trainer.global_step} (epoch {trainer.current_epoch})"
            )

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # the checkpoint stores the model's running sums (ResumeState, listed after this)
        if self.engine is not None:
            pl_module.fold_engine_sums()  # type: ignore[operator]

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._detach(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._detach(trainer, pl_module)

    def _detach(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.engine is not None:
            self.summary = {"steps": self.engine.steps, "captured": self.engine.graph is not None}
            skip_lightning_backward(trainer, False)
            pl_module.step_engine = None  # type: ignore[assignment]
            self.engine = None


def capture_enabled() -> bool:
    """Whether :class:`StepEngine` really captures; CPU tests patch this to run the same
    step function eagerly each step (there is no CUDA graph on a CPU)."""
    return True
