"""Shared fixtures: no test may reach the network."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        return host in ("localhost", "::1") or host.startswith("127.")
    return isinstance(address, str | bytes)  # unix sockets


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make any socket connection outside loopback fail the test."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guard(address: object) -> None:
        if not _is_loopback(address):
            pytest.fail(f"test tried to reach the network: {address!r}")

    def connect(self: socket.socket, address: object) -> None:
        guard(address)
        return real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        guard(address)
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        guard((host, 0))
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield


# ----------------------------------------------------------------------------- fake data
# Small files in the real formats, loaded through the real reading code.
import hashlib  # noqa: E402
import pickle  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def digit_images(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable fake digits: class k draws a bright bar at row 2k+4 on noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, size, size)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 * k + 4 : 2 * k + 6, 4:-4] = 255
    return images, labels


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_fake_mnist(root: Path, n_train: int = 600, n_test: int = 200) -> dict[str, str]:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    md5s = {}
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = digit_images(n, 28, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    for f in raw.iterdir():
        md5s[f.name] = hashlib.md5(f.read_bytes()).hexdigest()
    return md5s


def write_fake_cifar(root: Path, per_batch: int = 40) -> dict[str, str]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    md5s = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, per_batch).tolist()
        data = rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8)
        with (folder / name).open("wb") as fh:
            pickle.dump({"batch_label": name, "labels": labels, "data": data, "filenames": []}, fh)
        md5s[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    with (folder / "batches.meta").open("wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    md5s["batches.meta"] = hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest()
    return md5s


def write_fake_imagefolder(root: Path, n_per_class: int = 6, size: int = 12, mode: str = "RGB") -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k, cls in enumerate(["cat", "dog", "emu"]):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                shape = (size, size) if mode == "L" else (size, size, 3)
                arr = (rng.integers(0, 60, shape) + 60 * k).astype(np.uint8)
                Image.fromarray(arr, mode=mode).save(root / split / cls / f"{i}.png")
    return root


@pytest.fixture
def mnist_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake MNIST in torchvision's layout whose MD5s the data module accepts."""
    from cnnbench.data import MNISTDataModule

    root = tmp_path / "data"
    monkeypatch.setattr(MNISTDataModule, "files", write_fake_mnist(root))
    return root


@pytest.fixture
def cifar_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import torchvision

    root = tmp_path / "data"
    md5s = write_fake_cifar(root)
    tv = torchvision.datasets.CIFAR10
    monkeypatch.setattr(tv, "train_list", [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(tv, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setattr(tv, "meta", {**tv.meta, "md5": md5s["batches.meta"]})
    return root


@pytest.fixture
def imagefolder_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return write_fake_imagefolder(tmp_path / "images")
