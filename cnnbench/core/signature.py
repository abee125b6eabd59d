"""Which keyword arguments a class or function accepts: the one implementation.

The registry checks ``create_model(name, **kwargs)`` with it, the grid checks ``model_args`` /
``data_args`` at load time, and the CLI lists ``--model.*`` options and hints from it.

Example:
    >>> class Base:
    ...     def __init__(self, lr: float = 0.1) -> None: ...
    >>> class Net(Base):
    ...     def __init__(self, pool: str = "max", **kwargs: float) -> None: ...
    >>> sorted(accepted_kwargs(Net))
    ['lr', 'pool']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

# A ``**kwargs`` that reaches these packages' base classes adds nothing a cnnbench subclass
# (or a plugin) does not already name: LightningModule / nn.Module take no real options.
_FRAMEWORK_PACKAGES = ("lightning", "pytorch_lightning", "torch", "builtins")


def accepted_kwargs(fn: Callable[..., Any]) -> set[str] | None:
    """Keyword names ``fn`` (a class or function) accepts, or None when it takes any.

    A class's ``**kwargs`` is followed up its bases' ``__init__`` (as cnnbench models pass theirs
    to ``ImageClassifier``), until one takes no ``**kwargs`` or the chain reaches Lightning's or
    torch's own base classes. A function with ``**kwargs`` (or one without a signature) takes any.

    Example:
        >>> def square(side: int = 2) -> int:
        ...     return side * side
        >>> accepted_kwargs(square)
        {'side'}
    """
    is_class = isinstance(fn, type)
    chain = [c for c in fn.__mro__ if "__init__" in c.__dict__] if isinstance(fn, type) else [fn]
    names: set[str] = set()
    for owner in chain:
        if is_class and owner.__module__.split(".")[0] in _FRAMEWORK_PACKAGES:
            return names
        try:
            params = list(inspect.signature(owner.__dict__["__init__"] if is_class else owner).parameters.values())
        except (TypeError, ValueError):  # builtins without a signature
            return None
        if is_class and params:
            params = params[1:]  # self
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None if not is_class else names
