"""CIFAR-10 and CIFAR-100 from the original Python pickle batches, in torchvision's
layout (``<root>/cifar-10-batches-py/data_batch_1`` ...), MD5-checked."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnbench.data.augment import BatchAugment
from cnnbench.data.base import ImageDataModule, check_image_size
from cnnbench.data.files import DataError, check_files, download_guard
from cnnbench.data.registry import register_data

NATURAL_IMAGE_PRESETS = {
    "none": BatchAugment(),
    "standard": BatchAugment(translate=4, pad_mode="reflect", flip=True),
    "strong": BatchAugment(translate=4, pad_mode="reflect", flip=True, cutout=8),
}


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels of one pickle batch, or a DataError."""
    try:
        with path.open("rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except Exception as err:
        raise DataError(f"{path} is corrupted: not a readable CIFAR batch ({type(err).__name__}: {err})") from None
    if len(data) != len(labels):
        raise DataError(f"{path} is corrupted: {len(data)} images but {len(labels)} labels")
    return data, labels


@register_data("cifar10")
class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 (Krizhevsky 2009): 32×32 colour images, 10 classes.

    Defaults: 45,000 train / 5,000 validation (seeded split of the 50,000 training
    images) / 10,000 test. Normalization per channel (training set): mean (0.4914,
    0.4822, 0.4465), std (0.2470, 0.2435, 0.2616). Augmentation presets: ``standard``
    random crop with 4-pixel reflect padding and horizontal flips; ``strong`` adds 8×8
    cutout. ``image_size`` (default 32) resizes the augmented batches on the device
    (bilinear ``F.interpolate``), e.g. 224 for torchvision's AlexNet; the images stay
    held at 32×32.

    Example:
        >>> CIFAR10DataModule(download=False, image_size=224).image_shape
        (3, 224, 224)
    """

    base_folder: ClassVar[str] = "cifar-10-batches-py"
    tv_name: ClassVar[str] = "CIFAR10"
    label_key: ClassVar[str] = "labels"
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    augment_presets: ClassVar[dict[str, BatchAugment]] = NATURAL_IMAGE_PRESETS

    def __init__(self, *args: Any, image_size: int = 32, **kwargs: Any) -> None:
        self.image_size = check_image_size(image_size)
        super().__init__(*args, **kwargs)

    @property
    def stored_shape(self) -> tuple[int, int, int]:
        return (3, 32, 32)

    def _tv_class(self) -> Any:
        from torchvision import datasets

        return getattr(datasets, self.tv_name)

    def _lists(self) -> tuple[list[list[str]], list[list[str]]]:
        tv = self._tv_class()
        return tv.train_list, tv.test_list

    def check(self) -> None:
        train, test = self._lists()
        check_files(
            self.root / self.base_folder, {name: md5 for name, md5 in train + test}, type(self).__name__, self.verify
        )

    def fetch(self) -> None:
        with download_guard(self.root, self.base_folder, type(self).__name__):
            self._tv_class()(self.root, train=True, download=True)

    def read_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        names = [name for name, _ in self._lists()[0 if train else 1]]
        parts = [read_cifar_batch(self.root / self.base_folder / name, self.label_key) for name in names]
        images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        return images, torch.from_numpy(np.concatenate([p[1] for p in parts]))

    def torchvision_dataset(self, train: bool, transform: Any) -> Dataset[Any]:
        return self._tv_class()(self.root, train=train, transform=transform, download=False)  # type: ignore[no-any-return]


@register_data("cifar100")
class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: as CIFAR-10 with 100 fine classes. Normalization (training set): mean
    (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762).

    Example:
        >>> CIFAR100DataModule(download=False).num_classes
        100
    """

    base_folder: ClassVar[str] = "cifar-100-python"
    tv_name: ClassVar[str] = "CIFAR100"
    label_key: ClassVar[str] = "fine_labels"
    classes = [f"class_{i}" for i in range(100)]  # replaced by the meta file's names after setup
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)

    def after_setup(self) -> None:
        meta = self.root / self.base_folder / "meta"
        try:
            with meta.open("rb") as fh:
                self.classes = list(pickle.load(fh, encoding="latin1")["fine_label_names"])
        except Exception:  # names are cosmetic: keep the numbered ones
            pass
