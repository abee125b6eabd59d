"""Fashion-MNIST, CIFAR-100 and synthetic data read through the real loading code from
small files in the real formats (IDX, CIFAR-100 pickles), compared with what was written."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import write_idx

from cnnbench.data import CIFAR100DataModule, DataError, FashionMNISTDataModule, SyntheticDataModule


def _written_split(dm: object, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    return dm.splits[split]  # type: ignore[attr-defined,no-any-return]


def test_fashion_mnist_reads_idx_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(3)
    arrays = {}
    for prefix, n in (("train", 50), ("t10k", 20)):
        images, labels = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), rng.integers(0, 10, n).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[prefix] = (images, labels)
    dm = FashionMNISTDataModule(root=str(tmp_path), val_size=10, download=False)
    dm.setup()
    train_x, train_y = arrays["train"]
    # the held images are the written ones, zero-padded 28 → 32, at the split's indices
    for split in ("train", "val"):
        idx = dm.split_indices[split].numpy()
        x, y = _written_split(dm, split)
        assert x.shape == (len(idx), 1, 32, 32) and int(x[:, :, :2].sum()) == 0 and int(x[:, :, -2:].sum()) == 0
        assert np.array_equal(x[:, 0, 2:30, 2:30].numpy(), train_x[idx]) and np.array_equal(y.numpy(), train_y[idx])
    x, y = _written_split(dm, "test")
    assert np.array_equal(x[:, 0, 2:30, 2:30].numpy(), arrays["t10k"][0]) and np.array_equal(
        y.numpy(), arrays["t10k"][1]
    )
    assert dm.classes[9] == "Ankle boot" and dm.mean == (0.2860,)
    # a kept .gz archive is checked against torchvision's MD5 for it
    import torchvision

    archive = raw / "train-images-idx3-ubyte.gz"
    archive.write_bytes(gzip.compress(b"not the real archive"))
    resources = [(f"{torchvision.datasets.FashionMNIST.mirrors[0]}train-images-idx3-ubyte.gz", "0" * 32)]
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "resources", resources)
    with pytest.raises(DataError, match="corrupted file .*train-images-idx3-ubyte.gz"):
        FashionMNISTDataModule(root=str(tmp_path), val_size=10, download=False).setup()


def _pickle(path: Path, entry: dict[str, object]) -> str:
    with path.open("wb") as fh:
        pickle.dump(entry, fh)
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar100_reads_pickles_and_class_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(4)
    written, md5s = {}, {}
    for name, n in (("train", 60), ("test", 25)):
        data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        fine, coarse = rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist()
        entry = {"filenames": [], "batch_label": name, "fine_labels": fine, "coarse_labels": coarse, "data": data}
        md5s[name] = _pickle(folder / name, entry)
        written[name] = (data.reshape(-1, 3, 32, 32), np.array(fine))
    names = [f"fine_{i}" for i in range(100)]
    md5s["meta"] = _pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": []})
    tv = torchvision.datasets.CIFAR100
    monkeypatch.setattr(tv, "train_list", [["train", md5s["train"]]])
    monkeypatch.setattr(tv, "test_list", [["test", md5s["test"]]])
    dm = CIFAR100DataModule(root=str(tmp_path), val_size=12, download=False)
    dm.setup()
    for split in ("train", "val"):
        idx = dm.split_indices[split].numpy()
        x, y = _written_split(dm, split)
        assert np.array_equal(x.numpy(), written["train"][0][idx]) and np.array_equal(
            y.numpy(), written["train"][1][idx]
        )
    x, y = _written_split(dm, "test")
    assert np.array_equal(x.numpy(), written["test"][0]) and np.array_equal(y.numpy(), written["test"][1])
    assert dm.classes == names and dm.num_classes == 100  # fine labels, names from the meta file
    # a batch of the wrong format is named, not a KeyError
    _pickle(folder / "test", {"data": written["test"][0].reshape(25, -1), "labels": [0] * 25})
    with pytest.raises(DataError, match="test is corrupted"):
        CIFAR100DataModule(root=str(tmp_path), val_size=12, download=False, verify=False).setup()


def test_synthetic_is_deterministic_uint8_of_the_asked_shape() -> None:
    a = SyntheticDataModule(channels=3, size=10, classes=4, train_images=40, test_images=8, val_size=8)
    b = SyntheticDataModule(channels=3, size=10, classes=4, train_images=40, test_images=8, val_size=8)
    a.setup()
    b.setup()
    for split in ("train", "val", "test"):
        assert torch.equal(_written_split(a, split)[0], _written_split(b, split)[0])
    x, y = _written_split(a, "train")
    assert x.dtype == torch.uint8 and x.shape == (32, 3, 10, 10) and int(y.min()) >= 0 and int(y.max()) < 4
    assert len(_written_split(a, "test")[1]) == 8 and a.image_shape == (3, 10, 10)
    # resized on the device like CIFAR-10 for AlexNet, held small
    big = SyntheticDataModule(channels=3, size=10, train_images=16, batch_size=4, image_size=40)
    assert next(iter(big.train_dataloader()))[0].shape == (4, 3, 40, 40) and big.stored_shape == (3, 10, 10)


def test_decoding_a_long_image_folder_shows_a_progress_bar(
    imagefolder_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnnbench.data import imagefolder

    dm = imagefolder.ImageFolderDataModule(root=str(imagefolder_root), cache=False)
    dm.read_split(train=True)
    assert "decoding" not in capsys.readouterr().err  # 18 images: too few to bother
    monkeypatch.setattr(imagefolder, "PROGRESS_FROM", 10)
    images, _ = dm.read_split(train=True)
    err = capsys.readouterr().err
    assert "decoding 18 train images" in err and "100%" in err
    assert len(images) == 18
