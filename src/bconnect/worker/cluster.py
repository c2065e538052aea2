"""The worker's client for the controller's cluster API (docs/cluster-api.md).

HTTP + JSON over ``requests``, run in a small dedicated thread pool so a slow controller
never blocks the event loop (nor the loop's default executor, which ``getaddrinfo`` uses
to dial endpoints). Each pool thread keeps its own ``requests.Session``.

Secrets stay out of logs: the auth key, tofu tokens and session private keys are never
logged nor put in exception messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from bconnect import __version__

__all__ = [
    "ClusterClient",
    "ClusterError",
    "ClusterRefused",
    "ClusterUnavailable",
    "ClusterUnreachable",
    "ConnectionGrant",
    "SessionInfo",
    "StatusAnswer",
    "parse_time",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
POOL_SIZE = 16
USER_AGENT = f"bconnect-worker/{__version__}"


class ClusterError(Exception):
    """The controller answered a cluster call with an error.

    ``status`` is the HTTP status (0 when there was no answer), ``kind`` the error body's
    ``kind`` (e.g. ``NotFound``, ``TofuMismatch``).
    """

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{status} {kind}: {message}" if status else message)
        self.status = status
        self.kind = kind
        self.message = message


class ClusterUnreachable(ClusterError):
    """No usable answer from the controller (refused, timed out, reset, 502–504): worth
    retrying. ``retry_elsewhere`` is True when the call surely did not take effect (the
    connection was never made, or the controller rolled it back), so it may be sent to
    another controller at once; a read timeout may have been committed, and is not."""

    def __init__(self, message: str, *, retry_elsewhere: bool = True) -> None:
        super().__init__(0, "Unreachable", message)
        self.retry_elsewhere = retry_elsewhere


class ClusterUnavailable(ClusterUnreachable):
    """The controller answered 503 Unavailable: it is up, its database is not."""


class ClusterRefused(ClusterError):
    """A 409: the controller refused a session operation; ``kind`` says why."""


def parse_time(value: str) -> datetime:
    """An RFC 3339 time as the controller writes it (``…Z``), timezone-aware."""
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"time without a timezone: {value!r}")
    return parsed


@dataclass(frozen=True)
class SessionInfo:
    """A session as the worker needs it (``GET /v1/cluster/sessions/{id}``)."""

    session_id: str
    status: str
    endpoint: str
    expiration: datetime
    connection_limit: int
    certificate: bytes = field(repr=False)
    private_key: bytes = field(repr=False)  # secret: never log

    @classmethod
    def from_json(cls, session_id: str, body: Mapping[str, Any]) -> SessionInfo:
        """Parse the controller's answer; ``ValueError`` if a field is missing or bad."""
        try:
            return cls(
                session_id=str(body.get("session_id") or session_id),
                status=str(body.get("status", "")),
                endpoint=str(body.get("endpoint", "")),
                expiration=parse_time(str(body["expiration"])),
                connection_limit=int(body.get("connection_limit", -1)),
                certificate=base64.b64decode(body["certificate"], validate=True),
                private_key=base64.b64decode(body["private_key"], validate=True),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ValueError(f"malformed session answer: {type(exc).__name__}") from None


@dataclass(frozen=True)
class ConnectionGrant:
    """The controller's answer to ``authorize-connection``."""

    connection_id: str
    connections_left: int
    connection_limit: int
    expiration: datetime
    endpoint: str


@dataclass(frozen=True)
class StatusAnswer:
    """What the controller wants closed, from a status report."""

    cancel_sessions: tuple[str, ...] = ()
    cancel_connections: tuple[str, ...] = ()


class ClusterClient:
    """Async calls to the controllers' cluster listeners, authenticated with the worker key.

    ``base_url`` is one cluster URL or several (controllers sharing one database): calls
    go to the current one, and when it does not answer (refused, timed out, 502–504)
    the same call is tried once on each of the others, which becomes the current one.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        auth_key: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        pool_size: int = POOL_SIZE,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("no controller address")
        self.base_urls = [u.rstrip("/") for u in urls]
        self._current = 0
        self._auth_key = auth_key
        self.worker_id: str | None = None
        self._timeout = (connect_timeout, read_timeout)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(pool_size, thread_name_prefix="bconnect-cluster")

    def __repr__(self) -> str:  # never show the key
        return f"ClusterClient({self.base_url!r}, worker_id={self.worker_id!r})"

    @property
    def base_url(self) -> str:
        """The cluster URL calls go to now."""
        return self.base_urls[self._current]

    # ---------------------------------------------------------------- calls
    async def register(
        self, name: str, address: str, tags: Mapping[str, list[str]] | None = None
    ) -> str:
        """Register (or re-register) this worker; remembers and returns its ``w_`` id."""
        body = {
            "name": name,
            "address": address,
            "tags": {k: list(v) for k, v in (tags or {}).items()},
            "release_version": f"bconnect v{__version__}",
        }
        answer = await self._call("POST", "/v1/cluster/workers:register", body)
        worker_id = str(answer.get("worker_id") or "")
        if not worker_id:
            raise ClusterError(200, "Internal", "register answer without a worker_id")
        self.worker_id = worker_id
        return worker_id

    async def status(self, connections: list[dict[str, Any]]) -> StatusAnswer:
        """Report open connections with their bytes; learn what to close."""
        if not self.worker_id:
            raise ClusterError(0, "NotRegistered", "worker is not registered")
        path = f"/v1/cluster/workers/{_seg(self.worker_id)}:status"
        answer = await self._call("POST", path, {"connections": connections})
        return StatusAnswer(
            cancel_sessions=_strings(answer.get("cancel_sessions")),
            cancel_connections=_strings(answer.get("cancel_connections")),
        )

    async def get_session(self, session_id: str) -> SessionInfo | None:
        """The session's certificate, key, endpoint and limits; ``None`` if unknown."""
        try:
            answer = await self._call("GET", f"/v1/cluster/sessions/{_seg(session_id)}")
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            return SessionInfo.from_json(session_id, answer)
        except ValueError as exc:
            raise ClusterError(200, "Internal", str(exc)) from None

    async def authorize_connection(self, session_id: str, tofu_token: str) -> ConnectionGrant:
        """Admit one more connection; ``ClusterRefused`` (409) says why not."""
        path = f"/v1/cluster/sessions/{_seg(session_id)}:authorize-connection"
        answer = await self._call("POST", path, {"tofu_token": tofu_token})
        try:
            return ConnectionGrant(
                connection_id=str(answer["connection_id"]),
                connections_left=int(answer.get("connections_left", -1)),
                connection_limit=int(answer.get("connection_limit", -1)),
                expiration=parse_time(str(answer["expiration"])),
                endpoint=str(answer.get("endpoint", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ClusterError(
                200, "Internal", f"malformed authorize answer: {type(exc).__name__}"
            ) from None

    async def connected(
        self,
        connection_id: str,
        client: tuple[str, int],
        endpoint: tuple[str, int],
    ) -> None:
        """Report that the endpoint was dialed and bytes are about to flow."""
        path = f"/v1/cluster/connections/{_seg(connection_id)}:connected"
        body = {
            "client_tcp_address": client[0],
            "client_tcp_port": client[1],
            "endpoint_tcp_address": endpoint[0],
            "endpoint_tcp_port": endpoint[1],
        }
        await self._call("POST", path, body)

    async def closed(
        self, connection_id: str, bytes_up: int, bytes_down: int, closed_reason: str
    ) -> None:
        """Report a connection closed, with its final byte counts."""
        path = f"/v1/cluster/connections/{_seg(connection_id)}:closed"
        body = {"bytes_up": bytes_up, "bytes_down": bytes_down, "closed_reason": closed_reason}
        await self._call("POST", path, body)

    async def cancel_session(self, session_id: str, tofu_token: str) -> None:
        """The client's SESSION_CANCEL command."""
        path = f"/v1/cluster/sessions/{_seg(session_id)}:cancel"
        await self._call("POST", path, {"tofu_token": tofu_token})

    def close(self) -> None:
        """Release the thread pool and the HTTP sessions."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    # ---------------------------------------------------------------- plumbing
    async def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call_sync, method, path, body)
        except RuntimeError as exc:  # executor shut down while stopping
            raise ClusterUnreachable(f"cluster client closed: {exc}") from None

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._auth_key}", "Accept": "application/json"}
        if self.worker_id:
            headers["X-Bconnect-Worker-Id"] = self.worker_id
        return headers

    def _call_sync(self, method: str, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        first = self._current
        count = len(self.base_urls)
        for step in range(count):
            index = (first + step) % count
            try:
                answer = self._call_one(self.base_urls[index], method, path, body)
            except ClusterUnreachable as exc:
                if step == count - 1 or not exc.retry_elsewhere:
                    raise
                log.debug("controller %s unreachable, trying the next", self.base_urls[index])
                continue
            if index != self._current:
                log.info("now talking to the controller at %s", self.base_urls[index])
                self._current = index
            return answer
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _call_one(
        self, base_url: str, method: str, path: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        url = base_url + path
        try:
            resp = self._session().request(
                method, url, json=body, headers=self._headers(), timeout=self._timeout
            )
        except requests.RequestException as exc:
            # a connect error or connect timeout: the request never reached a controller
            unsent = isinstance(exc, requests.ConnectionError) and not isinstance(
                exc, requests.ReadTimeout
            )
            raise ClusterUnreachable(
                f"controller at {base_url} unreachable: {type(exc).__name__}",
                retry_elsewhere=unsent,
            ) from None
        log.debug("cluster %s %s -> %s", method, path, resp.status_code)
        if resp.status_code >= 400:
            raise _error_from(resp)
        if not resp.content:
            return {}
        try:
            answer = resp.json()
        except ValueError:
            raise ClusterError(resp.status_code, "Internal", "answer is not JSON") from None
        if not isinstance(answer, dict):
            raise ClusterError(resp.status_code, "Internal", "answer is not a JSON object")
        return answer


def _error_from(resp: requests.Response) -> ClusterError:
    kind, message = "Unknown", resp.reason or "error"
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        kind = str(body.get("kind") or kind)
        message = str(body.get("message") or message)
    if resp.status_code == 409:
        return ClusterRefused(409, kind, message)
    if resp.status_code == 503 and kind == "Unavailable":
        return ClusterUnavailable(f"controller answered 503: {message}")
    if resp.status_code in (502, 503, 504):
        return ClusterUnreachable(
            f"controller answered {resp.status_code}: {message}", retry_elsewhere=False
        )
    return ClusterError(resp.status_code, kind, message)


def _seg(value: str) -> str:
    """One URL path segment (ids come from clients' ClientHellos: never trust them)."""
    return quote(value, safe="")


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value if isinstance(v, str) and v)
