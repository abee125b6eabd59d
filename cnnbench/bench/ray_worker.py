"""The Ray actor of ``--launcher ray``: on its node, a fork server and one cell at a time.

The actor writes nothing the driver reads from disk: it returns each cell's result, log and the
run folder's small files, and the driver (:mod:`cnnbench.bench.ray_launcher`) writes them.

Example:
    >>> worker = CellWorker(None, preload=None, wandb=False, keep=False)  # no fork server: DDP cells
    >>> worker.ready()["forking"]
    False
    >>> worker.close()
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from cnnbench.bench.forkclient import ForkServer
from cnnbench.bench.launch import read_result, run_subprocess
from cnnbench.bench.results import RESULT_SUFFIX

#: a run folder's files the driver copies back (checkpoints and W&B files stay on the node)
SHIPPED_LIMIT = 16 * 2**20


class CellWorker:
    """The Ray actor: a fork server on its node, one cell at a time, results returned (not written)."""

    def __init__(self, scratch: str | None, preload: list[dict[str, Any]] | None, wandb: bool, keep: bool) -> None:
        """``preload`` None: no fork server (an actor for DDP cells, which run as subprocesses)."""
        self.keep = keep
        root = Path(scratch or os.environ.get("CNNBENCH_RAY_SCRATCH") or tempfile.gettempdir())
        root.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="cnnbench-ray-", dir=root))
        for sub in ("results", "logs"):
            (self.scratch / sub).mkdir()
        self.server = None
        if preload is not None:
            self.server = ForkServer(self.scratch / "logs" / "forkserver.log", preload=preload, wandb=wandb)
            self.server.start()  # imports in the background; ready() waits for it

    def ready(self) -> dict[str, Any]:
        forking = self.server is not None and self.server.wait_ready()
        ready_s = self.server.ready_s if self.server is not None else None
        return {"pid": os.getpid(), "node": socket.gethostname(), "forking": forking, "ready_s": ready_s}

    def close(self) -> None:
        """Stop the fork server; remove the scratch folder unless its checkpoints are kept."""
        if self.server is not None:
            self.server.close()
        if not self.keep:
            import shutil

            shutil.rmtree(self.scratch, ignore_errors=True)

    def run(self, run: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        """Run one cell in this node's scratch folder; return what the driver writes."""
        run_id, out = run["run_id"], self.scratch
        run = {**run, "out": str(out)}
        result_path, log_path = out / "results" / f"{run_id}{RESULT_SUFFIX}", out / "logs" / f"{run_id}.log"
        result_path.unlink(missing_ok=True)
        code: int | str
        if self.server is not None and self.server.wait_ready():
            code = self.server.run(run_id, run, log_path, timeout=timeout, data=run["grid"]["data"])
        else:  # DDP, or a fork server that could not start: a fresh Python, as the other launchers do
            code = run_subprocess(run, out, log_path, {}, run["threads"], timeout)
        folder = out / "runs" / run_id / "version_0"
        files = {
            str(p.relative_to(out)): p.read_text(errors="replace")
            for p in sorted(folder.glob("*"))
            if p.is_file() and p.stat().st_size <= SHIPPED_LIMIT
        }
        return {
            "code": code,
            "result": read_result(result_path),
            "log": log_path.read_text(errors="replace") if log_path.exists() else "",
            "files": files,
            "node": socket.gethostname(),
            "node_out": str(out),
        }
