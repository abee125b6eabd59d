"""Any ``nn.Module`` class or builder function as a cnnbench model.

As timm's ``create_model`` takes any registered builder, cnnbench takes any class or
function that returns an ``nn.Module`` mapping a batch of images to class logits and
accepts ``num_classes`` (and, when it can use them, ``in_channels``, ``input_size``,
``pool``, ``padding``, ``padding_mode``). :func:`wrap_plugin` turns it into an
:class:`~cnnbench.models.base.ImageClassifier` subclass with the default training
recipe, whose ``__init__`` names the plugin's own arguments (so ``--model.width 8``,
``--help``, grid validation and checkpoints see them) followed by the recipe's
(``lr``, ``optimizer``...). The plugin's module is ``self.net``.

The generated classes live in this module under the registry name (dots → ``__``), so
that the class path LightningCLI writes into ``config.yaml``
(``cnnbench.models.plugin.my_net``) imports again in a fresh process.

Example:
    >>> from torch import nn
    >>> def tiny(num_classes: int = 10, width: int = 4) -> nn.Module:
    ...     return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
    >>> cls = wrap_plugin("tiny", tiny)
    >>> model = cls(num_classes=3, in_channels=1, input_size=8)
    >>> model(model.example_input()).shape, model.hparams.width, model.recipe["trainer"]
    (torch.Size([2, 3]), 4, {'max_epochs': 5})
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from cnnbench.models.base import DEFAULT_RECIPE, ImageClassifier
from cnnbench.models.registry import MODELS

#: init arguments the CLI and the grid runner fill in from the data set
LINKED: dict[str, Any] = {"num_classes": 10, "in_channels": 1, "input_size": 32}
#: the ablation knobs a plugin may take (a grid needs pool and padding)
KNOBS = ("pool", "padding", "padding_mode")
_LINKED_TYPES: dict[str, Any] = {"num_classes": int, "in_channels": int, "input_size": int | tuple[int, int]}


def attr_name(key: str) -> str:
    """The attribute of this module holding the wrapper of registry entry ``key``."""
    return key.replace(".", "__")


def plugin_signature(name: str, target: Callable[..., Any]) -> tuple[list[inspect.Parameter], bool]:
    """(named keyword parameters, takes ``**kwargs``) of a plugin class or builder.

    ``nn.Module``'s own ``__init__(*args, **kwargs)`` accepts nothing: a class without an
    ``__init__`` of its own takes no arguments.

    Raises:
        ValueError: When the signature cannot be read.
    """
    if isinstance(target, type) and target.__init__ is nn.Module.__init__:  # type: ignore[misc]
        return [], False
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError) as err:
        raise ValueError(f"model {name!r}: cannot read the arguments of {_path(target)} ({err})") from None
    try:  # real types for jsonargparse (string annotations name the plugin module's globals)
        hints = typing.get_type_hints(target.__init__ if isinstance(target, type) else target)  # type: ignore[misc]
    except Exception:
        hints = {}
    named = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def _path(target: Any) -> str:
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


class PluginClassifier(ImageClassifier):
    """Base of the generated wrappers: builds the plugin, checks it once, delegates ``forward``."""

    #: the wrapped class or builder, its registry name and the linked arguments it takes
    plugin: ClassVar[Callable[..., Any]]
    plugin_name: ClassVar[str]
    plugin_linked: ClassVar[tuple[str, ...]]
    #: what the plugin lacks to be a cnnbench model (None when nothing), said in one line
    plugin_problem: ClassVar[str | None] = None

    def _build_plugin(self, kwargs: dict[str, Any]) -> None:
        if self.plugin_problem:
            raise ValueError(self.plugin_problem)
        try:
            net = type(self).plugin(**kwargs)
        except ValueError:
            raise  # cnnbench's factories (make_pool, make_conv) already say what is wrong, in one line
        except Exception as err:  # the plugin's own bug: one line here, the traceback with --traceback
            first = (str(err).strip().splitlines() or [""])[0][:300]
            raise ValueError(
                f"model {self.plugin_name!r}: {_path(self.plugin)} raised {type(err).__name__}: {first}"
            ) from err
        if not isinstance(net, nn.Module):
            raise ValueError(
                f"model {self.plugin_name!r}: {_path(self.plugin)} returned a {type(net).__name__}, not an nn.Module"
            )
        self.net = net
        self._probe()

    def _probe(self) -> None:
        """Run one batch of zeros: materializes lazy layers (``nn.LazyLinear``), so parameter
        counts, optimizers and summaries see real shapes, and turns a plugin that cannot take
        the data's images into a one-line error at construction instead of at the first step."""
        c, h, w = self.input_shape
        n_classes = int(self.hparams["num_classes"])
        was_training = self.net.training
        try:
            self.net.eval()  # batch norm: no running-stat update, works with a batch of 2
            with torch.no_grad():
                out = self.net(torch.zeros(2, c, h, w))
        except Exception as err:
            untaken = [a for a in ("in_channels", "input_size") if a not in self.plugin_linked]
            hint = (
                f"; it takes no {' or '.join(untaken)} argument: give it data of the shape it was written for"
                if untaken
                else ""
            )
            first = (str(err).strip().splitlines() or [""])[0][:300]
            raise ValueError(
                f"model {self.plugin_name!r} fails on a batch of {c}×{h}×{w} images ({type(err).__name__}: {first}){hint}"
            ) from None
        finally:
            self.net.train(was_training)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != n_classes:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"model {self.plugin_name!r} returns {shape} for a batch of 2 images; a classifier returns "
                f"logits of shape (batch, num_classes={n_classes})"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _problem(name: str, target: Callable[..., Any], named: set[str], takes_any: bool) -> str | None:
    if "num_classes" not in named and not takes_any:
        return (
            f"model {name!r} ({_path(target)}) has no argument 'num_classes'; a cnnbench model takes num_classes "
            "(and optionally in_channels, input_size, pool, padding, padding_mode)"
        )
    return None


def wrap_plugin(name: str, target: Callable[..., Any]) -> type[ImageClassifier]:
    """The :class:`ImageClassifier` subclass wrapping plugin ``target`` registered as ``name``.

    Never raises for a plugin that lacks something: the reason is kept in
    ``plugin_problem`` and raised, in one line, when the model is built.
    """
    try:
        params, takes_any = plugin_signature(name, target)
        problem = None
    except ValueError as err:
        params, takes_any, problem = [], False, str(err)
    named = {p.name for p in params}
    problem = problem or _problem(name, target, named, takes_any)
    linked = tuple(a for a in LINKED if a in named or (a == "num_classes" and takes_any))
    recipe_params = list(inspect.signature(ImageClassifier.__init__).parameters.values())[1:]
    recipe_names = {p.name for p in recipe_params}
    own = [p for p in params if p.name not in LINKED and p.name not in recipe_names]
    by_name = {p.name: p for p in params}
    link_params = [
        inspect.Parameter(
            a,
            inspect.Parameter.KEYWORD_ONLY,
            default=by_name[a].default
            if a in by_name and by_name[a].default is not inspect.Parameter.empty
            else LINKED[a],
            annotation=_LINKED_TYPES[a],
        )
        for a in LINKED
    ]
    hints = typing.get_type_hints(ImageClassifier.__init__)
    recipe_params = [p.replace(kind=p.KEYWORD_ONLY, annotation=hints.get(p.name, Any)) for p in recipe_params]
    all_params = [*link_params, *(p.replace(kind=p.KEYWORD_ONLY) for p in own), *recipe_params]
    cls = type(
        attr_name(name),
        (PluginClassifier,),
        {
            "__module__": __name__,
            "__qualname__": attr_name(name),
            "__doc__": inspect.getdoc(target) or f"Plugin model {_path(target)}.",
            "plugin": staticmethod(target) if not isinstance(target, type) else target,
            "plugin_name": name,
            "plugin_linked": linked,
            "plugin_problem": problem,
            "default_data": getattr(target, "default_data", "mnist"),
            "recipe": getattr(target, "recipe", None) or DEFAULT_RECIPE,
        },
    )
    cls.__init__ = _make_init(cls, all_params, [p.name for p in (*own,)], linked, [p.name for p in recipe_params])  # type: ignore[misc]
    return cls


def adapt_entry(name: str, entry: Callable[..., Any]) -> Callable[..., Any]:
    """The registry's ``adapt``: ImageClassifier subclasses as they are; any other class or builder wrapped into one."""
    if isinstance(entry, type) and issubclass(entry, ImageClassifier):
        return entry
    return wrap_plugin(name, entry)


MODELS.adapt = adapt_entry


def _make_init(
    cls: type, params: list[inspect.Parameter], own: list[str], linked: tuple[str, ...], recipe: list[str]
) -> Callable[..., None]:
    """An ``__init__`` with the plugin's real parameter names (generated, as ``dataclasses``
    does): jsonargparse reads them from its signature and Lightning's
    ``save_hyperparameters`` from the frame's locals; ``**kwargs`` would hide them from both."""
    defaults = {p.name: p.default for p in params}
    head = ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}=_d[{p.name!r}]" for p in params)
    to_plugin = ", ".join(f"{n!r}: {n}" for n in (*linked, *own))
    to_base = ", ".join(f"{n}={n}" for n in recipe)
    source = (
        "def _outer(__class__):\n"
        f"    def __init__(self, *, {head}):\n"
        f"        super(__class__, self).__init__({to_base})\n"
        f"        self._build_plugin({{{to_plugin}}})\n"
        "    return __init__\n"
    )
    namespace: dict[str, Any] = {"_d": defaults}
    exec(compile(source, f"<cnnbench plugin {cls.__name__}>", "exec"), namespace)
    init = namespace["_outer"](cls)
    init.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not inspect.Parameter.empty}
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = __name__
    return init  # type: ignore[no-any-return]


def __getattr__(attr: str) -> Any:
    """Resolve a generated class from its class path in a fresh process (config.yaml, DDP)."""
    if attr.startswith("_"):  # dunders asked by import machinery and tools
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    for key in (attr, attr.replace("__", ".")):
        if key in MODELS:
            entry = MODELS.get(key)
            if getattr(entry, "__qualname__", None) == attr and entry.__module__ == __name__:
                return entry
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["KNOBS", "LINKED", "PluginClassifier", "adapt_entry", "attr_name", "plugin_signature", "wrap_plugin"]
