import random

import pytest
import torch
import torchvision
from torch import nn

from cnnbench.core.vocab import POOL_KINDS
from cnnbench.models import GeometryError, create_model, list_models
from cnnbench.models.geometry import infer_shapes
from cnnbench.models.layers import make_conv
from cnnbench.models.pooling import make_pool

# small inputs keep the sweeps fast on 2 CPU cores; the paper sizes are tested below
SWEEP_SIZE = {"lenet5": 32, "lenet5_classic": 32, "alexnet": 64, "alexnet2012": 99, "alexnet_cifar": 32}
PADDINGS = ["default", "valid", "same", "full", 1]
BUILTIN = sorted(SWEEP_SIZE)


def test_every_registered_model_is_swept() -> None:
    assert set(BUILTIN) <= set(list_models())


@pytest.mark.parametrize("name", BUILTIN)
def test_forward_shape_finite_and_every_parameter_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, input_size=SWEEP_SIZE[name])
    x = model.example_input(2)
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    model.loss(out, torch.tensor([0, 3])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("pool", [p for p in POOL_KINDS])
def test_every_pool_padding_combination_builds_or_fails_cleanly(name: str, pool: str) -> None:
    built = 0
    for padding in PADDINGS:
        try:
            model = create_model(name, pool=pool, padding=padding, input_size=SWEEP_SIZE[name])
        except GeometryError as err:
            assert "smaller than its" in str(err) and name in str(err)
            continue
        built += 1
        out = model(model.example_input(1))
        assert out.shape[-1] == model.hparams.num_classes and torch.isfinite(out).all()
    assert built >= 3  # same, full and int padding always fit at these sizes


def test_known_infeasible_geometries() -> None:
    # torchvision's own AlexNet dies inside torch on a CIFAR-sized image ...
    with pytest.raises(RuntimeError, match="too small"):
        torchvision.models.alexnet()(torch.zeros(1, 3, 32, 32))
    # ... ours refuses at construction and names the third max-pool
    with pytest.raises(GeometryError, match=r"features\.12 \(MaxPool2d\)"):
        create_model("alexnet", input_size=32)
    with pytest.raises(GeometryError, match="lenet5"):
        create_model("lenet5", input_size=12)
    create_model("lenet5", input_size=12, padding="same")  # fits with same padding


def test_infer_shapes_agrees_with_running_the_layers() -> None:
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 20)
        layers: list[nn.Module] = []
        c = 2
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.5:
                out = rng.randint(1, 3)
                pad = rng.choice(["valid", "same", "full", 0, 1, 2])
                layers.append(make_conv(c, out, rng.randint(1, 5), rng.randint(1, 3), padding=pad))
                c = out
            else:
                layers.append(
                    make_pool(rng.choice(["max", "avg", "min", "lp", "blur"]), rng.randint(1, 3), rng.randint(1, 3))
                )
        seq = nn.Sequential(*layers)
        try:
            expected = infer_shapes(seq, (2, n, n))[-1]
        except GeometryError:
            with pytest.raises(RuntimeError):
                y = seq(torch.randn(1, 2, n, n))
                assert y.numel() > 0, "torch returned an empty map"
            continue
        assert tuple(seq(torch.randn(1, 2, n, n)).shape[1:]) == expected


def test_lenet5_parameter_count() -> None:
    assert sum(p.numel() for p in create_model("lenet5").parameters()) == 61_706


def test_lenet5_classic_matches_the_paper_layer_by_layer() -> None:
    model = create_model("lenet5_classic")
    per_layer = {
        name: sum(p.numel() for p in module.parameters(recurse=False))
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    }
    assert per_layer == {
        "features.0": 156,  # C1
        "features.2": 12,  # S2
        "features.4": 1_516,  # C3
        "features.6": 32,  # S4
        "features.8": 48_120,  # C5
        "classifier.0": 10_164,  # F6
    }
    assert sum(per_layer.values()) == 60_000


def test_c3_connection_table_is_respected() -> None:
    model = create_model("lenet5_classic")
    c3 = model.features[4]
    dense = c3.dense_weight()
    from cnnbench.models.lenet import C3_TABLE

    for j, inputs in enumerate(C3_TABLE):
        for i in range(6):
            assert (dense[j, i].abs().sum() > 0) == (i in inputs)
    # the partial conv equals a dense conv with the zero-filled kernel
    x = torch.randn(1, 6, 14, 14)
    torch.testing.assert_close(c3(x), torch.nn.functional.conv2d(x, dense, c3.bias))


def test_alexnet_is_torchvision_alexnet() -> None:
    torch.manual_seed(0)
    ours = create_model("alexnet", num_classes=1000)
    assert sum(p.numel() for p in ours.parameters()) == 61_100_840
    theirs = torchvision.models.alexnet(num_classes=1000)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=0)
    # and back, with 10 classes
    tv10 = torchvision.models.alexnet(num_classes=10)
    ours10 = create_model("alexnet", num_classes=10)
    ours10.load_state_dict(tv10.state_dict(), strict=True)


def test_alexnet2012_parameter_count_and_paper_shapes() -> None:
    model = create_model("alexnet2012")
    assert sum(p.numel() for p in model.parameters()) == 60_965_224
    shapes = infer_shapes(model.features, (3, 227, 227))
    assert shapes[0] == (96, 55, 55) and shapes[-1] == (256, 6, 6)
    lrn = [m for m in model.features if isinstance(m, nn.LocalResponseNorm)]
    assert len(lrn) == 2 and lrn[0].k == 2 and lrn[0].size == 5 and lrn[0].beta == 0.75
    assert [m.groups for m in model.features if isinstance(m, nn.Conv2d)] == [1, 2, 1, 2, 2]


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_alexnet_cifar_works_with_valid_and_same(padding: str) -> None:
    model = create_model("alexnet_cifar", padding=padding)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_bad_optimizer_settings_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="lr must be > 0"):
        create_model("lenet5", lr=0)
    with pytest.raises(ValueError, match="sgd, adam, adamw"):
        create_model("lenet5", optimizer="rmsprop")
