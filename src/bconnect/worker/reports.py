"""What the controller hears about the worker's connections, many in one call.

Three kinds of news (docs/cluster-api.md, ``connection-events``): a connection the
controller authorized began relaying (``connected``); one the worker admitted itself
(``admitted``: the controller checks it as it would have authorized it, and records it);
one ended (``closed``, with its bytes and reason). One call is out at a time, at most one
every ``gather`` seconds; what happens meanwhile goes together in the next, so a busy
worker makes one call for many connections instead of two or three each.

A ``closed`` report the controller did not take (the call failed as a whole) is kept and
goes again with the next call, or when the status loop calls ``retry``, so no connection
stays open at the controller because one call failed. ``connected`` and ``admitted`` are
not retried: the caller learns of the failure (its future) and ends the connection.

A controller without ``connection-events`` (an older one, during a rolling upgrade:
404 or 405 to the first call) gets each report as its own call from then on: the worker
admits connections itself only once ``batching`` is True (the controller took a batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from bconnect.clusterwire import ConnectionEvent
from bconnect.worker.cluster import ClusterClient, ClusterError, ClusterUnreachable, addresses

__all__ = ["GATHER", "ConnectionReports"]

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
        self._out: list[_Event] = []  # the call now out
        self._sending: asyncio.Task[None] | None = None
        #: seconds the first news waits for more to go with it
        self.gather = gather
        #: whether the controller takes ``connection-events``: None until the first call
        #: says (the worker admits connections itself only once it is True)
        self.batching: bool | None = None

    def __len__(self) -> int:
        """Close reports not yet taken by the controller (queued, out, or held)."""
        waiting = [*self._queue, *self._out]
        return sum(1 for e in waiting if e.answer is None) + len(self._held)

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

    def retry(self) -> None:
        """Send the held close reports again (the status loop calls this); returns at
        once."""
        if self._held:
            self._kick()

    async def drain(self, timeout: float) -> None:
        """Send what is queued or held, and wait up to ``timeout`` seconds for that
        (the worker is stopping)."""
        if self._held or self._queue:
            self._kick()
        sending = self._sending
        if sending is not None and not sending.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(sending), timeout)

    async def flushed(self) -> None:
        """Wait until the call now out (and what was queued meanwhile) is answered."""
        while self._sending is not None and not self._sending.done():
            await asyncio.shield(self._sending)

    # ---------------------------------------------------------------- sending
    def _ask(self, body: dict[str, Any]) -> asyncio.Future[None]:
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Event(body, answer))
        self._kick()
        return answer

    def _kick(self) -> None:
        if self._sending is None or self._sending.done():
            self._sending = asyncio.ensure_future(self._send_all())

    async def _send_all(self) -> None:
        try:
            while self._queue or self._held:
                await asyncio.sleep(self.gather)
                self._queue[:0] = self._held.values()  # held reports go first, in order
                self._held.clear()
                batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
                self._out = batch
                try:
                    if not await self._send(batch):
                        return  # the controller is away: the rest waits for a retry
                finally:
                    self._out = []
        finally:  # cancelled (the loop is closing): nobody waits in vain
            for event in self._queue:
                if event.answer is not None and not event.answer.done():
                    event.answer.set_exception(ClusterUnreachable("the worker is stopping"))

    async def _send(self, batch: list[_Event]) -> bool:
        """One call for ``batch``; False when the controller could not take it."""
        try:
            if self.batching is not False:
                results = await self._cluster.connection_events([e.body for e in batch])
                self.batching = True
            else:
                results = [await self._send_alone(e) for e in batch]
        except asyncio.CancelledError:
            self._fail(batch, ClusterUnreachable("the worker is stopping"))
            raise
        except ClusterError as exc:
            if self.batching is None and exc.status in (404, 405):
                log.info("the controller has no connection-events: reporting one by one")
                self.batching = False
                self._queue[:0] = batch
                return True
            self._fail(batch, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - every caller must hear back
            log.warning("connection report failed: %r", exc)
            self._fail(batch, ClusterError(0, "Internal", str(exc)))
            return False
        for event, error in zip(batch, results, strict=True):
            self._answer(event, error)
        return True

    async def _send_alone(self, event: _Event) -> ClusterError | None:
        """An older controller's own call for ``event`` (``admitted`` has none)."""
        body = event.body
        cid = body["connection_id"]
        kind = body["event"]
        try:
            if kind == ConnectionEvent.CONNECTED.value:
                client = (body["client_tcp_address"], body["client_tcp_port"])
                endpoint = (body["endpoint_tcp_address"], body["endpoint_tcp_port"])
                await self._cluster.connected(cid, client, endpoint)
            elif kind == ConnectionEvent.CLOSED.value:
                await self._cluster.closed(
                    cid, body["bytes_up"], body["bytes_down"], body["closed_reason"]
                )
            else:
                return ClusterError(400, "InvalidArgument", "the controller admits no connection")
        except ClusterUnreachable:
            raise
        except ClusterError as exc:
            if exc.status >= 500:
                raise
            return exc
        return None

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
        """The call failed as a whole: the asks hear why; the close reports, in it and
        still queued, are held for the next try."""
        for event in [*batch, *self._queue]:
            if event.answer is None:
                self._held.setdefault(event.body["connection_id"], event)
            elif not event.answer.done():
                event.answer.set_exception(exc)
        self._queue.clear()
        log.debug("connection reports held: %s", exc)
