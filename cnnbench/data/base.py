"""The LightningDataModule shared by every data set.

A subclass says where its files are, how to check and download them, and how to read a
split into one uint8 tensor; this class does the rest: the seeded train/val split,
loaders (fast in-memory tensors, or torchvision's per-sample pipeline), and batch-level
augmentation, normalization and resizing on the training device.

Two ways to iterate, one result. Under a running ``Trainer`` the tensor loader yields
uint8 batches (plus an augmentation seed) that :meth:`ImageDataModule.on_after_batch_transfer`
augments, normalizes and resizes on the training device: the fast path. Anywhere else
(a plain PyTorch loop, a notebook) the same loaders yield ``(images, labels)`` exactly
as the model sees them, on the CPU or on the device given to :meth:`ImageDataModule.to`.

Example:
    >>> from cnnbench.data import SyntheticDataModule
    >>> dm = SyntheticDataModule(train_images=64, batch_size=16, image_size=48)
    >>> x, y = next(iter(dm.train_dataloader()))
    >>> tuple(x.shape), x.dtype, tuple(y.shape)
    ((16, 1, 48, 48), torch.float32, (16,))
"""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from cnnbench.core.choices import check_choice
from cnnbench.core.vocab import LOADERS
from cnnbench.data.augment import BatchAugment
from cnnbench.data.files import DataError, default_root, network_timeout
from cnnbench.data.loader import ModelInputLoader, TensorBatchLoader


def check_image_size(value: Any, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum``, else a one-line ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"image_size must be an integer >= {minimum}, got {value!r}")
    return value


class ImageDataModule(L.LightningDataModule):
    """Base class: splits, loaders and batch transforms.

    Args:
        root: Data folder; defaults to ``$CNNBENCH_DATA_DIR`` or a per-user cache folder.
        batch_size: Training batch size per process.
        eval_batch_size: Validation/test batch size (default: 2 × ``batch_size``).
        val_size: Validation images taken from the training set: a count or a fraction.
        seed: Seed of the train/val split, the shuffling and the augmentation (``None``: 0;
            ``cnnbench fit`` passes its ``--seed_everything`` unless ``--data.seed`` is given).
        augment: Preset name: ``none``, ``standard`` or ``strong``.
        loader: ``tensor`` (data held as tensors, batch augmentation) or ``torchvision``
            (per-sample ``transforms.v2`` in DataLoader workers).
        num_workers: Worker processes of the ``torchvision`` loader.
        download: Download missing files in ``prepare_data`` (never when False).
        verify: Check file MD5s.
        on_device: Keep the tensors on the training GPU (``auto``: when training on one).

    Subclasses take ``image_size``: the side of the images the model receives. Images
    held smaller (CIFAR's 32×32 for AlexNet's 224×224) are augmented at their own size,
    then resized as a batch (bilinear ``F.interpolate``) on the device, never per sample.

    Outside a running ``Trainer`` the loaders yield ``(images, labels)`` ready for the
    model (float32, augmented when training, normalized, resized), on the CPU unless the
    module was moved with :meth:`to`.
    """

    #: registry name, set by ``register_data``
    name: str | None = None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    default_val_size: ClassVar[int | float] = 5000
    augment_presets: ClassVar[dict[str, BatchAugment]] = {"none": BatchAugment()}
    #: side of the images the model receives (None: as held); set by subclasses
    image_size: int | None = None

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_size: int | float | None = None,
        seed: int | None = None,
        augment: str = "standard",
        loader: str = "tensor",
        num_workers: int = 2,
        download: bool = True,
        verify: bool = True,
        on_device: str | bool = "auto",
    ) -> None:
        super().__init__()
        check_choice(augment, self.augment_presets, "augment preset")
        check_choice(loader, LOADERS, "loader")
        for label, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size or 1)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        val_size = self.default_val_size if val_size is None else val_size
        if val_size < 0 or (isinstance(val_size, float) and val_size >= 1):
            raise ValueError(f"val_size must be a count >= 0 or a fraction in [0, 1), got {val_size!r}")
        self.save_hyperparameters()
        if seed is None:  # the CLI fills it from --seed_everything; here the fixed default, recorded
            seed = self.hparams["seed"] = 0
        self.root = default_root(root)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or 2 * batch_size
        self.val_size, self.seed, self.loader, self.num_workers = val_size, seed, loader, num_workers
        self.download, self.verify, self.on_device = download, verify, on_device
        self.augmentation = self.augment_presets[augment]
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._norm: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._train_source: torch.Tensor | None = None
        self._device: torch.device | None = None  # set by to(): where standalone batches go

    # ------------------------------------------------------------------ subclass API
    @property
    @abstractmethod
    def stored_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images as held in memory and augmented."""

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the tensors the model receives: :attr:`stored_shape` resized to ``image_size``."""
        c, h, w = self.stored_shape
        return (c, self.image_size, self.image_size) if self.image_size else (c, h, w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`DataError` unless every file is present (and intact if ``verify``)."""

    def fetch(self) -> None:
        """Download the files (torchvision's mirrors and checksums)."""
        raise DataError(f"{type(self).__name__} cannot download; copy the files to {self.root}")

    @abstractmethod
    def read_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The official train or test split: uint8 images (N, C, H, W), int64 labels."""

    @abstractmethod
    def torchvision_dataset(self, train: bool, transform: Any) -> Dataset[Any]:
        """The same split as a torchvision dataset, for ``loader="torchvision"``."""

    # ------------------------------------------------------------------ Lightning hooks
    def prepare_data(self) -> None:
        """Check the files; download what is missing when ``download`` is on (rank 0 only)."""
        try:
            self.check()
            return
        except DataError:
            if not self.download:
                raise
        try:
            with network_timeout():
                self.fetch()
        except DataError:
            raise
        except Exception as err:  # any network/IO failure: say what and where, not how deep
            raise DataError(
                f"{type(self).__name__}: download into {self.root} failed ({type(err).__name__}: {err}).\n"
                f"Fix: run on a machine with internet access, or copy the files there and use download=False."
            ) from None
        self.check()

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.check()
        images, labels = self.read_split(train=True)
        images = images.contiguous()  # decoded images can arrive channels-last: batch ops are slow on those
        n_val = round(self.val_size * len(labels)) if isinstance(self.val_size, float) else int(self.val_size)
        if n_val >= len(labels):
            raise ValueError(f"val_size={self.val_size} leaves no training images (the training set has {len(labels)})")
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
        val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
        self.split_indices = {"train": train_idx, "val": val_idx}
        self.splits["train"] = (images[train_idx], labels[train_idx])
        self.splits["val"] = (images[val_idx], labels[val_idx])
        test_images, test_labels = self.read_split(train=False)
        self.splits["test"] = (test_images.contiguous(), test_labels)
        self.after_setup()
        self._place(self._target_device())

    def _place(self, device: torch.device | None) -> None:
        """Pad the training images once for random crops, and move the splits to ``device``.

        Crops are then cut from a border added here, not per batch; ``splits["train"]`` is a
        view of the unpadded middle, so the border costs no second copy of the data.
        """
        border = self.augmentation.border if self.loader == "tensor" else 0
        images, labels = self.splits["train"]
        source = self.augmentation.pad(images) if border else images  # on CPU: every dtype and mode
        if device is not None:
            source, labels = source.to(device), labels.to(device)
        train = (source[:, :, border:-border, border:-border] if border else source, labels)
        others = {k: v for k, v in self.splits.items() if k != "train"}
        if device is not None:
            others = {k: (x.to(device), y.to(device)) for k, (x, y) in others.items()}
        self.splits = {"train": train, **others}
        self._train_source = source if border else None

    def after_setup(self) -> None:
        """Hook for subclasses that derive statistics from the training split."""

    def pre_transforms(self) -> list[Any]:
        """Per-sample geometry (pad, resize) the ``torchvision`` loader applies first."""
        return []

    def _target_device(self) -> torch.device | None:
        if self.loader != "tensor":
            return None
        if self.trainer is None:  # a plain loop: where to() asked for (the CPU by default)
            return self._device if self._device is not None and self._device.type != "cpu" else None
        if self.on_device is False:
            return None
        device = self.trainer.strategy.root_device
        return device if device.type == "cuda" else None

    def _for_trainer(self) -> bool:
        """True while a Trainer runs (fit/validate/test/predict): loaders take the fast path."""
        status = getattr(getattr(self.trainer, "state", None), "status", None)
        return getattr(status, "value", None) == "running"

    @property
    def device(self) -> torch.device:
        """Where standalone loaders put their batches (see :meth:`to`)."""
        return self._device or torch.device("cpu")

    def to(self, device: str | torch.device) -> ImageDataModule:
        """Yield standalone batches on ``device``, and hold the tensor loader's images there.

        Like ``nn.Module.to``, returns the module itself. A ``Trainer`` ignores it: it
        moves data to its own device.

        Example:
            >>> from cnnbench.data import SyntheticDataModule
            >>> dm = SyntheticDataModule(train_images=32, batch_size=8).to("cpu")
            >>> next(iter(dm.test_dataloader()))[0].device
            device(type='cpu')
        """
        self._device = torch.device(device)
        if self.splits and self.loader == "tensor":
            moved = {k: (x.to(self._device), y.to(self._device)) for k, (x, y) in self.splits.items()}
            if self._train_source is not None:  # keep the training split a view of the padded copy
                b = self.augmentation.border
                self._train_source = self._train_source.to(self._device)
                moved["train"] = (self._train_source[:, :, b:-b, b:-b], moved["train"][1])
            self.splits = moved
        return self

    def _tensor_loader(self, split: str, train: bool) -> TensorBatchLoader:
        x, y = self.splits[split]
        if train and self._train_source is not None:
            x = self._train_source  # batches carry the crop border: see on_after_batch_transfer
        trainer = self.trainer if self._for_trainer() else None
        epoch_fn = (lambda: trainer.current_epoch) if trainer is not None else None
        position_fn = (lambda: trainer.fit_loop.epoch_loop.batch_progress.current.processed) if trainer else None  # type: ignore[attr-defined]
        return TensorBatchLoader(
            x,
            y,
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=train,
            seed=self.seed,
            with_seed=train,
            epoch_fn=epoch_fn if train else None,
            position_fn=position_fn if train else None,
        )

    def _torchvision_loader(self, split: str, train: bool) -> DataLoader[Any]:
        from cnnbench.data.classic import classic_transform, subset

        transform = classic_transform(self, train)
        dataset = subset(self.torchvision_dataset(split != "test", transform), self.split_indices.get(split))
        if self._for_trainer():
            on_gpu = self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        else:
            on_gpu = self.device.type == "cuda"
        return DataLoader(
            dataset,
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=on_gpu,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _loader(self, split: str, train: bool = False) -> Any:
        self.setup()
        raw = self._tensor_loader(split, train) if self.loader == "tensor" else self._torchvision_loader(split, train)
        if self._for_trainer():
            return raw  # uint8 (+ seed): on_after_batch_transfer finishes on the training device
        return ModelInputLoader(raw, lambda batch: self.on_after_batch_transfer(batch, 0), self.device)

    def train_dataloader(self) -> Any:
        return self._loader("train", train=True)

    def val_dataloader(self) -> Any:
        self.setup()
        return self._loader("val") if len(self.splits["val"][1]) else []

    def test_dataloader(self) -> Any:
        return self._loader("test")

    def predict_dataloader(self) -> Any:
        return self._loader("test")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in 0-255 (uint8 or float) → the model's input: float32 ``(x/255 - mean) / std``,
        resized to :attr:`image_shape` when held smaller or larger (a new tensor)."""
        if x.device not in self._norm:
            std = torch.tensor(self.std, device=x.device)[:, None, None]
            mean = torch.tensor(self.mean, device=x.device)[:, None, None]
            self._norm[x.device] = (1.0 / (255.0 * std), mean / std)
        scale, shift = self._norm[x.device]
        # in place on the copy: 2 passes, not 3; resized after, on fewer pixels (the two commute:
        # bilinear weights sum to 1 and normalization is affine per channel)
        return self.resize(x.to(torch.float32, copy=True).mul_(scale).sub_(shift))

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """A float batch (N, C, H, W) resized to :attr:`image_shape` (bilinear; antialiased
        when shrinking), or ``x`` itself when it already has that size."""
        _, h, w = self.image_shape
        if x.shape[-2] == h and x.shape[-1] == w:
            return x
        shrink = x.shape[-2] > h or x.shape[-1] > w
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move the loaders' plain tuples/lists with one ``.to`` per tensor; Lightning's generic
        walk over any collection costs ~40 µs a step. Anything else goes the Lightning way."""
        if type(batch) in (tuple, list):
            non_blocking = device.type not in ("cpu", "mps")  # the rule Lightning applies
            moved = [x.to(device, non_blocking=non_blocking) if isinstance(x, torch.Tensor) else x for x in batch]
            return moved if type(batch) is list else tuple(moved)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment (training batches carry a seed), normalize and resize uint8 batches on device.

        Training batches of the tensor loader carry the crop border (see :meth:`setup`).
        """
        if not isinstance(batch, list | tuple) or not isinstance(batch[0], torch.Tensor):
            return batch
        x = batch[0]
        if x.dtype != torch.uint8:  # the torchvision path normalized per sample: only the size is left
            resized = self.resize(x) if x.ndim == 4 else x
            return batch if resized is x else (resized, *batch[1:])
        if len(batch) == 3:
            x = self.augmentation(x, seed=batch[2], padded=self._train_source is not None)
        return self.normalize(x), batch[1]

    def state_dict(self) -> dict[str, Any]:
        # saved in checkpoints: what `predict` needs to preprocess images like training did
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "classes": list(self.classes),
            "image_shape": list(self.image_shape),
            "stored_shape": list(self.stored_shape),
        }

    def __repr__(self) -> str:
        # Lightning's own __str__ builds every loader (reading the data); this reads nothing
        sizes = {k: len(v[1]) for k, v in self.splits.items()} if self.splits else "not set up"
        parts = [
            f"root={os.fspath(self.root)!r}",
            f"image_shape={self.image_shape}",
            f"classes={len(self.classes)}",
            f"batch_size={self.batch_size}",
            f"augment={self.hparams.get('augment', 'none')!r}",
            f"loader={self.loader!r}",
            f"sizes={sizes}",
        ]
        if self.stored_shape != self.image_shape:
            parts.insert(2, f"stored_shape={self.stored_shape}")
        if self._device is not None:
            parts.append(f"device={str(self._device)!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    __str__ = __repr__

    def describe(self) -> str:
        """One line: class, root, shapes, sizes (the same as ``repr``)."""
        return repr(self)
