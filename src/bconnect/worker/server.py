"""The worker: registers with a controller, accepts proxy connections, reports status.

``Worker.run`` runs in any asyncio loop (alone under ``bconnect worker``, or next to
uvicorn under ``bconnect dev``) until cancelled. Per connection: peek the ClientHello for
the session id, look the session up, start mutual TLS with that session's certificate,
check the client presented exactly it, then hand over to ``ConnectionProxy``. Anything
wrong before that point drops the connection quietly (debug log) and touches nothing
else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Coroutine, Sequence
from typing import Any

from bconnect.core.handshake import session_id_from_hello
from bconnect.worker.cluster import (
    ClusterClient,
    ClusterError,
    ClusterUnavailable,
    ClusterUnreachable,
)
from bconnect.worker.connections import ClosedReason, CloseReports, ConnectionRegistry
from bconnect.worker.identity import OwnCredential
from bconnect.worker.proxy import ConnectionProxy
from bconnect.worker.sessions import SessionCache
from bconnect.worker.tls import PeekError, peek_client_hello, peer_certificate_matches

__all__ = ["Worker"]

log = logging.getLogger(__name__)

_READ_LIMIT = 256 * 1024
_BACKOFF_FIRST = 0.2
_BACKOFF_MAX = 5.0


class Worker:
    """A bconnect worker serving Boundary's TCP proxy protocol on ``proxy_sock``.

    ``proxy_sock`` is bound, listening and non-blocking; the caller owns it (the worker
    never closes it). ``controller_url`` is one cluster URL or several (controllers sharing
    a database; the worker fails over between them). ``public_address`` (``host:port``)
    is what the controller hands to clients. When no controller has taken a status report
    for ``controller_grace`` seconds, live connections are closed (``system error``), as the
    controllers close them in the database once the worker has been silent that long.
    ``worker_id`` is set once the controller has registered the worker. A ``Worker`` runs
    once: ``run`` releases its HTTP client when it ends.
    """

    def __init__(
        self,
        controller_url: str | Sequence[str],
        auth_key: str | None,
        proxy_sock: socket.socket,
        *,
        public_address: str,
        name: str,
        tags: dict[str, list[str]] | None = None,
        status_interval: float = 1.0,
        handshake_timeout: float = 10.0,
        dial_timeout: float = 10.0,
        shutdown_timeout: float = 5.0,
        controller_grace: float = 15.0,
        idle_timeout: float = 0.0,
        ca_file: str | None = None,
        own_credential: OwnCredential | None = None,
    ) -> None:
        """``ca_file``: the PEM bundle that signs https:// controllers' certificates.
        ``own_credential``: register with the worker's own credential (controller-led
        registration, see worker/identity.py) instead of the shared ``auth_key``."""
        self.public_address = public_address
        self.name = name
        self.tags = {k: list(v) for k, v in (tags or {}).items()}
        self.status_interval = status_interval
        self.handshake_timeout = handshake_timeout
        self.shutdown_timeout = shutdown_timeout
        self.controller_grace = controller_grace
        self._last_contact: float | None = None
        self._sock = proxy_sock
        self.own_credential = own_credential
        self.cluster = ClusterClient(controller_url, auth_key, ca_file=ca_file)
        self.sessions = SessionCache(self.cluster)
        self.registry = ConnectionRegistry()
        self.closes = CloseReports(self.cluster)
        self.proxy = ConnectionProxy(
            self.cluster,
            self.registry,
            self.closes,
            sessions=self.sessions,
            handshake_timeout=handshake_timeout,
            dial_timeout=dial_timeout,
            idle_timeout=idle_timeout,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._past_tls: set[asyncio.Task[None]] = set()  # tasks serving an authenticated client
        self._registered = asyncio.Event()
        self._controller_down = False

    def __repr__(self) -> str:
        return f"Worker(name={self.name!r}, worker_id={self.worker_id!r})"

    @property
    def worker_id(self) -> str | None:
        """The controller-assigned ``w_`` id, once registered."""
        return self.cluster.worker_id

    @property
    def listen_address(self) -> tuple[str, int]:
        """The proxy socket's bound ``(host, port)``."""
        host, port = self._sock.getsockname()[:2]
        return host, port

    async def wait_registered(self) -> str:
        """Wait until the controller has registered this worker; returns its id."""
        await self._registered.wait()
        assert self.worker_id is not None
        return self.worker_id

    # ---------------------------------------------------------------- lifecycle
    async def run(self) -> None:
        """Register, then serve until cancelled; then close every live connection
        cleanly (WebSocket close 1000), report them closed, and re-raise."""
        try:
            await self._register()
            status = asyncio.ensure_future(self._status_loop())
            try:
                await self._accept_loop()
            finally:
                status.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await status
        finally:
            await self._shutdown()
            self.cluster.close()

    async def _register(self) -> None:
        delay = _BACKOFF_FIRST
        warned = False
        while True:
            try:
                if self.own_credential is not None:
                    worker_id = await self.own_credential.register(
                        self.cluster, self.name, self.public_address, self.tags
                    )
                else:
                    worker_id = await self.cluster.register(
                        self.name, self.public_address, self.tags
                    )
            except ClusterError as exc:
                if not warned:
                    hint = (
                        " (is -worker-auth-key the controller's key?)" if exc.status == 401 else ""
                    )
                    log.warning("cannot register with the controller, will retry: %s%s", exc, hint)
                    warned = True
                else:
                    log.debug("registration failed: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            log.info("worker %s registered as %s (%s)", self.name, worker_id, self.public_address)
            self._registered.set()
            return

    async def _shutdown(self) -> None:
        """Close live connections with 1000 and let their tasks report them; drop the
        connections still before TLS at once; cancel whatever is left after a grace."""
        self.proxy.stopping = True
        tasks = set(self._tasks)
        for task in tasks - self._past_tls:  # still handshaking: nothing to report
            task.cancel()
        count = self.registry.stop_all(ClosedReason.SYSTEM_ERROR)
        if count:
            log.info("closing %d live connection(s)", count)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.shutdown_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if len(self.closes):
            await self.closes.retry()
            if len(self.closes):
                log.warning("%d close report(s) could not reach the controller", len(self.closes))

    # ---------------------------------------------------------------- accepting
    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.listen_address
        log.info("worker proxy listening on %s:%d", host, port)
        while True:
            try:
                conn, peer = await loop.sock_accept(self._sock)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            except OSError as exc:  # EMFILE and friends: back off, keep serving
                log.warning("accept failed: %s", exc.strerror or exc)
                await asyncio.sleep(0.1)
                continue
            self._spawn(self._handle(conn, peer))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, conn: socket.socket, peer: Any) -> None:
        """One accepted socket; never raises (but honours cancellation)."""
        opened: list[asyncio.StreamWriter] = []
        try:
            await self._serve(conn, peer, opened)
        except asyncio.CancelledError:
            raise
        except (PeekError, ClusterError, ssl.SSLError, ConnectionError, OSError) as exc:
            log.debug("dropped connection from %s: %s", peer, exc)
        except TimeoutError:
            log.debug("dropped connection from %s: handshake timed out", peer)
        except Exception:
            log.warning("connection from %s failed unexpectedly", peer, exc_info=True)
        finally:
            self._past_tls.discard(asyncio.current_task())  # type: ignore[arg-type]
            if opened:
                opened[0].close()
            else:
                conn.close()

    async def _serve(
        self, conn: socket.socket, peer: Any, opened: list[asyncio.StreamWriter]
    ) -> None:
        """Peek, look up, TLS, check the certificate, proxy. The TLS writer goes into
        ``opened`` for the caller to close."""
        hello = await peek_client_hello(conn, self.handshake_timeout)
        session_id = session_id_from_hello(hello)
        if session_id is None:
            log.debug("dropped connection from %s: no session id in ClientHello", peer)
            return
        entry = await asyncio.wait_for(self.sessions.get(session_id), self.handshake_timeout)
        if entry is None:
            log.debug("dropped connection from %s: unknown session %s", peer, session_id)
            return
        reader, writer = await self._start_tls(conn, entry.context)
        opened.append(writer)
        if not peer_certificate_matches(
            writer.get_extra_info("ssl_object"), entry.info.certificate
        ):
            log.debug("dropped connection from %s: not the session certificate", peer)
            return
        task = asyncio.current_task()
        if task is not None:
            self._past_tls.add(task)  # type: ignore[arg-type]
        await self.proxy.serve(entry.info, reader, writer)

    async def _start_tls(
        self, conn: socket.socket, context: ssl.SSLContext
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_READ_LIMIT)
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_accepted_socket(
            lambda: protocol,
            conn,
            ssl=context,
            ssl_handshake_timeout=self.handshake_timeout,
            ssl_shutdown_timeout=self.handshake_timeout,
        )
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    # ---------------------------------------------------------------- status
    async def _status_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._status_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let a bad answer end the loop
                log.warning("status report failed unexpectedly", exc_info=True)
            await asyncio.sleep(max(0.0, self.status_interval - (loop.time() - started)))

    async def _status_once(self) -> None:
        """One status round: expire, retry close reports, report, apply cancels."""
        expired = self.registry.stop_expired()
        if expired:
            log.info("closing %d connection(s) of expired sessions", expired)
        self.sessions.purge_expired()
        if len(self.closes):
            await self.closes.retry()
        try:
            answer = await self.cluster.status(self.registry.reports())
        except ClusterError as exc:
            await self._status_failed(exc)
            return
        self._last_contact = asyncio.get_running_loop().time()
        if self._controller_down:
            log.info("controller reachable again")
            self._controller_down = False
        self.sessions.forget(answer.cancel_sessions)
        stopped = self.registry.stop_sessions(answer.cancel_sessions, ClosedReason.CANCELED)
        stopped += self.registry.stop_connections(answer.cancel_connections, ClosedReason.CANCELED)
        if stopped:
            log.info("closing %d connection(s) canceled at the controller", stopped)

    async def _status_failed(self, exc: ClusterError) -> None:
        if exc.status == 404 and not isinstance(exc, ClusterUnreachable):
            log.warning("controller does not know worker %s; registering again", self.worker_id)
            with contextlib.suppress(ClusterError):
                await self.cluster.register(self.name, self.public_address, self.tags)
            return
        if not self._controller_down:
            log.warning("status report failed (serving existing connections): %s", exc)
            self._controller_down = True
        else:
            log.debug("status report failed: %s", exc)
        now = asyncio.get_running_loop().time()
        if self._last_contact is None or isinstance(exc, ClusterUnavailable):
            # registered but never reported: the grace starts now. A controller whose
            # database is down is still a controller: the cluster is not cut off from this
            # worker, and the controllers give the workers a grace period after an outage.
            self._last_contact = now
        if now - self._last_contact >= self.controller_grace:
            count = self.registry.stop_all(ClosedReason.SYSTEM_ERROR)
            if count:
                log.warning(
                    "no controller has taken a status report for %.0f s: "
                    "closed %d live connection(s)",
                    now - self._last_contact,
                    count,
                )
