"""The ``ops`` listener: ``GET /health`` for load balancers and orchestrators.

A deliberately tiny HTTP/1.1 server (one request per connection, bounded size, read
timeout). ``200 {"status": "ok", "controller": {...}, "worker": {...}}`` while healthy;
``503`` once the process is shutting down, or when the controller's database does not
answer ``SELECT 1``; ``404`` for anything else.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["HealthServer"]

_MAX_REQUEST = 8192
_READ_TIMEOUT = 5.0
_CHECK_TIMEOUT = 5.0
_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


class HealthServer:
    """Serves ``/health`` on ``sock`` (bound, listening; the caller closes it).

    ``controller`` and ``worker`` return the details shown under those keys (omit one the
    process does not run); ``check_database`` raises when the database is unusable (it
    runs in a thread). Set ``stopping`` when shutdown begins.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        controller: Callable[[], dict[str, Any]] | None = None,
        worker: Callable[[], dict[str, Any]] | None = None,
        check_database: Callable[[], object] | None = None,
    ) -> None:
        self.sock = sock
        self.controller, self.worker, self.check_database = controller, worker, check_database
        self.stopping = False

    async def status(self) -> tuple[int, dict[str, Any]]:
        """The status code and body of ``GET /health`` right now."""
        if self.stopping:
            return 503, {"status": "shutting down"}
        if self.check_database is not None:
            try:
                await asyncio.wait_for(asyncio.to_thread(self.check_database), _CHECK_TIMEOUT)
            except Exception:  # noqa: BLE001 - any failure means "not usable"
                return 503, {"status": "database unavailable"}
        body: dict[str, Any] = {"status": "ok"}
        for key, details in (("controller", self.controller), ("worker", self.worker)):
            if details is not None:
                body[key] = details()
        return 200, body

    async def run(self) -> None:
        """Serve until cancelled."""
        server = await asyncio.start_server(self._handle, sock=self.sock, limit=_MAX_REQUEST)
        async with server:
            await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + [""]
            if method == "GET" and target.split("?", 1)[0] == "/health":
                code, body = await self.status()
            else:
                code, body = 404, {"status": "not found"}
            data = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {code} {_REASONS[code]}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await asyncio.wait_for(writer.drain(), _READ_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # garbage, too big, too slow or gone: just close
        finally:
            writer.close()
