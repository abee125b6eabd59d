"""Writing a file so that a reader (or a crash) never sees half of it: one helper, used everywhere.

The bytes go to a temporary file in the same folder, are flushed and fsynced, and the file is
renamed into place (``os.replace`` is atomic on POSIX and Windows within one file system). A
crash leaves the previous file intact and, at worst, a ``.NAME.PID.tmp`` file that the next write
replaces.

Example:
    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "result.json"
    >>> write_json_atomic(path, {"test_acc": 0.99})
    >>> json.loads(path.read_text())
    {'test_acc': 0.99}
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(fh)`` on a temporary binary file beside ``path``, fsync it, rename it into place.

    The folder is created if needed. On any error the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomic`)."""
    write_atomic(path, lambda fh: fh.write(data))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`write_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as JSON (sorted keys; what JSON cannot hold as ``str``) atomically."""
    write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=True, default=str))
