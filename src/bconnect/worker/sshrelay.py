"""SSH terminated at the worker: what serves an ``ssh`` target's connections.

For an ``ssh`` target the worker does not pass bytes through: it is the SSH server the
user's ``ssh`` talks to (client authentication ``none``: the session's TLS tunnel already
authenticated the user, as Boundary does), and it opens its own SSH connection to the
host with the injected credential, verifying the host's key. :func:`serve_relay` runs
that on one connected socket until the client goes away.

Every request of a client channel is repeated on an upstream channel — pty (type, size,
modes), environment, shell / exec / subsystem (so ``sftp`` and ``scp`` work), window
changes, signals, breaks, data both ways with stderr kept apart, EOF — and the host's
exit status or exit signal is returned. asyncssh's low-level session API is used
because its process API cannot pass the ``sftp`` subsystem through (it accepts it only
to run its own SFTP server). Local and dynamic port forwarding (``ssh -L``, ``-D``:
direct-tcpip channels) are opened on the host's side of the worker's own connection;
remote forwarding (``-R``) is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bconnect.hostport import join_host_port
from bconnect.sshlib import asyncssh
from bconnect.worker.sftpwatch import SftpWatch

__all__ = ["Ending", "PinHostKey", "Upstream", "UpstreamRefused", "serve_relay"]

log = logging.getLogger(__name__)


#: Records the key a host presented when none was known for it (the worker asks the
#: controller); raises :class:`UpstreamRefused` when another key is recorded.
PinHostKey = Callable[[str], Awaitable[object]]


@dataclass(frozen=True)
class Upstream:
    """Where and how the worker logs in: the injected credential (``password`` or
    ``private_key`` with its ``passphrase``) and the host keys it accepts
    (``known_hosts``: OpenSSH known_hosts text). A host with no line there is refused,
    unless ``pin`` is given: then its key is accepted and handed to ``pin`` (first-use
    pinning), and the connection is used only once ``pin`` has returned."""

    host: str
    port: int
    username: str
    known_hosts: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    pin: PinHostKey | None = field(default=None, repr=False, compare=False)

    def known_keys(self) -> asyncssh.SSHKnownHosts | None:
        """The known hosts, if they name a key (or a CA) for this host."""
        if not self.known_hosts.strip():
            return None
        known = asyncssh.import_known_hosts(self.known_hosts)
        trusted = known.match(self.host, "", self.port)
        return known if trusted[0] or trusted[1] else None


class ChannelLog(Protocol):
    """One channel's recording (worker/recorder.py); ``error`` once it cannot be written."""

    error: str | None

    def output(self, data: bytes) -> None: ...
    def input(self, data: bytes) -> None: ...
    def resize(self, width: int, height: int) -> None: ...
    def event(self, label: str) -> None: ...
    def close(self) -> None: ...


#: Told, once, that a channel's recording can no longer be written (the message is one
#: line for the user): the relay then ends the whole connection with that reason.
RecordingFailure = Callable[[str], None]


class ChannelRecorder(Protocol):
    """Starts channel recordings; ``start`` raises (any exception, its message shown to
    the user) when a channel cannot be recorded: it is then refused. A recording that
    fails later calls ``failed``."""

    async def start(
        self,
        kind: str,
        command: str | None,
        term: tuple[str, tuple[int, int, int, int]] | None,
        env: Mapping[str, str],
        failed: RecordingFailure,
    ) -> ChannelLog: ...


@dataclass(frozen=True)
class Ending:
    """Why the relay ended a connection itself: ``message`` is what the client was
    told; ``recording`` when the session's recording failed (not the host)."""

    message: str
    recording: bool = False


class UpstreamRefused(Exception):
    """The host could not be reached, its key did not match, or it refused the login;
    the message is one line for the user (and the session's close reason)."""


async def connect_upstream(upstream: Upstream) -> asyncssh.SSHClientConnection:
    """The worker's SSH connection to the host; :class:`UpstreamRefused` says why not."""
    try:
        known = upstream.known_keys()
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise UpstreamRefused(f"the target's known hosts cannot be read: {exc}") from None
    if known is None and upstream.pin is None:
        raise UpstreamRefused(
            f"no host key is known for {join_host_port(upstream.host, upstream.port)}: "
            "refusing to connect"
        )
    keys = []
    if upstream.private_key:
        try:
            keys.append(asyncssh.import_private_key(upstream.private_key, upstream.passphrase))
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise UpstreamRefused(f"the injected private key cannot be used: {exc}") from None
    try:
        conn = await asyncssh.connect(
            upstream.host,
            upstream.port,
            username=upstream.username,
            password=upstream.password,
            client_keys=keys or None,
            known_hosts=known,  # None: first use, pinned below
            agent_path=None,
            config=None,
            preferred_auth="publickey,password,keyboard-interactive",
        )
    except asyncssh.HostKeyNotVerifiable:
        raise UpstreamRefused(
            f"the host key of {upstream.host}:{upstream.port} does not match the one "
            "recorded for the target: refusing to connect"
        ) from None
    except asyncssh.PermissionDenied:
        raise UpstreamRefused(
            f"{upstream.host}:{upstream.port} refused the injected credential of "
            f"{upstream.username!r}"
        ) from None
    except (OSError, asyncssh.Error) as exc:
        reason = getattr(exc, "reason", "") or getattr(exc, "strerror", "") or str(exc)
        where = join_host_port(upstream.host, upstream.port)
        raise UpstreamRefused(f"cannot reach {where}: {reason}") from None
    if known is None and upstream.pin is not None:
        key = conn.get_server_host_key()
        try:
            if key is None:
                raise UpstreamRefused("the host presented no key")
            await upstream.pin(key.export_public_key("openssh").decode().strip())
        except BaseException:
            conn.close()
            raise
    return conn


class RecordingRefused(Exception):
    """A channel that cannot be recorded (and so is not opened)."""


async def _recording(start: Awaitable[ChannelLog]) -> ChannelLog:
    try:
        return await start
    except Exception as exc:  # noqa: BLE001 - the recorder's reason, shown to the user
        raise RecordingRefused(str(exc) or type(exc).__name__) from None


class _UpstreamSession(asyncssh.SSHClientSession[bytes]):
    """The host's side of one relayed channel: its output goes back to the client."""

    def __init__(self, down: _ClientSession) -> None:
        self.down = down
        self.exit: tuple[str, Any] | None = None

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        down = self.down
        if down.log is not None:  # recorded first: output that cannot be is not shown
            if down.sftp is not None:
                down.sftp.server(data)
            elif down.subsystem is None:
                down.log.output(data)
            if down.log.error is not None:
                return
        down.write(data, datatype)

    def eof_received(self) -> bool:
        self.down.write_eof()
        return True

    def exit_status_received(self, status: int) -> None:
        self.exit = ("status", status)

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.exit = ("signal", (signal, core_dumped, msg, lang))

    def connection_lost(self, exc: Exception | None) -> None:
        self.down.upstream_closed(self.exit)


class _ClientSession(asyncssh.SSHServerSession[bytes]):
    """The client's side of one channel, repeated upstream."""

    def __init__(
        self,
        upstream: asyncio.Future[asyncssh.SSHClientConnection],
        recorder: ChannelRecorder | None = None,
        failed: RecordingFailure | None = None,
    ) -> None:
        self.upstream = upstream
        self.recorder = recorder
        self.failed = failed
        self.recording_failed: str | None = None
        self.log: ChannelLog | None = None
        self.subsystem: str | None = None
        self.sftp: SftpWatch | None = None  # the transfers of a recorded sftp channel
        self.chan: asyncssh.SSHServerChannel[bytes] | None = None
        self.up: asyncssh.SSHClientChannel[bytes] | None = None
        self.term: tuple[str, tuple[int, int, int, int], Mapping[int, int]] | None = None
        self.queued: list[tuple[bytes, asyncssh.DataType]] = []
        self.queued_eof = False
        self.opening: asyncio.Task[None] | None = None

    # the client's channel
    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:  # type: ignore[override]
        self.chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Mapping[int, int]
    ) -> bool:
        self.term = (term_type, term_size, term_modes)
        return True

    def shell_requested(self) -> bool:
        return self._start(command=None, subsystem=None)

    def exec_requested(self, command: str) -> bool:
        return self._start(command=command, subsystem=None)

    def subsystem_requested(self, subsystem: str) -> bool:
        return self._start(command=None, subsystem=subsystem)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self.up is None:
            self.queued.append((data, datatype))
            return
        self.up.write(data, datatype)
        if self.log is None:
            return
        if self.sftp is not None:
            for event in self.sftp.client(data):
                self.log.event(event)
        elif self.subsystem is None:
            self.log.input(data)

    def eof_received(self) -> bool:
        if self.up is None:
            self.queued_eof = True
        else:
            self.up.write_eof()
        return True

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self.up is not None:
            self.up.change_terminal_size(width, height, pixwidth, pixheight)
        if self.log is not None:
            self.log.resize(width, height)

    def signal_received(self, signal: str) -> None:
        if self.up is not None:
            self.up.send_signal(signal)

    def break_received(self, msec: int) -> bool:
        if self.up is not None:
            self.up.send_break(msec)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.up is not None:
            self.up.close()
        if self.opening is not None:
            self.opening.cancel()
        self._close_log()
        if self.recording_failed is not None and self.failed is not None:
            self.failed(self.recording_failed)

    def _close_log(self) -> None:
        if self.log is None:
            return
        if self.sftp is not None:
            for event in self.sftp.finish():
                self.log.event(event)
        self.log.close()

    # relaying
    def _start(self, *, command: str | None, subsystem: str | None) -> bool:
        self.opening = asyncio.ensure_future(self._open(command, subsystem))
        return True

    async def _open(self, command: str | None, subsystem: str | None) -> None:
        assert self.chan is not None
        try:
            conn = await asyncio.shield(self.upstream)
            options: dict[str, Any] = {"encoding": None, "env": self.chan.get_environment()}
            if self.term is not None:
                term_type, size, modes = self.term
                options.update(term_type=term_type, term_size=size, term_modes=modes)
            if subsystem is not None:
                options["subsystem"] = subsystem
            elif command is not None:
                options["command"] = command
            if self.recorder is not None:
                self.subsystem = subsystem
                self.sftp = SftpWatch() if subsystem == "sftp" else None
                term = (self.term[0], self.term[1]) if self.term is not None else None
                self.log = await _recording(
                    self.recorder.start(
                        "sftp" if subsystem is not None else "session",
                        subsystem or command,
                        term,
                        self.chan.get_environment(),
                        self._recording_failed,
                    )
                )
            self.up, _ = await conn.create_session(lambda: _UpstreamSession(self), **options)
        except UpstreamRefused as exc:
            self._fail(str(exc))
            return
        except (OSError, asyncssh.Error) as exc:
            self._fail(f"the host refused the channel: {getattr(exc, 'reason', '') or exc}")
            return
        except RecordingRefused as exc:
            self._fail(str(exc))
            return
        except Exception:  # noqa: BLE001 - reported to the client, logged by the server
            log.exception("ssh relay: opening a channel failed")
            self._fail("the worker could not open the channel on the host")
            return
        queued, self.queued = self.queued, []
        for data, datatype in queued:
            self.data_received(data, datatype)
        if self.queued_eof:
            self.up.write_eof()

    def _fail(self, message: str) -> None:
        assert self.chan is not None
        with contextlib.suppress(Exception):
            self.chan.write_stderr((message + "\r\n").encode())
            self.chan.exit(255)

    def _recording_failed(self, message: str) -> None:
        """Output that cannot be recorded is not relayed: the channel ends with the
        reason on its stderr (after what the client was already sent), then the
        connection (:meth:`connection_lost`)."""
        if self.recording_failed is not None:
            return
        self.recording_failed = message
        if self.chan is not None:
            with contextlib.suppress(Exception):
                self.chan.write_stderr(("\r\n" + message + "\r\n").encode())
        if self.up is not None:
            self.up.close()  # then upstream_closed: exit status 255

    def write(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self.chan is not None:
            self.chan.write(data, datatype)

    def write_eof(self) -> None:
        if self.chan is not None:
            with contextlib.suppress(Exception):
                self.chan.write_eof()

    def upstream_closed(self, exit: tuple[str, Any] | None) -> None:
        self._close_log()
        if self.chan is None:
            return
        with contextlib.suppress(Exception):
            if exit is not None and exit[0] == "signal":
                self.chan.exit_with_signal(*exit[1])
            else:
                self.chan.exit(exit[1] if exit is not None else 255)


class _Tunnel(asyncssh.SSHTCPSession[bytes]):
    """One end of a forwarded (direct-tcpip) channel: the client's, or the one the
    worker opened on the host. Bytes go to the other end, with its flow control; only
    the byte counts are recorded, never the contents."""

    def __init__(self) -> None:
        self.chan: asyncssh.SSHTCPChannel[bytes] | None = None
        self.peer: _Tunnel | None = None
        self.bytes = 0
        self.log: ChannelLog | None = None  # kept by the client's end
        self.where = ""
        self.closed = False

    def pair(self, up: _Tunnel, log_: ChannelLog | None, where: str) -> None:
        self.peer, up.peer = up, self
        self.log, self.where = log_, where

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:  # type: ignore[override]
        self.chan = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.bytes += len(data)
        if self.peer is not None and self.peer.chan is not None:
            self.peer.chan.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None and self.peer.chan is not None:
            with contextlib.suppress(Exception):
                self.peer.chan.write_eof()
        return True

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.chan is not None:
            self.peer.chan.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.chan is not None:
            self.peer.chan.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """The first end to close closes the other; the last records the forward."""
        self.closed = True
        peer = self.peer
        if peer is not None and not peer.closed:
            if peer.chan is not None:
                peer.chan.close()
            return
        client_end = self if self.log is not None else peer
        if client_end is not None and client_end.log is not None:
            received = client_end.peer.bytes if client_end.peer is not None else 0
            client_end.log.event(
                f"forward to {client_end.where} closed: {client_end.bytes} bytes sent, "
                f"{received} bytes received"
            )
            client_end.log.close()
            client_end.log = None


class _Server(asyncssh.SSHServer):
    """One client connection: logs in upstream at once, so a refusal is known early."""

    def __init__(
        self,
        upstream: Upstream,
        recorder: ChannelRecorder | None = None,
        refusal: str | None = None,
    ) -> None:
        self.settings = upstream
        self.recorder = recorder
        self.upstream: asyncio.Future[asyncssh.SSHClientConnection]
        if refusal is not None:
            self.upstream = asyncio.get_running_loop().create_future()
            self.upstream.set_exception(UpstreamRefused(refusal))
        else:
            self.upstream = asyncio.ensure_future(connect_upstream(upstream))
        self.upstream.add_done_callback(self._upstream_done)
        self.conn: asyncssh.SSHServerConnection | None = None
        self.refused: str | None = refusal
        self.recording_failed: str | None = None
        self.keyed = False  # key exchange done: a disconnect message reaches the client

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn

    def _upstream_done(self, future: asyncio.Future[asyncssh.SSHClientConnection]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            return
        if isinstance(exc, UpstreamRefused):
            self.refused = str(exc)
        else:
            log.warning("ssh relay: logging in to the host failed: %r", exc)
            self.refused = "the worker could not log in to the host"
        log.info("ssh relay: %s", self.refused)
        if self.keyed:
            self._disconnect()

    def _disconnect(self) -> None:
        assert self.conn is not None and self.refused is not None
        self.conn.disconnect(asyncssh.DISC_HOST_NOT_ALLOWED_TO_CONNECT, self.refused)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upstream.done():
            self.upstream.cancel()
        elif not self.upstream.cancelled() and self.upstream.exception() is None:
            self.upstream.result().close()

    def begin_auth(self, username: str) -> bool:
        self.keyed = True
        if self.refused is not None:
            self._disconnect()
        return False  # the tunnel authenticated the user: no SSH authentication

    def session_requested(self) -> _ClientSession:
        return _ClientSession(self.upstream, self.recorder, self._recording_failed)

    def _recording_failed(self, message: str) -> None:
        if self.recording_failed is not None:
            return
        self.recording_failed = message
        log.warning("ssh relay: %s", message)
        if self.conn is not None:
            self.conn.disconnect(asyncssh.DISC_BY_APPLICATION, message)

    def ending(self) -> Ending | None:
        if self.recording_failed is not None:
            return Ending(self.recording_failed, recording=True)
        return Ending(self.refused) if self.refused is not None else None

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Awaitable[_Tunnel]:
        """``ssh -L`` / ``-D``: a direct-tcpip channel, opened on the host's side (the
        host dials ``dest``, as with ssh straight to it); asyncssh confirms the client's
        channel once this returns, or sends the ChannelOpenError's reason."""
        return self._forward(dest_host, dest_port, orig_host, orig_port)

    async def _forward(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> _Tunnel:
        where = join_host_port(dest_host, dest_port)
        try:
            conn = await asyncio.shield(self.upstream)
        except Exception:  # noqa: BLE001 - the refusal is said by _upstream_done
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, self.refused or "the host could not be reached"
            ) from None
        log_: ChannelLog | None = None
        if self.recorder is not None:
            try:
                log_ = await self.recorder.start(
                    "direct-tcpip", f"forward to {where}", None, {}, self._recording_failed
                )
            except Exception as exc:  # noqa: BLE001 - the recorder's reason
                raise asyncssh.ChannelOpenError(
                    asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, str(exc) or "not recorded"
                ) from None
        down = _Tunnel()
        try:
            _, up = await conn.create_connection(
                _Tunnel, dest_host, dest_port, orig_host, orig_port
            )
        except (OSError, asyncssh.Error) as exc:
            reason = getattr(exc, "reason", "") or str(exc)
            if log_ is not None:
                log_.event(f"forward to {where} refused by the host: {reason}")
                log_.close()
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, f"the host cannot forward to {where}: {reason}"
            ) from None
        assert isinstance(up, _Tunnel)
        down.pair(up, log_, where)
        if log_ is not None:
            log_.event(f"forward to {where} opened")
        return down


async def serve_relay(
    sock: socket.socket,
    upstream: Upstream,
    host_key: asyncssh.SSHKey,
    recorder: ChannelRecorder | None = None,
    refusal: str | None = None,
) -> Ending | None:
    """Be the SSH server on ``sock`` (a connected socket, taken over) with ``host_key``
    and relay to ``upstream`` until the client disconnects, recording each channel with
    ``recorder``. With ``refusal`` the client is disconnected with that reason at once.
    Returns why the relay ended the connection itself (the host refused, or the
    recording failed), or ``None``."""
    servers: list[_Server] = []

    def factory() -> _Server:
        servers.append(_Server(upstream, recorder, refusal))
        return servers[-1]

    conn = await asyncssh.run_server(
        sock,
        server_factory=factory,
        server_host_keys=[host_key],
        encoding=None,
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        keepalive_interval=30,
    )
    await conn.wait_closed()
    return servers[0].ending() if servers else None
