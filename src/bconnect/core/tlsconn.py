"""TLS on a connected socket, for the proxy's WebSocket (client proxy and worker).

Two engines, chosen by ``BCONNECT_TLS_ENGINE``:

* ``aiofastnet`` (the default when it is installed): aiofastnet's TLS transports, written
  in Cython, with one TLS record of buffer for what a connection reads and four for what
  it sends. asyncio's own TLS protocol is pure Python, and on this data path it was a
  quarter of each process's CPU.
* ``stdlib``: asyncio's TLS protocol, with its read buffer sized to the traffic (asyncio
  allocates 256 KiB a connection up front, which was most of what a thousand open
  connections cost): 4 KiB until the handshake is done, then 8 KiB, doubling up to
  128 KiB while reads keep filling it (a bulk transfer) and falling back when they do not.

Either way the application's bytes are kept by a :class:`~bconnect.core.wslink.Held`
protocol until the WebSocket takes the connection over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from asyncio import sslproto
from typing import Any

from bconnect.core.wslink import Held

__all__ = ["ENGINE_ENV", "dial", "engine", "start_tls"]

log = logging.getLogger(__name__)

ENGINE_ENV = "BCONNECT_TLS_ENGINE"
ENGINES = ("aiofastnet", "stdlib")
#: aiofastnet's buffer for encrypted bytes read, a connection: one full TLS record (its
#: default is 16 KiB). A socket read fills it, so its size is what each open connection
#: costs (64 KiB: +60 MB for 1,000 connections held open, past the memory target).
_AIOFASTNET_IN_BIO = 16 * 1024 + 64
#: its buffer for encrypted bytes to send: four full TLS records and their framing, so a
#: 256 KiB bulk message leaves in five sends, not seventeen (each send wakes the peer).
#: Pages are touched only as far as a write fills it: a quiet connection's 16 KiB
#: messages leave after each write. Measured against 16 KiB: 8 % less CPU per GiB in the
#: proxies; against 256 KiB: no worse, and a connection that once sent in bulk (or met a
#: slow peer) keeps 65 KiB resident instead of 257 KiB (aiofastnet's buffer is linear).
_AIOFASTNET_OUT_BIO = 64 * 1024 + 1024

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


def engine() -> str:
    """The TLS engine in use: ``BCONNECT_TLS_ENGINE``, else aiofastnet when installed."""
    wanted = os.environ.get(ENGINE_ENV, "").strip().lower()
    if wanted and wanted not in ENGINES:
        log.warning("%s=%r is not one of %s; using stdlib", ENGINE_ENV, wanted, ENGINES)
        return "stdlib"
    if wanted == "stdlib" or _aiofastnet() is None:
        return "stdlib"
    return "aiofastnet"


def _aiofastnet() -> Any:
    try:
        import aiofastnet
    except ImportError:  # not built for this platform: asyncio's TLS does the job
        return None
    return aiofastnet


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
    fast = engine() == "aiofastnet"
    held = Held(fills_buffers=not fast)  # asyncio's TLS protocol fills what it is offered
    if fast:
        try:
            await _start_tls_aiofastnet(
                loop, held, sock, context, server_side, timeout, server_hostname
            )
        except BaseException:
            if held.transport is not None:
                held.transport.abort()
            sock.close()
            raise
        return held
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


async def _start_tls_aiofastnet(
    loop: asyncio.AbstractEventLoop,
    held: Held,
    sock: socket.socket,
    context: ssl.SSLContext,
    server_side: bool,
    timeout: float,
    server_hostname: str | None,
) -> None:
    fast = _aiofastnet()
    _quiet_handshake_failures(loop)
    options = {
        "ssl_handshake_timeout": timeout,
        "ssl_shutdown_timeout": timeout,
        "ssl_incoming_bio_size": _AIOFASTNET_IN_BIO,
        "ssl_outgoing_bio_size": _AIOFASTNET_OUT_BIO,
    }
    if server_side:
        await fast.connect_accepted_socket(loop, lambda: held, sock, ssl=context, **options)
        return
    # its create_connection wants a server name with a socket; start_tls takes None
    # (no SNI, as for an IP address)
    plain = Held()
    transport, _ = await fast.create_connection(loop, lambda: plain, sock=sock)
    try:
        tls = await fast.start_tls(
            loop, transport, held, context, server_hostname=server_hostname, **options
        )
    except BaseException:
        transport.abort()
        raise
    held.connection_made(tls)


def _quiet_handshake_failures(loop: asyncio.AbstractEventLoop) -> None:
    """aiofastnet reports a failed TLS handshake on a server connection (a client with
    the wrong certificate, a scanner) to the loop's exception handler, with the
    exception's class where its instance belongs, which asyncio's default handler then
    fails to print: an ERROR and a traceback for what asyncio's own TLS logs at debug.
    Those become one debug line; everything else goes on to the loop's previous handler
    (or the default). Installed once per loop."""
    if getattr(loop, "_bconnect_quiet_tls", False):
        return
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        failed = context.get("message") == "SSL handshake failed"
        if failed and (
            isinstance(exc, OSError) or (isinstance(exc, type) and issubclass(exc, OSError))
        ):
            name = exc.__name__ if isinstance(exc, type) else repr(exc)
            log.debug("TLS handshake failed: %s", name)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    loop._bconnect_quiet_tls = True  # type: ignore[attr-defined]
