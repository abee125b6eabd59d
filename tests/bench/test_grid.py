from pathlib import Path

import pytest

from cnnbench.bench.grid import GridError, GridSpec, expand, parse_shard, shard

BASE = {"name": "g", "data": {"name": "mnist"}, "models": ["lenet5"], "pool": ["max"], "padding": ["valid"]}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pools": ["max"]}, r"grid\.yaml: pools: unknown key; valid keys"),
        ({"pool": ["median"]}, r"pool: unknown value 'median'; valid: max, avg, min, lp, blur, conv"),
        ({"padding": ["half"]}, r"padding: unknown value 'half'; valid: valid, same, full"),
        ({"models": ["lenet"]}, r"models: Unknown model 'lenet'\. Did you mean 'lenet5'"),
        ({"pool": []}, r"pool: empty axis"),
        ({"seeds": []}, r"seeds: empty axis"),
        ({"seeds": [-1]}, r"seeds: -1 is not a valid seed"),
        ({"devices": [0]}, r"devices: 0 is not a valid device"),
        ({"data": {"name": "mnsit"}}, r"data\.name: Unknown data module 'mnsit'"),
        ({"trainer": {"max_epoch": 3}}, r"trainer\.max_epoch: not a Trainer argument"),
        ({"robustness": {"shift": [1]}}, r"robustness\.shift: unknown key"),
        ({"precision": ["fp8"]}, r"precision: unknown value 'fp8'"),
    ],
)
def test_validation_errors_name_file_and_key(tmp_path: Path, change: dict, message: str) -> None:
    import yaml

    path = write(tmp_path, yaml.safe_dump({**BASE, **change}))
    with pytest.raises(GridError, match=message):
        GridSpec.load(path)


def test_missing_key_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(GridError, match="grid.yaml: models: missing"):
        GridSpec.load(write(tmp_path, "name: g\ndata: mnist\npool: [max]\npadding: [valid]\n"))
    with pytest.raises(GridError, match="not valid YAML"):
        GridSpec.load(write(tmp_path, "name: [unclosed\n"))


def test_expansion_order_and_run_ids() -> None:
    spec = GridSpec.from_dict({**BASE, "pool": ["max", "avg"], "padding": ["valid", "same"], "seeds": [0, 1, 2],
                               "models": ["lenet5", {"name": "lenet5", "args": {"lr": 0.01}}]})  # fmt: skip
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
    root = Path(__file__).resolve().parents[2] / "benchmarks" / "grids"
    names = {p.stem for p in root.glob("*.yaml")}
    assert {"smoke", "mnist", "cifar10"} <= names
    for path in root.glob("*.yaml"):
        assert expand(GridSpec.load(path))
    assert len(expand(GridSpec.load(root / "mnist.yaml"))) == 72
