"""A plain TCP relay on ``asyncio.BufferedProtocol`` (no TLS, no WebSocket): the fastest
shape a pure-Python asyncio relay takes, as a second reference for the proxy.

`python benchmarks/relay_buffered.py TARGET_PORT` listens on an ephemeral 127.0.0.1 port
(printed) and relays every connection to 127.0.0.1:TARGET_PORT, like relay.py. Bytes
are read straight into a preallocated buffer and handed to the other side's transport
without a copy; a buffer the transport kept (it could not send it all at once) is
replaced rather than overwritten. Flow control: a side whose transport is over its
high-water mark pauses reading on the other side.
"""

from __future__ import annotations

import asyncio
import sys

CHUNK = 256 * 1024


class Side(asyncio.BufferedProtocol):
    """One TCP connection of a relayed pair; ``peer`` is the other."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Side | None = None
        self._buffer = memoryview(bytearray(CHUNK))
        self._pending: list[bytes] = []  # what arrived before the peer was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        peer = self.peer.transport if self.peer is not None else None
        if peer is None:
            self._pending.append(bytes(self._buffer[:nbytes]))
            return
        peer.write(self._buffer[:nbytes])
        if peer.get_write_buffer_size():
            # the transport may hold a view of our buffer: read the next bytes elsewhere
            self._buffer = memoryview(bytearray(CHUNK))

    def link(self, peer: Side) -> None:
        self.peer = peer
        if self._pending and peer.transport is not None:
            peer.transport.write(b"".join(self._pending))
            self._pending.clear()

    def eof_received(self) -> bool:
        peer = self.peer.transport if self.peer is not None else None
        if peer is not None and peer.can_write_eof():
            peer.write_eof()
            return True  # keep our write side open for the peer's answer
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


async def main(target_port: int) -> None:
    loop = asyncio.get_running_loop()

    async def dial(client: Side) -> None:
        try:
            _, upstream = await loop.create_connection(Side, "127.0.0.1", target_port)
        except OSError:
            if client.transport is not None:
                client.transport.close()
            return
        upstream.link(client)
        client.link(upstream)

    def accept() -> Side:
        client = Side()
        task = loop.create_task(dial(client))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return client

    tasks: set[asyncio.Task[None]] = set()
    server = await loop.create_server(accept, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main(int(sys.argv[1])))
    except KeyboardInterrupt:
        sys.exit(0)
