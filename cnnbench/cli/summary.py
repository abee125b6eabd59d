"""``cnnbench summary``: the per-layer table of a model, built for a data set's images.

Example:
    >>> split_dotted(["--model", "lenet5", "--model.pool=avg", "--model.lr", "0.1"], ("model", "data"))
    {'model': 'lenet5', 'model.pool': 'avg', 'model.lr': 0.1}
"""

from __future__ import annotations

import inspect
from typing import Any

from cnnbench.cli.errors import option_hint

USAGE = """usage: cnnbench summary --model NAME [--data NAME] [--model.KEY VALUE ...] [--data.KEY VALUE ...]

Per-layer table of a model: output shape, parameters, multiply-accumulates, receptive
field, padding and pooling of every layer. With --data the model is built for that data
set's image size, channels and classes (files are not downloaded).

  cnnbench summary --model alexnet_cifar --model.padding same
  cnnbench summary --model lenet5 --data mnist --model.pool avg"""


def split_dotted(args: list[str], allowed: tuple[str, ...]) -> dict[str, Any]:
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


def check_kwargs(cls: Any, kwargs: dict[str, Any], prefix: str, name: str) -> None:
    """Raise a one-line ValueError for a keyword ``cls`` does not take, with close matches."""
    from cnnbench.core.signature import accepted_kwargs
    from cnnbench.core.vocab import LINKED_ARGUMENTS

    valid = sorted(accepted_kwargs(cls) or ()) if inspect.isclass(cls) else []
    for key in kwargs:
        if valid and key not in valid:
            hint = option_hint(key, valid, prefix=f"--{prefix}.")
            shown = ", ".join(f"--{prefix}.{v}" for v in valid if v not in LINKED_ARGUMENTS)
            raise ValueError(f"--{prefix}.{key} is not an option of {prefix} {name!r}.{hint}\n  Valid: {shown}")


def run(args: list[str]) -> int:
    """``cnnbench summary --model M [--data D] [--model.KEY V] [--data.KEY V]``."""
    if not args or args[0] in ("-h", "--help") or "--help" in args:
        print(USAGE)
        return 0
    opts = split_dotted(args, ("model", "data"))
    if "model" not in opts:
        raise ValueError("--model is required, e.g. cnnbench summary --model lenet5 (see cnnbench models)")

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
