"""What the controller hears about the worker's connections, many in one call.

Three kinds of news (docs/cluster-api.md, ``connection-events``): a connection the
controller authorized began relaying (``connected``); one the worker admitted itself
(``admitted``: the controller checks it as it would have authorized it, and records it);
one ended (``closed``, with its bytes and reason). One call is out at a time; what
happens meanwhile waits for it and goes together in the next, so an idle worker reports
at once and a busy one makes one call for many connections instead of two or three each.

A ``closed`` report the controller could not take (unreachable, or 5xx) is kept and
sent again with the next call or the status loop's ``retry``, so no connection stays
open at the controller because one call failed. ``connected`` and ``admitted`` are not
retried: the caller learns of the failure (its future) and ends the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from bconnect.clusterwire import ConnectionEvent
from bconnect.worker.cluster import ClusterClient, ClusterError, ClusterUnreachable, addresses

__all__ = ["ConnectionReports"]

log = logging.getLogger(__name__)

#: events in one call at most (the controller takes up to 1,000)
_BATCH = 500
#: seconds news waits for more before a call goes out: under load one call carries the
#: news of dozens of connections (each costs the controller a fraction of a call), and
#: a connection admitted here is confirmed (or ended) within about this long
GATHER = 0.05


@dataclass
class _Event:
    body: dict[str, Any]
    #: the caller's answer (None for ``closed``: kept and retried instead)
    answer: asyncio.Future[None] | None = field(default=None, repr=False)


class ConnectionReports:
    """Queue connections' news and send it in batches, one call at a time."""

    def __init__(self, cluster: ClusterClient, gather: float = GATHER) -> None:
        self._cluster = cluster
        self._queue: list[_Event] = []
        #: ``closed`` reports the controller could not take yet, by connection id
        self._held: dict[str, _Event] = {}
        self._sending: asyncio.Task[None] | None = None
        #: seconds the first news waits for more to go with it
        self.gather = gather

    def __len__(self) -> int:
        """Close reports not yet taken by the controller (queued, out, or held)."""
        queued = sum(1 for e in self._queue if e.answer is None)
        return queued + len(self._held) + self._out_closes

    _out_closes = 0

    # ---------------------------------------------------------------- the news
    def connected(
        self, connection_id: str, client: tuple[str, int], endpoint: tuple[str, int]
    ) -> asyncio.Future[None]:
        """An authorized connection relays: the future fails with the ClusterError the
        controller answered (or ClusterUnreachable)."""
        body = {"event": ConnectionEvent.CONNECTED.value, "connection_id": connection_id}
        return self._ask({**body, **addresses(client, endpoint)})

    def admitted(
        self,
        connection_id: str,
        session_id: str,
        tofu_token: str,
        client: tuple[str, int],
        endpoint: tuple[str, int] | None,
    ) -> asyncio.Future[None]:
        """A connection this worker admitted itself (``endpoint`` None: it ended before
        it was dialed): the future fails when the controller refuses it."""
        body = {
            "event": ConnectionEvent.ADMITTED.value,
            "connection_id": connection_id,
            "session_id": session_id,
            "tofu_token": tofu_token,  # secret: the event is never logged
        }
        return self._ask({**body, **addresses(client, endpoint)})

    def closed(self, connection_id: str, bytes_up: int, bytes_down: int, reason: str) -> None:
        """A connection ended; reported with the next call (and kept until taken)."""
        self._held.pop(connection_id, None)
        body = {
            "event": ConnectionEvent.CLOSED.value,
            "connection_id": connection_id,
            "bytes_up": bytes_up,
            "bytes_down": bytes_down,
            "closed_reason": reason,
        }
        self._queue.append(_Event(body))
        self._kick()

    async def retry(self) -> None:
        """Send the held close reports again, with whatever is queued (the status loop
        calls this), and wait until that is done."""
        self._requeue_held()
        self._kick()
        await self.flushed()

    async def flushed(self) -> None:
        """Wait until nothing is queued or out (held reports may remain)."""
        while self._sending is not None and not self._sending.done():
            await asyncio.shield(self._sending)

    # ---------------------------------------------------------------- sending
    def _ask(self, body: dict[str, Any]) -> asyncio.Future[None]:
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Event(body, answer))
        self._kick()
        return answer

    def _requeue_held(self) -> None:
        held = [e for e in self._held.values()]
        self._held.clear()
        self._queue[:0] = held

    def _kick(self) -> None:
        if self._sending is None or self._sending.done():
            self._sending = asyncio.ensure_future(self._send_all())

    async def _send_all(self) -> None:
        while self._queue:
            await asyncio.sleep(self.gather)
            batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
            self._out_closes = sum(1 for e in batch if e.answer is None)
            try:
                results = await self._cluster.connection_events([e.body for e in batch])
            except asyncio.CancelledError:
                self._fail(batch, ClusterUnreachable("the worker is stopping"))
                raise
            except ClusterError as exc:
                self._fail(batch, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - every caller must hear back
                log.warning("connection report failed: %r", exc)
                self._fail(batch, ClusterError(0, "Internal", str(exc)))
                continue
            finally:
                self._out_closes = 0
            for event, error in zip(batch, results, strict=True):
                self._answer(event, error)

    def _answer(self, event: _Event, error: ClusterError | None) -> None:
        if event.answer is not None:
            if not event.answer.done():
                if error is None:
                    event.answer.set_result(None)
                else:
                    event.answer.set_exception(error)
            return
        if error is not None:  # a close report refused (not retried): say so
            log.warning(
                "controller refused the close report for %s: %s",
                event.body["connection_id"],
                error,
            )

    def _fail(self, batch: list[_Event], exc: ClusterError) -> None:
        """The call failed: the asks hear why; close reports are held for a retry when
        the controller may take them later (unreachable, 5xx)."""
        later = isinstance(exc, ClusterUnreachable) or exc.status >= 500 or exc.status == 0
        for event in batch:
            if event.answer is None and later:
                self._held.setdefault(event.body["connection_id"], event)
                continue
            self._answer(event, exc)
        if later and self._queue:
            # the controller is away: what is still queued waits for the next try, as
            # the held reports do (asks fail at once: their connections end)
            for event in self._queue:
                if event.answer is None:
                    self._held.setdefault(event.body["connection_id"], event)
                else:
                    with contextlib.suppress(asyncio.InvalidStateError):
                        event.answer.set_exception(exc)
            self._queue.clear()
            log.debug("connection reports held: %s", exc)
