"""One-line model errors (input sizes, argument names, pretrained weights) and rebuilding
any registered model with ``ImageClassifier.load_from_checkpoint``."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torchvision

from cnnbench.checkpoint import CheckpointMetadata
from cnnbench.data import SyntheticDataModule, create_data
from cnnbench.models import (
    MODELS,
    GeometryError,
    ImageClassifier,
    InputShapeError,
    PretrainedWeightsError,
    create_model,
    list_models,
)


def test_wrong_input_size_is_named_before_torch_fails() -> None:
    model = create_model("lenet5")
    ran: list[str] = []
    model.features[0].register_forward_pre_hook(lambda *args: ran.append("conv1"))
    with pytest.raises(InputShapeError) as err:
        model(torch.zeros(2, 1, 28, 28))
    message = str(err.value)
    assert message.startswith("lenet5 expects 1×32×32 images, got 1×28×28; ") and "\n" not in message
    assert "image_size=32" in message and "input_size=28" in message
    assert not ran  # raised at the door, not after the first layers ran
    with pytest.raises(InputShapeError, match=r"got 3×32×32; convert them to 1 channel"):
        model(torch.zeros(2, 3, 32, 32))
    with pytest.raises(
        InputShapeError, match=r"a batch of images \(N, 1, 32, 32\), got a tensor of shape \(1, 32, 32\)"
    ):
        model(torch.zeros(1, 32, 32))
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 10)  # the right shape still runs


def test_alexnet_on_small_images_points_at_alexnet_cifar_and_resizing() -> None:
    with pytest.raises(GeometryError, match=r"alexnet_cifar.*--data\.image_size 224"):
        create_model("alexnet", input_size=32)
    with pytest.raises(InputShapeError) as err:
        create_model("alexnet", num_classes=10)(torch.zeros(1, 3, 32, 32))
    assert "alexnet expects 3×224×224 images, got 3×32×32" in str(err.value)
    assert "alexnet_cifar" in str(err.value) and "image_size 224" in str(err.value)
    # an adaptive pool takes any size its convolutions fit, as torchvision's AlexNet does
    model = create_model("alexnet_cifar")
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(InputShapeError, match="smaller than its"):
        model(torch.zeros(1, 3, 2, 2))


def test_unknown_keyword_arguments_suggest_close_names() -> None:
    with pytest.raises(ValueError, match=r"unknown argument 'poool'\. Did you mean 'pool'\?") as err:
        create_model("lenet5", poool="max")
    assert "\n" not in str(err.value) and "padding_mode" in str(err.value)  # the valid names, base class's included
    with pytest.raises(ValueError, match=r"Did you mean 'lr'\?"):
        create_model("alexnet_cifar", lr_=0.1)
    with pytest.raises(ValueError, match=r"unknown argument 'batch_sise'\. Did you mean 'batch_size'"):
        create_data("mnist", batch_sise=64)
    assert create_model("lenet5", label_smoothing=0.1).hparams.label_smoothing == 0.1  # base-class arguments pass


def test_models_without_weights_refuse_pretrained_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^model 'lenet5' has no pretrained weights; models with weights: alexnet$"):
        create_model("lenet5", pretrained=True)


@pytest.fixture
def alexnet_weights_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """torchvision's AlexNet state dict, random, in torch hub's cache under the official file name.

    Each tensor is one random row broadcast to the full shape: the file is a few hundred
    kB instead of 244 MB, yet every tensor is distinct and has the real shape."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(0)
    shapes = {k: v.shape for k, v in torchvision.models.alexnet().state_dict().items()}
    state = {k: torch.randn(1, *s[1:]).expand(s) if len(s) > 1 else torch.randn(s) for k, s in shapes.items()}
    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    target = tmp_path / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True)
    torch.save(state, target)
    return state


def test_pretrained_alexnet_loads_torchvision_weights(alexnet_weights_file: dict[str, torch.Tensor]) -> None:
    model = create_model("alexnet", pretrained=True)
    ours = model.state_dict()
    assert set(ours) == set(alexnet_weights_file)
    assert all(torch.equal(ours[k], v) for k, v in alexnet_weights_file.items())
    # fine-tuning: every layer but the new 10-class head
    torch.manual_seed(1)
    ten = create_model("alexnet", pretrained=True, num_classes=10)
    head = {"classifier.6.weight", "classifier.6.bias"}
    assert all(torch.equal(ten.state_dict()[k], v) for k, v in alexnet_weights_file.items() if k not in head)
    assert ten.classifier[6].weight.shape == (10, 4096)
    # layers that do not match the published ones are refused in one line
    with pytest.raises(PretrainedWeightsError, match="does not fit this alexnet") as err:
        create_model("alexnet", pretrained=True, in_channels=1)
    assert "\n" not in str(err.value)


def test_pretrained_download_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise OSError("Network is unreachable")

    import torchvision.models._api as api

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(PretrainedWeightsError) as err:
        create_model("alexnet", pretrained=True)
    message = str(err.value)
    assert "\n" not in message and "alexnet-owt-7be5be79.pth" in message and str(tmp_path / "empty") in message


SMALL = {
    "lenet5": (1, 32),
    "lenet5_classic": (1, 32),
    "alexnet": (3, 64),
    "alexnet2012": (3, 99),
    "alexnet_cifar": (3, 32),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_image_classifier_load_from_checkpoint_rebuilds_any_registered_model(name: str, tmp_path: Path) -> None:
    channels, size = SMALL[name]
    dm = SyntheticDataModule(channels=channels, size=size, train_images=4, test_images=2, batch_size=2)
    model = create_model(name, num_classes=10, in_channels=channels, input_size=size, pool="avg", lr=0.01)
    trainer = L.Trainer(
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[CheckpointMetadata()],
    )
    trainer.fit(model, dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = ImageClassifier.load_from_checkpoint(path)
    assert type(loaded) is type(model) and MODELS.name_of(loaded) == name
    assert loaded.hparams.pool == "avg" and loaded.hparams.lr == 0.01 and loaded.input_shape == (channels, size, size)
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in saved.items())
    assert type(type(model).load_from_checkpoint(path)) is type(model)  # the concrete class, as before


def test_load_from_checkpoint_refuses_a_checkpoint_without_a_model_name(tmp_path: Path) -> None:
    path = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}}, path)
    with pytest.raises(ValueError, match="names no registered cnnbench model"):
        ImageClassifier.load_from_checkpoint(path)


def test_every_model_is_listed_here() -> None:
    builtin = [n for n in list_models() if issubclass(MODELS.get(n), ImageClassifier)]
    assert set(builtin) <= set(SMALL)


def test_load_from_checkpoint_of_a_file_that_is_no_checkpoint_is_one_line(tmp_path: Path) -> None:
    from cnnbench.checkpoint import CheckpointError
    from cnnbench.models import ImageClassifier

    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match=r"notes.txt is not a checkpoint \(expected a .ckpt file") as info:
        ImageClassifier.load_from_checkpoint(str(notes))
    assert "\n" not in str(info.value)
