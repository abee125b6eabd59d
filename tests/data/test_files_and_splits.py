import contextlib
import hashlib
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cnnbench.data import CIFAR10DataModule, DataError, ImageFolderDataModule, MNISTDataModule, create_data, list_data
from cnnbench.data.files import default_root


def test_registry_names() -> None:
    assert {"mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder"} <= set(list_data())
    with pytest.raises(ValueError, match="Did you mean 'mnist'"):
        create_data("mnsit")


def test_root_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CNNBENCH_DATA_DIR", str(tmp_path / "env"))
    assert default_root(None) == tmp_path / "env"
    assert default_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("CNNBENCH_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_root(None) == tmp_path / "cache" / "cnnbench" / "data"


def test_mnist_split_sizes_disjoint_and_deterministic(mnist_root: Path) -> None:
    dm = MNISTDataModule(root=str(mnist_root), val_size=100, download=False)
    dm.setup()
    assert len(dm.splits["train"][1]) == 500 and len(dm.splits["val"][1]) == 100 and len(dm.splits["test"][1]) == 200
    train_idx, val_idx = dm.split_indices["train"], dm.split_indices["val"]
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    again = MNISTDataModule(root=str(mnist_root), val_size=100, download=False)
    again.setup()
    assert torch.equal(again.split_indices["val"], val_idx)
    other_seed = MNISTDataModule(root=str(mnist_root), val_size=100, seed=1, download=False)
    other_seed.setup()
    assert not torch.equal(other_seed.split_indices["val"], val_idx)
    assert dm.image_shape == (1, 32, 32) and dm.splits["test"][0].shape[-2:] == (32, 32)


def test_val_size_fraction_and_default(mnist_root: Path) -> None:
    dm = MNISTDataModule(root=str(mnist_root), val_size=0.25, download=False)
    dm.setup()
    assert len(dm.splits["val"][1]) == 150
    assert MNISTDataModule.default_val_size == 5000 and CIFAR10DataModule.default_val_size == 5000


def test_evaluation_loaders_keep_every_image(mnist_root: Path) -> None:
    dm = MNISTDataModule(root=str(mnist_root), val_size=100, batch_size=64, eval_batch_size=64, download=False)
    dm.setup()
    assert sum(len(b[1]) for b in dm.val_dataloader()) == 100  # 64 + 36: no drop_last
    assert sum(len(b[1]) for b in dm.test_dataloader()) == 200
    assert all(len(b[1]) == 64 for b in dm.train_dataloader())  # training drops the last partial batch


def test_download_false_never_touches_the_network(tmp_path: Path) -> None:
    # the autouse no_network fixture fails the test on any non-loopback connection
    dm = MNISTDataModule(root=str(tmp_path), download=False)
    started = time.monotonic()
    with pytest.raises(DataError) as err:
        dm.prepare_data()
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "train-images-idx3-ubyte" in message and "download" in message


def test_failed_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", offline)
    monkeypatch.setattr(socket, "getaddrinfo", offline)
    dm = MNISTDataModule(root=str(tmp_path), download=True)
    started = time.monotonic()
    with pytest.raises(DataError, match="download into .* failed") as err:
        dm.prepare_data()
    assert time.monotonic() - started < 10
    assert "copy the files" in str(err.value)


def test_truncated_file_is_reported_as_corrupted(mnist_root: Path) -> None:
    path = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"corrupted.*train-images-idx3-ubyte.*md5"):
        MNISTDataModule(root=str(mnist_root), download=False).setup()
    # without MD5 checks the IDX reader still says what is wrong, not an AssertionError
    with pytest.raises(DataError, match="header promises"):
        MNISTDataModule(root=str(mnist_root), download=False, verify=False).setup()


def test_real_mnist_md5s_are_the_well_known_ones() -> None:
    assert MNISTDataModule.files["train-images-idx3-ubyte"] == "6bbc9ace898e44ae57da46a324031adb"
    assert MNISTDataModule.files["t10k-images-idx3-ubyte"] == "2646ac647ad5339dbf082846283269ea"


def _tree_digest(root: Path) -> dict[str, str]:
    """Every path under ``root`` → SHA-256 of its contents ("dir" for folders)."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


@contextlib.contextmanager
def read_only(root: Path) -> Iterator[None]:
    """Make ``root`` unwritable in a way that holds for root too (CI runs as root, and
    root ignores permission bits): ``chattr +i`` there, ``chmod`` otherwise. Skips when
    neither works here; the probe write proves the protection before the test relies on it."""
    paths = [root, *root.rglob("*")]
    as_root = os.geteuid() == 0
    if as_root:
        if (
            not shutil.which("chattr")
            or subprocess.run(["chattr", "-R", "+i", str(root)], capture_output=True).returncode
        ):
            pytest.skip("running as root without a working chattr: cannot make a folder read-only for root")
    else:
        for path in sorted(paths, reverse=True):
            os.chmod(path, stat.S_IRUSR | stat.S_IXUSR | (0 if path.is_file() else stat.S_IRUSR))
    try:
        with pytest.raises(OSError):
            (root / "MNIST" / "raw" / "probe").write_bytes(b"x")
        with pytest.raises(OSError):
            (root / "MNIST" / "raw" / "train-images-idx3-ubyte").open("ab").close()
        yield
    finally:
        if as_root:
            subprocess.run(["chattr", "-R", "-i", str(root)], check=True)
        else:
            for path in paths:
                os.chmod(path, stat.S_IRWXU)


def test_read_only_root_works(mnist_root: Path) -> None:
    before = _tree_digest(mnist_root)
    with read_only(mnist_root):
        dm = MNISTDataModule(root=str(mnist_root), val_size=100, download=True)
        dm.prepare_data()
        dm.setup()
        x, _ = next(iter(dm.train_dataloader()))
        next(iter(dm.test_dataloader()))
        assert x.shape == (128, 1, 32, 32)
    assert _tree_digest(mnist_root) == before  # no file added, removed or changed


def test_cifar_pickles_load_and_corruption_is_clear(cifar_root: Path) -> None:
    dm = CIFAR10DataModule(root=str(cifar_root), val_size=20, download=False)
    dm.setup()
    assert dm.splits["train"][0].shape == (180, 3, 32, 32) and len(dm.splits["test"][1]) == 40
    (cifar_root / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupted.*data_batch_3"):
        CIFAR10DataModule(root=str(cifar_root), download=False).setup()
    with pytest.raises(DataError, match="data_batch_3 is corrupted"):
        CIFAR10DataModule(root=str(cifar_root), download=False, verify=False).setup()


def test_imagefolder_reads_decodes_once_and_normalizes(imagefolder_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dm = ImageFolderDataModule(root=str(imagefolder_root), val_size=3)
    assert dm.image_shape == (3, 12, 12) and dm.classes == ["cat", "dog", "emu"]
    dm.setup()
    assert len(dm.splits["train"][1]) == 15 and len(dm.splits["test"][1]) == 18
    x = dm.splits["train"][0].float() / 255
    assert torch.allclose(torch.tensor(dm.mean), x.mean(dim=(0, 2, 3)), atol=1e-4)
    # a second data module, built normally, reads the decoded cache: setup decodes no image again
    import cnnbench.data.imagefolder as imf

    decoded: list[object] = []
    real_decode = imf.decode

    def counting_decode(path: Path, *args: object, **kwargs: object) -> object:
        decoded.append(path)
        return real_decode(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(imf, "decode", counting_decode)
    again = ImageFolderDataModule(root=str(imagefolder_root), val_size=3)
    probes = len(decoded)  # the constructor reads one image for its channels and size
    again.setup()
    assert probes <= 1 and len(decoded) == probes
    assert torch.equal(again.splits["test"][0], dm.splits["test"][0])
    assert torch.equal(again.splits["train"][0], dm.splits["train"][0])


def test_imagefolder_greyscale_and_resize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fakes import write_fake_imagefolder

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = write_fake_imagefolder(tmp_path / "grey", mode="L")
    dm = ImageFolderDataModule(root=str(root), image_size=16, val_size=0)
    assert dm.image_shape == (1, 16, 16)
    dm.setup()
    # enlarging happens per batch on the device: the decoded cache keeps the 12×12 files' size
    assert dm.splits["train"][0].shape[1:] == (1, 12, 12)
    assert next(iter(dm.test_dataloader()))[0].shape[1:] == (1, 16, 16)
    small = ImageFolderDataModule(root=str(root), image_size=8, val_size=0)
    small.setup()  # shrinking happens once, at decoding
    assert small.image_shape == small.stored_shape == (1, 8, 8) and small.splits["train"][0].shape[1:] == (1, 8, 8)


def test_bad_arguments_fail_with_choices() -> None:
    with pytest.raises(ValueError, match="none, standard, strong"):
        MNISTDataModule(augment="heavy")
    with pytest.raises(ValueError, match="tensor, torchvision"):
        MNISTDataModule(loader="dali")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        MNISTDataModule(batch_size=0)
