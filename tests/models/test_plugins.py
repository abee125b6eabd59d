"""Plugins as timm users expect them: any nn.Module class or builder taking num_classes.

The end-to-end test installs ``examples/plugin`` (the README's example) the way
``importlib.metadata`` sees an installed distribution: a ``*.dist-info`` with the
``entry_points.txt`` its ``pyproject.toml`` declares, on the subprocesses' ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from fakes import data_args, write_fake_mnist, write_plugin_dist
from torch import nn

import cnnbench.checkpoint  # noqa: F401  (installs ImageClassifier's checkpoint loader)
from cnnbench.bench.grid import GridError, GridSpec
from cnnbench.models import MODELS, ImageClassifier, create_model, list_models

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "plugin"
FAST = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.accelerator=cpu"]


class PlainNet(nn.Module):
    """A plain module with a lazy head and its own argument."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3)
        self.head = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)))


@pytest.fixture(autouse=True)
def restore_registry() -> Iterator[None]:
    """Leave the registry as it was: plugins registered here, or by a class path, are removed after each test."""
    saved = (dict(MODELS._entries), dict(MODELS._originals), dict(MODELS._broken))
    yield
    for live, before in zip((MODELS._entries, MODELS._originals, MODELS._broken), saved):
        live.clear()
        live.update(before)


def test_plain_module_is_wrapped_with_a_recipe_and_its_own_arguments() -> None:
    MODELS.register("plain_net")(PlainNet)
    model = create_model("plain_net", num_classes=3, in_channels=2, input_size=12, width=5, lr=0.01)
    assert isinstance(model, ImageClassifier) and isinstance(model.net, PlainNet)
    assert model.hparams["width"] == 5 and model.hparams["lr"] == 0.01 and model.input_shape == (2, 12, 12)
    # the lazy head was sized by the construction probe: 5 × 10 × 10 features, by hand
    assert model.net.head[1].weight.shape == (3, 500)
    assert sum(p.numel() for p in model.parameters()) == (2 * 5 * 9 + 5) + (500 * 3 + 3)
    assert MODELS.get("plain_net").recipe == {"trainer": {"max_epochs": 5}}
    assert MODELS.get("plain_net").default_data == "mnist"
    # the wrapper's forward is the plugin's own, on the same weights
    torch.manual_seed(0)
    x = torch.randn(4, 2, 12, 12)
    assert torch.equal(model(x), model.net(x))
    assert "width" in MODELS.get("plain_net").__init__.__code__.co_varnames  # a real argument, not **kwargs


def test_plugin_checkpoint_round_trip(tmp_path: Path) -> None:
    MODELS.register("plain_net")(PlainNet)
    model = create_model("plain_net", num_classes=3, width=2)
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "cnnbench": {"model": "plain_net"},
            "pytorch-lightning_version": "2.6.6",
        },
        tmp_path / "m.ckpt",
    )
    loaded = ImageClassifier.load_from_checkpoint(tmp_path / "m.ckpt")
    x = torch.randn(2, 1, 32, 32)
    assert type(loaded) is type(model) and loaded.hparams["width"] == 2
    assert torch.equal(loaded(x), model(x))


def test_builder_with_kwargs_by_class_path_matches_torchvision() -> None:
    model = create_model("torchvision.models.resnet18", num_classes=7, in_channels=3, input_size=32)
    reference = torchvision.models.resnet18(num_classes=7)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    assert MODELS.name_of(model) == "torchvision.models.resnet18"


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("torch.nn.Flatten", {}, "has no argument 'num_classes'"),
        ("torchvision.models.ResNet", {}, r"needs argument\(s\) block, layers"),
        ("torchvision.models.resnet18", {}, "fails on a batch of 1×32×32 images .*takes no in_channels"),
    ],
)
def test_what_a_plugin_lacks_is_one_line(name: str, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        create_model(name, **kwargs)
    assert "\n" not in str(err.value)


def test_an_error_inside_the_plugin_is_one_line() -> None:
    @MODELS.register("assert_net")
    def assert_net(num_classes: int = 10) -> nn.Module:
        assert num_classes < 5, "too many classes\nsecond line"
        return nn.Identity()

    with pytest.raises(ValueError, match=r"^model 'assert_net': .*assert_net raised AssertionError: too many classes$"):
        create_model("assert_net")


def test_plugin_with_wrong_output_shape_is_refused() -> None:
    @MODELS.register("flat_out")
    def flat_out(num_classes: int = 10) -> nn.Module:
        return nn.Flatten()  # 1024 outputs, not 10

    with pytest.raises(ValueError, match=r"returns \(2, 1024\).*num_classes=10"):
        create_model("flat_out")


def test_a_model_without_a_recipe_gets_a_length() -> None:
    assert ImageClassifier.recipe["trainer"]["max_epochs"] > 0  # no "Epoch 0/-2": Lightning's 1000-epoch default


def test_broken_plugin_never_hides_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "good_plugin_mod.py").write_text(
        "from torch import nn\n"
        "def lazy_net(num_classes: int = 10):\n"
        "    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))\n"
    )
    (tmp_path / "bad_plugin_mod.py").write_text("raise RuntimeError('plugin exploded')\n")
    write_plugin_dist(tmp_path, "mixed_plugins", "lazy_net = good_plugin_mod:lazy_net\nbad_net = bad_plugin_mod:Net")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(MODELS, "_plugins_loaded", False)
    try:
        assert {"lazy_net", "lenet5"} <= set(list_models()) and "bad_net" not in list_models()
        assert "RuntimeError: plugin exploded" in MODELS.broken()["bad_net"]
        with pytest.raises(ValueError, match="'bad_net' is installed but broken: bad_plugin_mod:Net failed"):
            create_model("bad_net")
        from cnnbench.cli.models import _compute_rows

        rows = {r[0]: r for r in _compute_rows()}
        assert rows["lazy_net"][1] == f"{1024 * 10 + 10:,}"  # LazyLinear sized on the meta device
        assert rows["bad_net"][4].startswith("broken plugin:") and rows["lenet5"][1] == "61,706"
        from cnnbench.cli.models import models_table

        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        assert "broken plugin: bad_plugin_mod:Net failed to import" in models_table()
        assert not (tmp_path / "cache" / "cnnbench" / "models-table.json").exists()  # fixed later: not stale
    finally:
        sys.modules.pop("good_plugin_mod", None)


def test_grid_refuses_a_plugin_without_the_axes_it_sets() -> None:
    MODELS.register("plain_net")(PlainNet)
    grid = {"name": "g", "data": "mnist", "models": ["plain_net"], "pool": ["max"], "padding": ["valid"]}
    with pytest.raises(GridError, match="models.plain_net: model 'plain_net' has no argument 'pool'"):
        GridSpec.from_dict(grid)


def test_grid_needs_padding_mode_only_when_its_axis_varies() -> None:
    @MODELS.register("knob_net")
    def knob_net(num_classes: int = 10, pool: str = "max", padding: str = "valid") -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    grid = {"name": "g", "data": "mnist", "models": ["knob_net"], "pool": ["max"], "padding": ["valid"]}
    assert GridSpec.from_dict(grid).models[0].name == "knob_net"
    with pytest.raises(GridError, match="no argument 'padding_mode'"):
        GridSpec.from_dict({**grid, "padding_mode": ["zeros", "circular"]})
    from cnnbench.bench.cell import build

    cell = {"model": "knob_net", "model_args": {}, "pool": "avg", "padding": "same", "padding_mode": "zeros", "seed": 0}
    _, model = build({"cell": cell, "grid": {"data": {"name": "synthetic"}}})  # padding_mode zeros: not passed
    assert model.hparams["pool"] == "avg" and "padding_mode" not in model.hparams


# ----------------------------------------------------------------------------- the README's example, installed
def _install_example(site: Path) -> dict[str, str]:
    """A dist-info for examples/plugin with the entry points its pyproject.toml declares,
    plus one broken entry point next to them."""
    site.mkdir()
    section = (EXAMPLE / "pyproject.toml").read_text().split('[project.entry-points."cnnbench.models"]')[1]
    declared = section.split("\n[")[0].strip().splitlines()  # `name = "module:attr"` lines (no tomllib on 3.10)
    lines = [line.replace('"', "") for line in declared] + ["broken_net = no_such_module_xyz:Net"]
    assert len(lines) == 3
    write_plugin_dist(site, "cnnbench_example_plugin", "\n".join(lines))
    path = os.pathsep.join([str(REPO), str(EXAMPLE), str(site)])
    return {"PYTHONPATH": path, "XDG_CACHE_HOME": str(site / "cache"), "PYTHONUNBUFFERED": "1"}


def _cnnbench(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cnnbench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **env},
    )


def test_example_plugin_end_to_end(tmp_path: Path) -> None:
    env = _install_example(tmp_path / "site")
    data = tmp_path / "data"
    write_fake_mnist(data)

    listed = _cnnbench(env, tmp_path, "models")
    assert listed.returncode == 0, listed.stderr[-2000:]
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    # tiny_cnn at width 8: conv 1→8 and 8→16 (3×3), LazyLinear 16·8·8 → 10, by hand
    assert rows["tiny_cnn"].split()[1] == f"{(9 * 8 + 8) + (9 * 8 * 16 + 16) + (1024 * 10 + 10):,}"
    assert rows["tiny_mlp"].split()[1] == f"{(1024 * 64 + 64) + (64 * 10 + 10):,}"
    assert "broken plugin" in rows["broken_net"] and "no_such_module_xyz" in rows["broken_net"]
    assert rows["lenet5"].split()[1] == "61,706"

    summary = _cnnbench(env, tmp_path, "summary", "--model", "tiny_cnn", "--model.pool", "avg")
    assert summary.returncode == 0, summary.stderr[-2000:]
    assert "AvgPool2d" in summary.stdout and "net.head.1" in summary.stdout

    fit = _cnnbench(
        env,
        tmp_path,
        "fit",
        "--model",
        "tiny_cnn",
        "--model.width",
        "4",
        *data_args(data),
        "--trainer.max_steps=3",
        *FAST,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    config = (tmp_path / "runs" / "tiny_cnn" / "version_0" / "config.yaml").read_text()
    assert "class_path: cnnbench.models.plugin.tiny_cnn" in config and "max_epochs: 2" in config  # its own recipe
    loaded = _cnnbench(env, tmp_path, "test", "--ckpt_path", "last", "--model", "tiny_cnn", *data_args(data), *FAST)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "test/acc" in loaded.stdout + loaded.stderr

    grid = _cnnbench(env, tmp_path, "bench", str(EXAMPLE / "grid.yaml"), "--dry-run")
    assert grid.returncode == 0, grid.stderr[-2000:]
    assert grid.stdout.split() == [
        f"tiny_cnn-{p}-{d}-zeros-32-true-d1-s0" for p in ("max", "avg") for d in ("valid", "same")
    ]
    mlp_grid = tmp_path / "mlp.yaml"
    mlp_grid.write_text((EXAMPLE / "grid.yaml").read_text().replace("[tiny_cnn]", "[tiny_mlp]"))
    refused = _cnnbench(env, tmp_path, "bench", str(mlp_grid), "--dry-run")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "models.tiny_mlp: model 'tiny_mlp' has no argument 'pool', which the grid's pool axis sets "
            "(a grid model takes pool and padding; see README, Plugins)"
        )
    )
    flatten = _cnnbench(env, tmp_path, "fit", "--model", "torch.nn.Flatten", *data_args(data), *FAST)
    assert flatten.returncode != 0 and "Traceback" not in flatten.stderr
    assert "model 'torch.nn.Flatten' (torch.nn.modules.flatten.Flatten) has no argument 'num_classes'" in flatten.stderr


def test_readme_shows_the_example_files() -> None:
    readme = (REPO / "README.md").read_text()
    for line in textwrap.dedent((EXAMPLE / "pyproject.toml").read_text()).splitlines():
        if line.startswith(("tiny_cnn", "tiny_mlp", "[project.entry-points")):
            assert line in readme
    assert "examples/plugin" in readme
