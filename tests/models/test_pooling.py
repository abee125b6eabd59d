"""cnnbench.models.pooling: each pool against plain torch, and the one kind → class table."""

import pytest
import torch
import torch.nn.functional as F

from cnnbench.core.vocab import POOL_KINDS
from cnnbench.models import create_model, summarize
from cnnbench.models.pooling import POOLS, make_pool, pool_name


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


def test_every_pool_kind_has_one_factory_and_its_own_summary_name() -> None:
    # the vocabulary (core.vocab), the factory table and the summary's names are one list
    assert list(POOLS) == list(POOL_KINDS)
    for kind in POOL_KINDS:
        layer = make_pool(kind, 2, channels=3)
        assert type(layer) is POOLS[kind]
        assert pool_name(layer) == kind


@pytest.mark.parametrize("kind", POOL_KINDS)
def test_layer_summary_names_the_pool_a_model_was_built_with(kind: str) -> None:
    rows = summarize(create_model("lenet5", pool=kind))
    assert [r.pooling for r in rows if r.pooling] == [kind, kind]
