from pathlib import Path

import pytest
import torch

from cnnbench.data import BatchAugment, CIFAR10DataModule, MNISTDataModule, TensorBatchLoader
from cnnbench.data import loader as loader_module


def test_translate_matches_pad_and_crop() -> None:
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    aug = BatchAugment(translate=2)
    out = aug(x, seed=3)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):  # every output is some 6×6 window of the padded image
        windows = [padded[i, :, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_crop_equals_plain_slicing_and_prepadded_batches_give_the_same_result(mode: str, dtype: torch.dtype) -> None:
    x = torch.randint(0, 256, (6, 3, 8, 10)).to(dtype)
    aug = BatchAugment(translate=3, pad_mode=mode)
    out = aug(x, seed=5)
    padded = torch.nn.functional.pad(x.float(), (3, 3, 3, 3), mode=mode).to(dtype)
    gen = torch.Generator().manual_seed(5)  # the draws the crop makes, in its order
    dy, dx = torch.randint(0, 7, (6,), generator=gen), torch.randint(0, 7, (6,), generator=gen)
    expected = torch.stack([padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 10] for i in range(6)])
    assert out.dtype == dtype and torch.equal(out, expected)
    assert torch.equal(aug(aug.pad(x), seed=5, padded=True), out)


def test_flip_mirrors_exactly_the_drawn_images_and_leaves_the_input_alone() -> None:
    x = torch.randint(0, 256, (32, 2, 4, 5), dtype=torch.uint8)
    before = x.clone()
    out = BatchAugment(flip=True)(x, seed=9)
    mask = torch.rand(32, generator=torch.Generator().manual_seed(9)) < 0.5
    assert torch.equal(out, torch.where(mask[:, None, None, None], x.flip(-1), x))
    assert torch.equal(x, before)


def test_augmentation_is_deterministic_per_seed_and_keeps_shape_dtype_range() -> None:
    x = torch.rand(16, 3, 32, 32) * 255
    for preset in CIFAR10DataModule.augment_presets.values():
        a, b = preset(x, seed=7), preset(x, seed=7)
        assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype
        assert a.min() >= 0 and a.max() <= 255
    assert not torch.equal(
        CIFAR10DataModule.augment_presets["standard"](x, 1), CIFAR10DataModule.augment_presets["standard"](x, 2)
    )


def test_mnist_presets_never_flip() -> None:
    assert not any(p.flip for p in MNISTDataModule.augment_presets.values())
    # a digit that is not mirror-symmetric is never mirrored by the standard preset
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 10:20, 4:8] = 255  # bar on the left
    out = MNISTDataModule.augment_presets["standard"](x, seed=0)
    assert (out[..., :16].sum(dim=(1, 2, 3)) > out[..., 16:].sum(dim=(1, 2, 3))).all()


def test_flip_flips_about_half() -> None:
    x = torch.zeros(1000, 1, 4, 4)
    x[..., 0] = 1
    out = BatchAugment(flip=True)(x, seed=0)
    flipped = (out[:, 0, 0, -1] == 1).float().mean()
    assert 0.4 < flipped < 0.6


def test_batch_pipeline_normalizes_uint8(mnist_root: Path) -> None:
    dm = MNISTDataModule(root=str(mnist_root), val_size=100, augment="none", download=False)
    dm.setup()
    x, y, seed = next(iter(dm.train_dataloader().loader))  # the raw loader a Trainer gets
    assert x.dtype == torch.uint8 and isinstance(seed, int)
    xn, yn = dm.on_after_batch_transfer((x, y, seed), 0)
    torch.testing.assert_close(xn, (x.float() / 255 - 0.1307) / 0.3081)
    assert torch.equal(yn, y)


def test_training_batches_are_cropped_from_the_once_padded_split(cifar_root: Path) -> None:
    plain = CIFAR10DataModule(root=str(cifar_root), val_size=20, batch_size=8, augment="none", download=False)
    dm = CIFAR10DataModule(root=str(cifar_root), val_size=20, batch_size=8, download=False)
    plain.setup()
    dm.setup()
    assert torch.equal(dm.splits["train"][0], plain.splits["train"][0])  # the view of the padded copy
    loader = dm.train_dataloader().loader  # the raw loader a Trainer gets
    x, y, seed = next(iter(loader))
    assert x.shape == (8, 3, 40, 40)  # carries the reflect border of the standard preset
    xn, yn = dm.on_after_batch_transfer((x, y, seed), 0)
    idx = loader.indices(0)[:8]
    images = plain.splits["train"][0].index_select(0, idx)
    expected = dm.normalize(dm.augmentation(images, seed=seed))
    assert xn.shape == (8, 3, 32, 32) and xn.dtype == torch.float32 and torch.equal(xn, expected)
    assert torch.equal(yn, plain.splits["train"][1][idx])


def test_sharding_gives_disjoint_equal_batches_per_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.zeros(103, 1, 2, 2, dtype=torch.uint8)
    labels = torch.arange(103)
    seen = []
    for rank in range(2):
        monkeypatch.setattr(loader_module, "rank_and_world", lambda r=rank: (r, 2))
        ld = TensorBatchLoader(images, labels, 10, shuffle=True, drop_last=True, seed=0, epoch_fn=lambda: 4)
        seen.append(torch.cat([y for _, y in ld]))
        assert len(ld) == 5
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    # evaluation shards cover everything exactly once
    covered = []
    for rank in range(2):
        monkeypatch.setattr(loader_module, "rank_and_world", lambda r=rank: (r, 2))
        covered += torch.cat([y for _, y in TensorBatchLoader(images, labels, 10)]).tolist()
    assert sorted(covered) == list(range(103))


def test_shuffle_depends_on_epoch_and_resume_skips_consumed_batches() -> None:
    images, labels = torch.zeros(50, 1, 2, 2, dtype=torch.uint8), torch.arange(50)
    epoch = {"value": 0}
    ld = TensorBatchLoader(images, labels, 10, shuffle=True, seed=1, epoch_fn=lambda: epoch["value"])
    first = [y for _, y in ld]
    epoch["value"] = 1
    second = [y for _, y in ld]
    assert not torch.equal(torch.cat(first), torch.cat(second))
    ld.load_state_dict({"epoch": 1, "consumed": 3})
    resumed = [y for _, y in ld]
    assert len(resumed) == 2 and all(torch.equal(a, b) for a, b in zip(resumed, second[3:]))


def test_torchvision_loader_path_matches_shapes(mnist_root: Path, cifar_root: Path) -> None:
    dm = MNISTDataModule(root=str(mnist_root), val_size=100, loader="torchvision", num_workers=0, download=False)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (128, 1, 32, 32) and x.dtype == torch.float32
    assert dm.on_after_batch_transfer((x, y), 0)[0] is x
    cdm = CIFAR10DataModule(
        root=str(cifar_root), val_size=20, batch_size=8, loader="torchvision", num_workers=0, download=False
    )
    cdm.setup()
    assert next(iter(cdm.train_dataloader()))[0].shape == (8, 3, 32, 32)
    assert sum(len(b[1]) for b in cdm.val_dataloader()) == 20
