"""Reading a grid file (:mod:`cnnbench.bench.gridparse`): every error names the file and the key."""

from pathlib import Path

import pytest

from cnnbench.bench.grid import GridError, GridSpec

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
        ({"trainer": {"max_epoch": 3}}, r"trainer\.max_epoch: not a Trainer argument; did you mean max_epochs"),
        ({"robustness": {"shift": [1]}}, r"robustness\.shift: unknown key"),
        (
            {"robustness": {"border": 8}},
            r"robustness\.border: the cropping border probe was replaced by the edge probe",
        ),
        ({"robustness": {"fills": ["reflect"]}}, r"robustness\.fills: a list of zero and/or circular"),
        ({"robustness": {"copies": 1}}, r"robustness\.copies: an integer >= 2"),
        (
            {"data": {"name": "mnist", "batch_sise": 256}},
            r"grid\.yaml: data\.batch_sise: not an argument of data module 'mnist'; did you mean batch_size",
        ),
        ({"data": {"name": "mnist", "seed": 1}}, r"data\.seed: set by the seeds axis"),
        (
            {"data": {"name": "mnist", "augment": "none"}, "augment": ["none"]},
            r"data\.augment: set by the top-level augment axis",
        ),
        ({"augment": ["heavy"]}, r"augment: unknown value 'heavy'; valid: none, standard, strong"),
        (
            {"models": [{"name": "lenet5", "args": {"lrr": 0.1}}]},
            r"models\.lenet5\.args\.lrr: not an argument of model 'lenet5'; did you mean lr",
        ),
        ({"models": [{"name": "lenet5", "args": {"dropout": 0.5}}]}, r"models\.lenet5\.args\.dropout: not an argument"),
        ({"precision": ["fp8"]}, r"precision: unknown value 'fp8'"),
    ],
)
def test_validation_errors_name_file_and_key(tmp_path: Path, change: dict, message: str) -> None:
    import yaml

    path = write(tmp_path, yaml.safe_dump({**BASE, **change}))
    with pytest.raises(GridError, match=message):
        GridSpec.load(path)


def test_dry_run_fails_on_a_data_typo_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from cnnbench.cli import main

    path = write(tmp_path, yaml.safe_dump({**BASE, "data": {"name": "mnist", "batch_sise": 256}}))
    assert main(["bench", str(path), "--dry-run"]) != 0
    err = capsys.readouterr().err
    assert "grid.yaml: data.batch_sise" in err and "batch_size" in err and "Traceback" not in err


def test_known_arguments_pass() -> None:
    spec = GridSpec.from_dict(
        {
            **BASE,
            "data": {"name": "mnist", "batch_size": 64, "val_size": 100, "image_size": 32},
            "models": [{"name": "lenet5_classic", "args": {"rbf_j": 5.0, "lr": 0.01}}],
            "trainer": {"max_epochs": 1, "limit_train_batches": 2},
        }
    )
    assert spec.data == {"name": "mnist", "batch_size": 64, "val_size": 100, "image_size": 32}


def test_robustness_defaults_and_older_fill_key() -> None:
    spec = GridSpec.from_dict(BASE)
    assert spec.robustness == {"shifts": [1, 2, 3, 4], "fills": ["zero", "circular"], "copies": 4, "seed": 0}
    assert GridSpec.from_dict({**BASE, "robustness": {"fill": "circular"}}).robustness["fills"] == ["circular"]


def test_missing_key_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(GridError, match="grid.yaml: models: missing"):
        GridSpec.load(write(tmp_path, "name: g\ndata: mnist\npool: [max]\npadding: [valid]\n"))
    with pytest.raises(GridError, match="not valid YAML"):
        GridSpec.load(write(tmp_path, "name: [unclosed\n"))
