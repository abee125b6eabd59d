"""A small name → factory registry, shared by models and data modules.

Modelled on timm's ``_registry.py``: entries are registered with a decorator, looked up
by lowercase name, listed with fnmatch wildcards, and third-party packages can add
entries through a Python entry-point group without being imported by hand. A plugin
whose import fails is kept as *broken* with its error (``broken()``): it never hides the
other entries, and asking for it by name says why in one line.

Example:
    >>> from cnnbench.core.registry import Registry
    >>> shapes = Registry("shape", entry_point_group=None)
    >>> @shapes.register
    ... def square(side: int = 2) -> int:
    ...     return side * side
    >>> shapes.create("square", side=3)
    9
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar, overload

from cnnbench.core.choices import did_you_mean
from cnnbench.core.signature import accepted_kwargs

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """Maps lowercase names to classes or builder functions.

    Args:
        kind: What the entries are ("model", "data module"); used in error messages.
        entry_point_group: Entry-point group scanned once, lazily, for plugins.
        adapt: Called as ``adapt(name, entry)`` on every registered entry; returns what is
            stored (the model registry wraps plain ``nn.Module`` plugins). With it, a dotted
            path (``mypkg.MyNet``) names an entry too: imported, adapted and registered on
            first use, under the path as written.
    """

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None,
        adapt: Callable[[str, Callable[..., Any]], Callable[..., Any]] | None = None,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.adapt = adapt
        self._entries: dict[str, Callable[..., Any]] = {}
        self._originals: dict[str, Callable[..., Any]] = {}  # as registered, before adapt
        self._broken: dict[str, str] = {}
        self._plugins_loaded = entry_point_group is None

    @overload
    def register(self, fn: F) -> F: ...

    @overload
    def register(self, fn: str | None = None) -> Callable[[F], F]: ...

    def register(self, fn: F | str | None = None) -> F | Callable[[F], F]:
        """Register ``fn`` under its own (lowercased) name, or under an explicit name.

        Usable bare (``@register``) or with a name (``@register("lenet5")``).

        Raises:
            ValueError: If the name is already registered.
        """
        if callable(fn):
            return self._add(fn.__name__, fn)

        def decorator(inner: F) -> F:
            return self._add(fn if isinstance(fn, str) else inner.__name__, inner)

        return decorator

    def _add(self, name: str, fn: F) -> F:
        key = name.lower()
        if key in self._entries and self._entries[key] is not fn and self._originals.get(key) is not fn:
            raise ValueError(f"{self.kind} {key!r} is already registered (by {self._entries[key]!r})")
        if key not in self._entries:
            self._originals[key] = fn
            self._entries[key] = self.adapt(key, fn) if self.adapt is not None else fn
        return fn

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.entry_point_group or ""):
            try:
                obj = ep.load()  # importing the plugin module runs its @register decorators
            except Exception as err:  # one broken plugin must not hide the others
                first = (str(err).strip().splitlines() or [""])[0][:200]
                self._broken[ep.name.lower()] = f"{ep.value} failed to import ({type(err).__name__}: {first})"
                continue
            if not callable(obj):
                self._broken[ep.name.lower()] = f"{ep.value} is a {type(obj).__name__}, not a class or function"
            elif ep.name.lower() not in self._entries:
                self._add(ep.name, obj)

    def broken(self) -> dict[str, str]:
        """Plugins that could not be loaded: name → the reason, in one line."""
        self._load_plugins()
        return dict(self._broken)

    def _key(self, name: str) -> str | None:
        """The stored key for ``name``: registered, or a dotted path imported now (with ``adapt``)."""
        self._load_plugins()
        if name in self._entries:
            return name
        if name.lower() in self._entries:
            return name.lower()
        if self.adapt is not None and "." in name and name.lower() not in self._broken:
            import importlib

            module, _, attr = name.rpartition(".")
            try:
                obj = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError, ValueError, TypeError):
                return None
            adapted = self.adapt(name, obj) if callable(obj) else obj
            if adapted is not obj:  # only what adapt wraps is kept by path; the rest resolves as it is
                self._originals[name], self._entries[name] = obj, adapted
                return name
        return None

    def get(self, name: str) -> Callable[..., Any]:
        """Return the class or builder registered as ``name``.

        Raises:
            ValueError: For an unknown name, listing the closest registered names, or a
                plugin that failed to import, with its error.
        """
        key = self._key(name)
        if key is None:
            raise ValueError(self.unknown_message(name))
        return self._entries[key]

    def unknown_message(self, name: str) -> str:
        """The error text for an unknown name: close matches, then the full list (or, for an
        installed plugin that failed to import, why)."""
        self._load_plugins()
        if name.lower() in self._broken:
            return f"{self.kind} {name.lower()!r} is installed but broken: {self._broken[name.lower()]}"
        names = sorted(self._entries)
        hint = did_you_mean(name.lower(), names, n=3)
        return f"Unknown {self.kind} {name!r}.{hint} Registered: {', '.join(names)}."

    def create(self, name: str, **kwargs: Any) -> Any:
        """Build entry ``name``; keyword arguments that are ``None`` are dropped.

        Raises:
            ValueError: For an unknown keyword argument, with the close valid names.
        """
        fn = self.get(name)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        self.check_kwargs(name, fn, kwargs)
        return fn(**kwargs)

    def check_kwargs(self, name: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        """Raise a one-line ValueError for keyword arguments ``fn`` does not take."""
        accepted = accepted_kwargs(fn)
        unknown = [k for k in kwargs if accepted is not None and k not in accepted]
        if not unknown:
            return
        key = unknown[0]
        hint = did_you_mean(key, accepted or (), n=3)
        raise ValueError(
            f"{self.kind} {name!r} got an unknown argument {key!r}.{hint} Valid: {', '.join(sorted(accepted or ()))}."
        )

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching an fnmatch ``pattern``."""
        self._load_plugins()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern.lower()))

    def name_of(self, obj: object) -> str | None:
        """The registered name of a class (or an instance of it), if any."""
        target = obj if isinstance(obj, type) else type(obj)
        for key, value in self._entries.items():
            if value is target:
                return key
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) is not None
