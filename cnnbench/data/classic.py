"""The classic per-sample pipeline (``loader="torchvision"``): torchvision datasets,
``transforms.v2`` in DataLoader workers. Kept for comparison and for data that does not
fit in memory; :class:`~cnnbench.data.augment.BatchAugment` recipes map onto it."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch.utils.data import Dataset, Subset

from cnnbench.data.augment import BatchAugment


class BatchPipeline(Protocol):
    """What the per-sample pipeline copies from a data module's batch pipeline
    (:class:`~cnnbench.data.base.ImageDataModule` has it all; this module does not import it)."""

    augmentation: BatchAugment
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def stored_shape(self) -> tuple[int, int, int]: ...

    def pre_transforms(self) -> list[Any]: ...


def classic_transform(dm: BatchPipeline, train: bool) -> Any:
    """The ``transforms.v2`` equivalent of the data module's batch pipeline, at the held
    size (:attr:`~cnnbench.data.base.ImageDataModule.stored_shape`); a resize to the
    model's size, if any, happens per batch on the device as on the tensor path."""
    from torchvision.transforms import v2

    aug = dm.augmentation
    _, h, w = dm.stored_shape
    steps: list[Any] = [v2.ToImage(), *dm.pre_transforms()]
    if train and (aug.rotate or aug.scale):
        steps.append(
            v2.RandomAffine(aug.rotate, (aug.translate / w, aug.translate / h), (1 - aug.scale, 1 + aug.scale))
        )
    elif train and aug.translate:
        mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}[aug.pad_mode]
        steps.append(v2.RandomCrop((h, w), padding=aug.translate, padding_mode=mode))
    if train and aug.flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(dm.mean), list(dm.std))]
    if train and aug.cutout:
        area = aug.cutout**2 / (h * w)
        steps.append(v2.RandomErasing(p=1.0, scale=(area, area), ratio=(1.0, 1.0)))
    return v2.Compose(steps)


def subset(dataset: Dataset[Any], indices: torch.Tensor | None) -> Dataset[Any]:
    """``dataset`` restricted to ``indices`` (the seeded train/val split), or as is."""
    return dataset if indices is None else Subset(dataset, indices.tolist())
