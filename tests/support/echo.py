"""The suite's one TCP echo server, and a client that sends through one (blocking, or
from asyncio)."""

from __future__ import annotations

import asyncio
import socket
import threading

from support.constants import GUARD


class EchoServer:
    """A real TCP echo server (a thread per connection) on 127.0.0.1, for targets; it
    closes a connection when the peer ends its side. Usable from async tests too."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(262144):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def echo_through(port: int, payload: bytes) -> bytes:
    """Send ``payload`` to 127.0.0.1:``port`` and read the echo concurrently (so neither
    side blocks)."""
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        got = bytearray()
        while len(got) < len(payload):
            chunk = sock.recv(1 << 18)
            if not chunk:
                break
            got += chunk
        sender.join()
    return bytes(got)


async def echo_roundtrip(port: int, payload: bytes) -> bytes:
    """``echo_through`` from asyncio: send ``payload`` and read the echo concurrently."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()

    async def send() -> None:
        writer.write(payload)
        await writer.drain()

    async def receive() -> None:
        while len(received) < len(payload):
            chunk = await reader.read(1 << 20)
            assert chunk, "connection closed early"
            received.extend(chunk)

    await asyncio.wait_for(asyncio.gather(send(), receive()), GUARD)
    writer.close()
    return bytes(received)
