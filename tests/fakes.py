"""Small files in the real formats (IDX, CIFAR pickle batches, image folders), loaded
through the real reading code by the tests."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np


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


def write_plugin_dist(folder: Path, module: str, entry_points: str) -> None:
    """An installed-distribution record (``*.dist-info``) in ``folder`` declaring
    ``entry_points`` (``name = module:attr`` lines) in the ``cnnbench.models`` group."""
    dist = folder / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[cnnbench.models]\n{entry_points}\n")


def data_args(root: Path, batch: int = 32) -> list[str]:
    """CLI arguments that point a data module at fake files under ``root``, offline."""
    return [
        "--data.root",
        str(root),
        "--data.download=false",
        "--data.verify=false",
        "--data.val_size=100",
        f"--data.batch_size={batch}",
    ]
