"""A second, independent proxy WebSocket for the tests: asyncio streams driven by
websockets' sans-I/O protocol, and a relay over it (docs/protocol.md §3).

bconnect's own ends use picows (``bconnect.core.wslink``); the tests use this one as the
peer they talk to (a client poking the worker, a fake worker for the client proxy), so
that each end is checked against an implementation that is not itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, ProtocolError
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from bconnect.core import wslink
from bconnect.core.wslink import (
    CLOSE_WAIT,
    MAX_INCOMING,
    MAX_MESSAGE,
    PROXY_PATH,
    ChannelClosed,
    ChannelError,
    RelayResult,
)

log = logging.getLogger(__name__)
# websockets logs every frame at debug level; frames carry tofu tokens and user data, so
# its protocol objects get a logger of their own that debug logging never reaches.
_frames_log = logging.getLogger("bconnect.wire")
_frames_log.setLevel(logging.WARNING)
_frames_log.propagate = False

SUBPROTOCOL = Subprotocol(wslink.SUBPROTOCOL)
READ_SIZE = 256 * 1024


class WsChannel:
    """Binary messages over one WebSocket; one task may send while another receives."""

    def __init__(
        self,
        protocol: ClientProtocol | ServerProtocol,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.protocol = protocol
        self.reader = reader
        self.writer = writer
        self._events: deque[Request | Response | Frame] = deque()
        self._message: list[bytes] = []

    # ---------------------------------------------------------------- handshakes
    @classmethod
    async def connect_client(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
    ) -> WsChannel:
        """Upgrade to the proxy WebSocket (``GET /v1/proxy``, our subprotocol, no
        compression) and check the server agreed to the subprotocol."""
        protocol = ClientProtocol(
            parse_uri(f"wss://{host}{PROXY_PATH}"),
            subprotocols=[SUBPROTOCOL],
            max_size=MAX_INCOMING,
            logger=_frames_log,
        )
        channel = cls(protocol, reader, writer)
        protocol.send_request(protocol.connect())
        await channel._flush()
        event = await channel._next_event()
        if not isinstance(event, Response) or protocol.handshake_exc is not None:
            raise ChannelError(f"websocket upgrade refused: {protocol.handshake_exc or event}")
        if protocol.subprotocol != SUBPROTOCOL:
            raise ChannelError("worker did not agree to the boundary-tcp-proxy-v1 subprotocol")
        return channel

    @classmethod
    async def accept_server(
        cls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> WsChannel:
        """Answer the client's upgrade; anything but ``GET /v1/proxy`` with our
        subprotocol is refused with an HTTP error and ChannelError."""
        protocol = ServerProtocol(
            subprotocols=[SUBPROTOCOL],
            select_subprotocol=_select_subprotocol,
            max_size=MAX_INCOMING,
            logger=_frames_log,
        )
        channel = cls(protocol, reader, writer)
        event = await channel._next_event()
        if not isinstance(event, Request):
            raise ChannelError("no websocket upgrade request")
        if event.path.split("?", 1)[0] != PROXY_PATH:
            response = protocol.reject(404, "Not Found\n")
        else:
            response = protocol.accept(event)
            if response.status_code == 101 and protocol.subprotocol != SUBPROTOCOL:
                response = protocol.reject(400, "boundary-tcp-proxy-v1 subprotocol required\n")
        protocol.send_response(response)
        await channel._flush()
        if response.status_code != 101:
            raise ChannelError(f"refused websocket upgrade for {event.path}")
        return channel

    # ---------------------------------------------------------------- messages
    async def send(self, data: bytes) -> None:
        """Send bytes as binary messages of at most MAX_MESSAGE each."""
        view = memoryview(data)
        for start in range(0, len(view), MAX_MESSAGE):
            self.protocol.send_binary(view[start : start + MAX_MESSAGE])
        await self._flush()

    async def recv_message(self) -> bytes:
        """One whole message (for the handshake messages)."""
        parts = []
        while True:
            frame = await self._next_frame()
            parts.append(bytes(frame.data) if not isinstance(frame.data, bytes) else frame.data)
            if frame.fin:
                return b"".join(parts)

    async def recv(self) -> bytes:
        """The payload of the next data frame (a relay needs no message boundaries).
        Raises ChannelClosed when the peer closes."""
        data = (await self._next_frame()).data
        # incoming frames hold bytes; the type also admits what outgoing ones may hold
        return data if isinstance(data, bytes) else bytes(data)

    async def close(self, code: int = 1000, reason: str = "", wait: float = CLOSE_WAIT) -> None:
        """Send a close frame (if still open), wait up to ``wait`` seconds for the
        peer's (reading and dropping what it still sends), then drop the connection.

        Closing the TCP connection while the peer's data is unread would reset it, and
        the reset can overtake our close frame: a busy client would then see a broken
        connection instead of why it ended."""
        with contextlib.suppress(Exception):
            if self.protocol.state is State.OPEN:
                self.protocol.send_close(code, reason)
                await asyncio.wait_for(self._closing_handshake(), wait)
        self.abort()

    async def _closing_handshake(self) -> None:
        await self._flush()
        while self.protocol.state is not State.CLOSED:
            data = await self.reader.read(READ_SIZE)
            if not data:
                return
            self.protocol.receive_data(data)
            self.protocol.events_received()  # dropped: the connection is ending

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    @property
    def close_code(self) -> int | None:
        return self.protocol.close_code

    @property
    def close_reason(self) -> str:
        return self.protocol.close_reason or ""

    # ---------------------------------------------------------------- plumbing
    async def _flush(self) -> None:
        """Send what the protocol has queued, and wait for the peer to take it. With
        nothing queued it does not wait: a read that answers nothing (all data frames)
        must never wait on the other direction's back-pressure, or a relay whose both
        directions are full (an echo) stops reading and deadlocks."""
        chunks = [c for c in self.protocol.data_to_send() if c]
        for chunk in chunks:
            if self.writer.transport.is_closing():  # lost: writing would only log
                raise ChannelError("connection lost")
            self.writer.write(chunk)
        if chunks:
            await self.writer.drain()

    async def _next_event(self) -> Request | Response | Frame:
        while not self._events:
            self._events.extend(self.protocol.events_received())
            if self._events:
                break
            if self.protocol.state is State.CLOSED:
                raise ChannelClosed(self.protocol.close_code, self.close_reason)
            try:
                data = await self.reader.read(READ_SIZE)
            except (ConnectionError, OSError) as exc:
                raise ChannelError(f"connection lost: {exc}") from None
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            failed = getattr(self.protocol, "handshake_exc", None)
            if failed is not None and not self._events:
                await self._flush_quietly()
                raise ChannelError(f"bad websocket handshake: {failed}")
            if self.protocol.parser_exc is not None and not self._events:
                parser_exc = self.protocol.parser_exc
                self._events.extend(self.protocol.events_received())
                if not self._events:
                    await self._flush_quietly()
                    if isinstance(parser_exc, InvalidHandshake | ProtocolError):
                        raise ChannelError(str(parser_exc)) from None
                    raise ChannelClosed(self.protocol.close_code, self.close_reason)
            await self._flush_quietly()
        return self._events.popleft()

    async def _flush_quietly(self) -> None:
        """:meth:`_flush` what the protocol has to answer after a read (a pong, a close
        reply); the connection may be gone already."""
        with contextlib.suppress(ChannelError, ConnectionError, OSError):
            await self._flush()

    async def _next_frame(self) -> Frame:
        while True:
            event = await self._next_event()
            if not isinstance(event, Frame):
                continue
            if event.opcode in (Opcode.BINARY, Opcode.CONT, Opcode.TEXT):
                return event
            if event.opcode is Opcode.CLOSE:
                await self._flush_quietly()
                try:
                    close = Close.parse(event.data)
                except ProtocolError:
                    raise ChannelClosed(None, "") from None
                raise ChannelClosed(close.code, close.reason)
            # ping/pong: the protocol already queued any pong; _next_event flushed it


def _select_subprotocol(
    protocol: ServerProtocol, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


async def relay(
    channel: WsChannel,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    on_activity: Callable[[], None] | None = None,
) -> RelayResult:
    """Carry bytes both ways until either side ends; then end both.

    Back-pressure is natural: each direction awaits its writer's ``drain()`` before
    reading more, so a slow receiver slows the sender and buffers stay bounded.
    """
    result = RelayResult()

    async def tcp_to_ws() -> None:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                result.ended_by = result.ended_by or "tcp"
                return
            await channel.send(data)
            result.to_ws += len(data)
            if on_activity is not None:
                on_activity()

    async def ws_to_tcp() -> None:
        while True:
            try:
                data = await channel.recv()
            except ChannelClosed as exc:
                result.ended_by = result.ended_by or "ws"
                result.ws_close_code = exc.code
                return
            if writer.transport.is_closing():  # the TCP side is gone
                result.ended_by = result.ended_by or "tcp"
                return
            writer.write(data)
            await writer.drain()
            result.to_tcp += len(data)
            if on_activity is not None:
                on_activity()

    tasks = [asyncio.ensure_future(tcp_to_ws()), asyncio.ensure_future(ws_to_tcp())]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    for task in done:
        exc = task.exception()
        if exc is not None and not result.ended_by:
            result.ended_by = "error"
            result.error = str(exc) or type(exc).__name__
    if result.ended_by == "tcp":
        await channel.close(1000)
    else:
        channel.abort()
    with contextlib.suppress(Exception):
        writer.close()
    return result
