"""One proxied connection, from the WebSocket upgrade to the close report (docs/protocol.md
§3.3–§3.8, docs/cluster-api.md).

After mutual TLS: accept ``GET /v1/proxy``, read the ``ClientHandshake``, cancel the
session or authorize one more connection at the controller, answer with the
``HandshakeResult``, dial the endpoint, report ``:connected``, relay until either side
ends (or the worker ends it: cancel, expiry, shutdown), and report ``:closed`` with the
bytes and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bconnect.clusterwire import ClosedReason, RefusalKind
from bconnect.core.handshake import (
    CANCELED_CLOSE_REASON,
    NO_CONNECTIONS_CLOSE_REASON,
    ClientHandshake,
    CloseCode,
    HandshakeError,
    decode_client_handshake,
    encode_handshake_result,
    is_valid_tofu_token,
)
from bconnect.core.wslink import ChannelError, Held, RelayResult, TcpSide, WsLink
from bconnect.hostport import join_host_port
from bconnect.ids import new_id
from bconnect.worker.cluster import (
    ClusterClient,
    ClusterError,
    ClusterRefused,
    ConnectionGrant,
    SessionInfo,
)
from bconnect.worker.connections import ConnectionRegistry, LiveConnection
from bconnect.worker.reports import ConnectionReports
from bconnect.worker.sessions import SessionCache

__all__ = ["ConnectionProxy", "EndpointError", "close_reason_for", "parse_endpoint"]

log = logging.getLogger(__name__)

#: What the client reads in the close frame when the worker ends a connection itself.
_STOP_MESSAGES: dict[str, str] = {  # by stop reason (a ClosedReason's value)
    ClosedReason.CANCELED: CANCELED_CLOSE_REASON,
    ClosedReason.TIMED_OUT: "session expired",
    ClosedReason.SYSTEM_ERROR: "worker shutting down",
}


class EndpointError(ValueError):
    """A session endpoint the worker cannot dial (not ``tcp://host:port``)."""


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``tcp://host:port`` (IPv6 bracketed) → ``(host, port)``."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise EndpointError(f"invalid endpoint {endpoint!r}") from None
    if parts.scheme != "tcp" or not parts.hostname or port is None or port == 0:
        raise EndpointError(f"invalid endpoint {endpoint!r}")
    return parts.hostname, port


def close_reason_for(live: LiveConnection, result: RelayResult | None) -> str:
    """Why a relayed connection ended, as the controller records it."""
    if live.stop_reason is not None:
        return live.stop_reason
    if result is None:
        return ClosedReason.SYSTEM_ERROR
    if live.endpoint_failed:
        return ClosedReason.NETWORK_ERROR
    if result.ended_by in ("ws", "tcp"):
        # the client hung up, or the endpoint ended the conversation normally (EOF)
        return ClosedReason.CLOSED_BY_END_USER
    return ClosedReason.SYSTEM_ERROR


def _address(info: object) -> tuple[str, int]:
    """``(host, port)`` from a ``getpeername()`` answer (IPv4 or IPv6)."""
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return "", 0


@dataclass
class _Accepted:
    """A connection past the WebSocket handshake, ready to be authorized."""

    session: SessionInfo
    channel: WsLink
    handshake: ClientHandshake
    client: tuple[str, int]


class ConnectionProxy:
    """Serves proxy connections for a worker: everything after mutual TLS."""

    def __init__(
        self,
        cluster: ClusterClient,
        registry: ConnectionRegistry,
        reports: ConnectionReports,
        *,
        sessions: SessionCache | None = None,
        handshake_timeout: float = 10.0,
        dial_timeout: float = 10.0,
        idle_timeout: float = 0.0,
    ) -> None:
        self.cluster = cluster
        self.registry = registry
        self.reports = reports
        self.sessions = sessions
        self.handshake_timeout = handshake_timeout
        self.dial_timeout = dial_timeout
        #: seconds without a byte either way after which a connection is closed (0: never)
        self.idle_timeout = idle_timeout
        #: set when the worker shuts down: connections authorized from now on end at once
        self.stopping = False

    async def serve(self, session: SessionInfo, held: Held) -> None:
        """Handle one TLS connection whose client presented ``session``'s certificate."""
        assert held.transport is not None
        client = _address(held.transport.get_extra_info("peername"))
        try:
            accepted = await asyncio.wait_for(
                self._accept(session, held, client), self.handshake_timeout
            )
        except (TimeoutError, ChannelError, ConnectionError, OSError) as exc:
            log.debug("session %s: no proxy handshake from %s: %s", session.session_id, client, exc)
            held.transport.abort()
            return
        if accepted is None:
            return
        if accepted.handshake.cancel:
            await self._cancel_session(accepted)
            return
        grant = await self._authorize(accepted)
        if grant is None:
            return
        await self._proxy(accepted, grant)

    # ---------------------------------------------------------------- handshake
    async def _accept(
        self, session: SessionInfo, held: Held, client: tuple[str, int]
    ) -> _Accepted | None:
        channel = await WsLink.server(held, self.handshake_timeout)
        try:
            message = await channel.recv_message()
        except BaseException:
            channel.abort()
            raise
        try:
            handshake = decode_client_handshake(message)
        except HandshakeError:
            log.debug("session %s: invalid handshake from %s", session.session_id, client)
            await channel.close(CloseCode.POLICY_VIOLATION, "invalid handshake received")
            return None
        if not is_valid_tofu_token(handshake.tofu_token):
            log.debug("session %s: invalid tofu token from %s", session.session_id, client)
            await channel.close(CloseCode.UNSUPPORTED_DATA, "invalid tofu token")
            return None
        return _Accepted(session, channel, handshake, client)

    async def _cancel_session(self, accepted: _Accepted) -> None:
        session_id = accepted.session.session_id
        try:
            await self.cluster.cancel_session(session_id, accepted.handshake.tofu_token)
        except ClusterError as exc:
            log.info("session %s: cancel refused: %s", session_id, exc)
            if isinstance(exc, ClusterRefused) and exc.kind == RefusalKind.TOFU_MISMATCH:
                await accepted.channel.close(CloseCode.POLICY_VIOLATION, "tofu token not allowed")
            else:
                await accepted.channel.close(CloseCode.INTERNAL_ERROR, "unable to cancel session")
            return
        log.info("session %s canceled by its client", session_id)
        self.registry.stop_sessions([session_id], ClosedReason.CANCELED)
        if self.sessions is not None:
            self.sessions.forget([session_id])
        await accepted.channel.close(CloseCode.NORMAL_CLOSURE, CANCELED_CLOSE_REASON)

    async def _authorize(self, accepted: _Accepted) -> ConnectionGrant | None:
        session_id = accepted.session.session_id
        tofu_token = accepted.handshake.tofu_token
        endpoint = self.sessions.admits(session_id, tofu_token) if self.sessions else None
        if endpoint is not None and self.reports.batching is True and not self.stopping:
            # no connection limit, and the controller took this tofu token before: the
            # connection starts now and the controller confirms it while bytes flow
            return ConnectionGrant(
                connection_id=new_id("sc"),
                connections_left=-1,
                connection_limit=-1,
                expiration=accepted.session.expiration,
                endpoint=endpoint,
                admitted_here=True,
            )
        try:
            grant = await self.cluster.authorize_connection(session_id, tofu_token)
        except ClusterError as exc:
            log.info("session %s: connection from %s refused: %s", session_id, accepted.client, exc)
            if isinstance(exc, ClusterRefused) and exc.kind == RefusalKind.TOFU_MISMATCH:
                await accepted.channel.close(CloseCode.POLICY_VIOLATION, "tofu token not allowed")
            else:
                await accepted.channel.close(CloseCode.INTERNAL_ERROR, NO_CONNECTIONS_CLOSE_REASON)
            return None
        log.debug("session %s: connection %s authorized", session_id, grant.connection_id)
        if grant.connection_limit < 0 and self.sessions is not None:
            self.sessions.admit_from_now_on(session_id, tofu_token, grant.endpoint)
        return grant

    # ---------------------------------------------------------------- proxying
    async def _proxy(self, accepted: _Accepted, grant: ConnectionGrant) -> None:
        live = LiveConnection(grant.connection_id, accepted.session.session_id, grant.expiration)
        live.known = not grant.admitted_here
        self.registry.add(live)
        if self.stopping:
            live.stop(ClosedReason.SYSTEM_ERROR)
        reason: str = ClosedReason.SYSTEM_ERROR
        try:
            reason = await self._run(accepted, grant, live)
        finally:
            self.registry.remove(live)
            accepted.channel.abort()
            if not live.known:  # admitted here: the controller hears of it first
                if live.connected_report is None:  # it ended before relaying
                    self._report_connected(accepted, live, None)
                assert live.connected_report is not None
                await asyncio.wait([live.connected_report])
            if live.known:  # (one the controller refused has nothing to close)
                self.reports.closed(live.connection_id, live.bytes_up, live.bytes_down, reason)
            log.info(
                "connection %s closed (%s): %d bytes up, %d bytes down",
                live.connection_id,
                reason,
                live.bytes_up,
                live.bytes_down,
            )

    async def _run(self, accepted: _Accepted, grant: ConnectionGrant, live: LiveConnection) -> str:
        """Everything between authorization and the close report; returns the reason."""
        channel = accepted.channel
        result = encode_handshake_result(
            grant.expiration, grant.connection_limit, grant.connections_left
        )
        try:
            await channel.send(result)
        except (ChannelError, ConnectionError, OSError):
            await channel.close(CloseCode.PROTOCOL_ERROR, "unable to send handshake result")
            return ClosedReason.NETWORK_ERROR
        if live.stopping:  # canceled (or the worker stopping) while authorizing
            await self._close_stopped(channel, live)
            return live.stop_reason or ClosedReason.CANCELED
        try:
            host, port = parse_endpoint(grant.endpoint or accepted.session.endpoint)
        except EndpointError as exc:
            log.warning("connection %s: %s", live.connection_id, exc)
            await channel.close(CloseCode.PROTOCOL_ERROR, "unable to parse endpoint")
            return ClosedReason.SYSTEM_ERROR
        if accepted.session.ssh is not None:
            return await self._run_ssh(accepted, live, host, port)
        loop = asyncio.get_running_loop()
        try:
            _, endpoint = await asyncio.wait_for(
                loop.create_connection(TcpSide, host, port), self.dial_timeout
            )
        except (TimeoutError, OSError) as exc:
            where = join_host_port(host, port)
            log.info("connection %s: cannot dial %s: %s", live.connection_id, where, exc)
            await channel.close(CloseCode.PROTOCOL_SETUP_ERROR, "unable to dial endpoint")
            return ClosedReason.NETWORK_ERROR
        try:
            return await self._connected(accepted, live, endpoint)
        finally:
            endpoint.close()

    async def _run_ssh(
        self, accepted: _Accepted, live: LiveConnection, host: str, port: int
    ) -> str:
        """An ssh target: the client's bytes go to this worker's SSH server (one end of a
        socket pair), which logs in to ``host:port`` with the injected credential."""
        from bconnect.worker import sshsession  # asyncssh: loaded for ssh targets only

        session = accepted.session
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        try:
            _, tcp = await loop.connect_accepted_socket(TcpSide, ours)
        except OSError:
            ours.close()
            theirs.close()
            raise
        server = asyncio.ensure_future(
            sshsession.serve(theirs, session, host, port, self.cluster, live.connection_id)
        )
        try:
            reason = await self._connected(accepted, live, tcp, endpoint=(host, port))
        finally:
            tcp.close()
        try:
            ended = await asyncio.wait_for(asyncio.shield(server), 5.0)
        except (TimeoutError, ConnectionError):  # the client went away mid-conversation
            server.cancel()
            return reason
        except Exception as exc:  # noqa: BLE001 - ends with the connection
            log.warning("connection %s: ssh relay failed: %r", live.connection_id, exc)
            return reason
        if ended is not None and live.stop_reason is None:
            if ended.recording:
                return ClosedReason.SYSTEM_ERROR
            return ClosedReason.NETWORK_ERROR
        return reason

    async def _connected(
        self,
        accepted: _Accepted,
        live: LiveConnection,
        tcp: TcpSide,
        endpoint: tuple[str, int] | None = None,
    ) -> str:
        channel = accepted.channel
        assert tcp.transport is not None
        if endpoint is None:
            endpoint = _address(tcp.transport.get_extra_info("peername"))
        # The report travels while bytes already flow: the client's first byte does not
        # wait for the controller. Should the controller refuse it, the connection ends
        # as it would have before relaying (1011 "unable to establish proxy").
        self._report_connected(accepted, live, endpoint)
        log.debug(
            "connection %s: relaying %s <-> %s", live.connection_id, accepted.client, endpoint
        )
        result = await self._relay_until_stopped(channel, tcp, live)
        return close_reason_for(live, result)

    def _report_connected(
        self, accepted: _Accepted, live: LiveConnection, endpoint: tuple[str, int] | None
    ) -> None:
        """Start the ``:connected`` report (for a connection admitted here: the
        controller's confirmation, which records it connected) as ``live.connected_report``."""
        report: asyncio.Future[None]
        if live.known:
            assert endpoint is not None
            report = self.reports.connected(live.connection_id, accepted.client, endpoint)
        else:
            report = self.reports.admitted(
                live.connection_id,
                live.session_id,
                accepted.handshake.tofu_token,
                accepted.client,
                endpoint,
            )
        live.connected_report = report
        report.add_done_callback(lambda done: self._connected_answered(live, done))

    def _connected_answered(self, live: LiveConnection, report: asyncio.Future[Any]) -> None:
        if report.cancelled():
            return
        exc = report.exception()
        if exc is None:
            live.known = True
            return
        if not live.known and self.sessions is not None:
            self.sessions.forget([live.session_id])  # the next one asks the controller
        if isinstance(exc, ClusterRefused) and exc.kind == RefusalKind.SESSION_NOT_ACTIVE:
            log.info("connection %s: session %s is over", live.connection_id, live.session_id)
            live.stop(ClosedReason.CANCELED)
            return
        if isinstance(exc, ClusterRefused) and exc.kind == RefusalKind.SESSION_EXPIRED:
            live.stop(ClosedReason.TIMED_OUT)
            return
        if isinstance(exc, ClusterError):
            log.warning("connection %s: controller refused connect: %s", live.connection_id, exc)
        else:
            log.warning("connection %s: connected report failed: %r", live.connection_id, exc)
        live.stop(
            ClosedReason.SYSTEM_ERROR, "unable to establish proxy", code=CloseCode.INTERNAL_ERROR
        )

    async def _relay_until_stopped(
        self, channel: WsLink, tcp: TcpSide, live: LiveConnection
    ) -> RelayResult | None:
        """Relay until either side ends, or until the worker stops the connection (then
        close the WebSocket with 1000 and return ``None``)."""
        relaying = asyncio.ensure_future(channel.relay(tcp, result=live.traffic))
        stopped = asyncio.ensure_future(live.wait_stopped())
        idle = asyncio.ensure_future(self._stop_when_idle(live)) if self.idle_timeout else None
        try:
            await asyncio.wait(
                {relaying, stopped},
                timeout=max(0.0, live.seconds_left()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopped.cancel()
            if idle is not None:
                idle.cancel()
            if not relaying.done():
                relaying.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await relaying
        if relaying.done() and not relaying.cancelled():
            error = relaying.exception()
            if error is None:
                result = relaying.result()
                live.endpoint_failed = result.ended_by == "tcp" and result.tcp_failed
                return result
            log.warning("connection %s: relay failed: %r", live.connection_id, error)
            await channel.close(CloseCode.INTERNAL_ERROR, "relay failed")
            return None
        if live.stop_reason is None:  # the session's expiration passed
            live.stop(ClosedReason.TIMED_OUT)
        tcp.abort()
        await self._close_stopped(channel, live)
        return None

    async def _stop_when_idle(self, live: LiveConnection) -> None:
        """Stop ``live`` once no byte has crossed it for ``idle_timeout`` seconds."""
        while (left := live.idle_seconds_left(self.idle_timeout, time.monotonic())) > 0:
            await asyncio.sleep(left)
        log.info("connection %s: idle for %gs, closing", live.connection_id, self.idle_timeout)
        live.stop(ClosedReason.TIMED_OUT, "connection idle")

    @staticmethod
    async def _close_stopped(channel: WsLink, live: LiveConnection) -> None:
        """Tell the client the worker ended the connection (1000: the session is over;
        1011: the controller refused it)."""
        message = live.stop_message or _STOP_MESSAGES.get(
            live.stop_reason or "", "connection closed"
        )
        await channel.close(live.stop_code, message)
