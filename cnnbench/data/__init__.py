"""Data: LightningDataModules kept as tensors, augmented a whole batch at a time."""

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
