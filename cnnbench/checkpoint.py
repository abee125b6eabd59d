"""The checkpoint format, in one place: checking and reading files, writing them atomically,
the ``cnnbench`` metadata every checkpoint carries, and rebuilding models from them.

The metadata (``checkpoint["cnnbench"]``: the model's registry name, the package version, the
global seed, the data module's name and preprocessing state) is written by the
:class:`CheckpointMetadata` callback that the trainer assembly
(:func:`cnnbench.training.trainer_extras`) adds; :func:`load_from_checkpoint` and
:func:`load_model` read it back and find the registered class. The models know nothing about
files: ``ImageClassifier.load_from_checkpoint`` called on a base class comes here through
``ImageClassifier.checkpoint_loader``, which this module installs when imported (the models
sit below it and import nothing of it).

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

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cnnbench.core.atomic import write_atomic
from cnnbench.models.base import ImageClassifier
from cnnbench.models.registry import MODELS

#: the key of the cnnbench metadata in a checkpoint dict
METADATA_KEY = "cnnbench"


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
    return dict(ckpt.get(METADATA_KEY) or {})


def checkpoint_metadata(trainer: L.Trainer | None, model: L.LightningModule) -> dict[str, Any]:
    """What rebuilding needs without other flags: the model's registry name, the package version,
    the global seed, and (when the trainer has a data module) its name and preprocessing state.

    Example:
        >>> from cnnbench.models import create_model
        >>> info = checkpoint_metadata(None, create_model("lenet5"))
        >>> info["model"], sorted(info)
        ('lenet5', ['model', 'seed', 'version'])
    """
    from cnnbench import __version__

    info: dict[str, Any] = {
        "model": MODELS.name_of(model),
        "version": __version__,
        "seed": os.environ.get("PL_GLOBAL_SEED"),
    }
    datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
    if datamodule is not None:
        info["data"] = getattr(datamodule, "name", None)
        info["data_state"] = datamodule.state_dict()
    return info


class CheckpointMetadata(Callback):
    """Store :func:`checkpoint_metadata` under ``checkpoint["cnnbench"]`` in every checkpoint of a
    cnnbench model (``cnnbench fit`` and grid cells add it through ``trainer_extras``; add it to
    a plain ``lightning.Trainer`` to write the same files)."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if isinstance(pl_module, ImageClassifier):
            checkpoint[METADATA_KEY] = checkpoint_metadata(trainer, pl_module)


def _stored_class(name: str | None) -> type[ImageClassifier] | None:
    entry = MODELS.get(name) if name is not None and name in MODELS else None
    return entry if isinstance(entry, type) and issubclass(entry, ImageClassifier) else None


def load_from_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """Rebuild the model stored in a cnnbench checkpoint, with no other information.

    The registry name and every hyperparameter are read from the file.

    Example:
        >>> model = load_from_checkpoint("runs/lenet5/version_0/checkpoints/last.ckpt")  # doctest: +SKIP
    """
    return model_from_checkpoint(read_checkpoint(path), path).to(map_location)


def model_from_checkpoint(ckpt: dict[str, Any], source: str | os.PathLike[str]) -> Any:
    """Rebuild the model of a checkpoint already read with :func:`read_checkpoint` (``source``
    names the file in errors): the registry name and hyperparameters from the dict, then its weights."""
    name = checkpoint_info(ckpt).get("model")
    if name is None:
        raise CheckpointError(f"{source} was not written by cnnbench (no model name stored)")
    cls = MODELS.get(name)
    # LightningCLI adds private keys such as `_class_path` to the hyperparameters
    model = cls(**{k: v for k, v in (ckpt.get("hyper_parameters") or {}).items() if not k.startswith("_")})
    model.load_state_dict(ckpt["state_dict"])
    return model


def _read_bytes(checkpoint_path: Any) -> bytes:
    """The file's bytes (read once: the registry name and Lightning's load both need them)."""
    if hasattr(checkpoint_path, "read"):
        return checkpoint_path.read()  # type: ignore[no-any-return]
    check_checkpoint_file(checkpoint_path)  # one line for empty, truncated or non-checkpoint files
    with open(checkpoint_path, "rb") as fh:
        return fh.read()


def load_model(
    cls: type[ImageClassifier],
    checkpoint_path: Any,
    map_location: Any = None,
    hparams_file: Any = None,
    strict: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Lightning's ``load_from_checkpoint`` for ``cls``; for a base class (``ImageClassifier``), the
    registered subclass whose name the checkpoint stores (``checkpoint["cnnbench"]["model"]``).

    ``ImageClassifier.load_from_checkpoint`` (and ``LeNet5.load_from_checkpoint``...) call this.

    Example:
        >>> model = load_model(ImageClassifier, "runs/lenet5/version_0/checkpoints/last.ckpt")  # doctest: +SKIP
    """
    target = cls
    if MODELS.name_of(cls) is None:  # a base class: find the concrete one in the file
        data = _read_bytes(checkpoint_path)
        try:
            stored = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            name = checkpoint_info(stored).get("model")
        except Exception as err:
            raise ValueError(
                f"{checkpoint_path} is not a readable checkpoint ({type(err).__name__}: {str(err)[:200]})"
            ) from None
        stored_cls = _stored_class(name)
        if stored_cls is not None and issubclass(stored_cls, cls):
            target = stored_cls
        elif cls is ImageClassifier:
            raise ValueError(
                f"{checkpoint_path} names no registered cnnbench model ({name!r}); load it with the model's own class"
            )
        checkpoint_path = io.BytesIO(data)
    load = L.LightningModule.load_from_checkpoint.__func__  # type: ignore[attr-defined]
    return load(target, checkpoint_path, map_location, hparams_file, strict, **kwargs)


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


# the models' load_from_checkpoint comes here (see the module docstring)
ImageClassifier.checkpoint_loader = load_model
