"""Connections to the worker made ahead, for the client proxy (docs/connect.md).

A spare has its TCP connection, TLS handshake and WebSocket upgrade done; the local
client's connection that takes it only sends the proxy handshake. One spare is kept
while connections come now and then. When connections arrive faster than one spare is
made (a client had to wait for a spare still being made), up to ``most`` are kept, so
that the next ones find theirs ready; each spare replaced unused takes that back by one.
A spare is replaced after ``max_age`` seconds unused, well before the worker gives up
waiting for its proxy handshake.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bconnect.core.wslink import WsLink

__all__ = ["Spares"]

log = logging.getLogger(__name__)


@dataclass
class _Spare:
    task: asyncio.Task[WsLink]
    born: float
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Spares:
    """Worker connections made ahead; ``open_link`` makes one (raising on failure)."""

    def __init__(
        self, open_link: Callable[[], Awaitable[WsLink]], max_age: float, most: int = 3
    ) -> None:
        self._open = open_link
        self.max_age = max_age
        self.most = most
        #: how many are kept now (1 .. most)
        self.wanted = 1
        self._spares: deque[_Spare] = deque()
        self._closed = False

    def __len__(self) -> int:
        return len(self._spares)

    def fill(self) -> None:
        """Start making spares until ``wanted`` are ready or on their way."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        while len(self._spares) < self.wanted:
            task = asyncio.ensure_future(self._open())
            task.add_done_callback(_forget_failure)
            spare = _Spare(task, loop.time())
            spare.timer = loop.call_later(self.max_age, self._renew, spare)
            self._spares.append(spare)

    async def take(self) -> WsLink | None:
        """The oldest spare, once made, if it is usable (None: none there, or it failed
        or the worker dropped it; the caller dials anew)."""
        if not self._spares:
            return None
        spare = self._spares.popleft()
        if spare.timer is not None:
            spare.timer.cancel()
        if not spare.task.done():
            # connections come faster than spares are made: keep more of them
            self.wanted = min(self.most, self.wanted + 1)
        try:
            link = await asyncio.shield(spare.task)
        except asyncio.CancelledError:
            _drop(spare)  # made meanwhile or not: nobody will use it
            raise
        except Exception as exc:  # noqa: BLE001 - a fresh dial reports why
            log.debug("spare connection failed: %s", exc)
            return None
        if not link.is_open:
            link.abort()
            return None
        return link

    def close(self) -> None:
        """Drop every spare; make no more."""
        self._closed = True
        while self._spares:
            _drop(self._spares.popleft())

    def _renew(self, spare: _Spare) -> None:
        """An unused spare grew old: replace it (one that could not be made is not
        retried until a client comes), and keep one fewer."""
        try:
            self._spares.remove(spare)
        except ValueError:
            return
        failed = spare.task.done() and (
            spare.task.cancelled() or spare.task.exception() is not None
        )
        _drop(spare)
        self.wanted = max(1, self.wanted - 1)
        if not failed:
            self.fill()


def _drop(spare: _Spare) -> None:
    if spare.timer is not None:
        spare.timer.cancel()
    task = spare.task
    if not task.done():
        task.cancel()
    elif not task.cancelled() and task.exception() is None:
        task.result().abort()


def _forget_failure(task: asyncio.Future[WsLink]) -> None:
    """A spare that could not be made is not an error until a client needs it (then
    a fresh dial reports why); fetching the exception keeps asyncio from logging it."""
    if not task.cancelled():
        task.exception()
