import pytest
import torch

from cnnbench.models import create_model, list_models, summarize
from cnnbench.models.summary import format_summary


def _independent_macs(model: torch.nn.Module, shape: tuple[int, int, int]) -> int:
    """MACs from plain formulas over the layers torch actually runs (hooks on conv/linear)."""
    total = 0

    def conv_hook(m: torch.nn.Module, i: tuple[torch.Tensor], o: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            k_h, k_w = m.kernel_size
            kernels = o.shape[1] * (m.in_channels // m.groups)
            if hasattr(m, "index"):  # C3 partial connections: only the linked kernels
                kernels = m.index.shape[1]
            total += o.shape[2] * o.shape[3] * kernels * k_h * k_w
        else:
            total += m.in_features * m.out_features

    hooks = [
        m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    return total


@pytest.mark.parametrize("name", ["lenet5", "lenet5_classic", "alexnet_cifar", "alexnet"])
def test_totals_match_parameter_count_and_independent_macs(name: str) -> None:
    model = create_model(name)
    rows = summarize(model)
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    extra = 10 * 84 if name == "lenet5_classic" else 0  # RBF distances
    assert sum(r.macs for r in rows) == _independent_macs(model, model.input_shape) + extra


def test_lenet5_by_hand() -> None:
    rows = {r.name: r for r in summarize(create_model("lenet5"))}
    assert rows["features.0"].output_shape == (6, 28, 28) and rows["features.0"].macs == 6 * 28 * 28 * 25
    assert rows["features.5"].output_shape == (16, 5, 5) and rows["features.5"].pooling == "max"
    # receptive fields: 5, then +1 (pool 2), +4·2 (conv 5 at jump 2), +1·2 (pool 2 at jump 2)
    assert rows["features.0"].receptive_field == (5, 5)
    assert rows["features.3"].receptive_field == (14, 14)
    assert rows["features.5"].receptive_field == (16, 16)
    assert rows["features.0"].padding == "valid"


def test_summary_table_renders_every_model() -> None:
    for name in list_models():
        if name.startswith("alexnet") and name != "alexnet_cifar":
            continue
        text = format_summary(summarize(create_model(name, pool="blur", padding="same")))
        assert "total" in text and "blur" in text
