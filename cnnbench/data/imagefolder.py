"""Your own images: ``<root>/train/<class>/*`` and ``<root>/test/<class>/*`` in any format
PIL reads. Every image is decoded once and cached as a tensor under the per-user cache
folder (never inside ``root``), so later runs and epochs skip decoding."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnbench.core.atomic import write_atomic
from cnnbench.core.images import convert_mode, image_channels
from cnnbench.data.augment import BatchAugment
from cnnbench.data.base import ImageDataModule, check_image_size
from cnnbench.data.cifar import NATURAL_IMAGE_PRESETS
from cnnbench.data.files import DataError, cache_dir
from cnnbench.data.registry import register_data

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def list_images(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(path, class index) of every image under ``folder/<class>/``, in a stable order."""
    files = [
        (path, label)
        for label, name in enumerate(classes)
        for path in sorted((folder / name).rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    # a fixed shuffle, so that a partial pass (limit_test_batches, max_images) is not one class
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(0)).tolist()
    return [files[i] for i in order]


#: decoding this many images or more shows a progress bar (about a second's work)
PROGRESS_FROM = 2000


def decode_all(
    files: list[tuple[Path, int]], channels: int, size: tuple[int, int] | None, label: str
) -> list[np.ndarray]:
    """Decode every image, with a progress bar on stderr for long folders (the first read
    of CIFAR-10's 60,000 JPEGs takes ~15 s; later reads come from the cache)."""
    if len(files) < PROGRESS_FROM:
        return [decode(p, channels, size) for p, _ in files]
    from rich.console import Console
    from rich.progress import track

    console = Console(stderr=True)
    return [decode(p, channels, size) for p, _ in track(files, description=label, console=console, transient=False)]


def decode(path: Path, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """One image as a (C, H, W) uint8 array, converted to ``channels`` and resized to ``size``."""
    from PIL import Image

    try:
        with Image.open(path) as raw:
            img = raw.convert(convert_mode(channels))
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except Exception as err:
        raise DataError(f"{path}: cannot be read as an image ({type(err).__name__}: {err})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


@register_data("imagefolder")
class ImageFolderDataModule(ImageDataModule):
    """Images in class folders: ``train/<class>/*`` and ``test/<class>/*``.

    Channels (1 for greyscale, else 3) and size come from the first training image unless
    ``channels`` / ``image_size`` are given; all images are converted to them. An
    ``image_size`` smaller than that image is applied once, at decoding (the cache holds
    the small images); a larger one is applied per batch on the device (bilinear), so the
    cache holds the images at their own size, not 49× larger at 224 for 32×32 files.
    Normalization mean/std are computed per channel from the training split. Defaults:
    10% of the training images for validation; CIFAR-style augmentation presets.

    Example:
        >>> import tempfile
        >>> try:
        ...     ImageFolderDataModule(root=tempfile.mkdtemp())
        ... except Exception as err:
        ...     print(type(err).__name__)
        DataError
    """

    default_val_size: ClassVar[int | float] = 0.1
    augment_presets: ClassVar[dict[str, BatchAugment]] = NATURAL_IMAGE_PRESETS

    def __init__(
        self,
        root: str | None = None,
        *args: Any,
        image_size: int | None = None,
        channels: int | None = None,
        cache: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, *args, **kwargs)
        self.cache = cache
        train = self.root / "train"
        if not train.is_dir() or not (self.root / "test").is_dir():
            raise DataError(
                f"ImageFolderDataModule: expected folders {train}/<class>/ and {self.root / 'test'}/<class>/"
            )
        self.classes = sorted(p.name for p in train.iterdir() if p.is_dir())
        first = next(iter(list_images(train, self.classes)), None)
        if first is None:
            raise DataError(f"ImageFolderDataModule: no images found under {train}/<class>/")
        probe = decode(first[0], channels or 3, None)
        if channels is None:
            from PIL import Image

            with Image.open(first[0]) as img:
                channels = image_channels(img.mode)
        self.channels = channels
        native = (int(probe.shape[1]), int(probe.shape[2]))
        if image_size is not None:
            check_image_size(image_size)
        upscale = image_size is not None and image_size >= max(native)
        # held size: decoded to image_size when that shrinks, else as the files are (resized on device)
        self.size = native if image_size is None or upscale else (image_size, image_size)
        self.image_size = image_size if upscale and (image_size, image_size) != native else None
        self.mean, self.std = (0.5,) * channels, (0.25,) * channels  # replaced from the training split

    @property
    def stored_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def check(self) -> None:
        for split in ("train", "test"):
            if not list_images(self.root / split, self.classes):
                raise DataError(f"ImageFolderDataModule: no images found under {self.root / split}/<class>/")

    def _cache_file(self, split: str, files: list[tuple[Path, int]]) -> Path:
        key = hashlib.sha1(usedforsecurity=False)
        key.update(f"{self.root.resolve()}|{split}|{self.stored_shape}|{len(files)}".encode())
        for path, _ in files:
            key.update(f"{path}|{os.stat(path).st_mtime_ns}".encode())
        return cache_dir("imagefolder") / f"{key.hexdigest()}.pt"

    def read_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        split = "train" if train else "test"
        files = list_images(self.root / split, self.classes)
        cached = self._cache_file(split, files) if self.cache else None
        if cached is not None and cached.is_file():
            blob = torch.load(cached, weights_only=True)
            return blob["images"], blob["labels"]
        images = torch.from_numpy(
            np.stack(decode_all(files, self.channels, self.size, f"decoding {len(files)} {split} images"))
        )
        labels = torch.tensor([label for _, label in files], dtype=torch.int64)
        if cached is not None:
            with contextlib.suppress(OSError):  # a read-only cache only costs speed
                write_atomic(cached, lambda fh: torch.save({"images": images, "labels": labels}, fh))
        return images, labels

    def after_setup(self) -> None:
        x = self.splits["train"][0].float() / 255.0
        self.mean = tuple(x.mean(dim=(0, 2, 3)).tolist())
        self.std = tuple(x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
        self._norm.clear()

    def pre_transforms(self) -> list[Any]:
        from torchvision.transforms import v2

        return [v2.Grayscale() if self.channels == 1 else v2.RGB(), v2.Resize(list(self.size), antialias=True)]

    def torchvision_dataset(self, train: bool, transform: Any) -> Dataset[Any]:
        from torchvision.datasets import ImageFolder

        split = "train" if train else "test"
        dataset = ImageFolder(str(self.root / split), transform=transform)
        # the tensor path's file order (list_images), so that split indices name the same images
        dataset.samples = [(str(path), label) for path, label in list_images(self.root / split, self.classes)]
        dataset.imgs, dataset.targets = dataset.samples, [label for _, label in dataset.samples]
        return dataset
