"""Version checks for the code that depends on a library's version.

pip enforces the floors in ``pyproject.toml`` only when it installs cnnbench; a checkout on
``PYTHONPATH``, ``--no-deps`` or another package manager can pair cnnbench with an older
Lightning or torch. The code that relies on version-specific behaviour (Lightning's private
loop state for exact resume and its ``weights_only`` checkpoint loading; the captured
step's torch ops) calls :func:`require` first, so such an environment fails in one line
naming the version it needs instead of misbehaving mid-fit.

``MINIMUM`` is the oldest version of each that the whole test suite has passed on
(``.ci/oldest``, pinned in ``.ci/oldest-constraints.txt``); it equals the floor declared in
``pyproject.toml`` (a test checks both).

Example:
    >>> from cnnbench.core.compat import require
    >>> require("torch", "the captured training step")  # passes silently when torch is new enough
"""

from __future__ import annotations

import importlib
import re

#: the oldest tested version of each library whose version some code path depends on
MINIMUM = {"lightning": "2.6", "torch": "2.9.1"}


class UnsupportedVersionError(ImportError):
    """An installed library is older than the version a cnnbench feature needs."""


def version_tuple(version: str) -> tuple[int, ...]:
    """The leading release numbers of ``version`` (``"2.9.1+cpu"`` gives ``(2, 9, 1)``).

    Pre-release and local suffixes are ignored: a nightly of a supported release counts as it."""
    match = re.match(r"\d+(?:\.\d+)*", str(version).strip())
    if match is None:
        raise ValueError(f"cannot read a version number from {version!r}")
    numbers = tuple(int(part) for part in match.group().split("."))
    return numbers + (0,) * (3 - len(numbers))


def installed_version(package: str) -> str:
    """The version of ``package`` as the imported module reports it (``__version__``)."""
    return str(importlib.import_module(package).__version__)


def require(package: str, feature: str) -> None:
    """Raise :class:`UnsupportedVersionError` (one line) when ``package`` is older than
    ``MINIMUM[package]``, the version ``feature`` was tested with."""
    minimum = MINIMUM[package]
    found = installed_version(package)
    if version_tuple(found) < version_tuple(minimum):
        raise UnsupportedVersionError(
            f"{feature} needs {package}>={minimum}, but {package} {found} is installed: pip install '{package}>={minimum}'"
        )
