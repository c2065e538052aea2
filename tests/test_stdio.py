"""``bconnect connect -stdio``: one connection between stdin/stdout and the target, no
listener, for ssh's ProxyCommand. Real processes against a real controller with its
embedded worker (the ``dataplane`` fixture): pipes, regular files, an echo server, an
HTTP server, a refusing port, a signal."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import click
import pytest
from support.constants import GUARD
from support.dataplane import all_ended, make_target, sessions_of
from support.plugin_dists import admin_env
from support.ports import free_port
from support.wait import wait_for

from bconnect.cli.connect import ALIAS_KEY, connect, take_connect_args
from bconnect.core.proxy import ProxyError, ProxyResult
from bconnect.core.runner import stdio_outcome


def _stdio(ctl: Any, tmp_path: Path, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bconnect", "connect", "-stdio", *args],
        env=admin_env(ctl, tmp_path),
        **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen},
    )


def _listening_sockets(pid: int) -> set[str]:
    """The inodes of the TCP sockets process ``pid`` listens on."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.read().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    listening.add(fields[9])
    owned = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                owned.add(link[len("socket:[") : -1])
    return owned & listening


# ---------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    ("args", "alias", "rest"),
    [
        (["-stdio", "web.prod"], "web.prod", ["-stdio"]),
        (["web.prod", "-stdio"], "web.prod", ["-stdio"]),
        (
            ["-v", "-stdio", "web.prod", "-format", "json"],
            "web.prod",
            ["-v", "-stdio", "-format", "json"],
        ),
        (
            ["-stdio", "true", "-target-id", "ttcp_1"],
            None,
            ["-stdio", "true", "-target-id", "ttcp_1"],
        ),
        (["-stdio", "-target-id", "ttcp_1"], None, ["-stdio", "-target-id", "ttcp_1"]),
        (["-stdio", "ssh", "web"], None, ["-stdio", "ssh", "web"]),
        (["-stdio", "-addr", "http://c:9200", "web"], "web", ["-stdio", "-addr", "http://c:9200"]),
        (
            ["-stdio=true", "-name-suffix", "bc", "a.b.bc"],
            "a.b.bc",
            ["-stdio=true", "-name-suffix", "bc"],
        ),
        (["-addr", "http://c", "web"], None, ["-addr", "http://c", "web"]),  # no -stdio: as before
    ],
)
def test_the_alias_among_stdio_flags(args, alias, rest) -> None:
    ctx = click.Context(connect)
    left = take_connect_args(ctx, args, lambda name: name == "ssh")
    assert (ctx.meta.get(ALIAS_KEY), left) == (alias, rest)


def _result(**kw: Any) -> ProxyResult:
    fields = dict(reason="", error=None, teardown_sent=True, connections_left=-1, handshakes=1)
    return ProxyResult(**{**fields, **kw})


@pytest.mark.parametrize(
    ("shutdown", "result", "expected"),
    [
        (False, _result(), (0, "")),
        (True, _result(reason="Received shutdown signal"), (0, "")),
        (False, _result(error=ProxyError("boom")), (1, "Error: boom")),
        (
            False,
            _result(reason="No connections left in session", handshakes=0),
            (1, "Error: no connection was made: No connections left in session"),
        ),
        (False, _result(reason="Session s_1 was canceled"), (1, "Session s_1 was canceled")),
        (False, None, (1, "Error: the proxy did not start")),
    ],
)
def test_stdio_outcome(shutdown, result, expected) -> None:
    assert stdio_outcome(shutdown=shutdown, result=result) == expected


# ---------------------------------------------------------------------- end to end
def test_pipes_carry_bytes_both_ways_and_a_hangup_cancels(dataplane, echo_server, tmp_path) -> None:
    target = make_target(dataplane, echo_server.port)
    proc = _stdio(dataplane, tmp_path, "-target-id", target, stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    payload = os.urandom(3 * 1024 * 1024 + 17)
    writer = threading.Thread(target=lambda: (proc.stdin.write(payload), proc.stdin.flush()))
    writer.start()
    got = bytearray()
    while len(got) < len(payload):
        chunk = proc.stdout.read1(1 << 16)
        assert chunk, proc.stderr.read() if proc.stderr else ""
        got += chunk
    writer.join(GUARD)
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    assert _listening_sockets(proc.pid) == set()  # no local listener in stdio mode
    # stdin's end does not end the connection (no half-close on the wire): the echo
    # server keeps it open, as sshd would; ssh ends its proxy command with SIGHUP
    proc.stdin.close()
    assert not all_ended(dataplane, target)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(GUARD) == 0
    err = proc.stderr.read() if proc.stderr else b""
    assert err == b""  # nothing at the default level when things work
    assert wait_for(lambda: all_ended(dataplane, target)), sessions_of(dataplane, target)
    assert [s["id"] for s in sessions_of(dataplane, target)]  # exactly one session, ended


def test_files_as_stdin_and_stdout_and_the_target_closing(dataplane, http_server, tmp_path) -> None:
    port, _seen = http_server
    target = make_target(dataplane, port)
    request = tmp_path / "request.txt"
    request.write_bytes(b"GET /hello HTTP/1.0\r\nHost: example\r\n\r\n")
    answer = tmp_path / "answer.txt"
    with open(request, "rb") as stdin, open(answer, "wb") as stdout:
        proc = _stdio(dataplane, tmp_path, "-target-id", target, stdin=stdin, stdout=stdout)
        _, err = proc.communicate(timeout=GUARD)
    assert proc.returncode == 0, err
    assert err == b""
    text = answer.read_bytes()
    assert text.startswith(b"HTTP/1.0 200"), text[:200]
    assert wait_for(lambda: all_ended(dataplane, target))


def test_a_target_that_refuses_is_one_line_and_exit_1(dataplane, tmp_path) -> None:
    target = make_target(dataplane, free_port())  # nothing listens there
    proc = _stdio(dataplane, tmp_path, "-target-id", target, stdin=subprocess.PIPE)
    out, err = proc.communicate(b"hello", timeout=GUARD)
    assert proc.returncode == 1, err
    assert out == b""
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "unable to dial endpoint" in lines[0], err
    assert wait_for(lambda: all_ended(dataplane, target))


def test_stdio_refuses_listener_and_program_flags(dataplane, tmp_path) -> None:
    for extra in (["-listen-port", "2222"], ["-exec", "true"], ["--", "x"]):
        proc = _stdio(dataplane, tmp_path, "-target-id", "ttcp_1234567890", *extra)
        out, err = proc.communicate(timeout=GUARD)
        assert proc.returncode != 0 and out == b""
        assert b"-stdio carries one connection" in err, err
    proc = _stdio(dataplane, tmp_path, "-authz-token", "-", stdin=subprocess.PIPE)
    out, err = proc.communicate(b"an authorization token", timeout=GUARD)
    assert proc.returncode != 0 and out == b""
    assert b"give -authz-token as env://VAR or file://PATH" in err, err


def test_stdio_with_an_authorization_token(dataplane, echo_server, tmp_path) -> None:
    """A session authorized elsewhere (targets authorize-session), given by reference."""
    target = make_target(dataplane, echo_server.port)
    authz = dataplane.request("POST", f"/v1/targets/{target}:authorize-session", json={})
    assert authz.status_code == 200, authz.text
    env = {**admin_env(dataplane, tmp_path), "AUTHZ": authz.json()["authorization_token"]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bconnect", "connect", "-stdio", "-authz-token", "env://AUTHZ"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"ping\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"ping\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(GUARD) == 0
    assert wait_for(lambda: all_ended(dataplane, target))


def test_a_target_that_greets_and_hangs_up_at_once(dataplane, tmp_path) -> None:
    """The greeting and the close can reach the client together with the handshake
    result: the greeting is still written to stdout, and the run is a success."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    greeting = b"220 hello from a one-shot service\r\n"

    def serve() -> None:
        for _ in range(2):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(greeting)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        target = make_target(dataplane, server.getsockname()[1])
        for _ in range(2):
            proc = _stdio(dataplane, tmp_path, "-target-id", target, stdin=subprocess.DEVNULL)
            out, err = proc.communicate(timeout=GUARD)
            assert (proc.returncode, out, err) == (0, greeting, b"")
    finally:
        server.close()


def test_one_socket_as_stdin_and_stdout(dataplane, echo_server, tmp_path) -> None:
    """inetd, socat EXEC: and systemd hand a program one socket as stdin and stdout."""
    import socket

    ours, theirs = socket.socketpair()
    target = make_target(dataplane, echo_server.port)
    proc = _stdio(dataplane, tmp_path, "-target-id", target, stdin=theirs, stdout=theirs)
    theirs.close()
    try:
        ours.settimeout(GUARD)
        payload = os.urandom(200_000)
        ours.sendall(payload)
        got = bytearray()
        while len(got) < len(payload):
            chunk = ours.recv(65536)
            assert chunk, proc.stderr.read() if proc.stderr else b""
            got += chunk
        assert bytes(got) == payload
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(GUARD) == 0
    finally:
        ours.close()
        if proc.poll() is None:
            proc.kill()


def test_a_session_limited_to_one_connection_is_a_success(dataplane, http_server, tmp_path) -> None:
    """The one connection uses the session up: that is no failure (exit 0, quiet)."""
    port, _seen = http_server
    target = make_target(dataplane, port, session_connection_limit=1)
    proc = _stdio(dataplane, tmp_path, "-target-id", target, stdin=subprocess.PIPE)
    out, err = proc.communicate(b"GET /hello HTTP/1.0\r\n\r\n", timeout=GUARD)
    assert (proc.returncode, err) == (0, b"")
    assert out.startswith(b"HTTP/1.0 200")
