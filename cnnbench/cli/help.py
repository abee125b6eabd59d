"""The model's and data set's own options, printed at the top of ``cnnbench fit --model M --help``.

LightningCLI's help lists ``--model.*`` only for the base class; this section shows the chosen
model's and data set's arguments with their choices (from :mod:`cnnbench.core.vocab`), help
text (from their docstrings, through jsonargparse) and defaults.

Example:
    >>> choices_of(object, "pool")[:3]
    ('max', 'avg', 'min')
    >>> choices_of(object, "padding")[-1]
    '<int>'
    >>> choices_of(object, "batch_size")
    ()
"""

from __future__ import annotations

from typing import Any

from cnnbench.core.vocab import LINKED_ARGUMENTS, VOCABULARIES

#: help for arguments whose class docstring does not describe them
FALLBACK_HELP = {
    "pool": "Pooling operator of every pooling layer.",
    "padding": "Convolution padding rule, or a number of pixels.",
    "padding_mode": "Value of the padded border pixels.",
    "image_size": "Side in pixels of the images the model sees.",
}

#: arguments that take a value beside their vocabulary (padding: also a number of pixels)
EXTRA_CHOICES: dict[str, tuple[str, ...]] = {"padding": ("<int>",), "on_device": ("auto", "true", "false")}


def choices_of(cls: Any, argument: str) -> tuple[str, ...]:
    """Valid values of a string knob of a model or data module class (empty if free-form):
    its vocabulary in :data:`cnnbench.core.vocab.VOCABULARIES`, or a data module's augment presets."""
    if argument == "augment" and getattr(cls, "augment_presets", None):
        return tuple(cls.augment_presets)
    return (*VOCABULARIES.get(argument, ()), *EXTRA_CHOICES.get(argument, ()))


def _arguments(cls: Any, prefix: str) -> list[Any]:
    """jsonargparse's view of ``cls``'s init arguments (types, defaults, docstring help)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(cls, prefix)
    return [a for a in parser._actions if a.dest.startswith(prefix + ".")]


def _section(title: str, cls: Any, prefix: str, skip: tuple[str, ...] = ()) -> list[str]:
    lines = [title]
    for action in _arguments(cls, prefix):
        arg = action.dest.split(".", 1)[1]
        if arg in skip:
            continue
        choices = choices_of(cls, arg)
        shown = "{" + ",".join(choices) + "}" if choices else ""
        help_text = " ".join(str(action.help or "").split()) or FALLBACK_HELP.get(arg, "")
        default = action.default if not isinstance(action.default, str) else repr(action.default)
        lines.append(f"  --{prefix}.{arg} {shown}".rstrip())
        lines.append(f"      {help_text} (default: {default})".replace("  (default", " (default"))
    return lines


def model_options_help(model_name: str, model_cls: Any, data_name: str | None, data_cls: Any) -> str:
    """The model's and the data set's own options, for the top of ``fit --help``."""
    title = f"Options of model {model_name!r} ({model_cls.__module__}.{model_cls.__name__}):"
    lines = _section(title, model_cls, "model", LINKED_ARGUMENTS)
    if data_cls is not None:
        title = f"Options of data {data_name!r} ({data_cls.__module__}.{data_cls.__name__}):"
        lines += ["", *_section(title, data_cls, "data")]
    lines += ["", "Lightning's options (trainer, config files) follow.", "=" * 79, ""]
    return "\n".join(lines)
