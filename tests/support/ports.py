"""Free TCP ports for servers a test starts in another process.

Asking the kernel for port 0, closing the socket and handing the number on is racy: the
kernel picks ephemeral ports at random and may give the same one to the next caller (or
to an outgoing connection) before the child binds it. Seen in CI: two processes of one
cluster were handed the same health port. Ports come instead from below the ephemeral
range (32768-60999 on Linux), each handed out once per test process, and only after a
bind shows nothing holds it now.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

_LOW, _HIGH = 20_000, 32_000
_lock = threading.Lock()
_given: set[int] = set()


def _share() -> tuple[int, int]:
    """This process's part of the range: under pytest-xdist each worker (gw0, gw1, …)
    gets a slice of its own, so two workers never hand out the same port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count <= 1:
        return _LOW, _HIGH
    index = int(worker[2:]) % count
    width = (_HIGH - _LOW) // count
    return _LOW + index * width, _LOW + (index + 1) * width


_LOW, _HIGH = _share()
# Suites running side by side (not as xdist workers) start far apart in the range.
_next = _LOW + (os.getpid() * 397) % (_HIGH - _LOW)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on and no other caller got from here."""
    global _next
    with _lock:
        for _ in range(_HIGH - _LOW):
            port = _next
            _next = _LOW if _next + 1 >= _HIGH else _next + 1
            if port not in _given and _bindable(port):
                _given.add(port)
                return port
    raise RuntimeError(f"no free port left in {_LOW}-{_HIGH}")


@contextlib.contextmanager
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that is bound and listened on while the block runs (for the
    "address already in use" tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]
