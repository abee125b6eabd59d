"""Loaded by every Python subprocess the tests start (PYTHONPATH): no network but loopback.

A connection attempt to any other address raises, and is recorded in the file named by
CNNBENCH_NETGUARD_LOG so the test that started the process can fail on it.
"""

import os
import socket

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        return host in ("localhost", "::1") or host.startswith("127.") or host.startswith("::ffff:127.")
    return True  # unix sockets (W&B's local service)


def _guard(address: object) -> None:
    if not _allowed(address):
        log = os.environ.get("CNNBENCH_NETGUARD_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(f"{address!r}\n")
        raise OSError(f"network access disabled in tests: {address!r}")


def _connect(self: socket.socket, address: object) -> None:
    _guard(address)
    return _real_connect(self, address)  # type: ignore[arg-type]


def _connect_ex(self: socket.socket, address: object) -> int:
    _guard(address)
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


socket.socket.connect = _connect  # type: ignore[method-assign]
socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
