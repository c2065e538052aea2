"""The worker: registers with a controller, accepts proxy connections, reports status.

``Worker.run`` runs in any asyncio loop (alone under ``bconnect worker``, or next to
uvicorn under ``bconnect dev``) until cancelled. Per connection: peek the ClientHello for
the session id, look the session up, start mutual TLS with that session's certificate,
check the client presented exactly it, then hand over to ``ConnectionProxy``. Anything
wrong before that point drops the connection quietly (debug log) and touches nothing
else.

Until a connection is past that certificate check it is held cheaply and briefly: caps
on how many such connections are handshaking, overall and per source address (the others
wait for a turn holding only their socket, up to a bound, or are closed at once); one
deadline (``handshake_timeout``) for peeking, the lookup and the TLS handshake together;
and a small TLS read buffer (asyncio's own is 256 KiB a connection, allocated up front).
A session id must have a session id's form before the controller is asked about it, and
lookups of ids not cached are limited per source address (worker/sessions.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Coroutine, Sequence
from typing import Any

from bconnect.clusterwire import ClosedReason
from bconnect.core.handshake import session_id_from_hello
from bconnect.core.tlsconn import start_tls
from bconnect.core.wslink import Held
from bconnect.hostport import join_host_port
from bconnect.worker.cluster import (
    ClusterClient,
    ClusterError,
    ClusterUnavailable,
    ClusterUnreachable,
)
from bconnect.worker.connections import ConnectionRegistry
from bconnect.worker.identity import OwnCredential
from bconnect.worker.proxy import ConnectionProxy
from bconnect.worker.reports import ConnectionReports
from bconnect.worker.sessions import LookupRefused, SessionCache, is_session_id
from bconnect.worker.tls import PeekError, peek_client_hello, peer_certificate_matches

__all__ = ["Worker"]

log = logging.getLogger(__name__)

_BACKOFF_FIRST = 0.2
_BACKOFF_MAX = 5.0
#: a warning about a limit being hit repeats at most this often (seconds)
_WARN_EVERY = 60.0
#: connections that may wait for a handshake slot, per slot overall (``max_handshakes``)
_WAITING_PER_SLOT = 8
#: how long a connection may wait for a handshake slot, in handshake timeouts (a client
#: opening hundreds of connections at once has them served 32 at a time; bconnect's own
#: client waits 30 s for its TLS handshake)
_WAIT_FOR_SLOT = 3


def _source_of(peer: Any) -> str:
    """The address a connection counts against: the IP address (an IPv4-mapped IPv6
    address as IPv4), or for IPv6 its /64, which one host or customer usually has."""
    try:
        address = ipaddress.ip_address(peer[0])
    except (TypeError, ValueError, IndexError):
        return str(peer)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class _Admission:
    """One accepted connection's place under the handshake caps: holding a slot, or
    waiting for one. ``release`` (idempotent) gives up either."""

    __slots__ = ("_limit", "_waiter", "holding", "source")

    def __init__(
        self, limit: _HandshakeLimit, source: str, waiter: asyncio.Future[None] | None
    ) -> None:
        self._limit: _HandshakeLimit | None = limit
        self.source = source
        self._waiter = waiter
        self.holding = waiter is None

    async def wait(self, timeout: float) -> None:
        """Until this connection holds a slot; ``TimeoutError`` after ``timeout``."""
        waiter = self._waiter
        if waiter is None or self.holding:
            return
        try:
            # asyncio.wait, not wait_for: the waiter is never cancelled, so a slot granted
            # just as the time runs out is seen below and given back by release()
            await asyncio.wait((waiter,), timeout=timeout)
        finally:
            self.holding = waiter.done()
        if not self.holding:
            raise TimeoutError(f"no handshake slot within {timeout:g}s")

    def release(self) -> None:
        limit, self._limit = self._limit, None
        if limit is None:
            return
        if self.holding or (self._waiter is not None and self._waiter.done()):
            limit.release(self.source)
        elif self._waiter is not None:
            limit.forget(self.source, self._waiter)


class _HandshakeLimit:
    """Connections accepted but not yet past the client-certificate check (holding a
    "slot"): at most ``total`` in all and ``per_source`` from one source. A connection over
    either cap waits for a slot holding nothing but its socket (nothing is read, no TLS
    state exists), first come first served; at most ``max_waiting`` wait, and a connection
    beyond that is refused. Sources waiting only for a slot overall take turns."""

    def __init__(self, total: int, per_source: int, max_waiting: int) -> None:
        if total < 1 or per_source < 1:
            raise ValueError("max_handshakes and max_handshakes_per_address must be >= 1")
        self.total = total
        self.per_source = per_source
        self.max_waiting = max_waiting
        self.count = 0  # holding a slot
        self.waiting = 0
        self._held: dict[str, int] = {}
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        # sources with waiters that are under per_source: they wait for a slot overall
        self._turns: OrderedDict[str, None] = OrderedDict()

    def admit(self, source: str) -> _Admission | None:
        """A slot now, a place in the queue, or ``None`` (refused: the queue is full)."""
        held = self._held.get(source, 0)
        if self.count < self.total and held < self.per_source and source not in self._queues:
            self._take(source)
            return _Admission(self, source, None)
        if self.waiting >= self.max_waiting:
            return None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(source, deque()).append(waiter)
        self.waiting += 1
        if held < self.per_source:
            self._turns.setdefault(source, None)
        return _Admission(self, source, waiter)

    def why_full(self, source: str) -> str:
        """Which cap ``source``'s new connection ran into."""
        held = self._held.get(source, 0)
        if held >= self.per_source:
            return (
                f"{held} TLS handshakes in progress from {source} "
                f"(max_handshakes_per_address {self.per_source})"
            )
        return f"{self.count} TLS handshakes in progress (max_handshakes {self.total})"

    def release(self, source: str) -> None:
        """A slot is given back: the next waiter gets it (a source waiting only for a slot
        overall first, then ``source``'s own next waiter)."""
        self.count -= 1
        held = self._held.pop(source, 0) - 1
        if held > 0:
            self._held[source] = held
        if source in self._queues:
            self._turns.setdefault(source, None)  # under per_source again
        if self._turns:
            self._grant(next(iter(self._turns)))

    def forget(self, source: str, waiter: asyncio.Future[None]) -> None:
        """A waiter gave up (its deadline passed, or it was cancelled)."""
        queue = self._queues.get(source)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(waiter)
            self.waiting -= 1
        if not queue:
            del self._queues[source]
            self._turns.pop(source, None)

    def _take(self, source: str) -> None:
        self.count += 1
        self._held[source] = self._held.get(source, 0) + 1

    def _grant(self, source: str) -> None:
        queue = self._queues[source]
        waiter = queue.popleft()
        self.waiting -= 1
        self._take(source)
        waiter.set_result(None)
        self._turns.pop(source, None)
        if not queue:
            del self._queues[source]
        elif self._held[source] < self.per_source:
            self._turns[source] = None  # its next turn comes after the others'


def _left(deadline: float) -> float:
    """Seconds until ``deadline``; ``TimeoutError`` once it has passed."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        raise TimeoutError
    return remaining


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

    ``max_handshakes`` (256) and ``max_handshakes_per_address`` (32; an IPv6 source
    counts per /64) cap the connections accepted but not yet past the client-certificate
    check. A connection over either cap waits for a turn, first come first served,
    holding only its socket (nothing read, no TLS state), for up to three handshake
    timeouts, so that a client opening hundreds of connections at once is served rather
    than refused; at most 8 × ``max_handshakes`` wait, and beyond that a new connection is
    closed at once. Either way a debug line is logged, and a warning at most once a
    minute. Connections of authenticated clients never count against the caps.
    ``handshake_timeout`` bounds everything from a connection's turn to an authenticated
    client (peeking the ClientHello, the session lookup and the TLS handshake together),
    and then the WebSocket and proxy handshakes.
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
        max_handshakes: int = 256,
        max_handshakes_per_address: int = 32,
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
        self.reports = ConnectionReports(self.cluster)
        self.proxy = ConnectionProxy(
            self.cluster,
            self.registry,
            self.reports,
            sessions=self.sessions,
            handshake_timeout=handshake_timeout,
            dial_timeout=dial_timeout,
            idle_timeout=idle_timeout,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._past_tls: set[asyncio.Task[None]] = set()  # tasks serving an authenticated client
        self._registered = asyncio.Event()
        self._controller_down = False
        self._handshakes = _HandshakeLimit(
            max_handshakes, max_handshakes_per_address, _WAITING_PER_SLOT * max_handshakes
        )
        #: connections closed at once because a handshake cap was reached
        self.handshakes_refused = 0
        self._warned_at: dict[str, float] = {}

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

    @property
    def handshakes_in_progress(self) -> int:
        """Connections accepted but not yet past the client-certificate check."""
        return self._handshakes.count

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
        await self.reports.drain(self.shutdown_timeout)
        if len(self.reports):
            log.warning("%d close report(s) could not reach the controller", len(self.reports))

    # ---------------------------------------------------------------- accepting
    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        log.info("worker proxy listening on %s", join_host_port(*self.listen_address))
        while True:
            try:
                conn, peer = await loop.sock_accept(self._sock)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            except OSError as exc:  # EMFILE and friends: back off, keep serving
                log.warning("accept failed: %s", exc.strerror or exc)
                await asyncio.sleep(0.1)
                continue
            admission = self._admit(conn, peer)
            if admission is None:
                continue
            task = self._spawn(self._handle(conn, peer, admission))

            # also when the task is cancelled before it starts (shutdown); ``held`` binds
            # this connection's admission (``admission`` is the loop's variable)
            def release(_task: asyncio.Task[None], held: _Admission = admission) -> None:
                held.release()

            task.add_done_callback(release)

    def _admit(self, conn: socket.socket, peer: Any) -> _Admission | None:
        """A handshake slot or a place in the queue for it; ``None``: ``conn`` was closed."""
        source = _source_of(peer)
        admission = self._handshakes.admit(source)
        if admission is not None and admission.holding:
            return admission
        why = self._handshakes.why_full(source)
        waiting = self._handshakes.waiting
        if admission is None:
            conn.close()
            self.handshakes_refused += 1
            log.debug("refused connection from %s: %s, %d waiting", peer, why, waiting)
            self._warn_once_a_minute(
                "handshakes refused",
                "refusing new connections: %s, and %d connections wait for a turn",
                why,
                waiting,
            )
        else:
            log.debug("connection from %s waits for a handshake slot: %s", peer, why)
            self._warn_once_a_minute(
                "handshakes waiting", "handshake cap reached: %s; new connections wait", why
            )
        return admission

    def _warn_once_a_minute(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._warned_at.get(kind)
        if last is not None and now - last < _WARN_EVERY:
            return
        self._warned_at[kind] = now
        log.warning(message + " (this warning repeats at most once a minute)", *args)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _handle(self, conn: socket.socket, peer: Any, admission: _Admission) -> None:
        """One accepted socket; never raises (but honours cancellation)."""
        opened: list[Held] = []
        try:
            await self._serve(conn, peer, admission, opened)
        except asyncio.CancelledError:
            raise
        except LookupRefused as exc:
            log.debug("dropped connection from %s: %s", peer, exc)
            self._warn_once_a_minute(
                "lookups", "refusing session lookups: %s (made-up session ids?)", exc
            )
        except TimeoutError as exc:  # before OSError, of which it is a subclass
            log.debug("dropped connection from %s: %s", peer, exc or "handshake timed out")
        except (PeekError, ClusterError, ssl.SSLError, ConnectionError, OSError) as exc:
            log.debug("dropped connection from %s: %s", peer, exc)
        except Exception:
            log.warning("connection from %s failed unexpectedly", peer, exc_info=True)
        finally:
            admission.release()
            self._past_tls.discard(asyncio.current_task())  # type: ignore[arg-type]
            if opened and opened[0].transport is not None:
                opened[0].transport.close()
            else:
                conn.close()

    async def _serve(
        self,
        conn: socket.socket,
        peer: Any,
        admission: _Admission,
        opened: list[Held],
    ) -> None:
        """Wait for a handshake slot, peek, look up, TLS, check the certificate (then the
        slot is given back), proxy. The TLS connection goes into ``opened`` for the caller
        to close. One deadline covers everything up to the certificate check."""
        await admission.wait(_WAIT_FOR_SLOT * self.handshake_timeout)
        deadline = asyncio.get_running_loop().time() + self.handshake_timeout
        hello = await peek_client_hello(conn, _left(deadline))
        session_id = session_id_from_hello(hello)
        if session_id is None:
            log.debug("dropped connection from %s: no session id in ClientHello", peer)
            return
        if not is_session_id(session_id):
            log.debug("dropped connection from %s: not a session id's form", peer)
            return
        entry = await asyncio.wait_for(
            self.sessions.get(session_id, admission.source), _left(deadline)
        )
        if entry is None:
            log.debug("dropped connection from %s: unknown session %s", peer, session_id)
            return
        timeout = _left(deadline)
        held = await asyncio.wait_for(
            start_tls(conn, entry.context, server_side=True, timeout=timeout), timeout
        )
        opened.append(held)
        assert held.transport is not None
        if not peer_certificate_matches(
            held.transport.get_extra_info("ssl_object"), entry.info.certificate
        ):
            log.debug("dropped connection from %s: not the session certificate", peer)
            return
        admission.release()  # an authenticated client: no longer counts against the caps
        task = asyncio.current_task()
        if task is not None:
            self._past_tls.add(task)  # type: ignore[arg-type]
        await self.proxy.serve(entry.info, held)

    # ---------------------------------------------------------------- status
    async def _status_loop(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        while True:
            if task is not None and task.cancelling():
                # cancelled, but the CancelledError was lost on the way (Python 3.11's
                # wait_for drops one that arrives as its future completes): stop anyway,
                # or run() would wait for this loop until cancelled a second time
                raise asyncio.CancelledError
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
        self.reports.retry()
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
