"""``cnnbench fit|validate|test``: Lightning's ``LightningCLI`` with cnnbench's run folders,
loggers and callbacks.

* Parse errors raise (no usage dump) and options are never abbreviated; the command
  prints them through :mod:`cnnbench.cli_errors`.
* ``--trainer.logger`` takes any Lightning logger (short name or class path) and adds it
  next to the CSV log; a ``WandbLogger`` is routed through cnnbench's offline-fallback one.
* A resumed fit whose one-cycle/cosine schedule would need a different length stops
  before training with what to do (:class:`ScheduleCheck`).
* A fit that fails before its first step leaves no run folder behind.

Example:
    $ cnnbench fit --model lenet5 --trainer.logger TensorBoardLogger --trainer.logger.save_dir tb
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback

RUN_VERSION_ENV = "CNNBENCH_RUN_VERSION"
SUBCOMMANDS = ("fit", "validate", "test")


class ScheduleCheck(Callback):
    """Refuse, before the first step, to resume a learning-rate schedule sized for a
    different number of steps.

    One-cycle and cosine schedules are sized by the run's total steps. Loading the saved
    schedule into a longer run fails after the old total (one-cycle: "Tried to step 4
    times") or restarts the cosine; neither continues the run the user asked for.

    Args:
        saved: The ``lr_schedulers`` state dicts stored in the checkpoint.
    """

    def __init__(self, saved: list[dict[str, Any]]) -> None:
        self.saved = saved

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs after configure_optimizers and before the saved schedule is loaded into it
        configs = trainer.lr_scheduler_configs
        kind = pl_module.hparams.get("scheduler", "?")
        if self.saved and not configs:
            raise ValueError(
                f"--model.scheduler {kind} cannot continue a run trained with a learning-rate schedule (its learning "
                "rate ended near 0).\n  Start a new run instead (drop --ckpt_path)."
            )
        for config, state in zip(configs, self.saved):
            old, new = _total(state), _total(vars(config.scheduler))
            if old is not None and new is not None and old != new:
                raise ValueError(
                    f"the checkpoint's {kind} learning-rate schedule was sized for {old} steps but this run needs "
                    f"{new}; a finished {kind} schedule cannot be extended.\n  Start a new run with the new length "
                    "(drop --ckpt_path), or train with --model.scheduler none to be able to extend a run later."
                )


class _MarkStarted(Callback):
    """Records in the CLI context that training began (the run folder is then kept)."""

    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.context["started"] = True


class CtrlCStopsLikeSigterm(Callback):
    """During training, the first Ctrl-C stops the fit the way SIGTERM does: at the end of
    the running step (or validation batch), with ``last.ckpt`` saved, so that
    ``--ckpt_path last`` continues exactly. A second Ctrl-C aborts at once.

    A ``KeyboardInterrupt`` raised wherever Python happens to be (inside an optimizer
    update, a logger, a callback) could save a half-updated state. Sets Lightning's
    ``received_sigterm`` flag (``trainer._signal_connector``; Lightning 2.4-2.6), the flag
    its loops check at step boundaries.
    """

    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context
        self._previous: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set there

        def stop(signum: int, frame: Any) -> None:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # the next Ctrl-C aborts
            self.context["stopped_by"] = "Ctrl-C"
            print("\ncnnbench: Ctrl-C: stopping after this step (Ctrl-C again aborts)", file=sys.stderr, flush=True)
            trainer._signal_connector.received_sigterm = True

        self._previous = signal.signal(signal.SIGINT, stop)

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()


def _total(state: dict[str, Any]) -> int | None:
    """Steps a OneCycleLR (``total_steps``) or CosineAnnealingLR (``T_max``) was sized for."""
    for key in ("total_steps", "T_max"):
        if isinstance(state.get(key), int):
            return int(state[key])
    return None


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


def build_cli_class() -> Any:
    """The ``LightningCLI`` subclass behind ``cnnbench fit|validate|test``."""
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    from cnnbench.data.link import LINK
    from cnnbench.training import WandbSettings, next_version, trainer_extras

    class CnnbenchCLI(LightningCLI):
        """LightningCLI with cnnbench's linking, loggers and callbacks."""

        context: dict[str, Any] = {}

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            for argument, compute in LINK.items():  # the model is built for the data's images
                parser.link_arguments("data", f"model.init_args.{argument}", compute_fn=compute, apply_on="instantiate")
            parser.add_argument(
                "--test_after_fit", type=bool, default=False, help="Test the best checkpoint on the test set after fit."
            )
            parser.add_argument(
                "--train_step",
                type=Literal["auto", "graph", "eager"],
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
                sub = getattr(self, "_subcommand_parsers", {}).get(self.context.get("subcommand"))
                err.cnnbench_options = [s for a in (sub or parser)._actions for s in a.option_strings]  # type: ignore[attr-defined]
                raise

        def _parse_ckpt_path(self) -> None:
            """Checkpoint hyperparameters are applied by :func:`cnnbench.cli.prepare_argv` instead."""

        def _set_seed(self) -> None:
            """Lightning's seeding, silent: "Seed set to N" is said once the run has started
            (:meth:`instantiate_trainer`), after any one-line error about a bad value."""
            from lightning.fabric.utilities.seed import seed_everything

            cfg = self.config[self.subcommand] if self.subcommand else self.config
            if cfg.get("seed_everything") is False:
                return
            given = cfg.get("seed_everything")
            seed = seed_everything(None if given is True else given, workers=True, verbose=False)
            cfg["seed_everything"] = seed
            self.context["seed_message"] = f"Seed set to {seed}"
            init = getattr(cfg.get("data"), "init_args", None)
            if init is not None and "seed" in init and init.seed is None:
                init.seed = seed  # --data.seed follows --seed_everything unless given; recorded in config.yaml

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
            folder = Path(run_dir, name, f"version_{version}").resolve()
            self.context["run_folder"] = folder
            if not folder.exists():
                created = folder  # the top folder this run creates (runs/ and runs/<model>/ too on a first run)
                while not created.parent.exists():
                    created = created.parent
                self.context["new_run_folder"] = created  # removed again if the fit fails before training
            for key in ("max_epochs", "max_steps"):
                value = cfg.trainer.get(key)
                if value is not None and (value == 0 or value < -1):
                    raise ValueError(f"--trainer.{key} must be a positive integer (or -1 for no limit), got {value}")
            if cfg.logger not in ("csv", "wandb"):
                raise ValueError(f"--logger {cfg.logger!r} is not a logger; valid: csv, wandb")
            trainer_init = self._get(self.config_init, "trainer", default={})
            wants_config = cfg.logger == "wandb" or bool(_as_list(cfg.trainer.get("logger")))
            dumped = self.parser.dump(self.config, skip_none=False, format="json") if wants_config else None
            config = json.loads(dumped)[self.subcommand] if dumped and self.subcommand else None
            wandb = WandbSettings(**cfg.wandb) if cfg.logger == "wandb" else None
            extras = trainer_extras(
                run_dir, name, version, wandb=wandb, config=config,
                progress_bar=cfg.trainer.enable_progress_bar is not False,
                model_summary=cfg.trainer.enable_model_summary is not False, train_step=cfg.train_step,
            )  # fmt: skip
            user = _user_loggers(cfg, trainer_init.get("logger"), dict(cfg.wandb), str(folder), config)
            if wandb is not None:  # --logger wandb and --trainer.logger WandbLogger: one W&B run
                user = [lg for lg in user if not type(lg).__module__.startswith("cnnbench")]
            extras["logger"] = [*extras["logger"], *user]
            if cfg.trainer.get("profiler") is not None:
                del extras["profiler"]  # the user's profiler, not the no-op default
            user_callbacks = list(trainer_init.get("callbacks") or [])
            extras["callbacks"] = [*user_callbacks, *extras["callbacks"]]
            extras["callbacks"] += [_MarkStarted(self.context), CtrlCStopsLikeSigterm(self.context)]
            if self.subcommand == "fit" and self.context.get("saved_schedulers") is not None:
                extras["callbacks"].append(ScheduleCheck(self.context["saved_schedulers"]))
            for logger in extras["logger"]:
                if hasattr(logger, "keep_open"):  # one W&B run for fit and the test after it
                    logger.keep_open = bool(cfg.get("test_after_fit"))
            trainer = super().instantiate_trainer(**extras, **kwargs)
            if self.context.get("seed_message"):
                logging.getLogger("lightning.fabric.utilities.seed").info(self.context.pop("seed_message"))
            return trainer

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

    return CnnbenchCLI


def run_lightning(args: list[str], context: dict[str, Any]) -> int:
    """Run ``LightningCLI`` on the argv prepared by :func:`cnnbench.cli.prepare_argv`."""
    cli_cls = build_cli_class()
    cli_cls.context = context
    context["subcommand"] = args[0]
    inherited = os.environ.get(RUN_VERSION_ENV)  # set when this process is a DDP child
    try:
        _run_cli(cli_cls, args)
        from cnnbench.training import release_distributed

        release_distributed()  # a finished DDP fit: no abort at exit
    except BaseException:
        if inherited is None and not context.get("started"):
            _remove_if_unused(context.get("new_run_folder"))
        raise
    finally:
        if inherited is None:
            os.environ.pop(RUN_VERSION_ENV, None)
            os.environ.pop("CNNBENCH_RESUME_CONFIG", None)  # cnnbench.cli.RESUME_CONFIG_ENV
    return 0


def _remove_if_unused(folder: Path | None) -> None:
    """Delete a run folder this process created when no checkpoint was written into it."""
    if folder is None or not folder.is_dir() or any(folder.rglob("*.ckpt")):
        return
    shutil.rmtree(folder, ignore_errors=True)


def _run_cli(cli_cls: Any, args: list[str]) -> None:
    from cnnbench.data import ImageDataModule
    from cnnbench.models import ImageClassifier
    from cnnbench.training.console import quiet_console

    quiet_console()
    # parse errors raise instead of printing the usage; options are never abbreviated
    strict = {"exit_on_error": False, "allow_abbrev": False}
    cli_cls(
        ImageClassifier,
        ImageDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        auto_configure_optimizers=False,
        parser_kwargs={"prog": "cnnbench", **strict, **{sub: dict(strict) for sub in SUBCOMMANDS}},
    )
