"""The LightningModule every cnnbench model derives from.

Concrete models (``lenet.py``, ``alexnet.py``) only build their layers and ``forward``;
this base class owns the training recipe: loss, accuracy metrics under the names
``train/acc``, ``val/acc``, ``test/acc``, the optimizer and the learning-rate schedule.

Example:
    >>> from cnnbench.models import create_model
    >>> model = create_model("lenet5", lr=0.01)
    >>> model.hparams.lr
    0.01
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.model_helpers import _restricted_classmethod
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from cnnbench.core.choices import check_choice
from cnnbench.core.vocab import OPTIMIZERS, SCHEDULERS
from cnnbench.models.geometry import GeometryError, infer_shapes
from cnnbench.models.input_check import check_new_input
from cnnbench.models.registry import MODELS

#: the recipe of a model that declares none (plugins): without a length, Lightning would train 1000 epochs
DEFAULT_RECIPE: dict[str, dict[str, Any]] = {"trainer": {"max_epochs": 5}}


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    if not (value >= 0 if allow_zero else value > 0) or not math.isfinite(value):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")


class ImageClassifier(L.LightningModule):
    """Shared training logic for image classifiers.

    Args:
        optimizer: ``sgd`` (Nesterov momentum), ``adam`` or ``adamw``.
        lr: Peak learning rate.
        momentum: SGD momentum.
        weight_decay: Decoupled for ``adamw``, L2 otherwise.
        scheduler: ``onecycle`` (warm-up then cosine decay, per step), ``cosine`` (per
            step) or ``none``.
        label_smoothing: Cross-entropy label smoothing.
    """

    #: registry name of the data module a model trains on when none is given
    default_data: ClassVar[str] = "mnist"
    #: default trainer/data settings of this model's training recipe (CLI and bench)
    recipe: ClassVar[dict[str, dict[str, Any]]] = DEFAULT_RECIPE

    # The knobs are annotated `str`, not with core.vocab's Literal aliases: jsonargparse would then
    # refuse a bad value itself ("Expected a typing.Literal[...]"), before check_choice's one line
    # listing the choices and the closest one; the vocabularies are still core.vocab's.
    def __init__(
        self,
        optimizer: str = "sgd",
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        scheduler: str = "onecycle",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        check_choice(optimizer, OPTIMIZERS, "optimizer")
        check_choice(scheduler, SCHEDULERS, "scheduler")
        _positive("lr", lr)
        _positive("weight_decay", weight_decay, allow_zero=True)
        _positive("momentum", momentum, allow_zero=True)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        # collects the init arguments of the whole subclass chain
        self.save_hyperparameters()
        self.val_acc = MulticlassAccuracy(self.hparams["num_classes"], average="micro")
        self.test_acc = MulticlassAccuracy(self.hparams["num_classes"], average="micro")

    # Lightning sets plain attributes (``_current_fx_name`` and the like) around each of the
    # ~40 hook calls of a training step; torch's Module.__setattr__ checks parameters, buffers
    # and submodules every time (~3 µs each). A str/number/None under a name already in
    # __dict__ cannot become any of those, so it is stored directly: the same result.
    _PLAIN_TYPES: ClassVar[tuple[type, ...]] = (str, int, float, bool, type(None))

    def __setattr__(self, name: str, value: Any) -> None:
        if type(value) in self._PLAIN_TYPES and name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ------------------------------------------------------------------ geometry helpers
    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) this model was built for."""
        size = self.hparams["input_size"]
        h, w = (size, size) if isinstance(size, int) else size
        return int(self.hparams["in_channels"]), int(h), int(w)

    def _flat_features(self, features: nn.Sequential, name: str) -> int:
        """Flattened size after ``features``, or a GeometryError naming the model."""
        try:
            c, h, w = infer_shapes(features, self.input_shape)[-1]
        except GeometryError as err:
            raise GeometryError(
                f"{name}(input_size={self.hparams['input_size']}, padding={self.hparams['padding']!r}, pool={self.hparams['pool']!r}): {err}"
            ) from None
        return c * h * w

    def example_input(self, batch_size: int = 2) -> torch.Tensor:
        """A random batch of the shape the model expects (for summaries and tests)."""
        return torch.randn(batch_size, *self.input_shape)

    #: extra advice for a wrong input size (e.g. which variant takes small images)
    input_hint: ClassVar[str] = ""
    #: True for models ending in an adaptive pool: other sizes their layers fit are accepted
    flexible_input: ClassVar[bool] = False

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a one-line :class:`InputShapeError` unless ``x`` is a batch this model takes.

        Reads shapes only (no device sync), so ``forward`` calls it first: a 28×28 digit given
        to LeNet-5 is named as such, not as torch's matrix-size mismatch three layers later.

        Example:
            >>> from cnnbench.models import create_model
            >>> try:
            ...     create_model("lenet5")(torch.zeros(2, 1, 28, 28))
            ... except ValueError as err:
            ...     print(str(err).split(";")[0])
            lenet5 expects 1×32×32 images, got 1×28×28
        """
        accepted = self.__dict__.get("_accepted_shapes")
        if accepted is None or x.shape[1:] not in accepted:
            self._accepted_shapes = check_new_input(self, x, accepted or set())

    #: rebuilds a model from a checkpoint file: :func:`cnnbench.checkpoint.load_model`, installed by
    #: :mod:`cnnbench.checkpoint` (the one owner of the checkpoint format) when it is imported
    checkpoint_loader: ClassVar[Callable[..., Any] | None] = None

    @_restricted_classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: Any,
        map_location: Any = None,
        hparams_file: Any = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Lightning's ``load_from_checkpoint``, callable on ``ImageClassifier`` for any registered model.

        Called on a base class, it builds the concrete class whose registry name the checkpoint
        stores. The file is read by :func:`cnnbench.checkpoint.load_model`.

        Example:
            >>> model = ImageClassifier.load_from_checkpoint("runs/lenet5/version_0/checkpoints/last.ckpt")  # doctest: +SKIP
        """
        loader = ImageClassifier.checkpoint_loader
        if loader is None:
            if MODELS.name_of(cls) is None:
                raise ValueError(
                    f"{cls.__name__}.load_from_checkpoint finds the model class through cnnbench.checkpoint: "
                    "import cnnbench.checkpoint first, or call cnnbench.load_from_checkpoint(path)"
                )
            loader = L.LightningModule.load_from_checkpoint.__func__  # type: ignore[attr-defined]
        return loader(cls, checkpoint_path, map_location, hparams_file, strict, **kwargs)

    def on_fit_start(self) -> None:
        """Refuse data whose images do not match the shape the model was built for."""
        datamodule = getattr(self.trainer, "datamodule", None)
        shape = getattr(datamodule, "image_shape", None)
        if shape is not None and tuple(shape) != self.input_shape:
            raise ValueError(
                f"{type(self).__name__} was built for {self.input_shape[0]}-channel {self.input_shape[1]}×{self.input_shape[2]} "
                f"images but the data gives {shape[0]}-channel {shape[1]}×{shape[2]} ones; build it with "
                f"in_channels={shape[0]}, input_size={shape[1]} (the CLI links these automatically), "
                f"or resize the images on the device with the data module's image_size={self.input_shape[1]}"
            )
        classes = getattr(datamodule, "num_classes", None)
        if classes is not None and classes > self.hparams["num_classes"]:
            raise ValueError(f"the data has {classes} classes but the model only {self.hparams['num_classes']} outputs")

    # ------------------------------------------------------------------ training
    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Training criterion; cross-entropy unless a model overrides it."""
        return F.cross_entropy(logits, target, label_smoothing=self.hparams["label_smoothing"])

    def on_train_start(self) -> None:
        self.on_train_epoch_start()  # a fit resumed mid-epoch starts without the epoch hook

    def on_train_epoch_start(self) -> None:
        self._train_correct = torch.zeros((), device=self.device, dtype=torch.long)
        self._train_seen = 0
        self._loss_sum = torch.zeros((), device=self.device, dtype=torch.float32)
        self._loss_n = 0

    #: the running sums of the unfinished epoch (``train/acc``) and logging window (``train/loss``)
    RUNNING_SUMS = ("_train_correct", "_train_seen", "_loss_sum", "_loss_n")

    def running_sums(self) -> dict[str, Any] | None:
        """The running sums an exact resume must store (checkpoint key ``running_sums``), or
        None before the first training epoch starts."""
        if not all(hasattr(self, k) for k in self.RUNNING_SUMS):
            return None
        return {k: getattr(self, k) for k in self.RUNNING_SUMS}

    def restore_running_sums(self, sums: dict[str, Any]) -> None:
        """Put back sums stored by :meth:`running_sums` (moved to this model's device)."""
        for k, v in sums.items():
            if k in self.RUNNING_SUMS:
                setattr(self, k, v.to(self.device) if isinstance(v, torch.Tensor) else v)

    #: the captured-step hook: set by :class:`cnnbench.training.captured_step.CapturedStep`
    #: while a fit runs captured steps, None otherwise (see :class:`StepEngineHook`)
    step_engine: StepEngineHook | None = None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.step_engine is not None:
            # forward, backward and update in one graph replay; its sums stay in the engine
            loss = self.step_engine.run(x, y)
        else:
            logits = self(x)
            loss = self.loss(logits, y)
            # running sums stay on the device, updated in place: no host sync, no per-step log
            self._train_correct.add_((logits.detach().argmax(-1) == y).sum())
            self._loss_sum.add_(loss.detach())
        self._train_seen += len(y)
        self._loss_n += 1
        every = max(int(getattr(self._trainer, "log_every_n_steps", 1) or 1), 1) if self._trainer else 1
        if (self.global_step + 1) % every == 0:
            self.log("train/loss", self._take_loss_sum() / self._loss_n, prog_bar=True)
            self._loss_n = 0
        return loss

    def _take_loss_sum(self) -> torch.Tensor:
        self.fold_engine_sums()
        loss, self._loss_sum = self._loss_sum, torch.zeros_like(self._loss_sum)
        return loss

    def fold_engine_sums(self) -> None:
        """Move a captured step's device sums into the model's own (before a log, an epoch
        end or a checkpoint, which stores the model's); the engine's restart from zero."""
        if self.step_engine is not None:
            loss, correct = self.step_engine.read_and_reset()
            self._loss_sum.add_(loss)
            self._train_correct.add_(correct)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        if self.step_engine is not None:
            optimizer_closure()  # training_step already updated the weights inside the graph
            return
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)

    def on_train_epoch_end(self) -> None:
        self.fold_engine_sums()
        if getattr(self, "_train_seen", 0):
            # equal shards per rank: the mean over ranks is the global accuracy
            self.log("train/acc", self._train_correct.float() / self._train_seen, prog_bar=True, sync_dist=True)

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        x, y = batch
        logits = self(x)
        (self.val_acc if stage == "val" else self.test_acc).update(logits, y)
        self.log(f"{stage}/loss", self.loss(logits, y), prog_bar=stage == "val", sync_dist=True)

    def _eval_epoch_end(self, stage: str) -> None:
        metric = self.val_acc if stage == "val" else self.test_acc
        if metric.update_count:
            self.log(f"{stage}/acc", metric.compute(), prog_bar=stage == "val")  # compute() syncs across ranks
        metric.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return self(x).softmax(dim=-1)

    def configure_optimizers(self) -> Any:
        hp: Any = self.hparams
        # no weight decay on biases and norm/scale parameters
        decay = [p for p in self.parameters() if p.ndim > 1]
        no_decay = [p for p in self.parameters() if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        opt: torch.optim.Optimizer
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.momentum > 0)
        elif hp.optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=hp.lr)
        else:
            opt = torch.optim.AdamW(groups, lr=hp.lr)
        if hp.scheduler == "none" or self._trainer is None:
            return opt
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        sched: torch.optim.lr_scheduler.LRScheduler
        if hp.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=total, pct_start=0.15)
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class StepEngineHook(Protocol):
    """The model's side of the captured training step: what :class:`ImageClassifier` calls on
    its ``step_engine`` (a :class:`cnnbench.training.captured_step.StepEngine`; models never
    import training, which is a layer above).

    While it is set, ``training_step`` hands each batch to :meth:`run` (forward, backward and
    the optimizer update in one graph replay), ``optimizer_step`` only runs Lightning's closure,
    and :meth:`ImageClassifier.fold_engine_sums` adds the engine's running loss/accuracy sums
    to the model's own before a log, an epoch end or a checkpoint.
    """

    def run(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One training step on this batch; returns its loss (a device tensor)."""
        ...

    def read_and_reset(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss sum, correct count) since the last call, zeroed in place."""
        ...
