"""Data files are MD5-checked before use on the path every grid cell takes: the fork server's
data cache (``cnnbench.bench.datacache``), which reads the data once and hands it to forked cells.

The fork server is another process, so the test's fake MNIST files cannot be made "official"
by patching this process: a data plugin (an installed-distribution record on $PYTHONPATH, as a
third-party package would declare it) registers an MNIST module whose expected MD5s are the
fake files' own.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnbench.bench.grid import GridSpec
from cnnbench.bench.runner import load_results, run_grid
from cnnbench.data import DATA, create_data
from cnnbench.data.files import DataError

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def checked_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Fake MNIST under the returned root, registered as data module ``checked_mnist`` that
    verifies the fake files' MD5s, in this process and in the grid's processes."""
    from fakes import write_fake_mnist

    root = tmp_path / "data"
    md5s = write_fake_mnist(root, n_train=200, n_test=40)
    plugins = tmp_path / "plugins"
    (plugins / "checked_mnist-1.0.dist-info").mkdir(parents=True)
    (plugins / "checked_mnist.py").write_text(
        "from cnnbench.data.mnist import MNISTDataModule\n\n\n"
        f"class CheckedMNIST(MNISTDataModule):\n    files = {md5s!r}\n"
    )
    dist = plugins / "checked_mnist-1.0.dist-info"
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: checked-mnist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[cnnbench.data]\nchecked_mnist = checked_mnist:CheckedMNIST\n")
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setattr(DATA, "_plugins_loaded", False)
    path = [str(plugins), str(TESTS / "netguard"), str(TESTS), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    monkeypatch.setenv("CNNBENCH_NETGUARD_LOG", str(tmp_path / "network.log"))
    yield root
    DATA._entries.pop("checked_mnist", None)
    sys.modules.pop("checked_mnist", None)


def test_a_corrupted_file_fails_the_forked_cell_with_the_integrity_error(checked_mnist: Path, tmp_path: Path) -> None:
    dm = create_data("checked_mnist", root=str(checked_mnist), download=False)
    dm.check()  # the plugin accepts the intact fake files: the failure below is the corruption's
    images = checked_mnist / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[16 + 28 * 14 + 14] ^= 0xFF  # one pixel of the first test digit: the file still decodes
    images.write_bytes(bytes(data))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        dm.check()
    spec = GridSpec.from_dict(
        {
            "name": "md5",
            "data": {
                "name": "checked_mnist",
                "root": str(checked_mnist),
                "download": False,
                "verify": True,
                "val_size": 40,
                "batch_size": 32,
            },
            "models": ["lenet5"],
            "pool": ["max"],
            "padding": ["same"],
            "seeds": [0],
            "trainer": {"max_steps": 2, "limit_val_batches": 1, "num_sanity_val_steps": 0},
            "robustness": {"shifts": [1], "max_images": 8, "fills": ["zero"], "edge": False},
        }
    )
    out = tmp_path / "out"
    run_grid(spec, out, wandb=False, log=io.StringIO())
    (result,) = load_results(out)
    assert result["launcher"] == "fork"
    assert result["status"] == "failed", "a cell trained on a file whose MD5 does not match"
    assert "t10k-images-idx3-ubyte" in result["error"] and "md5" in result["error"].lower()
    assert not (tmp_path / "network.log").exists()  # and nothing tried to download a fresh copy
