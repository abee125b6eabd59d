"""Where data lives, and checking that it is all there and intact.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> try:
    ...     check_files(root / "MNIST" / "raw", {"train-images-idx3-ubyte": None}, "MNIST")
    ... except DataError as err:
    ...     print("missing" in str(err))
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

ENV_ROOT = "CNNBENCH_DATA_DIR"


class DataError(RuntimeError):
    """Data files are missing, corrupted, or could not be downloaded."""


def default_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root`` if given, else ``$CNNBENCH_DATA_DIR``, else a per-user cache folder."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT]).expanduser()
    return cache_dir("data")


def cache_dir(*parts: str) -> Path:
    """A per-user cache folder (``$XDG_CACHE_HOME/cnnbench/...``), never inside a data root."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base.joinpath("cnnbench", *parts)


_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """MD5 of a file, memoised on (path, size, mtime) so a file is hashed once per process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _MD5_CACHE:
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                digest.update(block)
        _MD5_CACHE[key] = digest.hexdigest()
    return _MD5_CACHE[key]


def check_files(folder: Path, expected: Mapping[str, str | None], dataset: str, verify: bool = True) -> None:
    """Check that every file in ``expected`` exists in ``folder`` with the given MD5.

    Args:
        folder: The folder the files must be in.
        expected: File name → MD5 (``None`` to check existence only).
        dataset: Name used in messages.
        verify: Compare MD5s (existence is always checked).

    Raises:
        DataError: Naming the folder and every missing or corrupted file, and how to fix it.
    """
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"{dataset}: missing file(s) in {folder}: {', '.join(missing)}.\n"
            f"Fix: run once with download=True on a machine with internet access, or copy the "
            f"files there (torchvision's layout works as is), or point root / ${ENV_ROOT} at a folder holding them."
        )
    if not verify:
        return
    bad = [
        f"{name} (md5 {actual}, expected {md5})"
        for name, md5 in expected.items()
        if md5 is not None and (actual := md5sum(folder / name)) != md5
    ]
    if bad:
        raise DataError(
            f"{dataset}: corrupted file(s) in {folder}: {'; '.join(bad)}.\n"
            f"Fix: delete them and download again (download=True), or copy intact files there."
        )


@contextlib.contextmanager
def network_timeout(seconds: float = 20.0) -> Iterator[None]:
    """Bound every socket operation (torchvision's downloads set no timeout of their own)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _entries(root: Path, folder: str) -> set[Path]:
    """The paths a download into ``root`` may create: ``root``'s entries and everything in its
    data set ``folder`` (small); never a walk of the whole data root."""
    found = set(root.iterdir()) if root.is_dir() else set()
    if (root / folder).is_dir():
        found |= set((root / folder).rglob("*"))
    return found


def _first_missing(path: Path) -> Path | None:
    """The topmost folder of ``path`` (itself included) that does not exist yet."""
    missing = None
    while not path.exists() and path != path.parent:
        missing, path = path, path.parent
    return missing


def _remove_new(root: Path, folder: str, before: set[Path], created: Path | None) -> None:
    """Delete what appeared under ``root`` since ``before``, then the empty folders up to
    ``created`` (the topmost folder the download made)."""
    for path in sorted(_entries(root, folder) - before, key=lambda p: len(p.parts)):  # a folder before its files
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if created is None:
        return
    path = root
    while True:
        try:
            path.rmdir()  # only when empty
        except OSError:
            return
        if path == created:
            return
        path = path.parent


def _one_line(text: str, limit: int = 300) -> str:
    joined = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


@contextlib.contextmanager
def download_guard(root: Path, folder: str, dataset: str) -> Iterator[None]:
    """Run a download into ``root`` (files under ``root/folder``) with a network timeout.

    If it fails, what it created is removed again (partial files, new folders such as
    ``MNIST/raw``, the data root itself if it did not exist; nothing that was there before)
    and a two-line :class:`DataError` says what failed and how to fix it.
    """
    created = _first_missing(root)
    before = _entries(root, folder)
    try:
        with network_timeout():
            yield
    except Exception as err:
        _remove_new(root, folder, before, created)
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{dataset}: download into {root} failed ({type(err).__name__}: {_one_line(str(err))}).\n"
            "Fix: run once on a machine with internet access, or copy the files there and use download=False."
        ) from None
    except BaseException:  # Ctrl-C during the download
        _remove_new(root, folder, before, created)
        raise
