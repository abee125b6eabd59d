"""Random images, for throughput measurements where no data set is at hand (or wanted)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset, TensorDataset

from cnnbench.data.base import ImageDataModule
from cnnbench.data.registry import register_data


@register_data("synthetic")
class SyntheticDataModule(ImageDataModule):
    """Uniform random uint8 images with random labels; nothing to learn, nothing to download.

    Example:
        >>> dm = SyntheticDataModule(size=32, channels=3, train_images=1000)
        >>> dm.setup(); dm.splits["train"][0].shape
        torch.Size([1000, 3, 32, 32])
    """

    default_val_size: ClassVar[int | float] = 0

    def __init__(
        self,
        *args: Any,
        size: int = 32,
        channels: int = 1,
        classes: int = 10,
        train_images: int = 50_000,
        test_images: int = 1_000,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("augment", "none")
        super().__init__(*args, **kwargs)
        self.size, self.channels, self.train_images, self.test_images = size, channels, train_images, test_images
        self.classes = [str(i) for i in range(classes)]
        self.mean, self.std = (0.5,) * channels, (0.29,) * channels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def check(self) -> None:
        return None

    def read_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(int(train))
        n = self.train_images if train else self.test_images
        return torch.randint(0, 256, (n, *self.image_shape), dtype=torch.uint8, generator=gen), torch.randint(
            0, len(self.classes), (n,), generator=gen
        )

    def torchvision_dataset(self, train: bool, transform: Any) -> Dataset[Any]:
        x, y = self.read_split(train)
        return TensorDataset(x.float() / 255, y)
