"""The standard streams as one end of a proxied connection (``bconnect connect -stdio``).

In stdio mode there is no local listener: stdin is carried to the target and the
target's bytes to stdout, as ``ssh -o ProxyCommand=…`` expects of its proxy command.
:func:`open_stdio` returns a :class:`StdioSide`: a
:class:`~bconnect.core.wslink.TcpSide` whose transport reads stdin and writes stdout,
so the WebSocket relay, its flow control and its counters are the very ones a TCP
client gets.

Boundary's proxy protocol carries no half-close, so stdin's end cannot reach the
target: when stdin ends, reading stops and the target's answer still flows to stdout
until the target closes the connection (as ``nc`` does without ``-N``); when the target
closes, stdout is flushed and closed. A reader of stdout that goes away (``ssh``
exiting) ends the connection.

Pipes, sockets and terminals are read and written by asyncio directly. What epoll
cannot watch (a regular file, ``/dev/null``) is bridged through a socket pair by a
thread, so ``bconnect connect -stdio < request.bin > answer.bin`` works too. Blocking
modes changed on the descriptors are put back by :meth:`StdioSide.restore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from typing import Any

from bconnect.core.wslink import TcpSide

__all__ = ["StdioSide", "open_stdio"]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


class StdioSide(TcpSide):
    """stdin and stdout as the local end of one relayed connection."""

    def __init__(self) -> None:
        super().__init__()
        self.stdin_ended = False
        self.stdout_closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._cleanups: list[Callable[[], None]] = []

    def eof_received(self) -> bool:
        # No half-close in Boundary's protocol: stop reading, keep writing stdout until
        # the target ends the connection.
        self.stdin_ended = True
        log.debug("stdin ended; waiting for the target to close the connection")
        return True

    async def finish(self, timeout: float = 30.0) -> None:
        """Close stdin and stdout (stdout after what is buffered is written: nothing
        received is lost), then :meth:`restore`."""
        if self.transport is not None:
            self.transport.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.stdout_closed), timeout)
        self.restore()

    def restore(self) -> None:
        """Put back what opening changed (blocking modes), wait for a bridge thread to
        write what it holds, close the descriptors."""
        cleanups, self._cleanups = self._cleanups, []
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()


class _StdioTransport(asyncio.Transport):
    """One transport over two: reads from stdin's, writes to stdout's."""

    def __init__(self, reader: asyncio.ReadTransport, writer: asyncio.WriteTransport) -> None:
        super().__init__()
        self._reader = reader
        self._writer = writer

    def write(self, data: Any) -> None:
        self._writer.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._writer.writelines(list_of_data)

    def can_write_eof(self) -> bool:
        return self._writer.can_write_eof()

    def write_eof(self) -> None:
        self._writer.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._writer.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._writer.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        if not self._reader.is_closing():
            self._reader.pause_reading()

    def resume_reading(self) -> None:
        if not self._reader.is_closing():
            self._reader.resume_reading()

    def is_reading(self) -> bool:
        return self._reader.is_reading()

    def is_closing(self) -> bool:
        return self._writer.is_closing()

    def close(self) -> None:
        self._reader.close()
        self._writer.close()  # after what is buffered is written

    def abort(self) -> None:
        self._reader.close()
        abort = getattr(self._writer, "abort", None)
        if abort is not None:
            abort()
        else:
            self._writer.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class _Stdin(asyncio.Protocol):
    def __init__(self, side: StdioSide) -> None:
        self.side = side

    def data_received(self, data: bytes) -> None:
        self.side.received(memoryview(data))

    def eof_received(self) -> bool | None:
        self.side.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.side.connection_lost(exc)


class _Stdout(asyncio.Protocol):
    def __init__(self, side: StdioSide) -> None:
        self.side = side

    def pause_writing(self) -> None:
        self.side.pause_writing()

    def resume_writing(self) -> None:
        self.side.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        # our own close (the connection ended) or the reader went away (EPIPE)
        if not self.side.stdout_closed.done():
            self.side.stdout_closed.set_result(None)
        self.side.connection_lost(exc or BrokenPipeError("stdout was closed"))


def _keep_blocking_mode(side: StdioSide, fd: int) -> None:
    blocking = os.get_blocking(fd)
    side._cleanups.append(lambda: os.set_blocking(fd, blocking))


def _copy(
    read: Callable[[], bytes], write: Callable[[bytes], Any], done: Callable[[], None]
) -> None:
    try:
        while True:
            data = read()
            if not data:
                break
            write(data)
    except OSError as exc:
        log.debug("stdio bridge stopped: %s", exc)
    finally:
        with contextlib.suppress(OSError):
            done()


def _bridge_in(side: StdioSide, fd: int) -> socket.socket:
    """A socket whose bytes are ``fd``'s (a file epoll cannot watch), fed by a thread."""
    ours, theirs = socket.socketpair()

    def done() -> None:
        theirs.shutdown(socket.SHUT_WR)

    thread = threading.Thread(
        target=_copy,
        args=(lambda: os.read(fd, _CHUNK), theirs.sendall, done),
        name="bconnect-stdin",
        daemon=True,
    )
    thread.start()
    side._cleanups.append(theirs.close)
    return ours


def _bridge_out(side: StdioSide, fd: int) -> socket.socket:
    """A socket whose bytes a thread writes to ``fd``; joined on restore so nothing that
    was received is lost when the process exits."""
    ours, theirs = socket.socketpair()

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    thread = threading.Thread(
        target=_copy,
        args=(lambda: theirs.recv(_CHUNK), write, theirs.close),
        name="bconnect-stdout",
        daemon=True,
    )
    thread.start()
    side._cleanups.append(lambda: thread.join(30))
    return ours


def _pollable(fd: int) -> bool:
    """Whether epoll can watch ``fd``: a pipe, a socket or a terminal (not a regular
    file, not ``/dev/null``)."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


async def open_stdio(stdin_fd: int = 0, stdout_fd: int = 1) -> StdioSide:
    """stdin and stdout as a :class:`StdioSide` (reading paused until the relay is
    attached). Call :meth:`StdioSide.restore` once the connection is over."""
    loop = asyncio.get_running_loop()
    side = StdioSide()
    side.connected.set_result(None)
    try:
        # dup()s: asyncio closes what it is given, and fds 0 and 1 stay Python's
        in_fd = os.dup(stdin_fd)
        side._cleanups.append(lambda: _close_quietly(in_fd))
        out_fd = os.dup(stdout_fd)
        side._cleanups.append(lambda: _close_quietly(out_fd))
        _keep_blocking_mode(side, stdin_fd)
        _keep_blocking_mode(side, stdout_fd)
        source: Any = (
            open(os.dup(in_fd), "rb", buffering=0)  # noqa: SIM115 (the transport owns it)
            if _pollable(in_fd)
            else _bridge_in(side, in_fd)
        )
        reader, _ = await loop.connect_read_pipe(lambda: _Stdin(side), source)
        # a socket as stdout goes through the bridge too: asyncio's write-pipe transport
        # takes a readable socket for a closed one, and stdin and stdout are often the
        # same socket (inetd, socat EXEC:, systemd sockets)
        direct = _pollable(out_fd) and not stat.S_ISSOCK(os.fstat(out_fd).st_mode)
        sink: Any = (
            open(os.dup(out_fd), "wb", buffering=0)  # noqa: SIM115 (the transport owns it)
            if direct
            else _bridge_out(side, out_fd)
        )
        writer, _ = await loop.connect_write_pipe(lambda: _Stdout(side), sink)
    except BaseException:
        side.restore()
        raise
    transport = _StdioTransport(reader, writer)
    side.connection_made(transport)
    transport.pause_reading()  # until the relay is attached
    return side


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
