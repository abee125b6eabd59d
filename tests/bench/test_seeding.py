"""A grid cell trains with its own seed (init, split, data order, augmentation), forked or not,
and gets its share of the CPU threads.

The forked test runs real cells through the fork server (the path ``cnnbench bench`` takes);
the in-process test stops ``run_cell`` at ``trainer.fit`` to look at each seeded component
separately, so a cell that seeds its model but not its data (or the reverse) fails too.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from cnnbench.bench import runner
from cnnbench.bench.grid import GridSpec, expand
from cnnbench.bench.runner import cpu_share, load_results, run_grid

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from fakes import write_fake_mnist

    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS / "netguard"), str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("CNNBENCH_NETGUARD_LOG", str(tmp_path / "network.log"))
    write_fake_mnist(tmp_path / "data", n_train=300, n_test=64)
    return tmp_path / "data"


def seed_grid(root: Path, seeds: list[int]) -> GridSpec:
    return GridSpec.from_dict(
        {
            "name": "seeds",
            "data": {
                "name": "mnist",
                "root": str(root),
                "download": False,
                "verify": False,
                "val_size": 60,
                "batch_size": 32,
                "augment": "standard",
            },
            "models": ["lenet5"],
            "pool": ["max"],
            "padding": ["same"],
            "seeds": seeds,
            "trainer": {"max_steps": 4, "limit_val_batches": 1, "num_sanity_val_steps": 0},
            "robustness": {"shifts": [1], "max_images": 16, "fills": ["zero"], "edge": False},
        }
    )


def final_weights(out: Path, run_id: str) -> dict[str, torch.Tensor]:
    ckpt = out / "runs" / run_id / "version_0" / "checkpoints" / "last.ckpt"
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def test_forked_cells_differ_by_seed_repeat_per_seed_and_get_their_thread_share(
    fake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # six cores as the runner sees them (whatever this machine has): two cells at once get three threads each
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))
    assert cpu_share(2) == 3
    first, again = tmp_path / "first", tmp_path / "again"
    run_grid(seed_grid(fake_root, [0, 1]), first, workers=2, wandb=False, keep_checkpoints=True, log=io.StringIO())
    run_grid(seed_grid(fake_root, [0]), again, workers=2, wandb=False, keep_checkpoints=True, log=io.StringIO())
    results = {(out.name, r["seed"]): r for out in (first, again) for r in load_results(out)}
    assert {r["status"] for r in results.values()} == {"ok"} and len(results) == 3
    assert all(r["launcher"] == "fork" and r["threads"] == 3 for r in results.values())
    s0, s1 = (c.run_id for c in expand(seed_grid(fake_root, [0, 1])))
    w0, w1, w0_again = final_weights(first, s0), final_weights(first, s1), final_weights(again, s0)
    assert w0.keys() == w1.keys() == w0_again.keys()
    for name in w0:  # the same seed: the same run, bit for bit
        assert torch.equal(w0[name], w0_again[name]), name
    weights = [k for k in w0 if k.endswith("weight")]
    assert all(not torch.equal(w0[k], w1[k]) for k in weights)  # another seed: every layer differs
    for key in ("test_loss", "best_val_acc", "test_acc"):
        assert results[("first", 0)][key] == results[("again", 0)][key], key
    assert results[("first", 0)]["test_loss"] != results[("first", 1)]["test_loss"]


class _Stop(Exception):
    pass


def test_run_cell_seeds_init_split_order_and_augmentation(
    fake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnnbench.bench.cell import run_cell
    from cnnbench.data.augment import batch_seed

    seen: list[dict[str, Any]] = []

    def record(self: L.Trainer, model: Any, dm: Any, *args: Any, **kwargs: Any) -> None:
        dm.setup()
        loader = dm.train_dataloader()  # outside a running fit: augmented, normalized batches
        order = loader.indices(0)[: dm.batch_size]
        seen.append(
            {
                "seed": dm.seed,
                "init": {k: v.clone() for k, v in model.state_dict().items()},
                "val": dm.split_indices["val"].clone(),
                "order": order.clone(),
                "batch": next(iter(loader))[0],
                "augmented": dm.augmentation(dm.splits["train"][0][order], seed=batch_seed(dm.seed, 0, 0, 0)),
                "threads": torch.get_num_threads(),
            }
        )
        raise _Stop

    monkeypatch.setattr(L.Trainer, "fit", record)
    spec = seed_grid(fake_root, [0, 1])
    cells = {c.seed: c for c in expand(spec)}
    threads = torch.get_num_threads()
    try:
        for seed in (0, 1, 0):
            run = {
                "run_id": f"r{len(seen)}",
                "cell": cells[seed].to_dict(),
                "grid": spec.to_dict(),
                "out": str(tmp_path / "out"),
                "wandb": False,
                "threads": 1,
            }
            with pytest.raises(_Stop):
                run_cell(run)
    finally:
        torch.set_num_threads(threads)
    a, b, a_again = seen
    assert (a["seed"], b["seed"], a["threads"]) == (0, 1, 1)
    for key in ("val", "order", "batch"):
        assert torch.equal(a[key], a_again[key]) and not torch.equal(a[key], b[key]), key
    for name in a["init"]:
        assert torch.equal(a["init"][name], a_again["init"][name]), name
    assert not torch.equal(a["init"]["features.0.weight"], b["init"]["features.0.weight"])
    # the batch a cell trains on is its seed's augmentation of its seed's order (not just "some" batch)
    assert not torch.equal(a["augmented"], b["augmented"])
    expected = (a["augmented"].float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(a["batch"], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("cores", "workers", "devices", "share"),
    [(16, 1, 1, 16), (16, 2, 1, 8), (16, 3, 1, 5), (16, 2, 2, 4), (16, 32, 1, 1), (1, 4, 1, 1), (7, 2, 1, 3)],
)
def test_thread_share_with_a_patched_core_count(
    cores: int, workers: int, devices: int, share: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert runner.cpu_share(workers, devices) == share
