"""Bookkeeping of the worker's proxied connections.

* ``LiveConnection``: one authorized connection, its live byte counters and, once the
  worker decides to end it (cancel, expiry, shutdown), why.
* ``ConnectionRegistry``: the open connections, by id and by session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bconnect.clusterwire import ClosedReason
from bconnect.core.wslink import RelayResult

__all__ = ["ConnectionRegistry", "LiveConnection"]

log = logging.getLogger(__name__)


def _current_task() -> asyncio.Task[None] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


@dataclass(eq=False)
class LiveConnection:
    """One authorized connection. ``bytes_up`` is client → endpoint."""

    connection_id: str
    session_id: str
    expiration: datetime
    #: the relay's counters, which move while it runs (the status report sends them
    #: every second): to the endpoint is up, to the client down
    traffic: RelayResult = field(default_factory=RelayResult, repr=False)
    stop_reason: str | None = None
    #: the WebSocket close the client gets when the worker stops the connection: the
    #: code (1000 normal closure, 1011 when the controller refused the connection) and
    #: the text, when not the stop reason's usual words
    stop_code: int = 1000
    stop_message: str | None = None
    endpoint_failed: bool = False
    #: ``time.monotonic()`` when authorized (for the idle timeout, before any byte)
    started: float = field(default_factory=time.monotonic)
    #: the ``connected`` (or ``admitted``) report, sent while the relay already runs;
    #: the ``closed`` report is queued after it (worker/reports.py sends them in order),
    #: and for a connection admitted here only once the controller has taken it
    connected_report: asyncio.Future[Any] | None = field(default=None, repr=False)
    #: whether the controller knows this connection: not yet for one the worker admitted
    #: itself until the controller confirms it (status reports leave it out until then,
    #: and one it refused gets no close report)
    known: bool = True
    #: the task serving this connection (the worker waits for it when shutting down)
    task: asyncio.Task[None] | None = field(default_factory=lambda: _current_task(), repr=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def stop(self, reason: str, message: str | None = None, code: int = 1000) -> None:
        """Ask the connection to end now (the first reason given wins, with its close
        ``code`` and ``message``)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_code, self.stop_message = code, message
        self._stop.set()

    @property
    def bytes_up(self) -> int:
        return self.traffic.to_tcp

    @property
    def bytes_down(self) -> int:
        return self.traffic.to_ws

    @property
    def last_activity(self) -> float:
        """``time.monotonic()`` of the last bytes relayed either way (or of the start)."""
        return max(self.started, self.traffic.last_activity)

    def idle_seconds_left(self, idle_timeout: float, now: float) -> float:
        """Seconds until this connection has been idle for ``idle_timeout`` (≤ 0: it has)."""
        return self.last_activity + idle_timeout - now

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    def seconds_left(self) -> float:
        return (self.expiration - datetime.now(UTC)).total_seconds()

    def report(self) -> dict[str, Any]:
        """This connection's entry in a status report."""
        return {
            "connection_id": self.connection_id,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
        }


class ConnectionRegistry:
    """The worker's open (authorized, not yet closed) connections."""

    def __init__(self) -> None:
        self._live: dict[str, LiveConnection] = {}

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self):  # noqa: ANN204 - an iterator over a snapshot
        return iter(list(self._live.values()))

    def add(self, live: LiveConnection) -> None:
        self._live[live.connection_id] = live

    def remove(self, live: LiveConnection) -> None:
        if self._live.get(live.connection_id) is live:
            del self._live[live.connection_id]

    def get(self, connection_id: str) -> LiveConnection | None:
        return self._live.get(connection_id)

    def reports(self) -> list[dict[str, Any]]:
        """Every open connection's id and current bytes, for a status report."""
        return [live.report() for live in self._live.values() if live.known]

    def _stop(self, hits: Iterable[LiveConnection], reason: str) -> int:
        """Stop ``hits``; returns how many were not already stopping."""
        count = 0
        for live in hits:
            count += not live.stopping
            live.stop(reason)
        return count

    def stop_sessions(self, session_ids: Iterable[str], reason: str) -> int:
        """Stop every connection of these sessions; returns how many were newly stopped."""
        wanted = set(session_ids)
        return self._stop([v for v in self._live.values() if v.session_id in wanted], reason)

    def stop_connections(self, connection_ids: Iterable[str], reason: str) -> int:
        """Stop these connections; returns how many were newly stopped here."""
        hits = [self._live[c] for c in connection_ids if c in self._live]
        return self._stop(hits, reason)

    def stop_expired(self) -> int:
        """Stop the connections whose session has expired."""
        hits = [v for v in self._live.values() if v.seconds_left() <= 0]
        return self._stop(hits, ClosedReason.TIMED_OUT)

    def stop_all(self, reason: str) -> int:
        """Stop every open connection (the worker is shutting down)."""
        return self._stop(list(self._live.values()), reason)
