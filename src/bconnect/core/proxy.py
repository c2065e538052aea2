"""The client proxy: a local TCP listener whose every connection is carried to the
session's worker over mutual TLS and a WebSocket (docs/protocol.md §3).

It follows Boundary's ``api/proxy`` client:

* one tofu token for the proxy's whole life;
* every accepted connection dials ``worker_addresses[0]``, sends ``ClientHandshake``,
  reads ``HandshakeResult`` (reporting ``connections_left``) and relays bytes;
* it ends on :meth:`ClientProxy.close`, at the session's expiration, when the worker
  reports no connections left (the listener closes at once; the proxy ends when the
  last connection has), when the session was canceled (the worker says so when it
  closes a connection, or the controller when asked: after the worker ends a
  connection, and every ``probe_interval`` seconds), after ``inactive_timeout``
  seconds without an open connection (counted from the last connection closing, as
  Boundary does), or on an error (the worker unreachable, the session in use by
  another client, ...);
* when it ends cleanly more than five minutes before expiration it sends the worker the
  session-cancel command.

Use it from asyncio::

    proxy = ClientProxy(authz, on_connections_left=print)
    host, port = await proxy.start()
    ...
    result = await proxy.wait()          # or: await proxy.close("Received shutdown signal")
    print(result.termination_reason)

``bconnect.core.proxythread`` runs one in a background thread for synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bconnect.core.handshake import CANCELED_CLOSE_REASON, HandshakeResult, new_tofu_token
from bconnect.core.spares import Spares
from bconnect.core.token import AuthzData
from bconnect.core.workerconn import (
    CONNECT_TIMEOUT,
    ConnectionRefused,
    ProxyError,
    SessionInUse,
    WorkerDialer,
)
from bconnect.core.wslink import TcpSide, WsLink
from bconnect.hostport import join_host_port as format_listen_address

__all__ = [
    "PROBE_INTERVAL",
    "REASON_EXPIRED",
    "REASON_INACTIVE",
    "REASON_NO_CONNECTIONS",
    "REASON_SHUTDOWN",
    "TEARDOWN_MARGIN",
    "ClientProxy",
    "ProxyError",
    "ProxyResult",
    "SessionInUse",
    "SessionStatus",
    "canceled_reason",
    "effective_listen_port",
    "ended_reason",
    "error_reason",
    "format_listen_address",
    "should_send_teardown",
]

log = logging.getLogger(__name__)

# Termination reasons, exactly as Boundary's ``connect`` prints them.
REASON_SHUTDOWN = "Received shutdown signal"
REASON_EXPIRED = "Session has expired"
REASON_NO_CONNECTIONS = "No connections left in session"
REASON_INACTIVE = "Inactivity timeout reached"

#: The proxy sends the worker a session-cancel only this long before expiration or
#: earlier (Boundary's margin for clock skew between client and worker).
TEARDOWN_MARGIN = timedelta(minutes=5)
_LISTEN_BACKLOG = 4096
_TEARDOWN_TIMEOUT = 30.0  # Boundary's sessionCancelTimeout
#: How often a proxy with a session probe asks the controller whether its session is
#: still on (besides right after the worker ends a connection).
PROBE_INTERVAL = 10.0
#: A spare worker connection is replaced after this many seconds unused: well before a
#: worker drops a connection that sent no proxy handshake (bconnect's after 10 s).
SPARE_MAX_AGE = 4.0


@dataclass(frozen=True)
class SessionStatus:
    """A session's state as the controller reports it (``sessions read``)."""

    status: str
    termination_reason: str = ""


#: Asks the controller for the session's state: a :class:`SessionStatus`, or just the
#: status text; None when it cannot say.
SessionProbe = Callable[[], Awaitable[SessionStatus | str | None]]


def canceled_reason(session_id: str) -> str:
    """What ``connect`` prints when the session was canceled (by the API, the console or
    another client): Boundary's client would only see "no connections left"."""
    return f"Session {session_id} was canceled"


def ended_reason(session_id: str, state: SessionStatus) -> str:
    """The termination reason for a session the controller reports ended ("" while it
    is pending or active)."""
    if state.status == "canceling":
        return canceled_reason(session_id)
    if state.status != "terminated":
        return ""
    return {
        "timed out": REASON_EXPIRED,
        "connection limit": REASON_NO_CONNECTIONS,
        "canceled": canceled_reason(session_id),
    }.get(state.termination_reason, f"Session {session_id} was terminated")


def effective_listen_port(requested: int | None, default_client_port: int) -> int:
    """Boundary's rule: a requested port of 0 (or none) means the target's default
    client port from the token, and when that is 0 too an ephemeral port."""
    if requested:
        return int(requested)
    return int(default_client_port or 0)


def should_send_teardown(now: datetime, expiration: datetime) -> bool:
    """Send the worker the cancel command only more than five minutes before expiry."""
    return now < expiration - TEARDOWN_MARGIN


def error_reason(error: BaseException) -> str:
    """The termination reason Boundary prints for a proxy that failed."""
    return f"Error from proxy client: {error}"


@dataclass(frozen=True)
class ProxyResult:
    """How a proxy ended.

    ``reason`` is the proxy's own close reason (Boundary's ``CloseReason``: expired,
    no connections left, inactivity) or the one given to :meth:`ClientProxy.close`;
    empty when it was closed without one or failed. ``error`` is set when it failed.
    ``teardown_sent`` is None when no session-cancel command was attempted, else
    whether the worker took it. ``session_over``: the controller had ended the session
    (canceled, expired, used up), so there is nothing left to cancel.
    """

    reason: str
    error: ProxyError | None
    teardown_sent: bool | None
    connections_left: int
    handshakes: int
    session_over: bool = False

    @property
    def termination_reason(self) -> str:
        """What Boundary prints under "Termination information": the close reason,
        else ``Error from proxy client: <error>``, else ``Unknown``."""
        if self.reason:
            return self.reason
        if self.error is not None:
            return error_reason(self.error)
        return "Unknown"


class ClientProxy:
    """A local listener that proxies every TCP connection to the session's worker.

    ``listen_port`` None or 0 uses the token's ``default_client_port``, else an
    ephemeral port. ``inactive_timeout`` (seconds; None or <= 0 disables it) ends the
    proxy once no connection has been open for that long after the last one closed.
    ``on_connections_left(n)`` is called with each new count the worker reports
    (never for unlimited sessions). ``session_probe`` is an optional coroutine
    function returning the session's status from the controller; it is asked after
    the worker closes a live connection, and a ``canceling`` or ``terminated`` session
    ends the proxy as "no connections left" without waiting for the next connection to
    be refused; it is also asked every ``probe_interval`` seconds (None: never), so a
    cancel ends an idle proxy too. ``teardown=False`` never sends the worker the
    cancel command.
    """

    def __init__(
        self,
        authz: AuthzData,
        *,
        listen_addr: str = "127.0.0.1",
        listen_port: int | None = None,
        inactive_timeout: float | None = None,
        on_connections_left: Callable[[int], None] | None = None,
        session_probe: SessionProbe | None = None,
        teardown: bool = True,
        connect_timeout: float = CONNECT_TIMEOUT,
        probe_interval: float | None = PROBE_INTERVAL,
    ) -> None:
        if not authz.worker_addresses:
            raise ProxyError("no workers found in authorization data")
        self.authz = authz
        self.listen_addr = listen_addr or "127.0.0.1"
        self.listen_port = effective_listen_port(listen_port, authz.default_client_port)
        self.inactive_timeout = (
            inactive_timeout if inactive_timeout and inactive_timeout > 0 else None
        )
        self.on_connections_left = on_connections_left
        self.session_probe = session_probe
        self.probe_interval = probe_interval
        self.teardown = teardown
        self.connect_timeout = connect_timeout
        self.connections_left = authz.connection_limit
        self.host = ""
        self.port = 0
        self._tofu = new_tofu_token()  # never logged
        self._dialer: WorkerDialer | None = None
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self._handshakes = 0
        self._reason = ""
        self._error: ProxyError | None = None
        self._abort_requested = asyncio.Event()
        self._hurry = asyncio.Event()  # a second Ctrl-C: give up on the teardown command
        self._stopping = False
        self._stop = asyncio.Event()
        self._ended: asyncio.Future[ProxyResult] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._probe_task: asyncio.Task[None] | None = None
        self._session_over = False  # the controller ended the session: nothing to cancel
        self._supervisor: asyncio.Task[None] | None = None
        #: connections to the worker made ahead (TCP, TLS, WebSocket upgrade), which the
        #: next local connections take: they then wait only for the proxy handshake
        self._spares: Spares | None = None
        self._single = False  # start_single: one connection, no listener, no spare

    # ------------------------------------------------------------------ properties
    @property
    def session_id(self) -> str:
        return self.authz.session_id

    @property
    def expiration(self) -> datetime:
        return self.authz.expiration

    @property
    def connection_limit(self) -> int:
        return self.authz.connection_limit

    @property
    def address(self) -> str:
        """The listener as ``host:port`` (``[v6]:port``); empty before :meth:`start`."""
        return format_listen_address(self.host, self.port) if self.host else ""

    @property
    def active_connections(self) -> int:
        return len(self._conns)

    @property
    def running(self) -> bool:
        return self._supervisor is not None and not self._supervisor.done()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> tuple[str, int]:
        """Open the listener; returns its ``(host, port)``.

        Raises :class:`ProxyError` when the session has expired, the TLS settings
        cannot be built from the token, or the address cannot be bound.
        """
        loop = asyncio.get_running_loop()
        self._prepare()
        try:
            # a deep accept queue: a burst of local connections (a pool opening, a load
            # test) must not overflow asyncio's default of 100 and see resets
            self._server = await loop.create_server(
                self._accept, self.listen_addr, self.listen_port, backlog=_LISTEN_BACKLOG
            )
        except OSError as exc:
            where = format_listen_address(self.listen_addr, self.listen_port)
            raise ProxyError(
                f"unable to start listening on {where}: {exc.strerror or exc}"
            ) from None
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]
        self._begin()
        self._refill_spare()
        log.debug("proxy for %s listening on %s", self.session_id, self.address)
        return self.host, self.port

    async def start_single(self, side: TcpSide) -> None:
        """Carry exactly one connection, ``side`` (stdin and stdout in ``connect
        -stdio``), without a listener; the proxy ends when that connection does. A
        connection the worker closes with an error (the target cannot be dialed, the
        session is refused) ends the proxy with that error. Raises :class:`ProxyError`
        as :meth:`start` does."""
        self._prepare()
        self._single = True
        self._begin()
        self._spawn_connection(side)

    def _prepare(self) -> None:
        if self._supervisor is not None:
            raise ProxyError("proxy was already started")
        if (self.expiration - datetime.now(UTC)).total_seconds() <= 0:
            raise ProxyError("session has expired")
        try:
            self._dialer = WorkerDialer(self.authz, self.connect_timeout)
        except (ValueError, OSError) as exc:
            raise ProxyError(f"error creating TLS configuration: {exc}") from None

    def _begin(self) -> None:
        loop = asyncio.get_running_loop()
        remaining = (self.expiration - datetime.now(UTC)).total_seconds()
        self._ended = loop.create_future()
        self._timers["expiry"] = loop.call_later(max(0.0, remaining), self._expire)
        self._supervisor = asyncio.ensure_future(self._supervise())
        self._schedule_probe()

    async def wait(self) -> ProxyResult:
        """Wait for the proxy to end (including the session-cancel command)."""
        if self._ended is None:
            raise ProxyError("proxy was not started")
        return await asyncio.shield(self._ended)

    async def close(self, reason: str = "") -> ProxyResult:
        """Stop now: close the listener, drop open connections, then end as usual
        (sending the cancel command when due). The first reason recorded wins."""
        if self._ended is None:
            raise ProxyError("proxy was not started")
        self._request_stop(reason)
        return await self.wait()

    # ------------------------------------------------------------------ stopping
    def _set_reason(self, reason: str) -> None:
        if reason and not self._reason and not self._error:
            self._reason = reason

    def _request_stop(self, reason: str = "", error: ProxyError | None = None) -> None:
        """End the proxy and drop every open connection."""
        if error is not None and not self._reason and self._error is None:
            self._error = error
        self._set_reason(reason)
        self._abort_requested.set()
        self._close_listener()
        self._stop.set()

    def _session_ended(self, reason: str) -> None:
        """The session is over at the controller: end now, dropping what is open (the
        worker closes those connections anyway)."""
        log.debug("session %s: %s", self.session_id, reason)
        self._session_over = True
        if self.connections_left != 0:
            self.connections_left = 0
            if self.on_connections_left is not None and self.connection_limit != -1:
                with contextlib.suppress(Exception):
                    self.on_connections_left(0)
        self._request_stop(reason)

    def _no_more_connections(self) -> None:
        """Close the listener; the proxy ends once the open connections have."""
        self._set_reason(REASON_NO_CONNECTIONS)
        self._close_listener()
        if not self._conns:
            self._stop.set()

    def _close_listener(self) -> None:
        self._stopping = True
        self._drop_spare()
        if self._server is not None:
            self._server.close()
        timer = self._timers.pop("inactive", None)
        if timer is not None:
            timer.cancel()

    def _expire(self) -> None:
        log.debug("session %s expired", self.session_id)
        self._request_stop(REASON_EXPIRED)

    def _inactive(self) -> None:
        if not self._conns:
            log.debug("proxy for %s inactive", self.session_id)
            self._request_stop(REASON_INACTIVE)

    def _set_connections_left(self, left: int) -> None:
        self.connections_left = left
        if self.on_connections_left is not None:
            try:
                self.on_connections_left(left)
            except Exception:  # a caller's bug must not break the proxy
                log.exception("connections-left callback failed")
        if left == 0:
            self._no_more_connections()

    async def _supervise(self) -> None:
        assert self._ended is not None
        teardown: bool | None = None
        try:
            await self._stop.wait()
            self._close_listener()
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            await self._drain_connections()
            if self._probe_task is not None:
                self._probe_task.cancel()
                with contextlib.suppress(BaseException):
                    await self._probe_task
            if self._server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._server.wait_closed(), 5)
            if (
                self.teardown
                and self._error is None
                and not self._session_over
                and should_send_teardown(datetime.now(UTC), self.expiration)
            ):
                teardown = await self._send_teardown()
        finally:
            result = ProxyResult(
                reason=self._reason,
                error=self._error,
                teardown_sent=teardown,
                connections_left=self.connections_left,
                handshakes=self._handshakes,
                session_over=self._session_over,
            )
            if not self._ended.done():
                self._ended.set_result(result)
        log.debug(
            "proxy for %s ended: %s (teardown %s)",
            self.session_id,
            result.termination_reason,
            teardown,
        )

    async def _drain_connections(self) -> None:
        """Wait for the open connections to end; drop them as soon as an abort is asked
        (at once, or later while waiting for the last ones after "no connections left")."""
        while self._conns:
            if self._abort_requested.is_set():
                for task in list(self._conns):
                    task.cancel()
                await asyncio.wait(list(self._conns))
                return
            aborted = asyncio.ensure_future(self._abort_requested.wait())
            try:
                await asyncio.wait([*self._conns, aborted], return_when=asyncio.FIRST_COMPLETED)
            finally:
                aborted.cancel()

    def hurry(self) -> None:
        """Stop waiting for the worker to take the cancel command (the caller falls back
        to the API cancel): what a second Ctrl-C does."""
        self._hurry.set()

    async def _send_teardown(self) -> bool:
        assert self._dialer is not None
        send = asyncio.ensure_future(
            asyncio.wait_for(self._dialer.send_cancel(self._tofu), _TEARDOWN_TIMEOUT)
        )
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            await asyncio.wait([send, hurry], return_when=asyncio.FIRST_COMPLETED)
        finally:
            hurry.cancel()
        if not send.done():
            send.cancel()
            with contextlib.suppress(asyncio.CancelledError, ProxyError, TimeoutError):
                await send
            log.debug("session teardown via worker abandoned")
            return False
        try:
            send.result()
        except (ProxyError, TimeoutError) as exc:
            log.debug("session teardown via worker failed: %s", exc or "timed out")
            return False
        return True

    # ------------------------------------------------------------------ connections
    def _activity_changed(self) -> None:
        """Stop the inactivity timer while a connection is open; start it when the
        last one closes (Boundary's ``activeConns`` handling)."""
        if self.inactive_timeout is None or self._stopping:
            return
        timer = self._timers.pop("inactive", None)
        if timer is not None:
            timer.cancel()
        if not self._conns:
            loop = asyncio.get_running_loop()
            self._timers["inactive"] = loop.call_later(self.inactive_timeout, self._inactive)

    def _accept(self) -> TcpSide:
        """A local client connected: its bytes are held while the worker is dialed."""
        tcp = TcpSide()
        self._spawn_connection(tcp)
        return tcp

    def _spawn_connection(self, tcp: TcpSide) -> None:
        task = asyncio.ensure_future(self._handle(tcp))
        self._conns.add(task)
        self._activity_changed()

    async def _handle(self, tcp: TcpSide) -> None:
        task = asyncio.current_task()
        channel: WsLink | None = None
        try:
            await tcp.connected
            if self._stopping:
                return
            channel, result = await self._connect_and_handshake()
            await self._proxy(channel, result, tcp)
        except asyncio.CancelledError:
            if channel is not None:  # dropped by close()/expiry: tell the worker politely
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(channel.close(1000), 1)
        except ConnectionRefused:
            # The worker will authorize no more connections: the session is canceled,
            # expired or used up. Boundary reports that as no connections left; the
            # controller, when we can ask it, says which.
            log.debug("worker refused a connection for %s", self.session_id)
            reason = await self._ask_controller()
            if reason:
                self._session_ended(reason)
            elif self.connections_left != 0:
                self._set_connections_left(0)
            else:
                self._no_more_connections()
        except ProxyError as exc:
            log.debug("proxy connection failed: %s", exc)
            self._request_stop(error=exc)
        except (ConnectionError, OSError) as exc:  # the local client went away first
            log.debug("local connection lost before relaying: %s", exc)
        except Exception as exc:  # unexpected: end the proxy with a readable error
            log.exception("proxy connection failed")
            self._request_stop(error=ProxyError(f"{type(exc).__name__}: {exc}"))
        finally:
            if channel is not None:
                channel.abort()
            tcp.close()
            self._conns.discard(task)
            self._activity_changed()
            if self._single:
                self._close_listener()
            if self._stopping and not self._conns:
                self._stop.set()

    async def _dial(self) -> WsLink:
        assert self._dialer is not None
        return await self._dialer.open()

    # connections to the worker made ahead
    def _refill_spare(self) -> None:
        """Start making the next spare connections (as many as are wanted)."""
        if self._stopping or self._single or self._dialer is None:
            return
        if self._spares is None:
            self._spares = Spares(self._dialer.open, SPARE_MAX_AGE)
        self._spares.fill()

    def _drop_spare(self) -> None:
        if self._spares is not None:
            self._spares.close()

    async def _take_spare(self) -> WsLink | None:
        """A spare connection if one is (or becomes) usable."""
        if self._spares is None:
            return None
        return await self._spares.take()

    async def _connect_and_handshake(self) -> tuple[WsLink, HandshakeResult]:
        """A worker connection past the proxy handshake: over the spare when there is
        one (a spare the worker dropped meanwhile is replaced by a new connection). The
        next spare is made once this handshake is done, not during it: its TLS handshake
        would compete with this connection's for the CPU."""
        try:
            return await self._connect_and_handshake_now()
        finally:
            self._refill_spare()

    async def _connect_and_handshake_now(self) -> tuple[WsLink, HandshakeResult]:
        assert self._dialer is not None
        spare = await self._take_spare()
        if spare is not None:
            try:
                return spare, await self._dialer.handshake(spare, self._tofu)
            except (SessionInUse, ConnectionRefused):
                spare.abort()
                raise
            except ProxyError as exc:
                spare.abort()
                log.debug("spare connection unusable (%s); dialing anew", exc)
            except BaseException:
                spare.abort()
                raise
        channel = await self._dial()
        try:
            return channel, await self._dialer.handshake(channel, self._tofu)
        except BaseException:
            channel.abort()
            raise

    async def _proxy(self, channel: WsLink, result: HandshakeResult, tcp: TcpSide) -> None:
        self._handshakes += 1
        if result.connections_left != -1:
            self._set_connections_left(result.connections_left)
        outcome = await channel.relay(tcp)
        log.debug(
            "connection closed by %s (close code %s), %d bytes up, %d down",
            outcome.ended_by,
            outcome.ws_close_code,
            outcome.to_ws,
            outcome.to_tcp,
        )
        if outcome.ended_by == "tcp":
            return  # the local client hung up: nothing to learn about the session
        if self._single and outcome.ws_close_code != 1000:
            # one connection is all there is: why the worker ended it is the result
            if outcome.ws_close_code is None:
                error = ProxyError("the connection to the worker was lost")
            else:
                why = outcome.ws_close_reason or f"close code {outcome.ws_close_code}"
                error = ProxyError(f"the worker closed the connection: {why}")
            self._request_stop(error=error)
        if outcome.ws_close_reason == CANCELED_CLOSE_REASON:
            # bconnect's worker names the cause; Boundary's does not, and its client
            # learns of the cancel when the next connection is refused.
            self._session_ended(canceled_reason(self.session_id))
        elif self.session_probe is not None:
            # the worker ended it (or the link broke): ask the controller why
            self._start_probe()

    # ------------------------------------------------------------------ session probe
    def _schedule_probe(self) -> None:
        if self.session_probe is None or not self.probe_interval or self._stopping:
            return
        loop = asyncio.get_running_loop()
        self._timers["probe"] = loop.call_later(self.probe_interval, self._probe_due)

    def _probe_due(self) -> None:
        self._timers.pop("probe", None)
        self._start_probe()
        self._schedule_probe()

    def _start_probe(self) -> None:
        if self._stopping or (self._probe_task is not None and not self._probe_task.done()):
            return
        self._probe_task = asyncio.ensure_future(self._probe())

    async def _probe(self) -> None:
        reason = await self._ask_controller()
        if reason and not self._stopping:
            self._session_ended(reason)

    async def _ask_controller(self) -> str:
        """Why the session is over, by the controller ("" if it is not, or cannot say)."""
        if self.session_probe is None:
            return ""
        try:
            state = await self.session_probe()
        except Exception as exc:
            log.debug("session status probe failed: %s", exc)
            return ""
        if isinstance(state, str):
            state = SessionStatus(state)
        return ended_reason(self.session_id, state) if state is not None else ""
