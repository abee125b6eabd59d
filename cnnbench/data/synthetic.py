"""Random images, for throughput measurements where no data set is at hand (or wanted)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from cnnbench.data.base import ImageDataModule, check_image_size
from cnnbench.data.registry import register_data


@register_data("synthetic")
class SyntheticDataModule(ImageDataModule):
    """Uniform random uint8 images with random labels; nothing to learn, nothing to download.

    Images are held at ``size``; ``image_size`` (default: ``size``) resizes the batches on
    the device, as for CIFAR-10 at AlexNet's 224, so throughput measures the same work.

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
        image_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("augment", "none")
        super().__init__(*args, **kwargs)
        self.image_size = None if image_size is None else check_image_size(image_size)
        self.size, self.channels, self.train_images, self.test_images = size, channels, train_images, test_images
        self.classes = [str(i) for i in range(classes)]
        self.mean, self.std = (0.5,) * channels, (0.29,) * channels

    @property
    def stored_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def check(self) -> None:
        return None

    def read_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(int(train))
        n = self.train_images if train else self.test_images
        return torch.randint(0, 256, (n, *self.stored_shape), dtype=torch.uint8, generator=gen), torch.randint(
            0, len(self.classes), (n,), generator=gen
        )

    def torchvision_dataset(self, train: bool, transform: Any) -> Dataset[Any]:
        return _TransformedTensors(*self.read_split(train), transform)


class _TransformedTensors(Dataset[tuple[Any, int]]):
    """uint8 images run through the per-sample transform, as torchvision datasets do."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.transform(self.images[i]), int(self.labels[i])
