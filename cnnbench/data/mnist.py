"""MNIST and Fashion-MNIST, read from the original IDX files in torchvision's layout
(``<root>/MNIST/raw/train-images-idx3-ubyte`` ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from cnnbench.data.augment import BatchAugment
from cnnbench.data.base import ImageDataModule
from cnnbench.data.files import DataError, check_files, download_guard, md5sum
from cnnbench.data.registry import register_data

_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format) with clear errors for damaged files.

    Raises:
        DataError: If the magic number is wrong or the file is shorter/longer than its
            header says (a truncated download).
    """
    data = path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (bad magic number); it is corrupted")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is corrupted: truncated inside its header")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(f"{path} is corrupted: its header promises {expected} bytes, the file has {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


@register_data("mnist")
class MNISTDataModule(ImageDataModule):
    """MNIST digits: 60,000 training and 10,000 test images, 10 classes.

    Defaults: 55,000 train / 5,000 validation (seeded split of the training set) /
    10,000 test. Images are zero-padded from 28×28 to ``image_size`` (32, the input LeNet-5
    was designed for: LeCun et al. 1998 centre the 28×28 field in a 32×32 image). Above
    32 the digits are padded to 32 and the batches resized on the device (bilinear), as
    AlexNet-sized models want them.
    Normalization: mean 0.1307, std 0.3081 (computed over the 60,000 training images).
    Augmentation presets: ``standard`` random shifts of up to 2 pixels, ``strong`` a random
    affine (±10°, ±10% zoom, ±2 px); never flips (digits are not mirror-symmetric).

    Example:
        >>> dm = MNISTDataModule(root="../shared/data", download=False)
        >>> dm.image_shape, dm.num_classes
        ((1, 32, 32), 10)
    """

    #: uncompressed files and their well-known MD5s
    files: ClassVar[dict[str, str | None]] = {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    }
    folder: ClassVar[str] = "MNIST"
    classes = [str(i) for i in range(10)]
    mean = (0.1307,)
    std = (0.3081,)
    augment_presets: ClassVar[dict[str, BatchAugment]] = {
        "none": BatchAugment(),
        "standard": BatchAugment(translate=2),
        "strong": BatchAugment(translate=2, rotate=10.0, scale=0.1),
    }

    def __init__(self, *args: Any, image_size: int = 32, **kwargs: Any) -> None:
        if not isinstance(image_size, int) or image_size < 28:
            raise ValueError(
                f"image_size must be an integer >= 28 (digits are padded, never cropped), got {image_size!r}"
            )
        self.image_size = image_size
        super().__init__(*args, **kwargs)

    @property
    def padded_size(self) -> int:
        """Side of the held images: 28×28 digits padded up to ``image_size``, at most 32."""
        return min(int(self.image_size or 32), 32)

    @property
    def raw_folder(self) -> Path:
        return self.root / self.folder / "raw"

    @property
    def stored_shape(self) -> tuple[int, int, int]:
        return (1, self.padded_size, self.padded_size)

    def _tv_class(self) -> Any:
        from torchvision import datasets

        return getattr(datasets, self.folder)

    def check(self) -> None:
        check_files(self.raw_folder, self.files, type(self).__name__, self.verify)
        if self.verify and all(md5 is None for md5 in self.files.values()):
            # no published MD5s for the uncompressed files: check the archives torchvision kept
            for archive, md5 in self._tv_class().resources:
                gz = self.raw_folder / Path(archive).name
                if gz.is_file() and md5sum(gz) != md5:
                    raise DataError(
                        f"{type(self).__name__}: corrupted file {gz} (md5 mismatch); delete it and download again"
                    )

    def fetch(self) -> None:
        with download_guard(self.root, self.folder, type(self).__name__):
            self._tv_class()(self.root, train=True, download=True)
            self._tv_class()(self.root, train=False, download=True)

    def read_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        prefix = "train" if train else "t10k"
        images = torch.from_numpy(read_idx(self.raw_folder / f"{prefix}-images-idx3-ubyte").copy())
        labels = torch.from_numpy(read_idx(self.raw_folder / f"{prefix}-labels-idx1-ubyte").astype(np.int64))
        if images.ndim != 3 or len(images) != len(labels):
            raise DataError(
                f"{self.raw_folder}: {prefix} images {tuple(images.shape)} and labels {len(labels)} do not match"
            )
        pad = self.padded_size - images.shape[-1]
        images = F.pad(images[:, None], (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
        return images, labels

    def pre_transforms(self) -> list[Any]:
        from torchvision.transforms import v2

        pad = self.padded_size - 28
        return [v2.Pad([pad // 2, pad // 2, pad - pad // 2, pad - pad // 2])] if pad else []

    def torchvision_dataset(self, train: bool, transform: Any) -> Dataset[Any]:
        return self._tv_class()(self.root, train=train, transform=transform, download=False)  # type: ignore[no-any-return]

    def state_dict(self) -> dict[str, Any]:
        # predict scales new digits to the 28×28 field, then pads like the training data
        return {**super().state_dict(), "source_size": 28}


@register_data("fashion_mnist")
class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Xiao et al. 2017): 28×28 grey clothing images, 10 classes, MNIST's
    file format and split sizes. Normalization: mean 0.2860, std 0.3530 (training set).
    Integrity: the downloaded ``.gz`` archives are checked against torchvision's MD5s.

    Example:
        >>> FashionMNISTDataModule(download=False).classes[0]
        'T-shirt/top'
    """

    files: ClassVar[dict[str, str | None]] = dict.fromkeys(MNISTDataModule.files)
    folder: ClassVar[str] = "FashionMNIST"
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    mean = (0.2860,)
    std = (0.3530,)
