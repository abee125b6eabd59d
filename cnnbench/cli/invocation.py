"""What one ``cnnbench fit|validate|test`` call is about, and what its run learns while it runs.

:class:`Invocation` is built once, by :func:`cnnbench.cli.argv.prepare_invocation`, from the
command line: the argv handed to LightningCLI and the registry names, classes and checkpoint
it names. It is frozen: the CLI class, the help printer and the error printer only read it.

:class:`RunState` is the little the command learns while the run goes on (the run folder,
whether training started, which signal stopped it), written by the CLI class and its
callbacks and read by :mod:`cnnbench.cli.main` to say how to continue an interrupted run.

Example:
    >>> inv = Invocation("fit", ("fit", "--model", "cnnbench.models.lenet.LeNet5"), model_name="lenet5")
    >>> inv.subcommand, inv.model_name, inv.ckpt
    ('fit', 'lenet5', None)
    >>> inv.names("model")
    ('lenet5', None)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Invocation:
    """A prepared ``cnnbench fit|validate|test`` command line.

    Attributes:
        subcommand: ``fit``, ``validate`` or ``test``.
        argv: The arguments for LightningCLI (subcommand first, defaults, then the user's flags).
        run_dir: ``--trainer.default_root_dir`` as given (``runs`` if absent): where runs are found.
        model_name: The model's registry name (None: not registered, or no ``--model``).
        model_cls: The model's class (None when jsonargparse resolves it).
        data_name: The data set's registry name.
        data_cls: The data set's class.
        ckpt: The checkpoint file of ``--ckpt_path`` (``last`` resolved), or None.
        resume_dir: The run folder holding that checkpoint (``.../version_N``), or None.
        saved_schedulers: The checkpoint's ``lr_schedulers`` states (None without a checkpoint).
    """

    subcommand: str
    argv: tuple[str, ...]
    run_dir: str = "runs"
    model_name: str | None = None
    model_cls: type | None = None
    data_name: str | None = None
    data_cls: type | None = None
    ckpt: str | None = None
    resume_dir: Path | None = None
    saved_schedulers: tuple[dict[str, Any], ...] | None = None

    def names(self, key: str) -> tuple[str | None, type | None]:
        """``(registry name, class)`` of ``model`` or ``data``."""
        if key == "model":
            return self.model_name, self.model_cls
        return self.data_name, self.data_cls


@dataclass
class RunState:
    """What a running ``fit|validate|test`` learns (mutable: written by the CLI and its callbacks).

    Attributes:
        run_folder: ``runs/<model>/version_N`` once the trainer is built.
        new_run_folder: The top folder this run created (removed if it fails before training).
        started: True once training began (the run folder is then kept).
        stopped_by: ``"Ctrl-C"`` when the first Ctrl-C asked the fit to stop.
    """

    run_folder: Path | None = None
    new_run_folder: Path | None = None
    started: bool = False
    stopped_by: str | None = None
