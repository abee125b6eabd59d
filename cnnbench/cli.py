"""The ``cnnbench`` command.

``fit``, ``validate`` and ``test`` are Lightning's ``LightningCLI`` (YAML configs,
``--print_config``, ``--trainer.*``), with registry names for ``--model`` / ``--data``,
the data set's classes and image shape linked into the model, a default data set and
training recipe per model, and ``--ckpt_path last`` / checkpoint-only ``test``.
``models``, ``summary``, ``predict``, ``bench`` and ``report`` are cnnbench's own.

Example:
    $ cnnbench fit --model lenet5 --test_after_fit true
    $ cnnbench summary --model alexnet_cifar --model.padding valid
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cnnbench`` console script; returns the exit code."""
    from cnnbench.cli_errors import report_error, want_traceback

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
    commands = {"models": _models, "summary": _summary, "predict": _predict, "bench": _bench, "report": _report}
    if command not in commands and command not in LIGHTNING_SUBCOMMANDS:
        print(f"cnnbench: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    context: dict[str, Any] = {"subcommand": command}
    try:
        if command in commands:
            return commands[command](args[1:])
        return _run_lightning(args, context)
    except KeyboardInterrupt:  # Ctrl-C outside Lightning's fit loop (e.g. while loading data)
        return _stopped("Ctrl-C", 130, context)
    except BrokenPipeError:  # `cnnbench models | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SystemExit as stop:
        if "lightning.pytorch" not in sys.modules:  # --help and usage exits: keep them fast
            raise
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(stop, SIGTERMException):  # a SIGTERM, or the first Ctrl-C of a fit (CtrlCStopsLikeSigterm)
            if context.get("stopped_by") == "Ctrl-C":
                return _stopped("Ctrl-C", 130, context)
            return _stopped("SIGTERM", 143, context)
        if isinstance(stop.__context__, KeyboardInterrupt):  # Lightning turns Ctrl-C into sys.exit(1)
            return _stopped("Ctrl-C", 130, context)
        raise
    except Exception as err:
        return report_error(command, err, context)


def _stopped(signal_name: str, code: int, context: dict[str, Any]) -> int:
    """One line saying how to continue an interrupted run (``code``: 128 + the signal number)."""
    folder = context.get("run_folder")
    if folder is not None and (Path(folder) / "checkpoints" / "last.ckpt").is_file():
        hint = "last.ckpt was saved: continue with --ckpt_path last"
    else:
        hint = "nothing was saved (training had not started)"
    print(f"cnnbench: stopped by {signal_name}; {hint}", file=sys.stderr)
    return code


# ----------------------------------------------------------------------------- argv handling
def _option(args: list[str], name: str) -> tuple[int, str | None]:
    """(index, value) of ``--name VALUE`` or ``--name=VALUE`` in ``args``; (-1, None) if absent."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return i, args[i + 1]
        if arg.startswith(name + "="):
            return i, arg.split("=", 1)[1]
    return -1, None


def _set_option(args: list[str], name: str, value: str) -> None:
    i, _ = _option(args, name)
    if i < 0:
        args.extend([name, value])
    elif args[i] == name:
        args[i + 1] = value
    else:
        args[i] = f"{name}={value}"


def _class_path(cls: Any) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _resolve_name(value: str, registry: Any) -> tuple[str | None, Any]:
    """(registry name, class) for a registry name, a class path or a class name.

    Unknown registry names raise a ValueError listing the close matches; a class path or
    name that is not registered passes through for jsonargparse to resolve.
    """
    if value.startswith("{"):
        return None, None
    if value in registry:
        entry = registry.get(value)
        if not isinstance(entry, type):
            raise ValueError(f"{registry.kind} {value!r} is registered as a function; the CLI needs a class")
        return value.lower(), entry
    if "." in value:
        import importlib

        module, _, attr = value.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            raise ValueError(f"cannot import {value!r}") from None
        return registry.name_of(cls), cls
    for name in registry.names():
        if getattr(registry.get(name), "__name__", None) == value:
            return name, registry.get(name)
    raise ValueError(registry.unknown_message(value))


def find_last_checkpoint(run_dir: str, name: str | None) -> Path:
    """The newest ``last.ckpt`` under ``run_dir/<name>/version_*/checkpoints``."""
    pattern = f"{name or '*'}/version_*/checkpoints/last.ckpt"
    found = sorted(Path(run_dir).glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ValueError(f"--ckpt_path last: no {pattern} under {Path(run_dir).resolve()}")
    return found[-1]


def _checkpoint_config(stored: dict[str, Any], key: str, cls: Any) -> list[str]:
    """``--config`` arguments restoring a checkpoint's model or data hyperparameters."""
    field = "hyper_parameters" if key == "model" else "datamodule_hyper_parameters"
    hparams = {k: v for k, v in (stored.get(field) or {}).items() if not k.startswith("_")}
    if key == "model":  # linked from the data set
        hparams = {k: v for k, v in hparams.items() if k not in ("num_classes", "in_channels", "input_size")}
    return ["--config", json.dumps({key: {"class_path": _class_path(cls), "init_args": hparams}})]


#: the trainer settings that set a run's length; given anew, they replace the saved ones
LENGTH_KEYS = ("max_epochs", "max_steps", "max_time")
#: the saved config.yaml of the run being resumed, as read by the first process (DDP children reuse it)
RESUME_CONFIG_ENV = "CNNBENCH_RESUME_CONFIG"


def _saved_run_config(resume_dir: Path, model_cls: Any, new_length: bool) -> list[str]:
    """``--config`` arguments restoring the resumed run's saved ``config.yaml`` (none if absent).

    The run's own settings (length, precision, callbacks, logging, seed) are the defaults of
    the continued run; the flags given now override them. A length given now replaces the
    saved one as a whole (``--trainer.max_steps N`` alone continues to N steps, not to
    ``min(N, saved epochs)``).
    """
    import yaml

    from cnnbench.cli_lightning import RUN_VERSION_ENV

    text = os.environ.get(RESUME_CONFIG_ENV) if os.environ.get(RUN_VERSION_ENV) else None
    if text is None:  # the first process: DDP children re-run this while rank 0 rewrites the file
        path = resume_dir / "config.yaml"
        text = path.read_text() if path.is_file() else "{}"
        os.environ[RESUME_CONFIG_ENV] = text
    saved = yaml.safe_load(text) or {}
    if not isinstance(saved, dict):
        return []
    stored_model = (saved.get("model") or {}).get("class_path")
    if model_cls is not None and stored_model not in (None, _class_path(model_cls)):
        return []  # another model's run: its settings are not this one's
    for key in ("ckpt_path", "config", "print_config"):
        saved.pop(key, None)
    if new_length:
        for key in LENGTH_KEYS:
            (saved.get("trainer") or {}).pop(key, None)
    return ["--config", json.dumps(saved)] if saved else []


def _checkpoint_arguments(
    args: list[str], ckpt: str, model: str | None, data: str | None, context: dict[str, Any]
) -> tuple[str | None, str | None, list[str]]:
    """Apply a ``--ckpt_path``: its model hyperparameters go right after ``--model`` (so the
    user's ``--model.*`` flags win); returns (model, data, defaults for the front of argv)."""
    from cnnbench.checkpoint import check_checkpoint_file, checkpoint_info, read_checkpoint
    from cnnbench.data import DATA
    from cnnbench.models import MODELS

    if ckpt == "last":
        ckpt = str(find_last_checkpoint(context["run_dir"], model if model in MODELS else None))
        _set_option(args, "--ckpt_path", ckpt)
    check_checkpoint_file(ckpt)
    stored = read_checkpoint(ckpt)
    info = checkpoint_info(stored)
    context["ckpt"], context["resume_dir"] = ckpt, Path(ckpt).resolve().parent.parent
    context["saved_schedulers"] = list(stored.get("lr_schedulers") or [])
    stored_model = info.get("model")
    if stored_model and (model is None or _resolve_name(model, MODELS)[0] == stored_model):
        # the checkpoint's hyperparameters, then the user's --model.* flags over them
        at = _option(args, "--model")[0]
        if model is None:
            model = stored_model
        config = _checkpoint_config(stored, "model", MODELS.get(stored_model))
        if at >= 0:
            args[at + 2 : at + 2] = config
        else:
            args[1:1] = config
    front: list[str] = []
    if args[0] == "fit":  # continue the run as it was started: its saved config.yaml
        model_cls = _resolve_name(model, MODELS)[1] if model is not None else None
        new_length = any(_option(args, f"--trainer.{key}")[0] >= 0 for key in LENGTH_KEYS)
        front += _saved_run_config(context["resume_dir"], model_cls, new_length)
    if data is None and info.get("data"):
        data = info["data"]
        front += _checkpoint_config(stored, "data", DATA.get(data))
    return model, data, front


def prepare_argv(args: list[str], context: dict[str, Any] | None = None) -> tuple[list[str], dict[str, Any]]:
    """Rewrite registry names to class paths and add per-model defaults.

    Defaults go right after the subcommand, in increasing precedence: the model's recipe,
    the resumed run's saved ``config.yaml`` and checkpoint (``--ckpt_path``), the data set
    (``--data``, the model's default data set unless given) and its recipe settings; every
    flag the user gave comes after them and wins.

    Returns the argv for LightningCLI and what was learned (model and data names and
    classes, checkpoint, run folder), also written into ``context`` when given.
    """
    from cnnbench.data import DATA
    from cnnbench.models import MODELS

    args = list(args)
    context = {} if context is None else context
    _, run_dir = _option(args, "--trainer.default_root_dir")
    context["run_dir"] = run_dir or "runs"
    _, model = _option(args, "--model")
    _, data = _option(args, "--data")
    for key, registry in (("--model.help", MODELS), ("--data.help", DATA)):
        _, value = _option(args, key)
        if value is not None:  # a registry name, like --model; the help exits before anything else
            _set_option(args, key, _class_path(_resolve_name(value, registry)[1] or value))
            for option, given, reg in (("--model", model, MODELS), ("--data", data, DATA)):
                if given is not None and _resolve_name(given, reg)[1] is not None:
                    _set_option(args, option, _class_path(_resolve_name(given, reg)[1]))
            return args, context

    _, ckpt = _option(args, "--ckpt_path")
    resumed: list[str] = []
    if ckpt is not None:
        model, data, resumed = _checkpoint_arguments(args, ckpt, model, data, context)
    front: list[str] = []
    if model is not None:
        model_name, model_cls = _resolve_name(model, MODELS)
        if model_cls is not None and _option(args, "--model")[0] >= 0:
            _set_option(args, "--model", _class_path(model_cls))
        context["model_name"], context["model_cls"] = model_name, model_cls
        if data is None and model_cls is not None:
            data = model_cls.default_data
        recipe = getattr(model_cls, "recipe", None) or {}
        trainer = dict(recipe.get("trainer", {}))
        if ckpt is None:
            context["data_recipe"] = recipe.get("data", {})
        elif args[0] != "fit":
            trainer = {}  # validate/test of a checkpoint: no training length
        elif any(_option(args, f"--trainer.{key}")[0] >= 0 for key in LENGTH_KEYS):
            trainer = {k: v for k, v in trainer.items() if k not in LENGTH_KEYS}  # a new length replaces it
        if trainer:
            front += ["--config", json.dumps({"trainer": trainer})]
    front += resumed
    if data is not None:
        data_name, data_cls = _resolve_name(data, DATA)
        if data_cls is not None:
            if _option(args, "--data")[0] >= 0:
                _set_option(args, "--data", _class_path(data_cls))
            else:  # first, so that --data.image_size given without --data reaches the data set's class
                front += ["--data", _class_path(data_cls)]
            context["data_name"], context["data_cls"] = data_name, data_cls
    args[1:1] = front
    if context.get("data_cls") is not None:
        # recipe data defaults go right after --data so that later --data.* flags win
        di = _option(args, "--data")[0]
        extra = [
            f"--data.{k}={v}" for k, v in context.get("data_recipe", {}).items() if _option(args, f"--data.{k}")[0] < 0
        ]
        args[di + 2 : di + 2] = extra
    return args, context


def _run_lightning(args: list[str], context: dict[str, Any]) -> int:
    from cnnbench.cli_lightning import run_lightning

    args, context = prepare_argv(args, context)
    if ("-h" in args or "--help" in args) and context.get("model_cls") is not None:
        from cnnbench.cli_help import model_options_help

        print(
            model_options_help(
                context["model_name"], context["model_cls"], context.get("data_name"), context.get("data_cls")
            )
        )
        sys.stdout.flush()
    return run_lightning(args, context)


# ----------------------------------------------------------------------------- other commands
def _models(args: list[str]) -> int:
    """``cnnbench models [PATTERN]``: registered models as a table (cached, see cli_help)."""
    from cnnbench.cli_help import models_table

    if args and args[0] in ("-h", "--help"):
        print("usage: cnnbench models [PATTERN]   (fnmatch pattern, e.g. 'alexnet*')")
        return 0
    print(models_table(args[0] if args else "*"))
    return 0


def _split_dotted(args: list[str], allowed: tuple[str, ...]) -> dict[str, Any]:
    """``--model lenet5 --model.pool avg`` → {"model": "lenet5", "model.pool": "avg"} (values as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ValueError(f"unexpected argument {arg!r}")
        key, _, value = arg[2:].partition("=")
        if "=" not in arg:
            if i + 1 >= len(args):
                raise ValueError(f"{arg} needs a value")
            value, i = args[i + 1], i + 1
        if key.split(".")[0] not in allowed:
            raise ValueError(
                f"unknown option --{key}; valid: {', '.join('--' + a for a in allowed)} and --model.* / --data.*"
            )
        out[key] = yaml.safe_load(value) if "." in key else value
        i += 1
    return out


SUMMARY_USAGE = """usage: cnnbench summary --model NAME [--data NAME] [--model.KEY VALUE ...] [--data.KEY VALUE ...]

Per-layer table of a model: output shape, parameters, multiply-accumulates, receptive
field, padding and pooling of every layer. With --data the model is built for that data
set's image size, channels and classes (files are not downloaded).

  cnnbench summary --model alexnet_cifar --model.padding same
  cnnbench summary --model lenet5 --data mnist --model.pool avg"""


def _summary(args: list[str]) -> int:
    """``cnnbench summary --model M [--data D] [--model.KEY V] [--data.KEY V]``."""
    if not args or args[0] in ("-h", "--help") or "--help" in args:
        print(SUMMARY_USAGE)
        return 0
    opts = _split_dotted(args, ("model", "data"))
    if "model" not in opts:
        raise ValueError("--model is required, e.g. cnnbench summary --model lenet5 (see cnnbench models)")

    from cnnbench.cli_help import check_kwargs
    from cnnbench.data import DATA, create_data
    from cnnbench.data.link import model_link
    from cnnbench.models import MODELS, create_model
    from cnnbench.models.summary import format_summary, summarize

    model_kwargs = {k.split(".", 1)[1]: v for k, v in opts.items() if k.startswith("model.")}
    check_kwargs(MODELS.get(opts["model"]), model_kwargs, "model", opts["model"])
    data_kwargs = {k.split(".", 1)[1]: v for k, v in opts.items() if k.startswith("data.")}
    if data_kwargs and "data" not in opts:
        raise ValueError(f"--data.{next(iter(data_kwargs))} needs --data NAME (see cnnbench fit --help)")
    if "data" in opts:
        check_kwargs(DATA.get(opts["data"]), data_kwargs, "data", opts["data"])
        dm = create_data(opts["data"], **{"download": False, **data_kwargs})
        model_kwargs.update(model_link(dm))
    model = create_model(opts["model"], **model_kwargs)
    print(f"{opts['model']} ({', '.join(f'{k}={v}' for k, v in model_kwargs.items()) or 'defaults'})")
    print(format_summary(summarize(model)))
    return 0


def _predict(args: list[str]) -> int:
    from cnnbench.predict import main as predict_main

    return predict_main(args)


def _bench(args: list[str]) -> int:
    from cnnbench.bench.cli import bench_main

    return bench_main(args)


def _report(args: list[str]) -> int:
    from cnnbench.bench.cli import report_main

    return report_main(args)


if __name__ == "__main__":
    sys.exit(main())
