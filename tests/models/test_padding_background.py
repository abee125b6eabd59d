"""Background-valued padding and capacity-matched LeNet-5, against plain torch."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from cnnbench.data import SyntheticDataModule
from cnnbench.models import create_model
from cnnbench.models.layers import Conv2d

MNIST_BACKGROUND = (0 - 0.1307) / 0.3081  # -0.4242: a blank MNIST pixel after normalization


@pytest.mark.parametrize("padding", ["same", "full", 1])
def test_first_layer_pads_with_the_normalized_background(padding: str | int) -> None:
    model = create_model("lenet5", padding=padding, padding_mode="background", background=MNIST_BACKGROUND)
    conv = model.features[0]
    x = torch.randn(2, 1, 32, 32)
    p = {"same": 2, "full": 4, 1: 1}[padding]
    reference_input = F.pad(x, (p, p, p, p), value=MNIST_BACKGROUND)  # plain torch: border = background
    assert torch.all(reference_input[..., 0, :] == MNIST_BACKGROUND)
    torch.testing.assert_close(conv(x), F.conv2d(reference_input, conv.weight, conv.bias))
    # later layers see feature maps and pad with 0
    second = model.features[3]
    h = torch.randn(2, 6, 14, 14)
    torch.testing.assert_close(second(h), F.conv2d(F.pad(h, (p, p, p, p)), second.weight, second.bias))


def test_same_padded_conv_on_a_blank_image_is_constant_but_zero_padding_draws_a_frame() -> None:
    blank = torch.full((1, 1, 32, 32), MNIST_BACKGROUND)
    torch.manual_seed(0)
    background = Conv2d(1, 6, 5, padding="same", padding_mode="background")
    background.set_background(MNIST_BACKGROUND)
    out = background(blank)
    assert out.shape[-2:] == (32, 32)
    torch.testing.assert_close(out, out[..., :1, :1].expand_as(out))  # spatially constant
    zeros = Conv2d(1, 6, 5, padding="same", padding_mode="zeros")
    zeros.load_state_dict({"weight": background.weight, "bias": background.bias})
    framed = zeros(blank)
    assert (framed - framed[..., 16:17, 16:17]).abs().amax() > 1e-3  # the grey frame shows at the border


def test_per_channel_background_and_state_dict() -> None:
    conv = Conv2d(3, 4, 3, padding="same", padding_mode="background")
    values = [-1.0, 0.5, 2.0]
    conv.set_background(values)
    x = torch.randn(1, 3, 6, 6)
    padded = torch.stack([F.pad(x[:, c], (1, 1, 1, 1), value=v) for c, v in enumerate(values)], 1)
    torch.testing.assert_close(conv(x), F.conv2d(padded, conv.weight, conv.bias))
    restored = Conv2d(3, 4, 3, padding="same", padding_mode="background")
    restored.load_state_dict(conv.state_dict())
    torch.testing.assert_close(restored(x), conv(x))


def test_fit_takes_the_background_from_the_data_module() -> None:
    dm = SyntheticDataModule(size=32, train_images=64, val_size=0, batch_size=32)
    model = create_model("lenet5", padding="same", padding_mode="background", num_classes=dm.num_classes)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(model, dm)
    expected = [-m / s for m, s in zip(dm.mean, dm.std)]
    torch.testing.assert_close(model.features[0].pad_value, torch.tensor(expected))


@pytest.mark.parametrize("padding", ["valid", "same", "full"])
@pytest.mark.parametrize("mode", ["zeros", "background"])
def test_capacity_matched_arms_have_the_valid_networks_61706_parameters(padding: str, mode: str) -> None:
    model = create_model("lenet5", padding=padding, padding_mode=mode, head_pool=5)
    assert sum(p.numel() for p in model.parameters()) == 61_706


def test_unmatched_same_padding_keeps_its_larger_head() -> None:
    assert sum(p.numel() for p in create_model("lenet5", padding="same").parameters()) == 136_586


def test_head_pool_is_the_identity_on_the_valid_network() -> None:
    torch.manual_seed(0)
    plain = create_model("lenet5")
    torch.manual_seed(0)
    matched = create_model("lenet5", head_pool=5)
    x = torch.randn(3, 1, 32, 32)
    torch.testing.assert_close(matched(x), plain(x))
