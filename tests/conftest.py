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


from pathlib import Path  # noqa: E402

from fakes import write_fake_cifar, write_fake_imagefolder, write_fake_mnist  # noqa: E402


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


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory for a CLI run; W&B offline and quiet."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return work
