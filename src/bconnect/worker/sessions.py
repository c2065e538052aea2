"""The worker's cache of sessions: what the controller said, plus a ready TLS context.

One lookup per session id until the session expires; concurrent connections for a
session not yet cached share a single controller call. Unknown ids are remembered
briefly, so a client hammering the port with made-up ids cannot hammer the controller.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bconnect.worker.cluster import ClusterClient, SessionInfo
from bconnect.worker.tls import build_session_context

__all__ = ["CachedSession", "SessionCache"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedSession:
    """A session the worker can serve: its data and its server-side TLS context."""

    info: SessionInfo
    context: ssl.SSLContext = field(repr=False)

    @property
    def expired(self) -> bool:
        return self.info.expiration <= datetime.now(UTC)


class SessionCache:
    """Session lookups with per-id de-duplication, expiry and a short negative cache."""

    def __init__(
        self,
        cluster: ClusterClient,
        *,
        negative_ttl: float = 2.0,
        max_unknown: int = 4096,
        idle_ttl: float = 300.0,
    ) -> None:
        self._cluster = cluster
        self._entries: dict[str, CachedSession] = {}
        self._used: dict[str, float] = {}  # last lookup, for idle eviction
        self._idle_ttl = idle_ttl
        self._pending: dict[str, asyncio.Future[CachedSession | None]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._negative_ttl = negative_ttl
        self._max_unknown = max_unknown

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, session_id: str) -> CachedSession | None:
        """The cached entry, without asking the controller."""
        return self._entries.get(session_id)

    async def get(self, session_id: str) -> CachedSession | None:
        """The session, fetched from the controller if needed; ``None`` if unknown or
        expired. Raises ``ClusterError`` when the controller cannot answer."""
        entry = self._entries.get(session_id)
        if entry is not None:
            if not entry.expired:
                self._used[session_id] = time.monotonic()
                return entry
            self._drop(session_id)
            return None
        if self._recently_unknown(session_id):
            return None
        pending = self._pending.get(session_id)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(session_id))
            self._pending[session_id] = pending
            pending.add_done_callback(lambda _f: self._pending.pop(session_id, None))
        # shield: one waiter giving up must not cancel the lookup the others share
        return await asyncio.shield(pending)

    def forget(self, session_ids: list[str] | tuple[str, ...]) -> None:
        """Drop these sessions (canceled: no new connection will be authorized)."""
        for sid in session_ids:
            self._drop(sid)

    def purge_expired(self) -> list[str]:
        """Forget expired sessions (returning their ids) and, quietly, sessions nobody
        asked for in ``idle_ttl`` seconds: a later connection simply fetches them again,
        so ended sessions do not pile up in memory until their expiration."""
        gone = [sid for sid, entry in self._entries.items() if entry.expired]
        for sid in gone:
            self._drop(sid)
        stale = time.monotonic() - self._idle_ttl
        for sid in [sid for sid, used in self._used.items() if used < stale]:
            self._drop(sid)
        return gone

    def _drop(self, session_id: str) -> None:
        self._entries.pop(session_id, None)
        self._used.pop(session_id, None)

    async def _fetch(self, session_id: str) -> CachedSession | None:
        info = await self._cluster.get_session(session_id)
        if info is None:
            self._remember_unknown(session_id)
            return None
        if info.expiration <= datetime.now(UTC):
            log.debug("session %s has expired", session_id)
            return None
        try:
            context = await asyncio.to_thread(
                build_session_context, info.certificate, info.private_key
            )
        except (ValueError, ssl.SSLError) as exc:
            log.warning("session %s: unusable certificate or key: %s", session_id, exc)
            self._remember_unknown(session_id)
            return None
        entry = CachedSession(info, context)
        self._entries[session_id] = entry
        self._used[session_id] = time.monotonic()
        return entry

    def _recently_unknown(self, session_id: str) -> bool:
        stamp = self._unknown.get(session_id)
        if stamp is None:
            return False
        if time.monotonic() - stamp < self._negative_ttl:
            return True
        del self._unknown[session_id]
        return False

    def _remember_unknown(self, session_id: str) -> None:
        self._unknown[session_id] = time.monotonic()
        self._unknown.move_to_end(session_id)
        while len(self._unknown) > self._max_unknown:
            self._unknown.popitem(last=False)
