"""The worker's client for the controller's cluster API (docs/cluster-api.md).

HTTP + JSON. For ``http://`` controllers (the usual cluster listener) calls run on the
event loop itself over a small pool of keep-alive connections (``_HttpPool``): a call
costs no thread hop and no GIL hand-off, which matters on the connection path (every
proxied connection waits for ``authorize-connection``). ``https://`` controllers go
through ``requests`` (its certificate handling) in a small dedicated thread pool, so a
slow controller never blocks the event loop (nor the loop's default executor, which
``getaddrinfo`` uses to dial endpoints); each pool thread keeps its own
``requests.Session``.

Secrets stay out of logs: the auth key, tofu tokens and session private keys are never
logged nor put in exception messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from bconnect import __version__, clusterwire
from bconnect.core.tlserrors import tls_failure
from bconnect.rfc3339 import parse_time

__all__ = [
    "ClusterClient",
    "ClusterError",
    "ClusterRefused",
    "ClusterUnavailable",
    "ClusterUnreachable",
    "ConnectionGrant",
    "InjectedCredential",
    "RecordingSettings",
    "SessionInfo",
    "SshSettings",
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


@dataclass(frozen=True)
class InjectedCredential:
    """A credential the worker logs in to an ssh target's host with (never logged)."""

    type: str
    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RecordingSettings:
    """Where a recorded ssh session's channels go: its session recording and the storage
    bucket (plugin, name, prefix, attributes and secrets: never logged)."""

    session_recording_id: str
    record_input: bool
    bucket: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> RecordingSettings:
        return cls(
            session_recording_id=str(body["session_recording_id"]),
            record_input=bool(body.get("record_input")),
            bucket=dict(body["bucket"]),
        )


@dataclass(frozen=True)
class SshSettings:
    """What an ``ssh`` session needs at the worker: the target's host key (presented to
    the user's ssh), the host keys accepted from its hosts, the injected credentials."""

    host_key: bytes = field(repr=False)
    known_hosts: str
    credentials: tuple[InjectedCredential, ...] = field(repr=False)
    recording: RecordingSettings | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> SshSettings:
        return cls(
            host_key=base64.b64decode(body["host_key"], validate=True),
            known_hosts=str(body.get("known_hosts") or ""),
            credentials=tuple(
                InjectedCredential(
                    type=str(c["type"]),
                    username=str(c.get("username") or ""),
                    password=c.get("password"),
                    private_key=c.get("private_key"),
                    passphrase=c.get("passphrase"),
                )
                for c in body.get("credentials") or ()
            ),
            recording=(
                RecordingSettings.from_json(body["recording"]) if body.get("recording") else None
            ),
        )


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
    type: str = "tcp"
    target_id: str = ""
    ssh: SshSettings | None = None

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
                type=str(body.get("type") or "tcp"),
                target_id=str(body.get("target_id") or ""),
                ssh=SshSettings.from_json(body["ssh"]) if body.get("ssh") else None,
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ValueError(f"malformed session answer: {type(exc).__name__}") from None


@dataclass(frozen=True)
class ConnectionGrant:
    """The controller's answer to ``authorize-connection`` (or, with ``admitted_here``,
    the worker's own admission, which the controller confirms while it relays)."""

    connection_id: str
    connections_left: int
    connection_limit: int
    expiration: datetime
    endpoint: str
    admitted_here: bool = False


@dataclass(frozen=True)
class StatusAnswer:
    """What the controller wants closed, from a status report."""

    cancel_sessions: tuple[str, ...] = ()
    cancel_connections: tuple[str, ...] = ()


class ClusterClient:
    """Async calls to the controllers' cluster listeners, authenticated with the worker's
    own credential (:meth:`use_credential`, after controller-led activation) or else the
    shared worker key (``auth_key``; legacy, and `bconnect dev`).

    ``base_url`` is one cluster URL or several (controllers sharing one database): calls
    go to the current one, and when it does not answer (refused, timed out, 502–504)
    the same call is tried once on each of the others, which becomes the current one.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        auth_key: str | None = None,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        pool_size: int = POOL_SIZE,
        ca_file: str | None = None,
    ) -> None:
        """``ca_file``: a PEM bundle that signs https:// controllers' certificates (None:
        the system's, or ``REQUESTS_CA_BUNDLE``)."""
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("no controller address")
        self.base_urls = [u.rstrip("/") for u in urls]
        self._current = 0
        self._auth_key = auth_key
        self._credential: str | None = None
        self.worker_id: str | None = None
        self._timeout = (connect_timeout, read_timeout)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(pool_size, thread_name_prefix="bconnect-cluster")
        self._pool_size = pool_size
        self._http: dict[str, _HttpPool | None] = {}  # base URL -> pool (None: https)
        self._ca_file = ca_file
        self._closed = False

    def __repr__(self) -> str:  # never show the key
        return f"ClusterClient({self.base_url!r}, worker_id={self.worker_id!r})"

    @property
    def base_url(self) -> str:
        """The cluster URL calls go to now."""
        return self.base_urls[self._current]

    # ---------------------------------------------------------------- calls
    def use_credential(self, worker_id: str, credential: str) -> None:
        """Call as this worker, with its own credential, from now on."""
        self.worker_id, self._credential = worker_id, credential

    async def activate(
        self, activation_token: str, address: str, tags: Mapping[str, list[str]] | None = None
    ) -> tuple[str, str, str]:
        """Controller-led registration: trade the one-time activation token for this
        worker's own credential. Returns ``(worker id, name, credential)`` and calls with
        the credential from then on."""
        body = {
            "activation_token": activation_token,
            "address": address,
            "tags": {k: list(v) for k, v in (tags or {}).items()},
            "release_version": f"bconnect v{__version__}",
        }
        answer = await self._call("POST", clusterwire.ACTIVATE_PATH, body)
        try:
            identity = (str(answer["worker_id"]), str(answer["name"]), str(answer["credential"]))
        except KeyError:
            raise ClusterError(200, "Internal", "activation answer without a credential") from None
        self.use_credential(identity[0], identity[2])
        return identity

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
        answer = await self._call("POST", clusterwire.REGISTER_PATH, body)
        worker_id = str(answer.get("worker_id") or "")
        if not worker_id:
            raise ClusterError(200, "Internal", "register answer without a worker_id")
        self.worker_id = worker_id
        return worker_id

    async def status(self, connections: list[dict[str, Any]]) -> StatusAnswer:
        """Report open connections with their bytes; learn what to close."""
        if not self.worker_id:
            raise ClusterError(0, "NotRegistered", "worker is not registered")
        path = clusterwire.STATUS_PATH.format(worker_id=_seg(self.worker_id))
        answer = await self._call("POST", path, {"connections": connections})
        return StatusAnswer(
            cancel_sessions=_strings(answer.get("cancel_sessions")),
            cancel_connections=_strings(answer.get("cancel_connections")),
        )

    async def get_session(self, session_id: str) -> SessionInfo | None:
        """The session's certificate, key, endpoint and limits; ``None`` if unknown."""
        path = clusterwire.SESSION_PATH.format(session_id=_seg(session_id))
        try:
            answer = await self._call("GET", path)
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
        path = clusterwire.AUTHORIZE_CONNECTION_PATH.format(session_id=_seg(session_id))
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
        path = clusterwire.CONNECTED_PATH.format(connection_id=_seg(connection_id))
        await self._call("POST", path, addresses(client, endpoint))

    async def closed(
        self, connection_id: str, bytes_up: int, bytes_down: int, closed_reason: str
    ) -> None:
        """Report a connection closed, with its final byte counts."""
        path = clusterwire.CLOSED_PATH.format(connection_id=_seg(connection_id))
        body = {"bytes_up": bytes_up, "bytes_down": bytes_down, "closed_reason": closed_reason}
        await self._call("POST", path, body)

    async def connection_events(self, events: list[dict[str, Any]]) -> list[ClusterError | None]:
        """Report many connections' news at once (``connected``, ``admitted``, ``closed``
        entries, in order); for each, ``None`` or the refusal its own call would get."""
        answer = await self._call("POST", clusterwire.CONNECTION_EVENTS_PATH, {"events": events})
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(events):
            raise ClusterError(200, "Internal", "malformed connection-events answer")
        return [_event_error(r) for r in results]

    async def pin_host_key(self, session_id: str, host: str, port: int, key: str) -> bool:
        """Report the key ``host:port`` presented for an ssh session's target: pinned
        (True) if none was known; ``ClusterRefused`` (HostKeyMismatch) if another is."""
        path = clusterwire.PIN_HOST_KEY_PATH.format(session_id=_seg(session_id))
        answer = await self._call("POST", path, {"host": host, "port": port, "key": key})
        return bool(answer.get("pinned"))

    async def channel_started(
        self, recording_id: str, connection_id: str, kind: str, command: str | None
    ) -> dict[str, str]:
        """Register a channel's recording: its ``id`` and ``object_key``."""
        path = clusterwire.CHANNEL_STARTED_PATH.format(recording_id=_seg(recording_id))
        body = {"connection_id": connection_id, "type": kind, "command": command}
        answer = await self._call("POST", path, body)
        try:
            return {"id": str(answer["id"]), "object_key": str(answer["object_key"])}
        except KeyError as exc:
            raise ClusterError(200, "Internal", f"malformed channel answer: {exc}") from None

    async def channel_finished(
        self, channel_id: str, size: int, sha256: str | None, error: str | None
    ) -> None:
        """A channel's recording is written (``sha256``) or could not be (``error``)."""
        path = clusterwire.CHANNEL_FINISHED_PATH.format(channel_id=_seg(channel_id))
        await self._call("POST", path, {"bytes": size, "sha256": sha256, "error": error})

    async def cancel_session(self, session_id: str, tofu_token: str) -> None:
        """The client's SESSION_CANCEL command."""
        path = clusterwire.CANCEL_SESSION_PATH.format(session_id=_seg(session_id))
        await self._call("POST", path, {"tofu_token": tofu_token})

    def close(self) -> None:
        """Release the thread pool and the HTTP sessions."""
        self._closed = True
        for pool in self._http.values():
            if pool is not None:
                pool.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    # ---------------------------------------------------------------- plumbing
    async def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The call on the current controller, then (when it does not answer) once on
        each of the others, in order; the one that answered becomes the current one."""
        first = self._current
        count = len(self.base_urls)
        for step in range(count):
            index = (first + step) % count
            try:
                answer = await self._call_at(self.base_urls[index], method, path, body)
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

    async def _call_at(
        self, base_url: str, method: str, path: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        if self._closed:
            raise ClusterUnreachable("cluster client closed")
        pool = self._pool(base_url)
        if pool is None:  # https: requests, in the thread pool
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(
                    self._executor, self._call_one, base_url, method, path, body
                )
            except RuntimeError as exc:  # executor shut down while stopping
                raise ClusterUnreachable(f"cluster client closed: {exc}") from None
        data = None if body is None else json.dumps(body).encode()
        status, reason, content = await pool.request(method, path, data, self._headers())
        log.debug("cluster %s %s -> %s", method, path, status)
        return _answer(status, reason, content)

    def _pool(self, base_url: str) -> _HttpPool | None:
        if base_url not in self._http:
            parts = urlsplit(base_url)
            pool = None
            # a controller reached through an HTTP proxy (the environment's, as requests
            # honours it) keeps going through requests
            direct = not requests.utils.get_environ_proxies(base_url)
            if parts.scheme == "http" and parts.hostname and direct:
                pool = _HttpPool(
                    parts.hostname,
                    parts.port or 80,
                    parts.netloc.rsplit("@", 1)[-1],
                    parts.path.rstrip("/"),
                    self._timeout,
                    self._pool_size,
                )
            self._http[base_url] = pool
        return self._http[base_url]

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
        headers = {"Accept": "application/json"}
        secret = self._credential or self._auth_key
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        if self.worker_id:
            headers[clusterwire.WORKER_ID_HEADER] = self.worker_id
        return headers

    def _call_one(
        self, base_url: str, method: str, path: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        url = base_url + path
        try:
            resp = self._session().request(
                method,
                url,
                json=body,
                headers=self._headers(),
                timeout=self._timeout,
                # per request: a session's verify loses to REQUESTS_CA_BUNDLE
                verify=self._ca_file or True,
            )
        except requests.RequestException as exc:
            # a connect error or connect timeout: the request never reached a controller
            unsent = isinstance(exc, requests.ConnectionError) and not isinstance(
                exc, requests.ReadTimeout
            )
            raise ClusterUnreachable(
                f"controller at {base_url} unreachable: {_failure(exc)}",
                retry_elsewhere=unsent,
            ) from None
        log.debug("cluster %s %s -> %s", method, path, resp.status_code)
        return _answer(resp.status_code, resp.reason or "", resp.content)


def _failure(exc: requests.RequestException) -> str:
    """A failed call in a few words; for TLS, OpenSSL's reason (e.g. "certificate
    verify failed: unable to get local issuer certificate")."""
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS: {tls_failure(exc)}"
    return type(exc).__name__


def _answer(status: int, reason: str, content: bytes) -> dict[str, Any]:
    """The JSON object of a 2xx answer; the matching ``ClusterError`` otherwise."""
    if status >= 400:
        raise _error_from(status, reason, content)
    if not content:
        return {}
    try:
        answer = json.loads(content)
    except ValueError:
        raise ClusterError(status, "Internal", "answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ClusterError(status, "Internal", "answer is not a JSON object")
    return answer


#: the status a ``connection-events`` result's kind stands for (refusals are 409)
_EVENT_STATUS = {"NotFound": 404, "PermissionDenied": 403, "InvalidArgument": 400}


def _event_error(result: Any) -> ClusterError | None:
    """A ``connection-events`` result: ``None`` for ``{}``, else the error its own call
    would have raised."""
    if not result:
        return None
    if not isinstance(result, dict):
        return ClusterError(200, "Internal", "malformed connection-events result")
    kind = str(result.get("kind") or "Unknown")
    message = str(result.get("message") or "refused")
    if kind in {k.value for k in clusterwire.RefusalKind}:
        return ClusterRefused(409, kind, message)
    return ClusterError(_EVENT_STATUS.get(kind, 400), kind, message)


def _error_from(status: int, reason: str, content: bytes) -> ClusterError:
    kind, message = "Unknown", reason or "error"
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        kind = str(body.get("kind") or kind)
        message = str(body.get("message") or message)
    if status == 409:
        return ClusterRefused(409, kind, message)
    if status == 503 and kind == "Unavailable":
        return ClusterUnavailable(f"controller answered 503: {message}")
    if status in (502, 503, 504):
        return ClusterUnreachable(f"controller answered {status}: {message}", retry_elsewhere=False)
    return ClusterError(status, kind, message)


#: Idle keep-alive connections older than this are dropped rather than reused: the
#: controller (uvicorn) closes them after 5 s, and a request racing that close fails.
_IDLE_MAX = 2.0
_MAX_HEADERS = 64 * 1024
_MAX_ANSWER = 16 * 1024 * 1024


class _HttpConn:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self, now: float) -> bool:
        return (
            now - self.idle_since < _IDLE_MAX
            and not self.reader.at_eof()
            and not self.writer.is_closing()
            # bytes nobody asked for: unusable (StreamReader._buffer is private, so untyped)
            and not self.reader._buffer  # type: ignore[attr-defined]  # noqa: SLF001
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Broken(Exception):
    """The connection failed after the request may have been sent."""


class _HttpPool:
    """HTTP/1.1 keep-alive connections to one ``http://`` controller, used from the loop.

    Errors map as ``requests`` failures did: a refused or timed-out connect and a
    connection lost mid-call are ``ClusterUnreachable`` that may go elsewhere; a read
    timeout is one that may not (the call may have been committed).
    """

    def __init__(
        self,
        host: str,
        port: int,
        netloc: str,
        prefix: str,
        timeout: tuple[float, float],
        size: int,
    ) -> None:
        self.host = host
        self.port = port
        self.base = f"http://{netloc}{prefix}"
        self._host_header = netloc
        self._prefix = prefix
        self._connect_timeout, self._read_timeout = timeout
        self._idle: list[_HttpConn] = []
        self._size = size
        self._slots: asyncio.Semaphore | None = None

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, str, bytes]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._size)
        async with self._slots:
            conn = await self._checkout()
            try:
                async with asyncio.timeout(self._read_timeout):
                    answer, keep = await self._exchange(conn, method, path, body, headers)
            except TimeoutError:
                conn.close()
                raise ClusterUnreachable(
                    f"controller at {self.base} unreachable: ReadTimeout", retry_elsewhere=False
                ) from None
            except (_Broken, ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
                conn.close()
                raise ClusterUnreachable(
                    f"controller at {self.base} unreachable: {type(exc).__name__}"
                ) from None
            except BaseException:
                conn.close()
                raise
            if keep:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()
            return answer

    async def _checkout(self) -> _HttpConn:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now):
                return conn
            conn.close()
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
            # cancellation that arrives as the connection completes
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, limit=_MAX_HEADERS
                )
        except TimeoutError:
            raise ClusterUnreachable(
                f"controller at {self.base} unreachable: ConnectTimeout"
            ) from None
        except OSError:
            raise ClusterUnreachable(
                f"controller at {self.base} unreachable: ConnectionError"
            ) from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _HttpConn(reader, writer)

    async def _exchange(
        self,
        conn: _HttpConn,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> tuple[tuple[int, str, bytes], bool]:
        lines = [
            f"{method} {self._prefix}{path} HTTP/1.1",
            f"Host: {self._host_header}",
            f"User-Agent: {USER_AGENT}",
            "Accept-Encoding: identity",
            "Connection: keep-alive",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if body is not None:
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(body)}")
        elif method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        conn.writer.write(head + body if body else head)
        await conn.writer.drain()
        reader = conn.reader
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _Broken("answer headers too large") from None
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise _Broken("not an HTTP answer")
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        fields: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        connection = fields.get("connection", "").lower()
        keep = parts[0] == "HTTP/1.1" and "close" not in connection
        if parts[0] != "HTTP/1.1" and "keep-alive" in connection:
            keep = True
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            content = b""
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            content = await _read_chunked(reader)
        elif "content-length" in fields:
            try:
                length = int(fields["content-length"])
            except ValueError:
                raise _Broken("bad Content-Length") from None
            if not 0 <= length <= _MAX_ANSWER:
                raise _Broken("answer too large")
            content = await reader.readexactly(length)
        else:  # the answer ends when the connection does
            content = await reader.read(_MAX_ANSWER)
            while chunk := await reader.read(_MAX_ANSWER):
                content += chunk
            keep = False
        return (status, reason, content), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _Broken("bad chunk") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        total += size
        if total > _MAX_ANSWER:
            raise _Broken("answer too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def addresses(client: tuple[str, int], endpoint: tuple[str, int] | None) -> dict[str, Any]:
    """A connection's two ends, as ``:connected`` reports them (no endpoint: it was
    never dialed)."""
    body: dict[str, Any] = {"client_tcp_address": client[0], "client_tcp_port": client[1]}
    if endpoint is not None:
        body["endpoint_tcp_address"], body["endpoint_tcp_port"] = endpoint
    return body


def _seg(value: str) -> str:
    """One URL path segment (ids come from clients' ClientHellos: never trust them)."""
    return quote(value, safe="")


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value if isinstance(v, str) and v)
