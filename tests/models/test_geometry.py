"""cnnbench.models.geometry: shapes inferred without running the layers, checked against running them."""

import pytest
import torch

from cnnbench.models.geometry import GeometryError, conv_output_size, infer_shapes, total_stride
from cnnbench.models.layers import make_conv
from cnnbench.models.pooling import make_pool


def test_decimate_geometry_and_total_stride() -> None:
    layers = torch.nn.Sequential(
        make_conv(1, 6, 5), make_pool("decimate", 2), make_conv(6, 16, 5), make_pool("blur", 2)
    )
    assert infer_shapes(layers, (1, 32, 32))[-1] == (16, 5, 5)
    assert total_stride(layers) == 4


@pytest.mark.parametrize(("padding", "pad_total"), [("valid", 0), ("full", 8), (3, 6)])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_output_size_formula(padding: str | int, pad_total: int, stride: int) -> None:
    conv = make_conv(1, 1, 5, stride, padding=padding)
    out = conv(torch.randn(1, 1, 17, 17))
    assert out.shape[-1] == conv_output_size(17, 5, stride, pad_total) == (17 + pad_total - 5) // stride + 1


def test_geometry_error_names_layer_and_sizes() -> None:
    layers = torch.nn.Sequential(make_conv(1, 4, 5), make_pool("max", 2), make_conv(4, 4, 5))
    with pytest.raises(GeometryError, match=r"2 \(Conv2d\) gets a 4×4 feature map.*5×5 kernel"):
        infer_shapes(layers, (1, 12, 12))
