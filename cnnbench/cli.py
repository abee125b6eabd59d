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
  bench      run an ablation grid     cnnbench bench benchmarks/grids/smoke.yaml --out results/
  report     summarise a grid's runs  cnnbench report results/

Run `cnnbench SUBCOMMAND --help` for the options of each.
"""

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test")
RUN_VERSION_ENV = "CNNBENCH_RUN_VERSION"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cnnbench`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
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
    try:
        if command in commands:
            return commands[command](args[1:])
        return _run_lightning(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `cnnbench models | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SystemExit as stop:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(stop, SIGTERMException):
            print("cnnbench: stopped by SIGTERM; last.ckpt was saved: continue with --ckpt_path last", file=sys.stderr)
            return 143
        raise
    except Exception as err:
        return _report_error(command, err)


def _report_error(command: str, err: BaseException) -> int:
    from cnnbench.checkpoint import CheckpointError
    from cnnbench.data.files import DataError
    from cnnbench.models.base import DivergedError

    if os.environ.get("CNNBENCH_TRACEBACK"):
        raise err
    cause: BaseException = err
    while cause.__cause__ is not None and not isinstance(
        cause, ValueError | DataError | CheckpointError | DivergedError
    ):
        cause = cause.__cause__  # jsonargparse wraps errors raised while instantiating
    if isinstance(cause, DivergedError):
        print(f"cnnbench {command}: diverged: {cause}", file=sys.stderr)
        return 3
    if isinstance(cause, ValueError | DataError | CheckpointError | FileNotFoundError):
        print(f"cnnbench {command}: error: {cause}", file=sys.stderr)
        return 2
    raise err


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


def prepare_argv(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Rewrite registry names to class paths and add per-model defaults.

    Returns the argv for LightningCLI and what was learned (model name, checkpoint, run folder).
    """
    from cnnbench.checkpoint import checkpoint_info, read_checkpoint
    from cnnbench.data import DATA
    from cnnbench.models import MODELS

    args = list(args)
    context: dict[str, Any] = {}
    _, run_dir = _option(args, "--trainer.default_root_dir")
    context["run_dir"] = run_dir or "runs"
    _, model = _option(args, "--model")
    _, data = _option(args, "--data")

    _, ckpt = _option(args, "--ckpt_path")
    if ckpt is not None:
        if ckpt == "last":
            ckpt = str(find_last_checkpoint(context["run_dir"], model if model in MODELS else None))
            _set_option(args, "--ckpt_path", ckpt)
        stored = read_checkpoint(ckpt)
        info = checkpoint_info(stored)
        context["ckpt"], context["resume_dir"] = ckpt, Path(ckpt).resolve().parent.parent
        if model is None and info.get("model"):
            model = info["model"]
            hparams = {k: v for k, v in stored.get("hyper_parameters", {}).items() if not k.startswith("_")}
            linked = ("num_classes", "in_channels", "input_size")
            init = {k: v for k, v in hparams.items() if k not in linked}
            cls = _class_path(MODELS.get(model))
            args[1:1] = ["--config", json.dumps({"model": {"class_path": cls, "init_args": init}})]
        if data is None and info.get("data"):
            data = info["data"]
            dm_hparams = {
                k: v for k, v in (stored.get("datamodule_hyper_parameters") or {}).items() if not k.startswith("_")
            }
            cls = _class_path(DATA.get(data))
            args[1:1] = ["--config", json.dumps({"data": {"class_path": cls, "init_args": dm_hparams}})]

    if model is not None:
        model_name, model_cls = _resolve_name(model, MODELS)
        if model_cls is not None and _option(args, "--model")[0] >= 0:
            _set_option(args, "--model", _class_path(model_cls))
        context["model_name"] = model_name
        if data is None and model_cls is not None:
            data = model_cls.default_data
            args += ["--data", data]
        if model_cls is not None and getattr(model_cls, "recipe", None) and ckpt is None:
            recipe = {"trainer": model_cls.recipe.get("trainer", {})}
            args[1:1] = ["--config", json.dumps(recipe)]
            context["data_recipe"] = model_cls.recipe.get("data", {})
    if data is not None:
        data_name, data_cls = _resolve_name(data, DATA)
        if data_cls is not None:
            _set_option(args, "--data", _class_path(data_cls))
            context["data_name"] = data_name
            # recipe data defaults go right after --data so that later --data.* flags win
            di = _option(args, "--data")[0]
            extra = [
                f"--data.{k}={v}"
                for k, v in context.get("data_recipe", {}).items()
                if _option(args, f"--data.{k}")[0] < 0
            ]
            args[di + 2 : di + 2] = extra
    return args, context


# ----------------------------------------------------------------------------- LightningCLI
def _build_cli_class() -> Any:
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    from cnnbench.training import WandbSettings, next_version, trainer_extras

    class CnnbenchCLI(LightningCLI):
        """LightningCLI with cnnbench's linking, loggers and callbacks."""

        context: dict[str, Any] = {}

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.link_arguments(
                "data", "model.init_args.num_classes", compute_fn=lambda d: d.num_classes, apply_on="instantiate"
            )
            parser.link_arguments(
                "data", "model.init_args.in_channels", compute_fn=lambda d: d.image_shape[0], apply_on="instantiate"
            )
            parser.link_arguments("data", "model.init_args.input_size", compute_fn=_input_size, apply_on="instantiate")
            parser.add_argument(
                "--test_after_fit", type=bool, default=False, help="Test the best checkpoint on the test set after fit."
            )
            parser.add_argument("--logger", type=str, default="csv", help="'csv' (always on) or 'wandb' (CSV + W&B).")
            parser.add_dataclass_arguments(WandbSettings, "wandb")
            parser.set_defaults({"trainer.default_root_dir": "runs", "trainer.log_every_n_steps": 50})

        def _parse_ckpt_path(self) -> None:
            """Checkpoint hyperparameters are applied by :func:`prepare_argv` instead."""

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            from cnnbench.models import MODELS

            cfg = self.config[self.subcommand] if self.subcommand else self.config
            name = MODELS.name_of(self.model) or type(self.model).__name__.lower()
            run_dir = cfg.trainer.default_root_dir or "runs"
            resume_dir = self.context.get("resume_dir")
            if resume_dir is not None and resume_dir.parent.name == name:
                version: Any = resume_dir.name.removeprefix("version_")
                version = int(version) if version.isdigit() else resume_dir.name
            else:
                version = os.environ.get(RUN_VERSION_ENV) or next_version(run_dir, name)
                os.environ[RUN_VERSION_ENV] = str(version)  # DDP children re-run this CLI: same folder
                version = int(version)
            for key in ("max_epochs", "max_steps"):
                value = cfg.trainer.get(key)
                if value is not None and (value == 0 or value < -1):
                    raise ValueError(f"--trainer.{key} must be a positive integer (or -1 for no limit), got {value}")
            if cfg.logger not in ("csv", "wandb"):
                raise ValueError(f"Unknown logger {cfg.logger!r}; valid: csv, wandb")
            wandb = WandbSettings(**cfg.wandb) if cfg.logger == "wandb" else None
            config = self.parser.dump(self.config, skip_none=False, format="json") if wandb else None
            extras = trainer_extras(
                run_dir, name, version, wandb=wandb, config=json.loads(config) if config else None,
                progress_bar=cfg.trainer.enable_progress_bar is not False,
            )  # fmt: skip
            if cfg.trainer.get("profiler") is not None:
                del extras["profiler"]  # the user's profiler, not the no-op default
            user_callbacks = list(self._get(self.config_init, "trainer", default={}).get("callbacks") or [])
            extras["callbacks"] = [*user_callbacks, *extras["callbacks"]]
            for logger in extras["logger"]:
                if hasattr(logger, "keep_open"):  # one W&B run for fit and the test after it
                    logger.keep_open = bool(cfg.get("test_after_fit"))
            return super().instantiate_trainer(**extras, **kwargs)

        def after_fit(self) -> None:
            trainer = self.trainer
            ckpt = trainer.checkpoint_callback
            best = getattr(ckpt, "best_model_path", "") or ""
            score = getattr(ckpt, "best_model_score", None)
            log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
            if trainer.is_global_zero:
                print(f"\nrun folder:       {log_dir}")
                print(f"best checkpoint:  {best or '(none: no validation)'}")
                if score is not None:
                    print(f"best val/acc:     {float(score):.4f}")
            if self.config[self.subcommand].get("test_after_fit"):
                wandb_loggers = [lg for lg in trainer.loggers if hasattr(lg, "keep_open")]
                trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None)
                for lg in wandb_loggers:
                    lg.finish()  # type: ignore[attr-defined]

    return CnnbenchCLI


def _input_size(data: Any) -> int | list[int]:
    _, h, w = data.image_shape
    return int(h) if h == w else [int(h), int(w)]


def _run_lightning(args: list[str]) -> int:
    args, context = prepare_argv(args)
    cli_cls = _build_cli_class()
    cli_cls.context = context
    inherited = os.environ.get(RUN_VERSION_ENV)  # set when this process is a DDP child
    try:
        _run_cli(cli_cls, args)
    finally:
        if inherited is None:
            os.environ.pop(RUN_VERSION_ENV, None)
    return 0


def _run_cli(cli_cls: Any, args: list[str]) -> None:
    import warnings

    from cnnbench.data import ImageDataModule
    from cnnbench.models import ImageClassifier

    # we pass the rewritten sys.argv explicitly; Lightning warns about having both
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")

    cli_cls(
        ImageClassifier,
        ImageDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        auto_configure_optimizers=False,
        parser_kwargs={"prog": "cnnbench"},
    )


# ----------------------------------------------------------------------------- other commands
def _models(args: list[str]) -> int:
    """``cnnbench models [PATTERN]``: registered models as a table."""
    from cnnbench.models import MODELS, create_model

    rows = [("name", "params", "input", "data", "description")]
    for name in MODELS.names(args[0] if args else "*"):
        entry = MODELS.get(name)
        model = create_model(name)
        params = sum(p.numel() for p in model.parameters())
        shape = "×".join(map(str, getattr(model, "input_shape", ()))) or "?"
        doc = (entry.__doc__ or "").strip().splitlines()
        rows.append((name, f"{params:,}", shape, getattr(entry, "default_data", ""), doc[0] if doc else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
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


def _summary(args: list[str]) -> int:
    """``cnnbench summary --model M [--data D] [--model.KEY V] [--data.KEY V]``."""
    from cnnbench.data import create_data
    from cnnbench.models import create_model
    from cnnbench.models.summary import format_summary, summarize

    if not args or args[0] in ("-h", "--help"):
        print("usage: cnnbench summary --model NAME [--data NAME] [--model.KEY VALUE ...] [--data.KEY VALUE ...]")
        return 0
    opts = _split_dotted(args, ("model", "data"))
    if "model" not in opts:
        raise ValueError("--model is required")
    model_kwargs = {k.split(".", 1)[1]: v for k, v in opts.items() if k.startswith("model.")}
    if "data" in opts:
        data_kwargs = {k.split(".", 1)[1]: v for k, v in opts.items() if k.startswith("data.")}
        dm = create_data(opts["data"], download=False, **data_kwargs)
        model_kwargs.update(num_classes=dm.num_classes, in_channels=dm.image_shape[0], input_size=_input_size(dm))
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
