"""``cnnbench.training.checkpoints``: the cached state key must be the one Lightning computes."""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint

from cnnbench.training import SafeModelCheckpoint


def test_checkpoint_state_key_is_the_one_lightning_computes_so_checkpoints_still_match() -> None:
    ckpt = SafeModelCheckpoint(monitor="val/acc", mode="max", save_last=True)
    assert ckpt.state_key == ckpt.state_key == ModelCheckpoint.state_key.fget(ckpt)  # type: ignore[attr-defined]
    assert ckpt.state_key.startswith("SafeModelCheckpoint{'monitor': 'val/acc'")
