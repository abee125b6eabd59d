"""The command line of ``cnnbench fit|validate|test`` made ready for LightningCLI.

The user types registry names (``--model lenet5``), relies on per-model defaults (a data set
and a training recipe) and continues runs with ``--ckpt_path``. LightningCLI needs class paths
and explicit settings. :func:`prepare_invocation` builds the argv in one shape::

    SUBCOMMAND  --config DEFAULTS_1 ... --config DEFAULTS_N  USER FLAGS

The defaults are config dicts in increasing precedence (see :func:`prepare_invocation`); every
flag the user gave comes after them and wins. The user's own ``--model NAME`` / ``--data NAME``
become class paths in place. jsonargparse keeps a class's settings when the same class is
selected again, so a later ``--model lenet5`` does not drop the checkpoint's hyperparameters.

Example:
    >>> option(["fit", "--model", "lenet5", "--data=mnist"], "--data")
    (3, 'mnist')
    >>> args = ["fit", "--model", "lenet5"]
    >>> set_option(args, "--model", "cnnbench.models.lenet.LeNet5")
    >>> args
    ['fit', '--model', 'cnnbench.models.lenet.LeNet5']
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnbench.cli.invocation import Invocation
from cnnbench.core.vocab import LINKED_ARGUMENTS

#: the trainer settings that set a run's length; given anew, they replace the saved ones
LENGTH_KEYS = ("max_epochs", "max_steps", "max_time")
#: the run's version folder, chosen by the first process (DDP children re-run the CLI: same folder)
RUN_VERSION_ENV = "CNNBENCH_RUN_VERSION"
#: the saved config.yaml of the run being resumed, as read by the first process (DDP children reuse it)
RESUME_CONFIG_ENV = "CNNBENCH_RESUME_CONFIG"


def option(args: list[str], name: str) -> tuple[int, str | None]:
    """(index, value) of ``--name VALUE`` or ``--name=VALUE`` in ``args``; (-1, None) if absent."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return i, args[i + 1]
        if arg.startswith(name + "="):
            return i, arg.split("=", 1)[1]
    return -1, None


def set_option(args: list[str], name: str, value: str) -> None:
    """Replace the value of ``name`` in ``args`` (in place), or append ``name value``."""
    i, _ = option(args, name)
    if i < 0:
        args.extend([name, value])
    elif args[i] == name:
        args[i + 1] = value
    else:
        args[i] = f"{name}={value}"


def class_path(cls: Any) -> str:
    """``module.QualName`` of a class, as jsonargparse's ``class_path``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve_name(value: str, registry: Any) -> tuple[str | None, Any]:
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


def checkpoint_config(stored: dict[str, Any], key: str, cls: Any) -> dict[str, Any]:
    """The config restoring a checkpoint's model (``key="model"``) or data hyperparameters."""
    stored_field = "hyper_parameters" if key == "model" else "datamodule_hyper_parameters"
    hparams = {k: v for k, v in (stored.get(stored_field) or {}).items() if not k.startswith("_")}
    if key == "model":  # linked from the data set
        hparams = {k: v for k, v in hparams.items() if k not in LINKED_ARGUMENTS}
    return {key: {"class_path": class_path(cls), "init_args": hparams}}


def saved_run_config(resume_dir: Path, model_cls: Any, new_length: bool) -> dict[str, Any]:
    """The resumed run's saved ``config.yaml`` as a config (empty if absent or another model's).

    The run's own settings (length, precision, callbacks, logging, seed) are the defaults of
    the continued run; the flags given now override them. A length given now replaces the
    saved one as a whole (``--trainer.max_steps N`` alone continues to N steps, not to
    ``min(N, saved epochs)``).
    """
    import yaml

    text = os.environ.get(RESUME_CONFIG_ENV) if os.environ.get(RUN_VERSION_ENV) else None
    if text is None:  # the first process: DDP children re-run this while rank 0 rewrites the file
        path = resume_dir / "config.yaml"
        text = path.read_text() if path.is_file() else "{}"
        os.environ[RESUME_CONFIG_ENV] = text
    saved = yaml.safe_load(text) or {}
    if not isinstance(saved, dict):
        return {}
    stored_model = (saved.get("model") or {}).get("class_path")
    if model_cls is not None and stored_model not in (None, class_path(model_cls)):
        return {}  # another model's run: its settings are not this one's
    for key in ("ckpt_path", "config", "print_config"):
        saved.pop(key, None)
    if new_length:
        for key in LENGTH_KEYS:
            (saved.get("trainer") or {}).pop(key, None)
    return saved


@dataclass
class _Draft:
    """What :func:`prepare_invocation` has learned so far (its phases fill it in)."""

    args: list[str]
    run_dir: str
    model: str | None  #: as given (or the checkpoint's), then resolved into model_name/model_cls
    data: str | None
    model_name: str | None = None
    model_cls: type | None = None
    data_name: str | None = None
    data_cls: type | None = None
    ckpt: str | None = None
    resume_dir: Path | None = None
    saved_schedulers: tuple[dict[str, Any], ...] | None = None
    #: config dicts by source; their precedence is fixed by :data:`PRECEDENCE`
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def gives_length(self) -> bool:
        return any(option(self.args, f"--trainer.{key}")[0] >= 0 for key in LENGTH_KEYS)


def _apply_checkpoint(draft: _Draft, ckpt: str) -> None:
    """``--ckpt_path``: read the checkpoint once; its model, data and (fit) saved run config."""
    from cnnbench.checkpoint import checkpoint_info, read_checkpoint
    from cnnbench.data import DATA
    from cnnbench.models import MODELS

    if ckpt == "last":
        ckpt = str(find_last_checkpoint(draft.run_dir, draft.model if draft.model in MODELS else None))
        set_option(draft.args, "--ckpt_path", ckpt)
    stored = read_checkpoint(ckpt)  # checks the file first: one line for a broken one
    info = checkpoint_info(stored)
    resume_dir = Path(ckpt).resolve().parent.parent
    draft.ckpt, draft.resume_dir = ckpt, resume_dir
    draft.saved_schedulers = tuple(stored.get("lr_schedulers") or ())
    stored_model = info.get("model")
    if stored_model and (draft.model is None or resolve_name(draft.model, MODELS)[0] == stored_model):
        draft.model = draft.model or stored_model
        draft.configs["checkpoint model"] = checkpoint_config(stored, "model", MODELS.get(stored_model))
    if draft.args[0] == "fit":  # continue the run as it was started: its saved config.yaml
        model_cls = resolve_name(draft.model, MODELS)[1] if draft.model is not None else None
        draft.configs["saved run"] = saved_run_config(resume_dir, model_cls, draft.gives_length())
    if draft.data is None and info.get("data"):
        draft.data = info["data"]
        draft.configs["checkpoint data"] = checkpoint_config(stored, "data", DATA.get(draft.data))


def _apply_model(draft: _Draft) -> dict[str, Any]:
    """The model's class, its default data set and its recipe's trainer settings; returns the
    recipe's data settings (for a new run only)."""
    from cnnbench.models import MODELS

    if draft.model is None:
        return {}
    name, cls = resolve_name(draft.model, MODELS)
    if cls is not None and option(draft.args, "--model")[0] >= 0:
        set_option(draft.args, "--model", class_path(cls))
    draft.model_name, draft.model_cls = name, cls
    if draft.data is None and cls is not None:
        draft.data = cls.default_data
    recipe = getattr(cls, "recipe", None) or {}
    trainer = dict(recipe.get("trainer", {}))
    if draft.ckpt is not None:
        if draft.args[0] != "fit":
            trainer = {}  # validate/test of a checkpoint: no training length
        elif draft.gives_length():
            trainer = {k: v for k, v in trainer.items() if k not in LENGTH_KEYS}  # a new length replaces it
    if trainer:
        draft.configs["model recipe"] = {"trainer": trainer}
    return {} if draft.ckpt is not None else dict(recipe.get("data", {}))


def _apply_data(draft: _Draft, recipe: dict[str, Any]) -> None:
    """The data set's class (selected first, so that ``--data.KEY`` alone reaches it) and the
    model recipe's data settings."""
    from cnnbench.data import DATA

    if draft.data is None:
        return
    name, cls = resolve_name(draft.data, DATA)
    if cls is None:
        return
    if option(draft.args, "--data")[0] >= 0:
        set_option(draft.args, "--data", class_path(cls))
    draft.data_name, draft.data_cls = name, cls
    selected: dict[str, Any] = {"class_path": class_path(cls)}
    if recipe:
        selected["init_args"] = recipe
    draft.configs["data"] = {"data": selected}


def _help_for_class(args: list[str]) -> bool:
    """``--model.help NAME`` / ``--data.help NAME``: names become class paths (the help exits
    before anything else is read). True when one was given."""
    from cnnbench.data import DATA
    from cnnbench.models import MODELS

    registries = (("--model", MODELS), ("--data", DATA))
    if all(option(args, f"{key}.help")[1] is None for key, _ in registries):
        return False
    for key, registry in registries:
        _, value = option(args, f"{key}.help")
        if value is not None:
            set_option(args, f"{key}.help", class_path(resolve_name(value, registry)[1] or value))
    for key, registry in registries:
        _, given = option(args, key)
        if given is not None and resolve_name(given, registry)[1] is not None:
            set_option(args, key, class_path(resolve_name(given, registry)[1]))
    return True


#: the sources of default settings, in increasing precedence (the user's flags come last and win)
PRECEDENCE = ("model recipe", "saved run", "checkpoint data", "data", "checkpoint model")


def prepare_invocation(args: list[str]) -> Invocation:
    """Turn ``cnnbench fit|validate|test ...`` into the :class:`Invocation` LightningCLI runs.

    Registry names become class paths and the defaults go right after the subcommand as
    ``--config`` dicts, in increasing precedence (:data:`PRECEDENCE`):

    1. the model's recipe (trainer settings; a new ``--trainer.max_*`` length replaces its length),
    2. with ``--ckpt_path`` in ``fit``: the resumed run's saved ``config.yaml``,
    3. with ``--ckpt_path`` and no ``--data``: the checkpoint's data set and its settings,
    4. the data set (``--data``, else the model's default) and the model recipe's data settings,
    5. with ``--ckpt_path``: the checkpoint's model hyperparameters.

    Every flag the user gave comes after them and wins.

    Example:
        >>> inv = prepare_invocation(["fit", "--model", "lenet5", "--trainer.max_epochs", "1"])
        >>> inv.model_name, inv.data_name, inv.argv[-2:]
        ('lenet5', 'mnist', ('--trainer.max_epochs', '1'))
        >>> [a for a in inv.argv if a.startswith("--")][:2]
        ['--config', '--config']
    """
    args = list(args)
    run_dir = option(args, "--trainer.default_root_dir")[1] or "runs"
    if _help_for_class(args):
        return Invocation(args[0], tuple(args), run_dir)
    draft = _Draft(args, run_dir, option(args, "--model")[1], option(args, "--data")[1])
    ckpt = option(args, "--ckpt_path")[1]
    if ckpt is not None:
        _apply_checkpoint(draft, ckpt)
    _apply_data(draft, _apply_model(draft))
    defaults = [draft.configs[source] for source in PRECEDENCE if draft.configs.get(source)]
    front = [part for config in defaults for part in ("--config", json.dumps(config))]
    argv = (args[0], *front, *args[1:])
    return Invocation(
        subcommand=args[0],
        argv=argv,
        run_dir=run_dir,
        model_name=draft.model_name,
        model_cls=draft.model_cls,
        data_name=draft.data_name,
        data_cls=draft.data_cls,
        ckpt=draft.ckpt,
        resume_dir=draft.resume_dir,
        saved_schedulers=draft.saved_schedulers,
    )
