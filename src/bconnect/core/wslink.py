"""The proxy WebSocket on picows, and the relay between it and a TCP connection
(docs/protocol.md §3).

Both ends of the proxy use it: the client proxy (``WsLink.client``) and the worker
(``WsLink.server``), each on a TLS transport it set up itself. picows parses and builds
frames in C (client frames masked with SIMD) straight from the transport's callbacks;
the relay moves each frame's payload to the TCP side and each TCP read into a frame with
no task, no ``StreamReader`` and no queue between them. Flow control is the transports':
a side whose write buffer passes its high-water mark pauses reading on the other side
until it drains, so a receiver that stops reading stops the sender and memory stays
flat.

TCP bytes travel as binary messages of at most 16 KiB, and of up to 256 KiB (one TCP
read) once a connection shows a bulk transfer (Boundary's clients send up to 32 KiB, and
read any size: ``websocket.NetConn`` has no read limit); frames up to 4 MiB are
accepted, a larger one is closed with 1009. Messages of one event-loop turn go to the TCP
side in one write, and a bulk message straight from picows' buffer. There is no
half-close: when either side ends, the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from asyncio import selector_events
from collections import deque
from dataclasses import dataclass
from typing import Any

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]  # not in its stubs

__all__ = [
    "CLOSE_WAIT",
    "MAX_INCOMING",
    "MAX_MESSAGE",
    "PROXY_PATH",
    "SUBPROTOCOL",
    "ChannelClosed",
    "ChannelError",
    "Held",
    "RelayResult",
    "TcpSide",
    "WsLink",
]

log = logging.getLogger(__name__)
# picows logs each connection at info level and frames at a debug level; frames carry
# tofu tokens and user data, so it gets a logger of its own that debug logging never
# reaches.
_wire_log = logging.getLogger("bconnect.wire")
_wire_log.setLevel(logging.WARNING)
_wire_log.propagate = False

SUBPROTOCOL = "boundary-tcp-proxy-v1"
PROXY_PATH = "/v1/proxy"
MAX_MESSAGE = 16 * 1024  # what we send per binary message
MAX_INCOMING = 4 * 1024 * 1024  # largest frame we accept
CLOSE_WAIT = 2.0  # seconds a closing side waits for the peer's close frame
#: picows' first read buffer: a message and a header fit without growing it
_WS_BUFFER = 20 * 1024
#: what one read may put into it over asyncio's TLS, which fills any buffer offered while
#: it has data (aiofastnet's reads bring one TLS record): picows doubles its buffer
#: whenever a read fills it and never gives memory back, so an uncapped buffer would grow
#: with every burst. A connection whose reads keep filling what is offered (a bulk
#: transfer) is offered more, for fewer, larger reads.
_WS_READ = 4 * MAX_MESSAGE
_WS_BULK_READ = 256 * 1024
_FULL_READS_TO_GROW = 8
#: one TCP read: up to two messages, and once a connection's reads keep filling that
#: (``_FULL_READS_TO_GROW`` in a row: a bulk transfer) up to ``_BULK_TCP_READ``, sent as
#: one message: a quarter-megabyte frame costs the TLS layer and the peer one call
#: where 16 KiB messages cost sixteen (and small messages keep a quiet connection's
#: buffers small, at both ends). Reads go into one buffer shared by every connection of
#: the process: picows copies a payload into its frame (or the TLS layer encrypts it)
#: before ``send`` returns, and nothing else runs between a read and its
#: ``buffer_updated``.
_TCP_READ = 2 * MAX_MESSAGE
_BULK_TCP_READ = 256 * 1024
_shared_read = memoryview(bytearray(_BULK_TCP_READ))
#: a transport's write buffer high/low-water marks (bytes) before the other side pauses
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
#: bytes a Held connection keeps before it stops reading
_HELD_MAX = 64 * 1024
#: a message at least this large goes to the TCP side on its own, straight from picows'
#: read buffer; smaller ones are gathered for one write at the end of the loop's turn
_DIRECT_WRITE = 64 * 1024
#: transports whose ``write`` copies what it cannot send at once, so a view of picows'
#: read buffer may be handed to them: asyncio's socket transport before Python 3.12
#: (from 3.12 it keeps the object it is given, as uvloop's transports do; a view would
#: change under them as picows reuses its buffer, so the payload is copied first)
_WRITES_COPY: tuple[type, ...] = (
    # private in asyncio (and so not in its stubs): the class its socket transports are
    (selector_events._SelectorSocketTransport,)  # type: ignore[attr-defined]
    if sys.version_info < (3, 12)
    else ()
)


#: frames whose payload is the peer's data (a relay needs no message boundaries)
_DATA_FRAMES = (WSMsgType.BINARY, WSMsgType.CONTINUATION, WSMsgType.TEXT)


class ChannelError(Exception):
    """The WebSocket failed: bad handshake, protocol error, or the peer went away."""


class ChannelClosed(ChannelError):
    """The peer closed the WebSocket (``code``/``reason`` from its close frame)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"websocket closed: {code} {reason}".strip())
        self.code = code
        self.reason = reason


@dataclass
class RelayResult:
    """What crossed a relay, and how it ended. The counters move while it runs."""

    to_tcp: int = 0  # bytes written to the TCP side (from the WebSocket)
    to_ws: int = 0  # bytes sent on the WebSocket (from the TCP side)
    ended_by: str = ""  # "tcp" (the TCP side closed), "ws" (the peer closed), "error"
    ws_close_code: int | None = None
    ws_close_reason: str = ""
    error: str = ""
    tcp_failed: bool = False  # the TCP side broke (reset, ...) rather than closed
    #: ``time.monotonic()`` of the last bytes moved either way
    last_activity: float = 0.0


class Held(asyncio.Protocol):
    """Holds a connection's incoming bytes until its real protocol takes it over
    (``hand_over``): a TLS transport between its handshake and the WebSocket, or a
    local client's connection while the worker is dialed."""

    def __init__(self, *, fills_buffers: bool = False) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.size = 0
        self.eof = False
        self.lost: asyncio.Future[None] | None = None
        self.error: Exception | None = None
        #: the transport fills any buffer its protocol offers (asyncio's TLS), so a
        #: WebSocket on it caps what it offers (``_CappedWSProtocol``)
        self.fills_buffers = fills_buffers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's transport, or aiofastnet's (not an asyncio.Transport subclass)
        self.transport = transport  # type: ignore[assignment]
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        # kept; reading stops only once a lot waits (a TLS transport may hold decrypted
        # bytes that a resume does not deliver until more arrive, so no early pause)
        self.pending.append(data)
        self.size += len(data)
        if self.size > _HELD_MAX and self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        return True  # keep the transport: what was sent before the EOF is still relayed

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = exc
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)

    @property
    def closed(self) -> bool:
        return self.lost is not None and self.lost.done()

    def hand_over(self, protocol: asyncio.BaseProtocol) -> None:
        """Give the transport to ``protocol``: ``connection_made``, then what was held
        (and an EOF that came), then reading resumes."""
        transport = self.transport
        assert transport is not None
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        for chunk in self.pending:
            feed(protocol, chunk)
        self.pending.clear()
        if (
            self.eof
            and isinstance(protocol, asyncio.Protocol | asyncio.BufferedProtocol)
            and not protocol.eof_received()
        ):
            transport.close()
            return
        if self.closed:
            protocol.connection_lost(self.error)
            return
        with contextlib.suppress(Exception):
            transport.resume_reading()


def feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Deliver ``data`` to a protocol as its transport would."""
    if isinstance(protocol, asyncio.BufferedProtocol):
        view = memoryview(data)
        while view:
            buf = memoryview(protocol.get_buffer(len(view)))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            protocol.buffer_updated(n)
            view = view[n:]
    elif isinstance(protocol, asyncio.Protocol):
        protocol.data_received(data)


def _send_messages(ws: WSTransport, data: memoryview) -> None:
    """``data`` as binary messages of at most MAX_MESSAGE each (one, when empty)."""
    if len(data) <= MAX_MESSAGE:
        ws.send(WSMsgType.BINARY, data)
        return
    for start in range(0, len(data), MAX_MESSAGE):
        ws.send(WSMsgType.BINARY, data[start : start + MAX_MESSAGE])


class _ReadSize:
    """How much one read of a connection may take: ``small`` until reads keep filling
    what was offered (``_FULL_READS_TO_GROW`` in a row: a bulk transfer), then ``bulk``."""

    __slots__ = ("_full", "bulk", "size")

    def __init__(self, small: int, bulk: int) -> None:
        self.size = small
        self.bulk = bulk
        self._full = 0

    def filled(self, nbytes: int, offered: int) -> None:
        """A read brought ``nbytes`` of the ``offered``."""
        if nbytes < offered:
            self._full = 0
            return
        self._full += 1
        if self._full >= _FULL_READS_TO_GROW:
            self.size = self.bulk


class TcpSide(asyncio.BufferedProtocol):
    """The plain TCP end of a relay (the local client, or the worker's endpoint).

    Until ``attach`` it keeps what arrives; once attached each read becomes WebSocket
    messages at once."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.writes_copy = False
        self.relay: _Relay | None = None
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending: list[bytes] = []
        self._eof = False
        self._lost: tuple[Exception | None] | None = None

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        #: ``write`` may be given a view of memory that is reused once it returns
        self.writes_copy = type(transport) in _WRITES_COPY
        transport.set_write_buffer_limits(_HIGH_WATER, _LOW_WATER)
        if not self.connected.done():
            self.connected.set_result(None)

    _reads: _ReadSize | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._reads is None:
            self._reads = _ReadSize(_TCP_READ, _BULK_TCP_READ)
        return _shared_read[: self._reads.size]

    def buffer_updated(self, nbytes: int) -> None:
        assert self._reads is not None
        self._reads.filled(nbytes, self._reads.size)
        self.received(_shared_read[:nbytes])

    def received(self, data: memoryview) -> None:
        """Bytes read from this side (``data`` may be reused once this returns)."""
        relay = self.relay
        if relay is not None:
            relay.from_tcp(data)
        else:
            self._pending.append(bytes(data))
            if self.transport is not None:
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        if self.relay is not None:
            self.relay.tcp_ended(None)
        else:
            self._eof = True
        return True  # the relay closes the transport when it ends

    def connection_lost(self, exc: Exception | None) -> None:
        if self.relay is not None:
            self.relay.tcp_ended(exc)
        else:
            self._lost = (exc,)
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("connection lost"))

    def pause_writing(self) -> None:
        if self.relay is not None:
            self.relay.pause_ws_reading()

    def resume_writing(self) -> None:
        if self.relay is not None:
            self.relay.resume_ws_reading()

    def attach(self, relay: _Relay) -> None:
        """Start relaying: what was held first, then reads as they come."""
        self.relay = relay
        for chunk in self._pending:
            relay.from_tcp(memoryview(chunk))
        self._pending.clear()
        if self._lost is not None:
            relay.tcp_ended(self._lost[0])
        elif self._eof:
            relay.tcp_ended(None)
        elif self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _Relay:
    """Moves bytes between one WsLink and one TcpSide until either ends."""

    def __init__(self, link: WsLink, tcp: TcpSide, result: RelayResult) -> None:
        self.link = link
        self.tcp = tcp
        self.result = result
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[RelayResult] = self._loop.create_future()
        self._ws_paused = False
        self._batch: bytearray | None = None

    # TCP → WebSocket
    def from_tcp(self, data: memoryview) -> None:
        ws = self.link.transport
        if self.done.done() or ws is None:
            return
        if len(data) > _TCP_READ:  # a bulk read: one message
            ws.send(WSMsgType.BINARY, data)
        else:
            _send_messages(ws, data)
        self.result.to_ws += len(data)
        self.result.last_activity = time.monotonic()

    # WebSocket → TCP
    def from_ws(self, frame: WSFrame) -> None:
        transport = self.tcp.transport
        if self.done.done() or transport is None:
            return
        if transport.is_closing():
            self.finish("tcp")
            return
        # the payload is picows' read buffer, reused once this returns
        view = frame.get_payload_as_memoryview()
        if len(view) >= _DIRECT_WRITE:  # a bulk message: on its own, after what came first
            self.flush()
            transport.write(view if self.tcp.writes_copy else bytes(view))
            self.result.to_tcp += len(view)
            self.result.last_activity = time.monotonic()
        elif self._batch is None:
            self._batch = bytearray(view)
            self._loop.call_soon(self.flush)
        else:
            self._batch += view

    def flush(self) -> None:
        """Write the gathered messages in one write (the buffer is the transport's from
        now on: a new one is made for the next)."""
        data, self._batch = self._batch, None
        if data is None:
            return
        transport = self.tcp.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            self.result.to_tcp += len(data)
        self.result.last_activity = time.monotonic()

    # flow control
    def pause_ws_reading(self) -> None:
        ws = self.link.transport
        if ws is not None and not self._ws_paused:
            self._ws_paused = True
            with contextlib.suppress(Exception):
                ws.underlying_transport.pause_reading()

    def resume_ws_reading(self) -> None:
        ws = self.link.transport
        if ws is not None and self._ws_paused:
            self._ws_paused = False
            with contextlib.suppress(Exception):
                ws.underlying_transport.resume_reading()

    def pause_tcp_reading(self) -> None:
        if self.tcp.transport is not None:
            with contextlib.suppress(Exception):
                self.tcp.transport.pause_reading()

    def resume_tcp_reading(self) -> None:
        if self.tcp.transport is not None:
            with contextlib.suppress(Exception):
                self.tcp.transport.resume_reading()

    # endings
    def tcp_ended(self, exc: Exception | None) -> None:
        if exc is not None:
            self.result.tcp_failed = True
            self.result.error = str(exc) or type(exc).__name__
        self.finish("tcp")

    def ws_closed(self, code: int | None, reason: str) -> None:
        self.result.ws_close_code = code
        self.result.ws_close_reason = reason
        self.finish("ws")

    def finish(self, ended_by: str) -> None:
        if self.done.done():
            return
        self.flush()
        self.result.ended_by = self.result.ended_by or ended_by
        self.link.active = None
        self.tcp.relay = None
        self.done.set_result(self.result)


def _options(timeout: float, headers: dict[str, str] | None) -> tuple[Any, ...]:
    """WSProtocol's arguments after its listener factory, the same for both ends: our
    quiet logger, no disconnect on a callback's exception (ours to handle), the upgrade
    ``timeout``, no automatic pings but answers to the peer's, 4 MiB frames at most, the
    extra upgrade ``headers`` (client side) and the first read buffer."""
    return (
        _wire_log,
        False,
        timeout,
        False,
        10.0,
        10.0,
        WSAutoPingStrategy.PING_WHEN_IDLE,
        True,
        MAX_INCOMING,
        headers,
        _WS_BUFFER,
    )


class _CappedWSProtocol(WSProtocol):  # type: ignore[misc]  # picows' class is untyped
    """picows' protocol, offering at most ``_WS_READ`` bytes a read until reads show a
    bulk transfer (it still grows its buffer whenever a frame needs more): for a
    transport that fills any buffer offered (``Held.fills_buffers``)."""

    _reads: _ReadSize | None = None
    _offered = 0

    def get_buffer(self, size_hint: int) -> memoryview:
        if self._reads is None:
            self._reads = _ReadSize(_WS_READ, _WS_BULK_READ)
        view: memoryview = super().get_buffer(size_hint)
        if len(view) > self._reads.size:
            view = view[: self._reads.size]
        self._offered = len(view)
        return view

    def buffer_updated(self, nbytes: int) -> None:
        if self._reads is not None:
            self._reads.filled(nbytes, self._offered)
        super().buffer_updated(nbytes)


def _protocol_class(held: Held) -> type[WSProtocol]:
    """picows' own protocol (no Python between a read and its frames), or the capped
    one where the transport fills what it is offered."""
    return _CappedWSProtocol if held.fills_buffers else WSProtocol


class WsLink(WSListener):
    """One proxy WebSocket: whole messages for the proxy handshake, then ``relay``."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: WSTransport | None = None
        self.protocol: WSProtocol | None = None
        self.active: _Relay | None = None
        self._messages: deque[bytes] = deque()
        self._parts: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Event = asyncio.Event()
        self._writable.set()
        self.disconnected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_rcvd: tuple[int | None, str] | None = None
        self.close_sent = False

    # ---------------------------------------------------------------- handshakes
    @classmethod
    async def client(cls, held: Held, host: str, timeout: float) -> WsLink:
        """Upgrade a TLS connection (its bytes held by ``held``) to the proxy WebSocket
        (``GET /v1/proxy``, our subprotocol, no compression); checks the worker agreed
        to the subprotocol. ``host`` is the Host header."""
        link = cls()
        protocol = _protocol_class(held)(
            host,
            PROXY_PATH,
            True,
            lambda: link,
            *_options(timeout, {"Sec-WebSocket-Protocol": SUBPROTOCOL}),
        )
        await link._upgrade(protocol, held, "websocket upgrade refused")
        if link.transport is None:  # the connection went away during the upgrade
            raise ChannelError("connection lost during the websocket upgrade")
        agreed = link.transport.response.headers.get("Sec-WebSocket-Protocol", "")
        if agreed.strip() != SUBPROTOCOL:
            link.abort()
            raise ChannelError("worker did not agree to the boundary-tcp-proxy-v1 subprotocol")
        return link

    @classmethod
    async def server(cls, held: Held, timeout: float) -> WsLink:
        """Answer the client's upgrade on a TLS connection held by ``held``; anything
        but ``GET /v1/proxy`` with our subprotocol is refused with an HTTP error and
        ChannelError."""
        link = cls()
        refused: list[str] = []

        def answer(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
            path = request.path.decode("latin-1").split("?", 1)[0]
            offered = request.headers.get("Sec-WebSocket-Protocol", "")
            if path != PROXY_PATH:
                refused.append(path)
                response = WSUpgradeResponse.create_error_response(404, b"Not Found\n")
                return WSUpgradeResponseWithListener(response, None)
            if SUBPROTOCOL not in (p.strip() for p in offered.split(",")):
                refused.append(path)
                response = WSUpgradeResponse.create_error_response(
                    400, b"boundary-tcp-proxy-v1 subprotocol required\n"
                )
                return WSUpgradeResponseWithListener(response, None)
            response = WSUpgradeResponse.create_101_response(
                extra_headers={"Sec-WebSocket-Protocol": SUBPROTOCOL}
            )
            return WSUpgradeResponseWithListener(response, link)

        protocol = _protocol_class(held)(None, None, False, answer, *_options(timeout, None))
        await link._upgrade(protocol, held, "bad websocket upgrade")
        if refused:
            raise ChannelError(f"refused websocket upgrade for {refused[0]}")
        if link.transport is None:
            protocol.transport.disconnect(False)
            raise ChannelError("no websocket upgrade request")
        return link

    async def _upgrade(self, protocol: WSProtocol, held: Held, failure: str) -> None:
        """Give ``held``'s connection to ``protocol`` and wait for the upgrade."""
        self.protocol = protocol
        held.hand_over(protocol)
        try:
            await protocol.wait_until_handshake_complete()
        except Exception as exc:
            protocol.transport.disconnect(False)
            raise ChannelError(f"{failure}: {exc}") from None

    # ---------------------------------------------------------------- picows callbacks
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        underlying = transport.underlying_transport
        with contextlib.suppress(Exception):
            underlying.set_write_buffer_limits(_HIGH_WATER, _LOW_WATER)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type in _DATA_FRAMES:
            active = self.active
            if active is not None:
                active.from_ws(frame)
                return
            if self.close_sent:
                return  # closing: what still comes is dropped
            self._parts.append(frame.get_payload_as_bytes())
            if frame.fin:
                self._messages.append(b"".join(self._parts))
                self._parts.clear()
                self._wake()
        elif msg_type == WSMsgType.CLOSE:
            code = int(frame.get_close_code().value) if frame.payload_size >= 2 else None
            try:
                reason = frame.get_close_reason() if frame.payload_size > 2 else ""
            except UnicodeDecodeError:
                reason = ""
            self.close_rcvd = (code, reason)
            if not self.close_sent:  # answer it, then the server ends the connection
                self.close_sent = True
                transport.send_close(
                    WSCloseCode(code) if code is not None else WSCloseCode.NO_INFO, b""
                )
            if not transport.is_client_side:
                transport.disconnect()
            if self.active is not None:
                self.active.ws_closed(code, reason)
            self._wake()
        # PING is answered by picows; PONG needs nothing

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.disconnected.done():
            self.disconnected.set_result(None)
        if self.active is not None:
            if self.close_rcvd is not None:
                self.active.ws_closed(*self.close_rcvd)
            else:
                self.active.result.error = self.active.result.error or "connection lost"
                self.active.finish("ws")
        self._writable.set()
        self._wake()

    def pause_writing(self) -> None:
        self._writable.clear()
        if self.active is not None:
            self.active.pause_tcp_reading()

    def resume_writing(self) -> None:
        self._writable.set()
        if self.active is not None:
            self.active.resume_tcp_reading()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---------------------------------------------------------------- messages
    @property
    def close_code(self) -> int | None:
        return self.close_rcvd[0] if self.close_rcvd else None

    @property
    def close_reason(self) -> str:
        return self.close_rcvd[1] if self.close_rcvd else ""

    @property
    def is_open(self) -> bool:
        return (
            self.transport is not None
            and not self.transport.is_disconnected
            and not self.close_sent
            and self.close_rcvd is None
        )

    async def send(self, data: bytes) -> None:
        """Send bytes as binary messages of at most MAX_MESSAGE each, and wait while
        the transport's buffer is over its high-water mark."""
        transport = self.transport
        if transport is None or transport.is_disconnected or self.close_sent:
            raise ChannelError("connection lost")
        _send_messages(transport, memoryview(data))
        if not self._writable.is_set():
            await self._writable.wait()
            if transport.is_disconnected:
                raise ChannelError("connection lost")

    async def recv_message(self) -> bytes:
        """The next whole message. Raises ChannelClosed when the peer closes, and
        ChannelError when the connection is gone."""
        while not self._messages:
            if self.close_rcvd is not None:
                raise ChannelClosed(*self.close_rcvd)
            if self.transport is None or self.transport.is_disconnected:
                raise ChannelError("connection lost")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._messages.popleft()

    async def close(self, code: int = 1000, reason: str = "", wait: float = CLOSE_WAIT) -> None:
        """Send a close frame (if still open), wait up to ``wait`` seconds for the
        peer's (dropping what it still sends), then drop the connection.

        Closing the TCP connection while the peer's data is unread would reset it, and
        the reset can overtake our close frame: a busy client would then see a broken
        connection instead of why it ended."""
        self.active = None
        transport = self.transport
        if transport is None:
            self.abort()
            return
        if not transport.is_disconnected and not self.close_sent:
            self.close_sent = True
            with contextlib.suppress(Exception):
                transport.send_close(WSCloseCode(code), reason.encode())
                with contextlib.suppress(Exception):  # read on: the close frame comes
                    transport.underlying_transport.resume_reading()
                if self.close_rcvd is None:
                    await asyncio.wait_for(asyncio.shield(self.disconnected), wait)
        self.abort(graceful=True)

    def abort(self, graceful: bool = False) -> None:
        """Drop the connection (``graceful``: after what is buffered is sent)."""
        self.active = None
        protocol = self.protocol
        if protocol is not None and protocol.transport is not None:
            with contextlib.suppress(Exception):
                protocol.transport.disconnect(graceful)

    # ---------------------------------------------------------------- relaying
    async def relay(self, tcp: TcpSide, result: RelayResult | None = None) -> RelayResult:
        """Carry bytes both ways until either side ends; then end both: the TCP side
        ending closes the WebSocket with 1000 (and waits for the peer's close), the peer
        closing the WebSocket closes the TCP side after what was written reaches it.
        ``result`` (counters that move while relaying) is returned."""
        relay = _Relay(self, tcp, result or RelayResult())
        relay.result.last_activity = time.monotonic()
        # what the peer sent after the proxy handshake, while the TCP side was dialed
        # (whole messages, then the first parts of one still coming: the relay carries
        # bytes, not message boundaries)
        tcp_transport = tcp.transport
        for message in (*self._messages, *self._parts):
            if tcp_transport is not None:
                tcp_transport.write(message)
            relay.result.to_tcp += len(message)
        self._messages.clear()
        self._parts.clear()
        if self.close_rcvd is not None:  # the peer closed before the relay began
            relay.ws_closed(*self.close_rcvd)
        elif self.transport is None:
            relay.finish("ws")
        else:
            self.active = relay
            tcp.attach(relay)
            if self.transport.is_disconnected:
                self.on_ws_disconnected(self.transport)
        try:
            outcome = await asyncio.shield(relay.done)
        except asyncio.CancelledError:
            relay.finish("error")
            raise
        if outcome.ended_by == "tcp":
            tcp.close()
            await self.close(1000)
        else:
            self.abort(graceful=True)
            tcp.close()
        return outcome
