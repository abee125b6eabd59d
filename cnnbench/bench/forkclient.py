"""The runner's side of the fork server (:mod:`cnnbench.bench.forkserver`): start it, hand it cells, wait.

This module imports nothing heavy: the runner process never touches CUDA, and starting
the server costs the runner only a ``Popen``; the server imports in the background while
the runner checks which cells are feasible.

Example (not run as a doctest: it starts a server process that imports torch and reads a data set):
    >>> server = ForkServer(Path("out/logs/forkserver.log"), preload=[{"name": "mnist"}])  # doctest: +SKIP
    >>> server.start()  # doctest: +SKIP
    >>> server.wait_ready()  # doctest: +SKIP
    True
    >>> server.run("lenet5-max-s0", run, Path("out/logs/lenet5-max-s0.log"), timeout=600)  # doctest: +SKIP
    0
    >>> server.close()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

LOST = "fork server ended unexpectedly (see logs/forkserver.log)"


class ForkServer:
    """A running fork server, shared by the runner's worker threads.

    Args:
        log_path: The server's own stderr (import warnings, preload errors).
        preload: Grid ``data:`` blocks to read once before the first cell.
        wandb: Import W&B in the server too (its cells log to W&B).
    """

    def __init__(self, log_path: Path, preload: list[dict[str, Any]] | None = None, wandb: bool = False) -> None:
        self.log_path, self.preload, self.wandb = Path(log_path), list(preload or []), wandb
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: dict[str, int] = {}  # cell id → pid of its running process
        self.started_at: float | None = None
        self.ready_s: float | None = None  # spawn → ready to fork, seconds (None until ready)
        self.import_s: float | None = None
        self._ready = threading.Event()
        self._alive = False
        self._lock = threading.Lock()  # guards _waiters and _alive
        self._write_lock = threading.Lock()  # one message at a time on the server's stdin
        self._waiters: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._reader: threading.Thread | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Spawn the server (it imports and preloads in the background); returns at once."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cnnbench.bench.forkserver", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=dict(os.environ),
        )
        self._alive = True
        self._send({"op": "hello", "preload": self.preload, "wandb": self.wandb})
        self._reader = threading.Thread(target=self._read, name="forkserver-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the server can fork; False if it died (the runner then starts cells itself)."""
        self._ready.wait(timeout)
        return self._alive and self._ready.is_set()

    def run(
        self,
        ident: str,
        run: dict[str, Any],
        log: Path,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
        data: dict[str, Any] | None = None,
    ) -> int | str:
        """Run one cell in a forked process and wait for it to end.

        Returns:
            Its exit status (``-N`` for signal N), or a message: ``timeout after Ts`` (it
            was killed), or that the server itself ended.
        """
        waiter: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            if not self._alive:
                return LOST
            self._waiters[ident] = waiter
        request = {"op": "run", "id": ident, "run": run, "log": str(log), "env": env or {}, "data": data}
        if not self._send(request):
            return self._forget(ident, LOST)
        deadline = time.monotonic() + timeout if timeout else None
        killed = False
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                message = waiter.get(timeout=wait)
            except queue.Empty:
                self._send({"op": "kill", "id": ident})
                killed, deadline = True, None
                continue
            if message["event"] == "started":
                self.pids[ident] = int(message["pid"])
                continue
            code: int | str = message.get("code", LOST)
            return self._forget(ident, f"timeout after {timeout:g}s" if killed else code)

    def close(self) -> None:
        """Stop the server (cells still running are killed) and wait for it."""
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        if not self._ready.is_set():
            self.proc.kill()  # still importing, so it has forked nothing: no need to wait for it
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._log is not None:
            self._log.close()

    # ------------------------------------------------------------------ internals
    def _forget(self, ident: str, code: int | str) -> int | str:
        with self._lock:
            self._waiters.pop(ident, None)
        self.pids.pop(ident, None)
        return code

    def _send(self, message: dict[str, Any]) -> bool:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            with self._write_lock:
                self.proc.stdin.write((json.dumps(message, default=str) + "\n").encode())
                self.proc.stdin.flush()
        except (OSError, ValueError):  # the server is gone
            return False
        return True

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("event") == "ready":
                self.import_s = float(message.get("import_s", 0.0))
                self.ready_s = time.monotonic() - (self.started_at or time.monotonic())
                self._ready.set()
                continue
            with self._lock:
                waiter = self._waiters.get(str(message.get("id")))
            if waiter is not None:
                waiter.put(message)
        with self._lock:  # end of output: the server died (or was closed); nobody waits forever
            self._alive = False
            waiters = list(self._waiters.values())
        self._ready.set()
        for waiter in waiters:
            waiter.put({"event": "exit", "code": LOST})
