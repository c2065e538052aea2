"""The worker's SSH relay (bconnect.worker.sshrelay, issue 19's building block) between
the real OpenSSH client and real servers: the Debian sshd (public key) and the suite's
asyncssh server (password). The relay runs on sockets accepted by a plain listener
here; test_ssh_targets.py runs it inside the worker for ssh-target sessions."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from support.constants import GUARD
from support.openssh import OpenSSH
from support.ports import free_port
from support.servers import SSH_PASSWORD, SSHServer, require

from bconnect.worker.sshrelay import Upstream, serve_relay

CLIENT = (
    "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no",
    "-o", "IdentityAgent=none",
)  # fmt: skip


class Relay:
    """A listener on 127.0.0.1 whose every connection is served by serve_relay. As in
    the worker (proxy.py's ``_run_ssh``), serve_relay gets one end of a socket pair and
    the bytes are copied to the client's TCP socket, which is closed gracefully (FIN,
    not a reset that could drop a disconnect message the client has not read yet)."""

    def __init__(self, upstream: Upstream) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            asyncio.run_coroutine_threadsafe(self._serve(sock), self.loop)

    async def _serve(self, client: socket.socket) -> None:
        ours, theirs = socket.socketpair()
        for end in (client, ours):
            end.setblocking(False)
        served = asyncio.ensure_future(serve_relay(theirs, self.upstream, self.key))
        try:
            await asyncio.gather(_copy(client, ours), _copy(ours, client))
        finally:
            client.close()
            ours.close()
            await asyncio.gather(served, return_exceptions=True)

    def close(self) -> None:
        self.listener.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(GUARD)

    def ssh(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", *CLIENT, "-p", str(self.port), "-l", "anyone", "127.0.0.1", *args],
            capture_output=True,
            text=True,
            timeout=GUARD,
            **({"stdin": subprocess.DEVNULL} | kw),  # type: ignore[arg-type]
        )


async def _copy(source: socket.socket, sink: socket.socket) -> None:
    """``source`` → ``sink`` until ``source`` ends, then half-close ``sink``."""
    loop = asyncio.get_running_loop()
    try:
        while data := await loop.sock_recv(source, 65536):
            await loop.sock_sendall(sink, data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _known(port: int, public_key: str) -> str:
    return f"[127.0.0.1]:{port} {public_key}\n"


@pytest.fixture
def key_relay(openssh: OpenSSH) -> Iterator[Relay]:
    require("ssh")
    upstream = Upstream(
        host="127.0.0.1",
        port=openssh.port,
        username=openssh.user,
        known_hosts=_known(openssh.port, openssh.host_public_key),
        private_key=openssh.client_key.read_text(),
    )
    relay = Relay(upstream)
    yield relay
    relay.close()


def test_exec_output_stderr_stdin_and_exit_status(key_relay: Relay) -> None:
    done = key_relay.ssh("echo MARKER-$((6*7)); echo oops >&2; exit 7")
    assert (done.returncode, done.stdout, done.stderr) == (7, "MARKER-42\n", "oops\n")
    piped = key_relay.ssh("tr a-z A-Z", input="through the relay\n", stdin=None)
    assert (piped.returncode, piped.stdout) == (0, "THROUGH THE RELAY\n")
    killed = key_relay.ssh("kill -TERM $$")
    assert killed.returncode == 255  # ssh reports a remote signal as 255


def test_scp_10_mb_both_ways_through_the_sftp_subsystem(
    key_relay: Relay, openssh: OpenSSH, tmp_path: Path
) -> None:
    require("scp")
    data = os.urandom(10 * 1024 * 1024)
    local, back = tmp_path / "ten.bin", tmp_path / "back.bin"
    local.write_bytes(data)
    remote = openssh.home / f"relay-{time.monotonic_ns()}.bin"
    scp = ["scp", *CLIENT, "-P", str(key_relay.port)]
    up = subprocess.run(
        [*scp, str(local), f"anyone@127.0.0.1:{remote}"],
        capture_output=True,
        text=True,
        timeout=GUARD,
    )
    assert up.returncode == 0, up.stderr
    down = subprocess.run(
        [*scp, f"anyone@127.0.0.1:{remote}", str(back)],
        capture_output=True,
        text=True,
        timeout=GUARD,
    )
    assert down.returncode == 0, down.stderr
    digest = hashlib.sha256(data).digest()
    assert hashlib.sha256(remote.read_bytes()).digest() == digest
    assert hashlib.sha256(back.read_bytes()).digest() == digest


def test_a_pty_session_follows_window_changes(key_relay: Relay) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: ssh on a terminal of 24x80
        os.execvp(
            "ssh",
            ["ssh", *CLIENT, "-tt", "-p", str(key_relay.port), "-l", "anyone", "127.0.0.1",
             "stty size; read line; stty size"],
        )  # fmt: skip
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    out = b""
    deadline = time.monotonic() + GUARD
    resized = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not resized and b"\n" in out:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
            os.kill(pid, signal.SIGWINCH)
            time.sleep(0.3)
            os.write(fd, b"go\r")
            resized = True
    os.waitpid(pid, 0)
    sizes = [line.strip() for line in out.decode(errors="replace").splitlines() if line.strip()]
    assert sizes[0] == "24 80", out
    assert "33 101" in sizes, out


def test_a_wrong_host_key_is_refused_with_the_reason(openssh: OpenSSH) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    relay = Relay(
        Upstream(
            host="127.0.0.1",
            port=openssh.port,
            username=openssh.user,
            known_hosts=_known(openssh.port, other),
            private_key=openssh.client_key.read_text(),
        )
    )
    try:
        done = relay.ssh("echo never")
        assert done.returncode == 255 and done.stdout == ""
        assert "does not match the one recorded for the target" in done.stderr, done.stderr
    finally:
        relay.close()


def test_no_known_host_key_is_refused(openssh: OpenSSH) -> None:
    relay = Relay(
        Upstream(
            "127.0.0.1",
            openssh.port,
            openssh.user,
            known_hosts="",
            private_key=openssh.client_key.read_text(),
        )
    )
    try:
        done = relay.ssh("echo never")
        assert done.returncode == 255 and "no host key is known for 127.0.0.1:" in done.stderr
    finally:
        relay.close()


def test_an_injected_password_and_a_refused_one(ssh_server: SSHServer) -> None:
    import asyncssh as _asyncssh

    async def host_key() -> str:
        conn = await _asyncssh.connect(
            "127.0.0.1", ssh_server.port, username="pwuser", password=SSH_PASSWORD, known_hosts=None
        )
        key = conn.get_server_host_key()
        conn.close()
        assert key is not None
        return key.export_public_key().decode().strip()

    known = _known(ssh_server.port, asyncio.run(host_key()))
    good = Relay(Upstream("127.0.0.1", ssh_server.port, "pwuser", known, password=SSH_PASSWORD))
    bad = Relay(Upstream("127.0.0.1", ssh_server.port, "pwuser", known, password="wrong"))
    try:
        done = good.ssh("echo via password; exit 3")
        assert (done.returncode, done.stdout) == (3, "via password\n"), done.stderr
        refused = bad.ssh("echo never")
        assert refused.returncode == 255
        assert "refused the injected credential of 'pwuser'" in refused.stderr, refused.stderr
    finally:
        good.close()
        bad.close()


def _forward(relay: Relay, where: str, payload: bytes, *extra: str):  # noqa: ANN202
    return subprocess.run(
        ["ssh", *extra, *CLIENT, "-p", str(relay.port), "-l", "anyone", "-W", where,
         "127.0.0.1"],
        capture_output=True, timeout=GUARD, input=payload,
    )  # fmt: skip


def test_a_forward_is_opened_by_the_host(key_relay: Relay, echo_server) -> None:  # noqa: ANN001
    """`ssh -W` (and so -L, -D: direct-tcpip channels) through the relay: the host
    dials the destination and the bytes come back whole."""
    payload = os.urandom(3 * 1024 * 1024)
    done = _forward(key_relay, f"127.0.0.1:{echo_server.port}", payload)
    assert done.returncode == 0, done.stderr
    assert done.stdout == payload


def test_forwards_the_host_cannot_make_and_remote_forwards_are_refused(key_relay: Relay) -> None:
    closed = free_port()
    done = _forward(key_relay, f"127.0.0.1:{closed}", b"", "-o", "LogLevel=INFO")
    assert done.returncode != 0
    assert f"the host cannot forward to 127.0.0.1:{closed}" in done.stderr.decode(), done.stderr
    remote = subprocess.run(
        ["ssh", *CLIENT, "-p", str(key_relay.port), "-l", "anyone", "-o",
         "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9", "-N", "127.0.0.1"],
        capture_output=True, text=True, timeout=GUARD, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert remote.returncode != 0
    assert "remote port forwarding failed" in remote.stderr, remote.stderr
