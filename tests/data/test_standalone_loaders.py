"""Data modules outside a Trainer: what a plain PyTorch loop gets, resizing on the device,
``repr``, and the tensor and torchvision paths agreeing image for image."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from cnnbench.data import (
    CIFAR10DataModule,
    ImageFolderDataModule,
    MNISTDataModule,
    ModelInputLoader,
    SyntheticDataModule,
    TensorBatchLoader,
)
from cnnbench.data.augment import batch_seed
from cnnbench.models import create_model

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def by_hand(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x/255 - mean)/std in float64, per channel: the reference normalization."""
    m = torch.tensor(mean, dtype=torch.float64)[:, None, None]
    s = torch.tensor(std, dtype=torch.float64)[:, None, None]
    return ((images.double() / 255 - m) / s).float()


def test_plain_loop_gets_what_the_model_sees(mnist_root: Path) -> None:
    dm = MNISTDataModule(root=str(mnist_root), val_size=100, batch_size=16, download=False)
    train = dm.train_dataloader()
    x, y = next(iter(train))
    assert x.dtype == torch.float32 and x.shape == (16, 1, 32, 32) and x.device.type == "cpu"
    # reference: the epoch-0 sample order, the batch's seed, the preset's crop, hand normalization
    idx = train.indices(0)[:16]
    images = dm.splits["train"][0].index_select(0, idx)
    augmented = dm.augmentation(images, seed=batch_seed(dm.seed, 0, 0, 0))
    torch.testing.assert_close(x, by_hand(augmented, (MNIST_MEAN,), (MNIST_STD,)), atol=1e-5, rtol=0)
    assert torch.equal(y, dm.splits["train"][1][idx])
    assert not torch.equal(augmented, images)  # the batch really was augmented
    # evaluation loaders: every image once, normalized, never augmented
    val = list(dm.val_dataloader())
    xs = torch.cat([b[0] for b in val])
    assert all(len(b) == 2 for b in val) and xs.dtype == torch.float32
    torch.testing.assert_close(xs, by_hand(dm.splits["val"][0], (MNIST_MEAN,), (MNIST_STD,)), atol=1e-5, rtol=0)
    # and a model runs on them as is
    model = create_model("lenet5")
    assert model(x).shape == (16, 10) and model(next(iter(dm.test_dataloader()))[0]).shape[1] == 10


def test_plain_pytorch_loop_over_a_data_module(mnist_root: Path) -> None:
    """The README's loop, verbatim in spirit: no Lightning, the loss goes down."""
    torch.manual_seed(0)
    dm = MNISTDataModule(root=str(mnist_root), val_size=100, batch_size=50, augment="none", download=False)
    model = create_model("lenet5")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(3):
        for x, y in dm.train_dataloader():
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_to_device_moves_batches_and_held_images(mnist_root: Path) -> None:
    dm = MNISTDataModule(root=str(mnist_root), val_size=100, batch_size=8, download=False)
    dm.setup()
    cpu_batch = next(iter(dm.train_dataloader()))[0]
    assert dm.to("meta") is dm and dm.device == torch.device("meta")
    assert dm.splits["train"][0].device.type == "meta" and dm.splits["test"][0].device.type == "meta"
    assert dm._train_source is not None and dm._train_source.device.type == "meta"
    x, y = next(iter(dm.train_dataloader()))
    assert x.device.type == "meta" and y.device.type == "meta" and x.shape == cpu_batch.shape
    assert "device='meta'" in repr(dm)


def test_repr_reads_nothing_before_setup(mnist_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dm = MNISTDataModule(root=str(mnist_root), val_size=100, download=False)

    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("repr read the data")

    with monkeypatch.context() as patch:
        patch.setattr(MNISTDataModule, "read_split", no_read)
        text = repr(dm)
        assert text == str(dm) and "MNISTDataModule(" in text and "not set up" in text and "(1, 32, 32)" in text
    dm.setup()
    assert "'train': 500, 'val': 100, 'test': 200" in str(dm)
    assert "stored_shape=(3, 32, 32)" in repr(CIFAR10DataModule(image_size=224))


class _Probe(L.Callback):
    def __init__(self) -> None:
        self.batches: list[tuple[torch.dtype, tuple[int, ...]]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, i: int) -> None:
        self.batches.append((batch[0].dtype, tuple(batch[0].shape)))  # type: ignore[index]


def test_a_running_trainer_still_gets_the_fast_uint8_path(mnist_root: Path, tmp_path: Path) -> None:
    dm = MNISTDataModule(root=str(mnist_root), val_size=100, batch_size=16, download=False)
    probe = _Probe()
    trainer = L.Trainer(
        max_steps=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe],
        default_root_dir=tmp_path,
    )
    trainer.fit(create_model("lenet5"), dm)
    raw = trainer.train_dataloader
    assert type(raw) is TensorBatchLoader and raw.with_seed  # no standalone wrapper under the Trainer
    assert next(iter(raw))[0].dtype == torch.uint8
    assert probe.batches == [(torch.float32, (16, 1, 32, 32))] * 2  # finished on the device by the hooks
    # once the fit is over, the same module serves plain loops again
    assert isinstance(dm.train_dataloader(), ModelInputLoader)


def pil_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize float (N, C, H, W) channel by channel with PIL's bilinear filter (mode "F")."""
    out = np.stack(
        [
            np.stack(
                [np.asarray(Image.fromarray(c.numpy()).resize((size, size), Image.Resampling.BILINEAR)) for c in img]
            )
            for img in x
        ]
    )
    return torch.from_numpy(out)


def test_resize_on_the_device_matches_pil_bilinear(cifar_root: Path) -> None:
    dm = CIFAR10DataModule(root=str(cifar_root), val_size=20, augment="none", image_size=70, download=False)
    assert dm.image_shape == (3, 70, 70) and dm.stored_shape == (3, 32, 32)
    x, _ = next(iter(dm.val_dataloader()))
    assert x.shape == (20, 3, 70, 70) and dm.splits["val"][0].shape[-1] == 32  # held small, resized per batch
    reference = pil_bilinear(by_hand(dm.splits["val"][0], dm.mean, dm.std), 70)
    torch.testing.assert_close(x, reference, atol=2e-4, rtol=0)
    # training batches: augmented at 32×32, then resized
    train = CIFAR10DataModule(root=str(cifar_root), val_size=20, batch_size=4, image_size=224, download=False)
    xt, _ = next(iter(train.train_dataloader()))
    assert xt.shape == (4, 3, 224, 224) and xt.dtype == torch.float32


def _all(loader: object) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)  # type: ignore[call-overload]
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


@pytest.mark.parametrize("kind", ["mnist", "cifar10", "cifar10_resized", "imagefolder", "synthetic"])
def test_tensor_and_torchvision_paths_give_the_same_images(
    kind: str, mnist_root: Path, cifar_root: Path, imagefolder_root: Path
) -> None:
    def make(loader: str) -> object:
        common = {"loader": loader, "num_workers": 0, "augment": "none", "download": False, "batch_size": 8}
        if kind == "mnist":
            return MNISTDataModule(root=str(mnist_root), val_size=30, **common)
        if kind.startswith("cifar10"):
            size = 48 if kind == "cifar10_resized" else 32
            return CIFAR10DataModule(root=str(cifar_root), val_size=30, image_size=size, **common)
        if kind == "imagefolder":
            return ImageFolderDataModule(root=str(imagefolder_root), val_size=5, **common)
        return SyntheticDataModule(channels=3, size=12, train_images=60, test_images=20, val_size=30, **common)

    tensor_dm, tv_dm = make("tensor"), make("torchvision")
    for split in ("val_dataloader", "test_dataloader"):
        xa, ya = _all(getattr(tensor_dm, split)())
        xb, yb = _all(getattr(tv_dm, split)())
        assert torch.equal(ya, yb), f"{split}: the two paths hold different images at the same indices"
        torch.testing.assert_close(xa, xb, atol=1e-5, rtol=0)
        assert xa.dtype == torch.float32 and xa.shape[1:] == tensor_dm.image_shape  # type: ignore[attr-defined]
    # and both are the hand-normalized images at those indices
    images = tensor_dm.splits["val"][0]  # type: ignore[attr-defined]
    if tensor_dm.stored_shape == tensor_dm.image_shape:  # type: ignore[attr-defined]
        expected = by_hand(images, tensor_dm.mean, tensor_dm.std)  # type: ignore[attr-defined]
        torch.testing.assert_close(_all(tv_dm.val_dataloader())[0], expected, atol=1e-5, rtol=0)  # type: ignore[attr-defined]
