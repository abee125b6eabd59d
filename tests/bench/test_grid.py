from pathlib import Path

import pytest

from cnnbench.bench.grid import Cell, GridError, GridSpec, expand, parse_shard, shard

BASE = {"name": "g", "data": {"name": "mnist"}, "models": ["lenet5"], "pool": ["max"], "padding": ["valid"]}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def test_augment_axis_run_ids_and_defaults() -> None:
    old = expand(GridSpec.from_dict(BASE))
    assert [c.augment for c in old] == ["standard"]
    assert old[0].run_id == "lenet5-max-valid-zeros-32-true-d1-s0"  # run_ids of grids without the axis unchanged
    spec = GridSpec.from_dict({**BASE, "augment": ["none", "standard"], "seeds": [0, 1]})
    ids = [c.run_id for c in expand(spec)]
    assert ids == [
        "lenet5-max-valid-zeros-32-true-d1-augnone-s0",
        "lenet5-max-valid-zeros-32-true-d1-augnone-s1",
        "lenet5-max-valid-zeros-32-true-d1-s0",
        "lenet5-max-valid-zeros-32-true-d1-s1",
    ]
    cells = expand(spec)
    assert cells[0].group_key != cells[2].group_key and cells[0].group_key == cells[1].group_key
    assert "augment" not in spec.data  # carried per cell, not by the data block
    from_data = GridSpec.from_dict({**BASE, "data": {"name": "mnist", "augment": "none"}})
    assert from_data.augment == ["none"] and expand(from_data)[0].run_id.endswith("-augnone-s0")
    synthetic = GridSpec.from_dict({**BASE, "data": {"name": "synthetic"}})
    assert synthetic.augment == ["none"]  # the only preset synthetic data has


def test_build_passes_the_cell_augment_to_the_data_module() -> None:
    from cnnbench.bench.cell import build

    spec = GridSpec.from_dict({**BASE, "augment": ["none", "strong"]})
    for cell in expand(spec):
        dm, _ = build({"cell": cell.to_dict(), "grid": spec.to_dict()})
        assert dm.hparams["augment"] == cell.augment
        assert dm.augmentation == type(dm).augment_presets[cell.augment]


def test_expansion_order_and_run_ids() -> None:
    spec = GridSpec.from_dict(
        {
            **BASE,
            "pool": ["max", "avg"],
            "padding": ["valid", "same"],
            "seeds": [0, 1, 2],
            "models": ["lenet5", {"name": "lenet5", "args": {"lr": 0.01}}],
        }
    )
    cells = expand(spec)
    assert len(cells) == 2 * 2 * 2 * 3
    assert len({c.run_id for c in cells}) == len(cells)
    assert cells[0].run_id == "lenet5-max-valid-zeros-32-true-d1-s0"
    assert cells[-1].model_label.startswith("lenet5~") and cells[-1].seed == 2


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 30])
def test_shards_partition_the_grid_exactly(count: int) -> None:
    spec = GridSpec.from_dict(
        {**BASE, "pool": ["max", "avg", "min"], "padding": ["valid", "same"], "seeds": [0, 1, 2, 3]}
    )
    cells = expand(spec)
    parts = [shard(cells, i, count) for i in range(count)]
    ids = [c.run_id for part in parts for c in part]
    assert sorted(ids) == sorted(c.run_id for c in cells) and len(ids) == len(set(ids))
    assert [c.run_id for c in shard(expand(spec), 1 % count, count)] == [c.run_id for c in parts[1 % count]]


def test_parse_shard() -> None:
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(GridError):
            parse_shard(bad)


def test_shipped_grids_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "cnnbench" / "grids"
    names = {p.stem for p in root.glob("*.yaml")}
    assert {"smoke", "mnist", "cifar10", "cifar10-gpu"} <= names
    for path in root.glob("*.yaml"):
        if not path.name.endswith(".questions.yaml"):
            assert expand(GridSpec.load(path))
    mnist = GridSpec.load(root / "mnist.yaml")  # both LeNet-5s × 6 pools × 2 paddings × augment none/standard × 5 seeds
    assert len(expand(mnist)) == 240 and mnist.augment == ["none", "standard"] and len(mnist.seeds) >= 5
    cifar = GridSpec.load(root / "cifar10-gpu.yaml")  # alexnet_cifar × 6 pools × 2 paddings × 5 seeds, bf16-mixed
    assert len(expand(cifar)) == 60 and cifar.precision == ["bf16-mixed"] and len(cifar.pool) == 6


def test_exclude_drops_exactly_the_matching_cells() -> None:
    raw = {
        "name": "x",
        "data": {"name": "mnist"},
        "models": [{"name": "lenet5", "args": {"head_pool": 5}}, "lenet5"],
        "pool": ["max"],
        "padding": ["valid", "same", "full"],
        "padding_mode": ["zeros", "background"],
        "seeds": [0, 1],
    }
    full = expand(GridSpec.from_dict(raw))
    exclude = [{"padding": "valid", "padding_mode": "background"}, {"model": "lenet5", "padding": "valid"}]
    kept = expand(GridSpec.from_dict({**raw, "exclude": exclude}))

    def dropped(c: Cell) -> bool:  # the same rule written out by hand
        return (c.padding == "valid" and c.padding_mode == "background") or (
            c.model_label == "lenet5" and c.padding == "valid"
        )

    assert [c.run_id for c in kept] == [c.run_id for c in full if not dropped(c)]
    assert len(full) == 24 and len(kept) == 24 - 4 - 2  # 2 seeds: valid/background ×2 models, lenet5 valid/zeros
    with pytest.raises(GridError, match="exclude.pol: not a coordinate"):
        GridSpec.from_dict({**raw, "exclude": [{"pol": "max"}]})


def test_questions_files_are_not_listed_as_grids() -> None:
    from cnnbench.bench.grid import shipped_grids

    names = set(shipped_grids())
    assert "mnist-padding-study" in names and not any(n.endswith(".questions") for n in names)
