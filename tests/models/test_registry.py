import sys
import textwrap
from pathlib import Path

import pytest
from fakes import write_plugin_dist
from torch import nn

import cnnbench
from cnnbench.models import MODELS, create_model, list_models, register_model


def test_list_models_sorted_with_wildcards() -> None:
    names = list_models()
    assert names == sorted(names)
    assert {"lenet5", "lenet5_classic", "alexnet", "alexnet2012", "alexnet_cifar"} <= set(names)
    assert list_models("alexnet*") == ["alexnet", "alexnet2012", "alexnet_cifar"]
    assert cnnbench.list_models is list_models


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ValueError, match="did you mean 'lenet5'".replace("did", "Did")):
        create_model("lenet")


def test_create_model_drops_none_kwargs() -> None:
    model = create_model("lenet5", pool=None, padding=None, num_classes=7)
    assert model.hparams.pool == "max" and model.hparams.num_classes == 7


def test_register_bare_named_and_duplicate() -> None:
    @register_model
    def tiny_test_net(num_classes: int = 10, width: int = 2) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(width), nn.Linear(width, num_classes))

    @register_model("Tiny_Named_Net")
    class Named(nn.Module):
        pass

    assert "tiny_test_net" in list_models() and "tiny_named_net" in list_models()
    assert create_model("tiny_test_net", width=3).net[2].in_features == 3  # the builder's module, wrapped
    with pytest.raises(ValueError, match="has no argument 'num_classes'"):
        create_model("tiny_named_net")
    with pytest.raises(ValueError, match="already registered"):

        @register_model("tiny_test_net")
        def other() -> nn.Module:
            return nn.Identity()

    del MODELS._entries["tiny_test_net"], MODELS._entries["tiny_named_net"]


def test_entry_point_plugin_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "cnnbench_plugin_demo.py"
    pkg.write_text(
        textwrap.dedent(
            """
            from torch import nn

            class PluginNet(nn.Module):
                def __init__(self, num_classes: int = 10) -> None:
                    super().__init__()
                    self.fc = nn.Linear(1024, num_classes)

                def forward(self, x):
                    return self.fc(x.flatten(1))
            """
        )
    )
    write_plugin_dist(tmp_path, "cnnbench_plugin_demo", "plugin_net = cnnbench_plugin_demo:PluginNet")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(MODELS, "_plugins_loaded", False)
    try:
        assert "plugin_net" in list_models()
        assert create_model("plugin_net", num_classes=3).net.fc.out_features == 3
    finally:
        MODELS._entries.pop("plugin_net", None)
        sys.modules.pop("cnnbench_plugin_demo", None)
