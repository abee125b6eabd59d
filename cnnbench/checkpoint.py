"""Reading checkpoints safely, writing them atomically, and rebuilding models from them.

Example:
    >>> import cnnbench, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "broken.ckpt")
    >>> _ = open(path, "wb").write(b"not a checkpoint")
    >>> try:
    ...     cnnbench.load_from_checkpoint(path)
    ... except cnnbench.CheckpointError as err:
    ...     print("broken.ckpt" in str(err))
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt, or not a cnnbench checkpoint."""


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint dict onto the CPU, or raise :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt?): {type(err).__name__}: {str(err)[:200]}"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def checkpoint_info(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The cnnbench metadata of a checkpoint: registry names, seed, package version."""
    return dict(ckpt.get("cnnbench") or {})


def load_from_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """Rebuild the model stored in a cnnbench checkpoint, with no other information.

    The registry name and every hyperparameter are read from the file.

    Example:
        >>> model = load_from_checkpoint("runs/lenet5/version_0/checkpoints/last.ckpt")  # doctest: +SKIP
    """
    from cnnbench.models import MODELS

    ckpt = read_checkpoint(path)
    name = checkpoint_info(ckpt).get("model")
    if name is None:
        raise CheckpointError(f"{path} was not written by cnnbench (no model name stored)")
    cls = MODELS.get(name)
    # LightningCLI adds private keys such as `_class_path` to the hyperparameters
    model = cls(**{k: v for k, v in ckpt.get("hyper_parameters", {}).items() if not k.startswith("_")})
    model.load_state_dict(ckpt["state_dict"])
    return model.to(map_location)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file, then rename it into place.

    A crash while writing leaves the previous file (``last.ckpt`` too) intact; a reader
    never sees a half-written checkpoint under the real name.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
