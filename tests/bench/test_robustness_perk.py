"""Per-k consistency split at the stride, border metrics and blanking, against hand computations."""

import json

import torch
from torch import nn

from cnnbench.bench.robustness import blank_border, border_metrics, evaluate_robustness, stride_columns


class ByPixel(nn.Module):
    """Predicts class 1 when pixel (0, 0) is bright, class 2 when (3, 3) is, else 0: a known rule."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 3)
        logits[:, 1] = x[:, 0, 0, 0]
        logits[:, 2] = x[:, 0, 3, 3]
        logits[:, 0] = 0.5
        return logits


def test_stride_columns_split_k_at_the_stride() -> None:
    consistency = {1: 0.99, 2: 0.9, 3: 0.7, 4: 0.5, 6: 0.3}
    out = stride_columns(consistency, 4, "c")
    assert out["c_below_stride"] == (0.99 + 0.9 + 0.7) / 3
    assert out["c_from_stride"] == (0.5 + 0.3) / 2
    assert stride_columns({1: 0.9}, 4, "c") == {"c_below_stride": 0.9}


def test_blank_border_matches_numpy_slicing() -> None:
    x = torch.arange(1.0, 37.0).reshape(1, 1, 6, 6)
    out = blank_border(x, 2)
    expected = torch.zeros_like(x)
    expected[..., 2:4, 2:4] = x[..., 2:4, 2:4]
    assert torch.equal(out, expected)


def test_border_metrics_equal_a_hand_count() -> None:
    # 6 images 4×4: bright (0,0) → class 1, bright (3,3) → class 2, blank → class 0
    x = torch.zeros(6, 1, 4, 4)
    x[0, 0, 0, 0] = x[1, 0, 0, 0] = x[2, 0, 3, 3] = 1.0  # images 0, 1 show class 1; image 2 class 2
    labels = torch.tensor([1, 1, 2, 0, 0, 1])
    strata = torch.tensor([0, 0, 0, 1, 5, 8])  # 3 centred, 3 border
    # predictions: [1, 1, 2, 0, 0, 0] → centred correct 3/3; border correct 2/3 (image 5 wrong)
    m = border_metrics(ByPixel(), x, labels, strata, lambda t: t)
    assert m["acc_centred"] == 1.0 and abs(m["acc_border"] - 2 / 3) < 1e-6
    assert abs(m["border_penalty"] - 1 / 3) < 1e-6
    assert m["n_by_stratum"] == {
        "centred": 3,
        "left": 1,
        "right": 0,
        "top": 0,
        "bottom": 0,
        "top_left": 1,
        "top_right": 0,
        "bottom_left": 0,
        "bottom_right": 1,
    }
    assert m["acc_by_stratum"]["centred"] == 1.0 and m["acc_by_stratum"]["bottom_right"] == 0.0
    # blanking 1 px does not change the blank border images: still 2/3
    assert abs(m["acc_border_blank1"] - 2 / 3) < 1e-6


def test_border_penalty_and_blank_drop_when_border_ink_matters() -> None:
    x = torch.zeros(4, 1, 4, 4)
    x[:, 0, 0, 0] = 1.0  # every image: ink on the corner pixel → class 1
    labels = torch.tensor([1, 1, 1, 1])
    strata = torch.tensor([0, 0, 5, 5])
    model = ByPixel()
    clean = model(x).argmax(1)
    m = border_metrics(model, x, labels, strata, lambda t: t, clean=clean)
    assert m["acc_border"] == 1.0 and m["acc_border_blank1"] == 0.0  # the corner pixel is blanked
    assert m["blank1_drop"] == 1.0 and m["blank1_lost_ink"] == 1.0


def test_evaluate_robustness_gives_columns_with_stride_and_border() -> None:
    x = torch.zeros(6, 1, 4, 4)
    x[:3, 0, 0, 0] = 1.0
    labels = torch.tensor([1, 1, 1, 0, 0, 0])
    strata = torch.tensor([0, 1, 2, 0, 3, 4])
    r = evaluate_robustness(
        ByPixel(), x, labels, lambda t: t, shifts=[1, 2], fills=["zero"], edge=False, strata=strata, stride=2
    )
    cols = r["columns"]
    k = r["shift"]["zero"]["consistency"]
    assert cols["consistency_zero_below_stride"] == k[1] and cols["consistency_zero_from_stride"] == k[2]
    assert cols["total_stride"] == 2 and cols["acc_centred"] == r["border"]["acc_centred"]
    assert "translation_acc" not in cols and "consistency_circular_below_stride" not in cols


def test_a_border_grid_cell_records_the_metrics_a_plain_recount_gives(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """One real grid cell on border-placed digits: its metrics block equals a recount from its checkpoint."""
    import io

    from cnnbench.bench.grid import GridSpec
    from cnnbench.bench.runner import run_grid
    from cnnbench.data import create_data
    from cnnbench.models import create_model
    from tests.data.test_border import blob_digits
    from tests.fakes import write_idx

    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n, seed in (("train", 300, 0), ("t10k", 96, 1)):
        images, labels = blob_digits(n, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    data = {"name": "mnist_border", "root": str(tmp_path / "data"), "download": False, "verify": False, "val_size": 60}
    spec = GridSpec.from_dict(
        {
            "name": "border",
            "data": data,
            "models": [{"name": "lenet5", "args": {"head_pool": 5}}],
            "pool": ["max"],
            "padding": ["same"],
            "padding_mode": ["background"],
            "seeds": [0],
            "trainer": {"max_steps": 3, "num_sanity_val_steps": 0},
            "robustness": {"shifts": [1, 4], "fills": ["zero"], "edge": False},
        }
    )
    out = tmp_path / "out"
    outcome = run_grid(spec, out, wandb=False, keep_checkpoints=True, log=io.StringIO())
    assert not outcome.failed
    result = json.loads(next((out / "results").glob("*.json")).read_text())
    metrics = result["metrics"]
    assert result["params"] == 61_706 and metrics["total_stride"] == 4
    k = result["robustness"]["shift"]["zero"]["consistency"]
    assert metrics["consistency_zero_below_stride"] == k["1"] and metrics["consistency_zero_from_stride"] == k["4"]
    # recount from the tested checkpoint, preprocessing by hand
    ckpt = sorted((out / "runs").rglob("*.ckpt"))[0]
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    torch.testing.assert_close(state["features.0.pad_value"], torch.tensor([-0.1307 / 0.3081]))
    model = create_model("lenet5", padding="same", padding_mode="background", head_pool=5)
    model.load_state_dict(state, strict=False)
    model.eval()
    dm = create_data("mnist_border", seed=0, **{k: v for k, v in data.items() if k != "name"})
    dm.setup()
    x, y = dm.splits["test"]
    with torch.no_grad():
        correct = (model((x.float() / 255 - 0.1307) / 0.3081).argmax(1) == y).float()
    centred = dm.strata["test"] == 0
    assert abs(metrics["acc_centred"] - float(correct[centred].mean())) < 1e-6
    assert abs(metrics["acc_border"] - float(correct[~centred].mean())) < 1e-6
    assert abs(metrics["border_penalty"] - (metrics["acc_centred"] - metrics["acc_border"])) < 1e-9
