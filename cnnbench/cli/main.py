"""The ``cnnbench`` command: dispatch to a subcommand, one-line errors, how to continue after a stop.

``fit``, ``validate`` and ``test`` are Lightning's ``LightningCLI`` (:mod:`cnnbench.cli.lightning`),
``models``, ``summary``, ``predict``, ``bench`` and ``report`` are cnnbench's own (one module
each). Every subcommand module is imported only when it runs: ``cnnbench --help`` and
``cnnbench SUBCOMMAND --help`` import neither torch nor Lightning.

Example:
    $ cnnbench fit --model lenet5 --test_after_fit true
    $ cnnbench summary --model alexnet_cifar --model.padding valid

    >>> main(["--version"])  # doctest: +ELLIPSIS
    cnnbench ...
    0
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from cnnbench.cli.invocation import Invocation, RunState

USAGE = """usage: cnnbench {fit,validate,test,predict,models,summary,bench,report} ...

  fit        train a model            cnnbench fit --model lenet5 [--data mnist] [--trainer.max_epochs 5]
  validate   evaluate on the val split
  test       evaluate on the test set cnnbench test --ckpt_path runs/lenet5/version_0/checkpoints/last.ckpt
  predict    classify image files     cnnbench predict --ckpt_path CKPT image.png folder/
  models     list registered models
  summary    per-layer table          cnnbench summary --model alexnet_cifar --model.padding valid
  bench      run an ablation grid     cnnbench bench smoke --out results/   (--list: shipped grids)
  report     summarise a grid's runs  cnnbench report results/

Run `cnnbench SUBCOMMAND --help` for the options of each (`cnnbench fit --model lenet5 --help`
starts with the model's own). Errors are one line; add --traceback (or CNNBENCH_TRACEBACK=1) for the traceback.
"""

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test")
#: cnnbench's own subcommands: the module whose ``run(args)`` implements each
COMMANDS = {name: f"cnnbench.cli.{name}" for name in ("models", "summary", "predict", "bench", "report")}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cnnbench`` console script; returns the exit code."""
    from cnnbench.cli.errors import report_error, want_traceback

    args = list(sys.argv[1:] if argv is None else argv)
    want_traceback(args)  # --traceback anywhere: full tracebacks instead of one-line errors
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if args[0] == "--version":
        from cnnbench import __version__

        print(f"cnnbench {__version__}")
        return 0
    command = args[0]
    if command not in COMMANDS and command not in LIGHTNING_SUBCOMMANDS:
        print(f"cnnbench: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    invocation: Invocation | None = None
    state = RunState()
    try:
        if command in COMMANDS:
            return int(importlib.import_module(COMMANDS[command]).run(args[1:]))
        from cnnbench.cli.argv import prepare_invocation

        invocation = prepare_invocation(args)
        from cnnbench.cli.lightning import run_lightning

        return run_lightning(invocation, state)
    except KeyboardInterrupt:  # Ctrl-C outside Lightning's fit loop (e.g. while loading data)
        return _stopped("Ctrl-C", 130, state)
    except BrokenPipeError:  # `cnnbench models | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SystemExit as stop:
        return _system_exit(stop, state)
    except Exception as err:
        return report_error(command, err, invocation)


def _system_exit(stop: SystemExit, state: RunState) -> int:
    """The exit code for a ``SystemExit``: a stop by signal says how to continue; others re-raise."""
    if "lightning.pytorch" not in sys.modules:  # --help and usage exits: keep them fast
        raise stop
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(stop, SIGTERMException):  # a SIGTERM, or the first Ctrl-C of a fit (CtrlCStopsLikeSigterm)
        if state.stopped_by == "Ctrl-C":
            return _stopped("Ctrl-C", 130, state)
        return _stopped("SIGTERM", 143, state)
    if isinstance(stop.__context__, KeyboardInterrupt):  # Lightning turns Ctrl-C into sys.exit(1)
        return _stopped("Ctrl-C", 130, state)
    raise stop


def _stopped(signal_name: str, code: int, state: RunState) -> int:
    """One line saying how to continue an interrupted run (``code``: 128 + the signal number)."""
    folder = state.run_folder
    if folder is not None and (Path(folder) / "checkpoints" / "last.ckpt").is_file():
        hint = "last.ckpt was saved: continue with --ckpt_path last"
    else:
        hint = "nothing was saved (training had not started)"
    print(f"cnnbench: stopped by {signal_name}; {hint}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
