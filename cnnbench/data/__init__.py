"""Data: LightningDataModules kept as tensors, augmented a whole batch at a time.

One concern a file:

* ``registry.py``: ``register_data``, ``create_data``, ``list_data``.
* ``base.py``: :class:`ImageDataModule`, the base every data set derives from (seeded split,
  loaders, batch transforms on the device); ``link.py``: which model arguments the data decides.
* ``augment.py``: batch augmentation recipes; ``loader.py``: the resumable tensor batch loader;
  ``classic.py``: the per-sample torchvision pipeline (``loader="torchvision"``).
* ``mnist.py``, ``cifar.py``, ``imagefolder.py``, ``border.py``, ``synthetic.py``: one file per
  data set; ``files.py``: where data lives, checksums, downloads.

The data modules import nothing of the models (and the models nothing of them).

Example:
    >>> from cnnbench.data import create_data
    >>> create_data("synthetic", train_images=32, batch_size=8).image_shape
    (1, 32, 32)
"""

from cnnbench.data.augment import BatchAugment
from cnnbench.data.base import ImageDataModule
from cnnbench.data.border import BorderMNISTDataModule
from cnnbench.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from cnnbench.data.files import DataError
from cnnbench.data.imagefolder import ImageFolderDataModule
from cnnbench.data.loader import ModelInputLoader, TensorBatchLoader
from cnnbench.data.mnist import FashionMNISTDataModule, MNISTDataModule
from cnnbench.data.registry import DATA, create_data, list_data, register_data
from cnnbench.data.synthetic import SyntheticDataModule

__all__ = [
    "DATA",
    "BatchAugment",
    "BorderMNISTDataModule",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DataError",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "ModelInputLoader",
    "SyntheticDataModule",
    "TensorBatchLoader",
    "create_data",
    "list_data",
    "register_data",
]
