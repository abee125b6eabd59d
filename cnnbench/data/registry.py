"""The data-module registry: ``register_data``, ``create_data``, ``list_data``.

Example:
    >>> from cnnbench.data import list_data
    >>> "mnist" in list_data()
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from cnnbench.core.registry import Registry

T = TypeVar("T", bound=Callable[..., Any])

DATA = Registry("data module", entry_point_group="cnnbench.data")


def register_data(name: str) -> Callable[[T], T]:
    """Register a data-module class under ``name`` (and record the name on the class)."""

    def decorator(cls: T) -> T:
        cls.name = name  # type: ignore[attr-defined]
        return DATA.register(name)(cls)

    return decorator


def create_data(name: str, **kwargs: Any) -> Any:
    """Build the data module registered as ``name``; ``None`` arguments are dropped."""
    return DATA.create(name, **kwargs)


def list_data(pattern: str = "*") -> list[str]:
    """Sorted names of the registered data modules matching an fnmatch ``pattern``."""
    return DATA.names(pattern)
