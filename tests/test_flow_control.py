"""Flow control through the whole data plane (client proxy, TLS + WebSocket, worker): a
target that stops reading stops the sender, nothing piles up in memory on the way, and
when it reads again every byte arrives intact."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from support.constants import GUARD
from support.dataplane import authorize, make_target, start_connect

pytestmark = pytest.mark.all_databases

BLOCK = 1024 * 1024
#: what the sender tries to push while the target reads nothing
OFFERED = 512 * BLOCK
#: kernel buffers on three loopback hops plus the transports' high-water marks stay far
#: below this; a relay without back-pressure would take all of OFFERED
BOUND = 128 * BLOCK


class StalledTarget:
    """Accepts one connection and reads nothing until ``release``; then reads to EOF."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.released = threading.Event()
        self.received = 0
        self.digest = hashlib.sha256()
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            self.released.wait(GUARD * 3)
            while chunk := conn.recv(BLOCK):
                self.received += len(chunk)
                self.digest.update(chunk)
        self.done.set()

    def close(self) -> None:
        self.released.set()
        self.server.close()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_target_that_stops_reading_stops_the_sender(dataplane, connects) -> None:
    target = StalledTarget()
    try:
        auth = authorize(dataplane, make_target(dataplane, target.port))
        c, port = start_connect(connects, dataplane, auth["authorization_token"])
        block = os.urandom(BLOCK)
        sent_digest = hashlib.sha256()
        sent = 0
        with socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
            sock.setblocking(False)
            stalled_since: float | None = None
            while sent < OFFERED:
                try:
                    n = sock.send(block[sent % BLOCK :])
                except BlockingIOError:
                    now = time.monotonic()
                    stalled_since = stalled_since or now
                    if now - stalled_since > 2.0:
                        break  # the sender is held back
                    time.sleep(0.01)
                    continue
                sent_digest.update(block[sent % BLOCK : sent % BLOCK + n])
                sent += n
                stalled_since = None
            assert sent < BOUND, f"{sent} bytes taken while the target read nothing"
            assert _rss_mb(c.proc.pid) < 200, "the client proxy buffered what it could not send"
            # the target reads again: everything sent arrives, in order
            target.released.set()
            sock.setblocking(True)
            sock.settimeout(GUARD)
            rest = 16 * BLOCK
            while rest:
                n = sock.send(block[: min(rest, BLOCK)])
                sent_digest.update(block[:n])
                sent += n
                rest -= n
        assert target.done.wait(GUARD), f"target got {target.received} of {sent} bytes"
        assert target.received == sent
        assert target.digest.hexdigest() == sent_digest.hexdigest()
        c.finish()
    finally:
        target.close()
