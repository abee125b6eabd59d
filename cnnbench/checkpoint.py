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
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cnnbench.core.atomic import write_atomic


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt, or not a cnnbench checkpoint."""


def check_checkpoint_file(path: str | os.PathLike[str]) -> None:
    """Raise a one-line :class:`CheckpointError` naming ``path`` unless it is an intact file
    in the checkpoint format (a zip archive, as torch.save writes, whose CRCs match): missing,
    empty, truncated, corrupted, or some other kind of file (where torch's unpickler would
    report a bare ``KeyError``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    if zipfile.is_zipfile(path):
        # torch.load does not check the archive's CRCs: a corrupted byte inside a tensor
        # would load as a wrong weight. Checking them reads the file once (~0.3 s per GB)
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as err:
            damaged = f"{type(err).__name__}: {err}"
        if damaged is not None:
            raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): {damaged} is damaged")
        return
    with path.open("rb") as fh:
        head = fh.read(4)
    if not head:
        raise CheckpointError(f"{path} is empty (a checkpoint whose writing never finished?)")
    if head == b"PK\x03\x04":  # a zip archive's first entry without its end: cut short
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): the archive is incomplete")
    raise CheckpointError(f"{path} is not a checkpoint (expected a .ckpt file written by `cnnbench fit`)")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint dict onto the CPU, or raise :class:`CheckpointError` naming the file."""
    path = Path(path)
    check_checkpoint_file(path)
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
    """Write each checkpoint to a temporary file, then rename it into place; check a
    checkpoint's integrity before loading it (``trainer.fit(ckpt_path=...)`` too).

    A crash while writing leaves the previous file (``last.ckpt`` too) intact; a reader
    never sees a half-written checkpoint under the real name.
    """

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> Any:
        if isinstance(path, str | os.PathLike) and "://" not in str(path):  # local files; fsspec URLs as before
            check_checkpoint_file(path)
        if map_location is None:
            return super().load_checkpoint(path, weights_only=weights_only)
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        write_atomic(path, lambda fh: torch.save(checkpoint, fh))
