import math

import pytest
import torch
import torch.nn.functional as F

from cnnbench.models.layers import (
    POOL_KINDS,
    Conv2d,
    GeometryError,
    conv_output_size,
    infer_shapes,
    make_conv,
    make_pool,
    total_stride,
)


def test_min_pool_is_negated_max_of_negation() -> None:
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(make_pool("min", 3, 2)(x), -F.max_pool2d(-x, 3, 2))


@pytest.mark.parametrize(
    ("kind", "reference"),
    [
        ("max", lambda x: F.max_pool2d(x, 2)),
        ("avg", lambda x: F.avg_pool2d(x, 2)),
        ("lp", lambda x: F.avg_pool2d(x**2, 2).sqrt()),
    ],
)
def test_pools_match_plain_torch(kind: str, reference) -> None:  # type: ignore[no-untyped-def]
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(make_pool(kind, 2)(x), reference(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [8, 9, 14, 28])
def test_decimate_is_plain_stride_two_slicing(size: int) -> None:
    x = torch.randn(2, 3, size, size)
    out = make_pool("decimate", 2)(x)
    even = size - size % 2  # the pool's windows cover the even part: its output has max pooling's size
    torch.testing.assert_close(out, x[..., :even, :even][..., ::2, ::2])
    assert out.shape == F.max_pool2d(x, 2).shape


def test_decimate_geometry_and_total_stride() -> None:
    layers = torch.nn.Sequential(
        make_conv(1, 6, 5), make_pool("decimate", 2), make_conv(6, 16, 5), make_pool("blur", 2)
    )
    assert infer_shapes(layers, (1, 32, 32))[-1] == (16, 5, 5)
    assert total_stride(layers) == 4


def test_blur_pool_is_max_then_binomial_blur() -> None:
    x = torch.randn(1, 2, 10, 10)
    m = F.max_pool2d(x, 2, 1)
    k = torch.tensor([1.0, 2.0, 1.0])
    filt = (k[:, None] * k[None, :] / 16).expand(2, 1, 3, 3)
    expected = F.conv2d(F.pad(m, (1, 1, 1, 1), mode="reflect"), filt, stride=2, groups=2)
    out = make_pool("blur", 2)(x)
    torch.testing.assert_close(out, expected)
    assert out.shape == F.max_pool2d(x, 2).shape


def test_blur_pool_is_shift_robust_where_max_is_not() -> None:
    # a one-pixel shift of an impulse moves max-pool output in steps; blur spreads it
    x = torch.zeros(1, 1, 16, 16)
    x[..., 7, 7] = 1.0
    shifted = torch.roll(x, 1, dims=-1)
    blur = make_pool("blur", 2)
    maxp = make_pool("max", 2)
    d_blur = (blur(x) - blur(shifted)).abs().sum()
    d_max = (maxp(x) - maxp(shifted)).abs().sum()
    assert d_blur < d_max


def test_pools_with_parameters_need_channels() -> None:
    with pytest.raises(ValueError, match="channels"):
        make_pool("conv", 2)
    assert sum(p.numel() for p in make_pool("conv", 2, channels=4).parameters()) == 4 * 4 * 4 + 4
    assert sum(p.numel() for p in make_pool("subsample", 2, channels=6).parameters()) == 12


def test_unknown_pool_lists_valid_kinds() -> None:
    with pytest.raises(ValueError) as err:
        make_pool("median", 2)
    for kind in POOL_KINDS:
        assert kind in str(err.value)


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


@pytest.mark.parametrize(("padding", "pad_total"), [("valid", 0), ("full", 8), (3, 6)])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_output_size_formula(padding: str | int, pad_total: int, stride: int) -> None:
    conv = make_conv(1, 1, 5, stride, padding=padding)
    out = conv(torch.randn(1, 1, 17, 17))
    assert out.shape[-1] == conv_output_size(17, 5, stride, pad_total) == (17 + pad_total - 5) // stride + 1


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_explicit_pad(mode: str) -> None:
    conv = make_conv(1, 2, 3, 2, padding="same", padding_mode=mode)
    x = torch.randn(1, 1, 8, 8)
    # same with stride 2 on 8: total pad 1, all of it after (bottom/right)
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1), mode=mode), conv.weight, conv.bias, stride=2)
    torch.testing.assert_close(conv(x), ref)


def test_conv_state_dict_keys_are_plain_conv() -> None:
    assert set(Conv2d(1, 2, 3, padding="same").state_dict()) == {"weight", "bias"}


def test_geometry_error_names_layer_and_sizes() -> None:
    layers = torch.nn.Sequential(make_conv(1, 4, 5), make_pool("max", 2), make_conv(4, 4, 5))
    with pytest.raises(GeometryError, match=r"2 \(Conv2d\) gets a 4×4 feature map.*5×5 kernel"):
        infer_shapes(layers, (1, 12, 12))
