"""The API and cluster listeners' HTTP protocol: uvicorn's h11 protocol with limits on
what a client may hold open before it has even sent a request.

- A request head (request line and headers) must arrive within ``header_timeout``
  seconds of the connection opening, or of the previous response on a kept-alive
  connection; a trickle of bytes does not extend it (Go's ReadHeaderTimeout, Boundary's
  ``http_read_header_timeout``).
- A head larger than ``max_head_bytes`` is answered 431 as soon as it is, not buffered.
- At most ``max_connections`` connections are open on the listener; a new one beyond
  that is closed at once.

Without them, 300 connections each sending 1 MB of headers and never finishing held
290 MB for as long as they liked, and 5 connections trickling a byte every 20 s stayed
open for minutes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0
MAX_CONNECTIONS = 1024
#: a 4096-character filter and a 4096-character list token, percent-encoded, make a
#: query of up to ~100 KiB: a request that long still reaches the API, which says which
#: parameter is too long (400). 1024 held heads cost at most 128 MiB, for 10 s.
MAX_HEAD_BYTES = 128 * 1024

_WARN_EVERY = 60.0


def guarded_protocol(
    header_timeout: float = HEADER_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    max_head_bytes: int = MAX_HEAD_BYTES,
) -> type[H11Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these limits."""

    class GuardedH11Protocol(_Guarded):
        pass

    GuardedH11Protocol.header_timeout = header_timeout
    GuardedH11Protocol.max_connections = max_connections
    GuardedH11Protocol.max_head_bytes = max_head_bytes
    return GuardedH11Protocol


class _Guarded(H11Protocol):
    header_timeout: float = HEADER_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    max_head_bytes: int = MAX_HEAD_BYTES
    _last_warning = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._warn(f"more than {self.max_connections} connections open: closing new ones")
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            pending = self.conn.trailing_data[0]
            if len(pending) + len(data) > self.max_head_bytes:
                # a head with its body in the same read is fine: only the head counts
                head = (pending + data[: self.max_head_bytes + 4])[: self.max_head_bytes + 4]
                if b"\r\n\r\n" not in head:
                    self._refuse_head()
                    return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the head is in

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head, on a kept-alive connection

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.debug("closing a connection that sent no request head in %gs", self.header_timeout)
            self.transport.close()

    def _refuse_head(self) -> None:
        self._disarm()
        body = b"Request header fields too large\n"
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"connection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()

    @classmethod
    def _warn(cls, message: str) -> None:
        now = time.monotonic()
        if now - _Guarded._last_warning >= _WARN_EVERY:
            _Guarded._last_warning = now
            log.warning(message)
        else:
            log.debug(message)


def protocol_options(**limits: Any) -> dict[str, Any]:
    """uvicorn.Config arguments for a guarded listener."""
    head = limits.get("max_head_bytes", MAX_HEAD_BYTES)
    return {"http": guarded_protocol(**limits), "h11_max_incomplete_event_size": head}
