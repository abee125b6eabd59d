"""Decoded data sets held once per process, for the cells the fork server forks.

The fork server reads each grid ``data:`` block once (:func:`warm`): the official train
and test splits as decoded uint8 tensors. Every cell forked afterwards inherits them
(copy-on-write: the pages are shared until written, and nothing writes them), and its data
module takes them instead of reading files (:func:`attach`). The seed-dependent train/val
split is still made by the module's own ``setup`` in each cell, from these arrays, so a
cell with another seed gets its own split; that costs one permutation and one copy.

This relies on the contract of ``ImageDataModule.read_split``: it returns the *official*
split, a function of the files and the data block's arguments only, never of the seed.

Example:
    >>> from cnnbench.bench.datacache import attach, warm
    >>> block = {"name": "synthetic", "train_images": 64, "test_images": 16}
    >>> warm(block) is None
    True
    >>> from cnnbench.data import create_data
    >>> dm = create_data("synthetic", seed=3, train_images=64, test_images=16)
    >>> attach(dm, block)
    True
"""

from __future__ import annotations

import json
from typing import Any

_SPLITS: dict[str, dict[bool, tuple[Any, Any]]] = {}


def data_key(data: dict[str, Any]) -> str:
    """The cache key of a grid ``data:`` block (its arguments, in a canonical order)."""
    return json.dumps(data, sort_keys=True, default=str)


def warm(data: dict[str, Any]) -> str | None:
    """Check the files of ``data`` and read both official splits into this process's cache.

    Returns:
        None when cached (or already was), else the one-line error; the cells then read
        the data themselves and report that error as their own.
    """
    key = data_key(data)
    if key in _SPLITS:
        return None
    from cnnbench.data import create_data

    args = dict(data)
    try:
        dm = create_data(args.pop("name"), **args)
        dm.check()  # verifies the files (MD5s when asked) once, not once per cell
        _SPLITS[key] = {True: dm.read_split(train=True), False: dm.read_split(train=False)}
    except Exception as err:  # the cell meets the same error and records it
        return f"{type(err).__name__}: {err}"
    return None


def attach(dm: Any, data: dict[str, Any]) -> bool:
    """Make ``dm`` (built from ``data``) take the cached splits instead of reading files.

    Returns:
        True when the splits were cached; False leaves ``dm`` untouched.
    """
    splits = _SPLITS.get(data_key(data))
    if splits is None:
        return False
    dm.read_split = lambda train: splits[bool(train)]
    dm.check = lambda: None  # checked by warm(); also skips prepare_data's download attempt
    return True


def clear() -> None:
    """Forget every cached data set."""
    _SPLITS.clear()
