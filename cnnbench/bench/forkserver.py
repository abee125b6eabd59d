"""A process that imports torch and Lightning and reads the data once, then forks one process per cell.

Starting a cell as a fresh ``python -m cnnbench.bench.cell`` costs a full import of torch,
Lightning and torchvision and a new read of its data set: seconds per cell, often more
than a small cell's training. The fork server pays that once per grid. The runner starts
it (``python -m cnnbench.bench.forkserver RUNNER_PID``) and talks to it in JSON lines over
its stdin/stdout; for each cell it forks a child that runs :func:`cnnbench.bench.cell.execute`
and writes its result exactly as a subprocess cell would.

Guarantees:

* A crash of a cell (exception, segfault, ``os._exit``) ends only its own process; the
  server reports the exit status and the runner records the cell ``failed``.
* No orphans: the server dies with the runner, and each cell with the server
  (``PR_SET_PDEATHSIG``), so a SIGKILLed runner leaves no process behind.
* CUDA is never initialised before a fork (it cannot survive one): the server checks
  ``torch.cuda.is_initialized()`` before every fork and refuses to fork otherwise; each
  cell initialises CUDA itself, after its ``CUDA_VISIBLE_DEVICES`` is set.
* The server runs torch with one thread: a parent that has entered an OpenMP parallel
  region leaves its forked children hanging in their first one (GNU libgomp). Each cell
  sets its own thread count.

Protocol (one JSON object per line). Runner → server: ``{"op": "hello", "preload": [data
blocks], "wandb": bool}`` once, then ``{"op": "run", "id", "run", "log", "env", "data"}`` and
``{"op": "kill", "id"}``; closing stdin stops the server (and kills cells still running).
Server → runner: ``{"event": "ready", "import_s"}``, ``{"event": "started", "id", "pid"}``,
``{"event": "exit", "id", "code"}`` (code: the exit status, or ``-signal``).

Example (not run as a doctest: it starts the server process and trains a cell):
    >>> from cnnbench.bench.forkclient import ForkServer
    >>> server = ForkServer(Path("logs/forkserver.log"))  # doctest: +SKIP
    >>> server.start(); server.run("cell-0", run, Path("logs/cell-0.log"))  # doctest: +SKIP
    0
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import sys
import time
import traceback
from typing import Any

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Get SIGKILL when the parent dies; exit now if it already has (it died before prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


class _Server:
    def __init__(self, runner: int) -> None:
        self.runner = runner
        # the protocol gets a private copy of stdout; stray prints (imports, warnings) go to the log
        self.out = os.dup(1)
        os.dup2(2, 1)
        self.buffer = b""
        self.children: dict[int, str] = {}  # pid → cell id
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select(): see set_wakeup_fd
        signal.set_wakeup_fd(self.wake_w)
        self.selector = selectors.DefaultSelector()
        self.selector.register(0, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.out, data) :]

    def messages(self) -> list[dict[str, Any]] | None:
        """Complete messages read from stdin; None at end of input (the runner closed it)."""
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return None
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def preload(self, hello: dict[str, Any]) -> None:
        started = time.perf_counter()
        os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # torch.cuda.is_available() stays fork-safe
        import torch

        torch.set_num_threads(1)  # see the module docstring: OpenMP in a parent hangs forked children
        import lightning  # noqa: F401
        import torchvision  # noqa: F401

        import cnnbench.bench.cell as cell
        import cnnbench.bench.robustness
        import cnnbench.bench.timing
        import cnnbench.data
        import cnnbench.models
        import cnnbench.training
        from cnnbench.bench.datacache import warm

        if hello.get("wandb"):
            with contextlib.suppress(ImportError):
                import wandb  # noqa: F401

                import cnnbench.training.wandb  # noqa: F401
        cell.git_commit()
        imported = time.perf_counter() - started
        for data in hello.get("preload") or []:
            error = warm(data)
            if error:
                print(f"fork server: data not preloaded, cells will read it themselves: {error}", file=sys.stderr)
        self.send({"event": "ready", "import_s": imported, "ready_s": time.perf_counter() - started})

    def serve(self) -> None:
        pending: list[dict[str, Any]] = []
        while not pending:
            got = self.messages()
            if got is None:
                return
            pending = got
        self.preload(pending[0])
        for message in pending[1:]:
            self.handle(message)
        while True:
            for key, _ in self.selector.select(timeout=5.0):
                if key.fd == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                    continue
                got = self.messages()
                if got is None:
                    self.shutdown()
                    return
                for message in got:
                    self.handle(message)
            self.reap()

    def handle(self, message: dict[str, Any]) -> None:
        if message.get("op") == "run":
            self.fork(message)
        elif message.get("op") == "kill":
            for pid, ident in self.children.items():
                if ident == message.get("id"):
                    kill_group(pid)

    def fork(self, request: dict[str, Any]) -> None:
        import torch

        from cnnbench.bench.datacache import warm

        if torch.cuda.is_initialized():  # a fork would hand each cell a broken CUDA context
            self.send({"event": "exit", "id": request["id"], "code": "fork server initialised CUDA; cannot fork"})
            return
        if request.get("data"):
            warm(request["data"])  # a data block not preloaded: read once here, shared from now on
        sys.stdout.flush()
        sys.stderr.flush()
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            self.child(request, server)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also done by the child: whichever runs first
        self.children[pid] = request["id"]
        self.send({"event": "started", "id": request["id"], "pid": pid})

    def child(self, request: dict[str, Any], server: int) -> None:
        """The forked cell: its own process group, its log as stdout/stderr, then the cell."""
        code = 1
        try:
            with contextlib.suppress(OSError):
                os.setpgid(0, 0)  # its own group: a timeout kills the cell and whatever it started
            die_with_parent(server)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.selector.close()
            for fd in (self.out, self.wake_r, self.wake_w):
                os.close(fd)
            log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.close(log)
            os.close(null)
            import faulthandler

            faulthandler.enable(file=sys.stderr)  # a segfault leaves its Python stack in the log
            os.environ.update(request.get("env") or {})
            os.environ.pop("CNNBENCH_RUN_VERSION", None)
            from cnnbench.bench.cell import execute

            code = execute(request["run"])
        except BaseException:  # whatever happens, this process must end here, not in the server's loop
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                _finish_wandb(code)
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)  # no atexit handlers: those registered are the server's

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            ident = self.children.pop(pid, None)
            if ident is not None:
                self.send({"event": "exit", "id": ident, "code": os.waitstatus_to_exitcode(status)})

    def shutdown(self) -> None:
        for pid in list(self.children):
            kill_group(pid)
        deadline = time.monotonic() + 5
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.02)


def _finish_wandb(code: int) -> None:
    """Close a W&B run a failed cell left open (a normal interpreter exit would, via atexit)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=code)
        wandb.teardown()


def kill_group(pid: int) -> None:
    """SIGKILL a cell and everything in its process group."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    """``python -m cnnbench.bench.forkserver RUNNER_PID`` (started by the runner, not by hand)."""
    args = sys.argv[1:] if argv is None else argv
    runner = int(args[0])
    die_with_parent(runner)
    _Server(runner).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
