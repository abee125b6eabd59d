"""``cnnbench fit|validate|test``: Lightning's ``LightningCLI`` with cnnbench's run folders,
loggers and callbacks.

* The argv comes prepared (:func:`cnnbench.cli.argv.prepare_invocation`): class paths,
  per-model defaults, checkpoint settings. The :class:`CnnbenchCLI` reads that
  :class:`~cnnbench.cli.invocation.Invocation` and writes what the run learns into a
  :class:`~cnnbench.cli.invocation.RunState`.
* Parse errors raise (no usage dump) and options are never abbreviated; the command
  prints them through :mod:`cnnbench.cli.errors`.
* ``--trainer.logger`` takes any Lightning logger (short name or class path) and adds it
  next to the CSV log; a ``WandbLogger`` is routed through cnnbench's offline-fallback one.
* A fit that fails before its first step leaves no run folder behind.

Example:
    $ cnnbench fit --model lenet5 --trainer.logger TensorBoardLogger --trainer.logger.save_dir tb

    >>> _as_list(None), _as_list("csv"), _as_list(("a", "b"))
    ([], ['csv'], ['a', 'b'])
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from cnnbench.cli.argv import RESUME_CONFIG_ENV, RUN_VERSION_ENV
from cnnbench.cli.callbacks import CtrlCStopsLikeSigterm, MarkStarted, ScheduleCheck
from cnnbench.cli.invocation import Invocation, RunState
from cnnbench.core.vocab import StepMode

SUBCOMMANDS = ("fit", "validate", "test")


def _as_list(value: Any) -> list[Any]:
    if value is None or isinstance(value, bool):
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _user_loggers(cfg: Any, instantiated: Any, settings: Any, save_dir: str, config: Any) -> list[Any]:
    """The loggers of ``--trainer.logger``, W&B ones rebuilt as cnnbench's offline-fallback logger.

    Raises:
        ValueError: For ``--trainer.logger false``: cnnbench's run folder is its CSV log.
    """
    from lightning.pytorch.loggers import WandbLogger

    from cnnbench.training import WandbSettings, make_wandb_logger

    if cfg.trainer.get("logger") is False:
        raise ValueError(
            "--trainer.logger false: cnnbench always writes metrics.csv and checkpoints to the run folder; "
            "drop the option (add loggers with --trainer.logger CLASS)"
        )
    out = []
    for spec, logger in zip(_as_list(cfg.trainer.get("logger")), _as_list(instantiated)):
        if not isinstance(logger, WandbLogger) or type(logger).__module__.startswith("cnnbench"):
            out.append(logger)
            continue
        init = dict(getattr(spec, "init_args", None) or {})
        extra = dict(init.pop("dict_kwargs", None) or {})
        chosen = WandbSettings(**(settings or {}))
        for key in ("project", "name", "entity", "group", "tags"):
            value = init.pop(key, None) if key in init else extra.pop(key, None)
            if value is not None:
                setattr(chosen, key, list(value) if key == "tags" else value)
        if init.pop("offline", False):
            chosen.mode = "offline"
        own_dir = init.pop("save_dir", None) or init.pop("dir", None)
        passthrough = {k: v for k, v in init.items() if k in ("log_model", "prefix", "checkpoint_name", "id")}
        passthrough = {k: v for k, v in passthrough.items() if v not in (None, "", False)}
        target = save_dir if own_dir in (None, ".") else own_dir
        out.append(make_wandb_logger(chosen, save_dir=target, config=config, **passthrough, **extra))
    return out


class CnnbenchCLI(LightningCLI):
    """LightningCLI with cnnbench's linking, loggers and callbacks.

    Args:
        *args: LightningCLI's arguments.
        invocation: The prepared command line (read only).
        state: Where the run records its folder, its start and its stop.
        **kwargs: LightningCLI's keyword arguments.
    """

    def __init__(self, *args: Any, invocation: Invocation, state: RunState, **kwargs: Any) -> None:
        self.invocation, self.state = invocation, state
        self._seed_message: str | None = None
        super().__init__(*args, **kwargs)  # parses, instantiates and runs the subcommand

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        from cnnbench.data.link import LINK
        from cnnbench.training import WandbSettings

        for argument, compute in LINK.items():  # the model is built for the data's images
            parser.link_arguments("data", f"model.init_args.{argument}", compute_fn=compute, apply_on="instantiate")
        parser.add_argument(
            "--test_after_fit", type=bool, default=False, help="Test the best checkpoint on the test set after fit."
        )
        parser.add_argument(
            "--train_step",
            type=StepMode,
            default="auto",
            help="auto: each training step is one CUDA-graph replay where safe (single CUDA device, no "
            "accumulation, SGD/Adam/AdamW, 32/bf16); graph: the same, and say why when it cannot; eager: "
            "Lightning's own step.",
        )
        parser.add_argument(
            "--logger",
            type=str,
            default="csv",
            help="'csv' (always on) or 'wandb' (CSV + W&B). --trainer.logger CLASS adds any Lightning logger.",
        )
        parser.add_dataclass_arguments(WandbSettings, "wandb")
        parser.set_defaults({"trainer.default_root_dir": "runs", "trainer.log_every_n_steps": 50})

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except Exception as err:
            # the option strings let the error printer suggest close matches
            sub = getattr(self, "_subcommand_parsers", {}).get(self.invocation.subcommand)
            err.cnnbench_options = [s for a in (sub or parser)._actions for s in a.option_strings]  # type: ignore[attr-defined]
            raise

    def _parse_ckpt_path(self) -> None:
        """Checkpoint hyperparameters are applied by :func:`cnnbench.cli.argv.prepare_invocation` instead."""

    def _set_seed(self) -> None:
        """Lightning's seeding, silent: "Seed set to N" is said once the run has started
        (:meth:`instantiate_trainer`), after any one-line error about a bad value."""
        from lightning.fabric.utilities.seed import seed_everything

        cfg = self._config()
        if cfg.get("seed_everything") is False:
            return
        given = cfg.get("seed_everything")
        seed = seed_everything(None if given is True else given, workers=True, verbose=False)
        cfg["seed_everything"] = seed
        self._seed_message = f"Seed set to {seed}"
        init = getattr(cfg.get("data"), "init_args", None)
        if init is not None and "seed" in init and init.seed is None:
            init.seed = seed  # --data.seed follows --seed_everything unless given; recorded in config.yaml

    def _config(self) -> Any:
        """The parsed config of the running subcommand."""
        return self.config[self.subcommand] if self.subcommand else self.config

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        cfg = self._config()
        name, version = self._run_folder(cfg)
        _check_trainer_values(cfg)
        extras = self._trainer_arguments(cfg, name, version)
        trainer = super().instantiate_trainer(**extras, **kwargs)
        if self._seed_message:
            logging.getLogger("lightning.fabric.utilities.seed").info(self._seed_message)
            self._seed_message = None
        return trainer

    def _run_folder(self, cfg: Any) -> tuple[str, int | str]:
        """``(model name, version)`` of the run folder ``run_dir/<model>/version_N``: the resumed
        run's own, else the next free one (recorded in the run state)."""
        from cnnbench.models import MODELS
        from cnnbench.training import next_version

        name = MODELS.name_of(self.model) or type(self.model).__name__.lower()
        run_dir = cfg.trainer.default_root_dir or "runs"
        resume_dir = self.invocation.resume_dir
        version: int | str
        if resume_dir is not None and resume_dir.parent.name == name:
            number = resume_dir.name.removeprefix("version_")
            version = int(number) if number.isdigit() else resume_dir.name
        else:
            chosen = os.environ.get(RUN_VERSION_ENV) or next_version(run_dir, name)
            os.environ[RUN_VERSION_ENV] = str(chosen)  # DDP children re-run this CLI: same folder
            version = int(chosen)
        folder = Path(run_dir, name, f"version_{version}").resolve()
        self.state.run_folder = folder
        if not folder.exists():
            created = folder  # the top folder this run creates (runs/ and runs/<model>/ too on a first run)
            while not created.parent.exists():
                created = created.parent
            self.state.new_run_folder = created  # removed again if the fit fails before training
        return name, version

    def _trainer_arguments(self, cfg: Any, name: str, version: int | str) -> dict[str, Any]:
        """cnnbench's loggers, callbacks and profiler, with the user's ``--trainer.logger`` /
        ``--trainer.callbacks`` / ``--trainer.profiler`` added or put first."""
        from cnnbench.training import WandbSettings, trainer_extras

        trainer_init = self._get(self.config_init, "trainer", default={})
        wants_config = cfg.logger == "wandb" or bool(_as_list(cfg.trainer.get("logger")))
        dumped = self.parser.dump(self.config, skip_none=False, format="json") if wants_config else None
        config = json.loads(dumped)[self.subcommand] if dumped and self.subcommand else None
        wandb = WandbSettings(**cfg.wandb) if cfg.logger == "wandb" else None
        run_dir = cfg.trainer.default_root_dir or "runs"
        extras = trainer_extras(
            run_dir,
            name,
            version,
            wandb=wandb,
            config=config,
            progress_bar=cfg.trainer.enable_progress_bar is not False,
            model_summary=cfg.trainer.enable_model_summary is not False,
            train_step=cfg.train_step,
        )
        user = _user_loggers(cfg, trainer_init.get("logger"), dict(cfg.wandb), str(self.state.run_folder), config)
        if wandb is not None:  # --logger wandb and --trainer.logger WandbLogger: one W&B run
            user = [lg for lg in user if not type(lg).__module__.startswith("cnnbench")]
        extras["logger"] = [*extras["logger"], *user]
        if cfg.trainer.get("profiler") is not None:
            del extras["profiler"]  # the user's profiler, not the no-op default
        extras["callbacks"] = [*(trainer_init.get("callbacks") or []), *extras["callbacks"]]
        extras["callbacks"] += [MarkStarted(self.state), CtrlCStopsLikeSigterm(self.state)]
        if self.subcommand == "fit" and self.invocation.saved_schedulers is not None:
            extras["callbacks"].append(ScheduleCheck(list(self.invocation.saved_schedulers)))
        for logger in extras["logger"]:
            if hasattr(logger, "keep_open"):  # one W&B run for fit and the test after it
                logger.keep_open = bool(cfg.get("test_after_fit"))
        return extras

    def after_fit(self) -> None:
        trainer = self.trainer
        ckpt = trainer.checkpoint_callback
        best = getattr(ckpt, "best_model_path", "") or ""
        last = getattr(ckpt, "last_model_path", "") or ""
        score = getattr(ckpt, "best_model_score", None)
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
        if trainer.is_global_zero:
            print(f"\nrun folder:       {os.path.abspath(log_dir or '.')}")
            print(f"best checkpoint:  {os.path.abspath(best) if best else '(none: no validation)'}")
            if last and os.path.isfile(last):
                print(f"last checkpoint:  {os.path.abspath(last)}")
            if score is not None:
                print(f"best val/acc:     {float(score):.4f}")
        if self.config[self.subcommand].get("test_after_fit"):
            wandb_loggers = [lg for lg in trainer.loggers if hasattr(lg, "keep_open")]
            trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None)
            for lg in wandb_loggers:
                lg.finish()  # type: ignore[attr-defined]


def _check_trainer_values(cfg: Any) -> None:
    """One-line errors for run lengths and ``--logger`` values Lightning would misread."""
    for key in ("max_epochs", "max_steps"):
        value = cfg.trainer.get(key)
        if value is not None and (value == 0 or value < -1):
            raise ValueError(f"--trainer.{key} must be a positive integer (or -1 for no limit), got {value}")
    if cfg.logger not in ("csv", "wandb"):
        raise ValueError(f"--logger {cfg.logger!r} is not a logger; valid: csv, wandb")


def _print_model_help(invocation: Invocation) -> None:
    """``fit --model M --help``: the model's and data set's own options first."""
    from cnnbench.cli.help import model_options_help

    model_name, model_cls = invocation.names("model")
    if model_cls is None or not {"-h", "--help"} & set(invocation.argv):
        return
    data_name, data_cls = invocation.names("data")
    print(model_options_help(str(model_name), model_cls, data_name, data_cls))
    sys.stdout.flush()


def run_lightning(invocation: Invocation, state: RunState) -> int:
    """Run ``LightningCLI`` on a prepared :class:`~cnnbench.cli.invocation.Invocation`."""
    _print_model_help(invocation)
    inherited = os.environ.get(RUN_VERSION_ENV)  # set when this process is a DDP child
    try:
        _run_cli(invocation, state)
        from cnnbench.training import release_distributed

        release_distributed()  # a finished DDP fit: no abort at exit
    except BaseException:
        if inherited is None and not state.started:
            _remove_if_unused(state.new_run_folder)
        raise
    finally:
        if inherited is None:
            os.environ.pop(RUN_VERSION_ENV, None)
            os.environ.pop(RESUME_CONFIG_ENV, None)
    return 0


def _remove_if_unused(folder: Path | None) -> None:
    """Delete a run folder this process created when no checkpoint was written into it."""
    if folder is None or not folder.is_dir() or any(folder.rglob("*.ckpt")):
        return
    shutil.rmtree(folder, ignore_errors=True)


def _run_cli(invocation: Invocation, state: RunState) -> None:
    from cnnbench.data import ImageDataModule
    from cnnbench.models import ImageClassifier
    from cnnbench.training.console import quiet_console

    quiet_console()
    # parse errors raise instead of printing the usage; options are never abbreviated
    strict = {"exit_on_error": False, "allow_abbrev": False}
    CnnbenchCLI(
        ImageClassifier,
        ImageDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=list(invocation.argv),
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        auto_configure_optimizers=False,
        parser_kwargs={"prog": "cnnbench", **strict, **{sub: dict(strict) for sub in SUBCOMMANDS}},
        invocation=invocation,
        state=state,
    )
