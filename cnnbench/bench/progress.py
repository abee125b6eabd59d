"""The live progress line of a running grid: done/total, running, failed, ETA, last accuracy.

One line per finished cell when stderr is a file or a pipe (logs stay readable)::

    [3/12] ok lenet5-max-same-zeros-32-true-d1-s0 test_acc=0.981 | running 2 | failed 0 | ETA 0:41

On a terminal the same lines are printed, and below them a status line is rewritten in
place whenever a cell starts or ends.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress(total=2, workers=1, stream=out, tty=False, clock=iter([0.0, 10.0]).__next__)
    >>> p.started("a")
    >>> p.finished("a", "ok", {"test_acc": 0.9812})
    >>> out.getvalue()
    '[1/2] ok a test_acc=0.981 | running 0 | failed 0 | ETA 0:10\\n'
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

_CLEAR = "\r\x1b[K"


def format_seconds(seconds: float) -> str:
    """``0:41``, ``12:05``, ``1:02:03``."""
    s = max(0, round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts the cells of one runner invocation and prints the progress line.

    Args:
        total: Cells this invocation handles (finished ones found on disk excluded).
        workers: Cells at once, for the ETA.
        stream: Where to print (stderr).
        tty: Rewrite a status line in place; default: whether ``stream`` is a terminal.
        clock: Seconds, for durations (monotonic).
    """

    def __init__(
        self,
        total: int,
        workers: int = 1,
        stream: IO[str] | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.workers = total, max(1, workers)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.clock = clock
        self.done = self.failed = 0
        self.running: dict[str, float] = {}  # run id → start time
        self.durations: list[float] = []
        self.last = ""
        self._lock = threading.Lock()

    def note(self, text: str) -> None:
        """Print a line of its own (above the status line on a terminal)."""
        with self._lock:
            self._print(text)

    def started(self, run_id: str) -> None:
        with self._lock:
            self.running[run_id] = self.clock()
            if self.tty:
                self._status()

    def finished(self, run_id: str, status: str, result: dict[str, Any] | None = None, note: str = "") -> None:
        """A cell ended (``ok``, ``failed``, ``diverged``, ``infeasible``, ``skipped``)."""
        with self._lock:
            start = self.running.pop(run_id, None)
            own = (result or {}).get("t_exit"), (result or {}).get("t_launch")
            if all(isinstance(t, int | float) for t in own):
                self.durations.append(float(own[0]) - float(own[1]))  # type: ignore[arg-type]  # without queueing
            elif start is not None:
                self.durations.append(self.clock() - start)
            self.done += 1
            self.failed += status == "failed"
            detail = note or _detail(status, result or {})
            self.last = f"{run_id} {detail}".strip()
            line = f"[{self.done}/{self.total}] {status} {run_id}" + (f" {detail}" if detail else "")
            self._print(f"{line} | {self._counts()}")

    def close(self) -> None:
        with self._lock:
            if self.tty:
                self.stream.write(_CLEAR)
                self.stream.flush()

    def eta(self) -> str:
        remaining = self.total - self.done
        if remaining <= 0:
            return "0:00"
        if not self.durations:
            return "?"
        mean = sum(self.durations) / len(self.durations)
        return format_seconds(mean * remaining / min(self.workers, remaining))

    # ------------------------------------------------------------------ internals
    def _counts(self) -> str:
        return f"running {len(self.running)} | failed {self.failed} | ETA {self.eta()}"

    def _print(self, text: str) -> None:
        self.stream.write((_CLEAR if self.tty else "") + text + "\n")
        if self.tty:
            self._status()
        self.stream.flush()

    def _status(self) -> None:
        last = f" | last {self.last}" if self.last else ""
        self.stream.write(f"{_CLEAR}[{self.done}/{self.total}] {self._counts()}{last}")
        self.stream.flush()


def _detail(status: str, result: dict[str, Any]) -> str:
    if status == "ok" and isinstance(result.get("test_acc"), int | float):
        return f"test_acc={result['test_acc']:.3f}"
    error = str(result.get("error") or "").strip().splitlines()
    return error[0][:120] if error else ""
