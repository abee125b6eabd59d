"""cnnbench.models.layers: string padding rules against plain torch."""

import math

import pytest
import torch
import torch.nn.functional as F

from cnnbench.models.geometry import infer_shapes
from cnnbench.models.layers import Conv2d, make_conv


def test_unknown_padding_and_mode_fail_with_choices() -> None:
    with pytest.raises(ValueError, match="valid, same, full"):
        make_conv(1, 1, 3, padding="half")
    with pytest.raises(ValueError, match="reflect"):
        make_conv(1, 1, 3, padding_mode="mirror")


@pytest.mark.parametrize("stride", [1, 2, 4])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5, 11])
@pytest.mark.parametrize("size", [7, 8, 32, 33])
def test_same_padding_gives_ceil_of_input_over_stride(stride: int, kernel: int, size: int) -> None:
    conv = make_conv(2, 3, kernel, stride, padding="same")
    out = conv(torch.randn(1, 2, size, size + 1))
    assert out.shape[-2:] == (math.ceil(size / stride), math.ceil((size + 1) / stride))
    assert infer_shapes(torch.nn.Sequential(conv), (2, size, size + 1))[-1] == (3, *out.shape[-2:])


def test_same_padding_matches_torch_for_stride_one() -> None:
    conv = make_conv(2, 3, 4, padding="same")
    x = torch.randn(1, 2, 9, 9)
    ref = F.conv2d(x, conv.weight, conv.bias, padding="same")
    torch.testing.assert_close(conv(x), ref)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_explicit_pad(mode: str) -> None:
    conv = make_conv(1, 2, 3, 2, padding="same", padding_mode=mode)
    x = torch.randn(1, 1, 8, 8)
    # same with stride 2 on 8: total pad 1, all of it after (bottom/right)
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1), mode=mode), conv.weight, conv.bias, stride=2)
    torch.testing.assert_close(conv(x), ref)


def test_conv_state_dict_keys_are_plain_conv() -> None:
    assert set(Conv2d(1, 2, 3, padding="same").state_dict()) == {"weight", "bias"}
