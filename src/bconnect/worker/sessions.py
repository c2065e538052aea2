"""The worker's cache of sessions: what the controller said, plus a ready TLS context.

One lookup per session id until the session expires; concurrent connections for a
session not yet cached share a single controller call. Before asking, an id must have the
form of a Boundary session id (``s_`` and 10 base62 characters): anything else is
unknown without a lookup. Unknown ids are remembered for a while (a bounded negative
cache), and lookups of ids not cached are limited per source address (a token bucket),
so a client hammering the port with made-up ids cannot make the worker hammer the
controller.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bconnect.ratelimit import TokenBucket
from bconnect.worker.cluster import ClusterClient, SessionInfo
from bconnect.worker.tls import build_session_context

__all__ = ["CachedSession", "LookupRefused", "SessionCache", "is_session_id"]

log = logging.getLogger(__name__)

#: ``s_`` and exactly 10 base62 characters (bconnect.ids.new_id("s"), Boundary's form).
_SESSION_ID = re.compile(r"s_[0-9A-Za-z]{10}")


def is_session_id(value: str) -> bool:
    """Whether ``value`` has the form of a session id (ASCII ``s_`` + 10 base62)."""
    return _SESSION_ID.fullmatch(value) is not None


class LookupRefused(Exception):
    """Too many lookups of uncached session ids from one source address: not asked."""


@dataclass(frozen=True)
class CachedSession:
    """A session the worker can serve: its data and its server-side TLS context."""

    info: SessionInfo
    context: ssl.SSLContext = field(repr=False)

    @property
    def expired(self) -> bool:
        return self.info.expiration <= datetime.now(UTC)


class SessionCache:
    """Session lookups with per-id de-duplication, expiry, a bounded negative cache and a
    per-source limit on lookups of ids not cached.

    ``negative_ttl``: how long an id the controller does not know stays unknown without
    asking again (at most ``max_unknown`` ids, the oldest forgotten first).
    ``lookup_rate``/``lookup_burst``: per source address (``get(..., source=)``), how many
    controller lookups of ids not cached may start, per second and at once; beyond that
    ``get`` raises ``LookupRefused``. Joining a lookup already under way is free.
    """

    def __init__(
        self,
        cluster: ClusterClient,
        *,
        # 10 s: long enough that repeating a made-up id costs the controller one lookup
        # per 10 s, short enough that a real id missed once does not stay refused for long.
        # A real id can miss only if its client connects before the controller has
        # committed the session (authorize-session answers after the commit), and that
        # client's next connection gets through after at most this long.
        negative_ttl: float = 10.0,
        max_unknown: int = 4096,
        idle_ttl: float = 300.0,
        lookup_rate: float = 5.0,
        lookup_burst: int = 20,
        max_sources: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cluster = cluster
        self._clock = clock
        self._entries: dict[str, CachedSession] = {}
        #: sessions whose next connections this worker admits itself: the SHA-256 of
        #: the tofu token the controller accepted, and the endpoint it gave
        self._admitting: dict[str, tuple[bytes, str]] = {}
        self._used: dict[str, float] = {}  # last lookup, for idle eviction
        self._idle_ttl = idle_ttl
        self._pending: dict[str, asyncio.Future[CachedSession | None]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._negative_ttl = negative_ttl
        self._max_unknown = max_unknown
        self._buckets = TokenBucket(lookup_rate, lookup_burst, max_sources)
        #: controller lookups started, and lookups refused by the per-source limit
        self.lookups = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, session_id: str) -> CachedSession | None:
        """The cached entry, without asking the controller."""
        return self._entries.get(session_id)

    async def get(self, session_id: str, source: str | None = None) -> CachedSession | None:
        """The session, fetched from the controller if needed; ``None`` if unknown,
        expired or not of a session id's form. ``source`` (the client's address) is
        charged for a controller lookup; ``LookupRefused`` when it has had too many.
        Raises ``ClusterError`` when the controller cannot answer."""
        if not is_session_id(session_id):
            return None
        entry = self._entries.get(session_id)
        if entry is not None:
            if not entry.expired:
                self._used[session_id] = self._clock()
                return entry
            self._drop(session_id)
            return None
        if self._recently_unknown(session_id):
            return None
        pending = self._pending.get(session_id)
        if pending is None:
            if source is not None and self._buckets.take(source, self._clock()):
                self.refused += 1
                raise LookupRefused(f"too many session lookups from {source}")
            self.lookups += 1
            pending = asyncio.ensure_future(self._fetch(session_id))
            self._pending[session_id] = pending
            pending.add_done_callback(lambda _f: self._pending.pop(session_id, None))
        # shield: one waiter giving up must not cancel the lookup the others share
        return await asyncio.shield(pending)

    def admit_from_now_on(self, session_id: str, tofu_token: str, endpoint: str) -> None:
        """The controller authorized a connection of a cached session with no connection
        limit: this worker admits its next ones with the same tofu token itself (see
        ``admits``) until the session is forgotten (canceled, expired, idle, or a
        connection admitted so was refused)."""
        entry = self._entries.get(session_id)
        # not ssh targets: their recordings name the connection at once, and an SSH
        # login costs far more than the controller's answer
        if entry is not None and entry.info.ssh is None:
            digest = hashlib.sha256(tofu_token.encode()).digest()
            self._admitting[session_id] = (digest, endpoint)

    def admits(self, session_id: str, tofu_token: str) -> str | None:
        """The endpoint, when this worker admits a connection of ``session_id`` with
        ``tofu_token`` itself (the controller confirms it while it relays); ``None``
        when the controller must be asked first."""
        known = self._admitting.get(session_id)
        entry = self._entries.get(session_id)
        if known is None or entry is None or entry.expired:
            return None
        digest = hashlib.sha256(tofu_token.encode()).digest()
        if not hmac.compare_digest(digest, known[0]):
            return None
        return known[1]

    def forget(self, session_ids: list[str] | tuple[str, ...]) -> None:
        """Drop these sessions (canceled: no new connection will be authorized)."""
        for sid in session_ids:
            self._drop(sid)

    def purge_expired(self) -> list[str]:
        """Forget expired sessions (returning their ids) and, quietly, sessions nobody
        asked for in ``idle_ttl`` seconds: a later connection simply fetches them again,
        so ended sessions do not pile up in memory until their expiration. Unknown ids
        past ``negative_ttl`` go too."""
        gone = [sid for sid, entry in self._entries.items() if entry.expired]
        for sid in gone:
            self._drop(sid)
        now = self._clock()
        stale = now - self._idle_ttl
        for sid in [sid for sid, used in self._used.items() if used < stale]:
            self._drop(sid)
        while self._unknown:  # oldest first
            sid, stamp = next(iter(self._unknown.items()))
            if now - stamp < self._negative_ttl:
                break
            del self._unknown[sid]
        return gone

    def _drop(self, session_id: str) -> None:
        self._entries.pop(session_id, None)
        self._used.pop(session_id, None)
        self._admitting.pop(session_id, None)

    async def _fetch(self, session_id: str) -> CachedSession | None:
        info = await self._cluster.get_session(session_id)
        if info is None:
            self._remember_unknown(session_id)
            return None
        if info.expiration <= datetime.now(UTC):
            log.debug("session %s has expired", session_id)
            self._remember_unknown(session_id)  # an expired session never comes back
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
        self._used[session_id] = self._clock()
        return entry

    def _recently_unknown(self, session_id: str) -> bool:
        stamp = self._unknown.get(session_id)
        if stamp is None:
            return False
        if self._clock() - stamp < self._negative_ttl:
            return True
        del self._unknown[session_id]
        return False

    def _remember_unknown(self, session_id: str) -> None:
        self._unknown[session_id] = self._clock()
        self._unknown.move_to_end(session_id)
        while len(self._unknown) > self._max_unknown:
            self._unknown.popitem(last=False)
