"""TLS on a connected socket, for the proxy's WebSocket (client proxy and worker).

asyncio's own TLS protocol, with its read buffer sized to the job: asyncio allocates 256
KiB a connection up front, which was most of what a thousand open connections cost.
Until the handshake is done it reads 4 KiB at a time (a client that sends a ClientHello
and then nothing holds little); after it 8 KiB, doubling up to 128 KiB while reads keep
filling it (a bulk transfer) and falling back when they do not. The application's bytes
are kept by a :class:`~bconnect.core.wslink.Held` protocol until the WebSocket takes the
connection over.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from asyncio import sslproto

from bconnect.core.wslink import Held

__all__ = ["dial", "start_tls"]

#: TLS read buffer until the handshake is done; then it starts at RELAY_BUFFER and grows
#: (doubling) up to BULK_BUFFER while reads keep filling it, and falls back once they
#: do not: a busy stream reads in large chunks, an idle or chatty one holds little
HANDSHAKE_BUFFER = 4 * 1024
RELAY_BUFFER = 8 * 1024
BULK_BUFFER = 128 * 1024
_FULL_READS_TO_GROW = 4


class _LeanTLSProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol with a read buffer sized to the traffic: small during the
    handshake and for connections that move little, large for bulk transfers."""

    max_size = HANDSHAKE_BUFFER
    _full_reads = 0
    # asyncio's own attributes (not in its stubs)
    _ssl_buffer: bytearray
    _ssl_buffer_view: memoryview

    def handshake_done(self) -> None:
        # typeshed marks max_size a ClassVar, but asyncio reads it through self, so an
        # instance value is what this class relies on
        self.max_size = RELAY_BUFFER  # type: ignore[misc]
        self._shrink()

    def buffer_updated(self, nbytes: int) -> None:
        size = len(self._ssl_buffer)
        super().buffer_updated(nbytes)
        if nbytes >= size:
            self._full_reads += 1
            if self._full_reads >= _FULL_READS_TO_GROW and self.max_size < BULK_BUFFER:
                self.max_size = min(self.max_size * 2, BULK_BUFFER)  # type: ignore[misc]
                self._full_reads = 0
        else:
            self._full_reads = 0
            if nbytes <= size // 8 and self.max_size > RELAY_BUFFER:
                self.max_size = RELAY_BUFFER  # type: ignore[misc]
                self._shrink()

    def _shrink(self) -> None:
        """Let go of a read buffer larger than ``max_size`` (the next read allocates)."""
        if len(self._ssl_buffer) > self.max_size:
            self._ssl_buffer = bytearray(self.max_size)
            self._ssl_buffer_view = memoryview(self._ssl_buffer)


async def dial(host: str, port: int) -> socket.socket:
    """A connected, non-blocking TCP socket to ``host:port`` (each address it resolves
    to in turn); ``OSError`` when none answers."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error or OSError(f"cannot resolve {host}")


async def start_tls(
    sock: socket.socket,
    context: ssl.SSLContext,
    *,
    server_side: bool,
    timeout: float,
    server_hostname: str | None = None,
) -> Held:
    """TLS on ``sock`` (then owned by the transport); the returned :class:`Held` has the
    TLS transport and keeps what arrives. ``timeout`` bounds the handshake; a failed
    one closes the transport, which lets go of all its TLS state (and the socket)."""
    loop = asyncio.get_running_loop()
    held = Held()
    done = loop.create_future()
    tls = _LeanTLSProtocol(
        loop,
        held,
        context,
        done,
        server_side=server_side,
        server_hostname=server_hostname,
        # typeshed says int; asyncio takes any number of seconds (its default is 60.0)
        ssl_handshake_timeout=timeout,  # type: ignore[arg-type]
        ssl_shutdown_timeout=timeout,
    )
    try:
        if server_side:
            transport, _ = await loop.connect_accepted_socket(lambda: tls, sock)
        else:
            transport, _ = await loop.create_connection(lambda: tls, sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        await done
    except BaseException:
        transport.close()
        raise
    tls.handshake_done()
    return held
