"""The data plane end to end: real controller, real embedded worker, real `bconnect
connect` processes, a real TCP echo target, real TLS and WebSockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.cli import run_bconnect
from support.constants import GUARD
from support.dataplane import (
    authorize,
    connect_exec_python,
    make_target,
    session,
    start_connect,
    terminated,
)
from support.echo import echo_through
from support.wait import wait_for

from bconnect.core.certs import mint_session_certificate, session_tls_files
from bconnect.core.token import decode_authz_token

pytestmark = pytest.mark.all_databases


def test_100mb_both_ways_and_bytes_in_sessions_read(dataplane, echo_server, connects) -> None:
    auth = authorize(dataplane, make_target(dataplane, echo_server.port))
    c, port = start_connect(connects, dataplane, auth["authorization_token"])
    payload = os.urandom(100 * 1024 * 1024)
    echoed = echo_through(port, payload)
    assert hashlib.sha256(echoed).hexdigest() == hashlib.sha256(payload).hexdigest()

    def closed() -> dict | None:
        conns = session(dataplane, auth["session_id"]).get("connections") or []
        return conns[0] if conns and conns[0].get("closed_reason") else None

    conn = wait_for(closed)
    assert conn, "the connection was never reported closed"
    assert conn["bytes_up"] == str(len(payload)) and conn["bytes_down"] == str(len(payload))
    assert conn["endpoint_tcp_port"] == echo_server.port
    assert conn["client_tcp_address"] == "127.0.0.1"
    assert conn["closed_reason"] == "closed by end-user"
    assert session(dataplane, auth["session_id"])["status"] == "active"

    code, events, _ = c.finish()
    assert events[-1] == {"termination_reason": "Received shutdown signal"}
    final = wait_for(
        lambda: (
            session(dataplane, auth["session_id"])["status"] == "terminated"
            and session(dataplane, auth["session_id"])
        )
    )
    assert final["termination_reason"] == "canceled"  # as Boundary records a client's end
    states = [s["status"] for s in final["states"]]
    assert states == ["terminated", "canceling", "active", "pending"]


def test_fifty_parallel_connections(dataplane, echo_server, connects) -> None:
    auth = authorize(dataplane, make_target(dataplane, echo_server.port))
    _, port = start_connect(connects, dataplane, auth["authorization_token"])
    payloads = [os.urandom(64 * 1024) for _ in range(50)]
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda p: echo_through(port, p) == p, payloads))
    assert all(results)

    def all_closed() -> list | None:
        conns = session(dataplane, auth["session_id"]).get("connections") or []
        closed = [c for c in conns if c.get("closed_reason")]
        return closed if len(closed) == 50 else None

    conns = wait_for(all_closed)
    assert conns, "not every connection was reported closed"
    assert {c["bytes_up"] for c in conns} == {str(64 * 1024)}


def test_connection_limit_one(dataplane, echo_server, connects) -> None:
    target = make_target(dataplane, echo_server.port, session_connection_limit=1)
    auth = authorize(dataplane, target)
    c, port = start_connect(connects, dataplane, auth["authorization_token"])
    assert echo_through(port, b"only once") == b"only once"
    code, events, _ = c.finish(sig=None)  # ends by itself: no connections left
    assert code == 0
    assert {"connections_left": 0} in events
    assert events[-1] == {"termination_reason": "No connections left in session"}
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    final = terminated(dataplane, auth["session_id"])
    assert final["termination_reason"] == "connection limit"


def test_second_client_with_the_same_token_is_refused(dataplane, echo_server, connects) -> None:
    auth = authorize(dataplane, make_target(dataplane, echo_server.port))
    _, port = start_connect(connects, dataplane, auth["authorization_token"])
    assert echo_through(port, b"first") == b"first"  # pins the tofu token
    second, port2 = start_connect(connects, dataplane, auth["authorization_token"])
    with socket.create_connection(("127.0.0.1", port2), timeout=GUARD) as sock:
        sock.sendall(b"x")
        sock.settimeout(GUARD)
        try:
            data = sock.recv(10)
        except ConnectionResetError:
            data = b""
        assert data == b""
    code, events, _ = second.finish(sig=None)
    assert code == 1
    assert events[-1] == {
        "termination_reason": "Error from proxy client: session is already in use"
    }
    assert echo_through(port, b"still mine") == b"still mine"


def test_cancel_from_the_api_kills_a_live_transfer(dataplane, echo_server, connects) -> None:
    auth = authorize(dataplane, make_target(dataplane, echo_server.port))
    c, port = start_connect(connects, dataplane, auth["authorization_token"])
    sock = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
    sock.sendall(b"hello")
    assert sock.recv(5) == b"hello"
    sid = auth["session_id"]
    version = session(dataplane, sid)["version"]
    resp = dataplane.request("POST", f"/v1/sessions/{sid}:cancel", json={"version": version})
    assert resp.status_code == 200
    sock.settimeout(GUARD)
    ended = b""
    try:
        while chunk := sock.recv(1024):
            ended += chunk
    except ConnectionResetError:
        pass
    sock.close()
    code, events, _ = c.finish(sig=None)
    assert events[-1]["termination_reason"] == f"Session {sid} was canceled"
    final = terminated(dataplane, sid)
    assert final["termination_reason"] == "canceled"
    assert final["connections"][0]["closed_reason"] == "canceled"


def test_expired_session_ends_the_proxy(dataplane, echo_server, connects) -> None:
    target = make_target(dataplane, echo_server.port, session_max_seconds=3)
    auth = authorize(dataplane, target)
    c, port = start_connect(connects, dataplane, auth["authorization_token"])
    assert echo_through(port, b"quick") == b"quick"
    code, events, _ = c.finish(sig=None)
    assert events[-1] == {"termination_reason": "Session has expired"}
    final = terminated(dataplane, auth["session_id"])
    assert final["termination_reason"] == "timed out"


def test_exec_with_templating_and_exit_code(dataplane, echo_server, connects) -> None:
    target = make_target(dataplane, echo_server.port)
    child = (
        "import os, socket, sys\n"
        "port = int(sys.argv[1])\n"
        "assert port == int(os.environ['BOUNDARY_PROXIED_PORT'])\n"
        "assert os.environ['BOUNDARY_PROXIED_ADDR'] == '127.0.0.1:%d' % port\n"
        "s = socket.create_connection((sys.argv[2], port))\n"
        "s.sendall(b'ping'); assert s.recv(4) == b'ping'\n"
        "sys.exit(7)\n"
    )
    c = connect_exec_python(dataplane, target, child, "{{boundary.port}}", "{{ boundary.ip }}")
    connects.append(c)
    code, events, err = c.finish(sig=None)
    assert code == 7, err
    sid = events[0]["session_id"]
    final = terminated(dataplane, sid)
    assert final["connections"][0]["bytes_up"] == "4"


def test_refusing_target_closes_with_a_reason(dataplane, connects) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    auth = authorize(dataplane, make_target(dataplane, dead_port))
    c, port = start_connect(connects, dataplane, auth["authorization_token"])
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
        sock.settimeout(GUARD)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(10) == b""
    conn = wait_for(
        lambda: (
            (cs := session(dataplane, auth["session_id"]).get("connections"))
            and cs[0].get("closed_reason")
            and cs[0]
        )
    )
    assert conn["closed_reason"] == "network error"
    c.finish()


def test_worker_shrugs_off_garbage_and_strangers(dataplane, echo_server, connects) -> None:
    host, port = dataplane.proxy_addr.split(":")
    auth = authorize(dataplane, make_target(dataplane, echo_server.port))
    data = decode_authz_token(auth["authorization_token"])
    # garbage, plain HTTP, and TLS with a self-made certificate for the same session id
    for junk in (b"\x00" * 64, b"GET /v1/proxy HTTP/1.1\r\nHost: x\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=GUARD) as sock:
            sock.sendall(junk)
            sock.settimeout(GUARD)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) in (b"",)
    fake_cert, fake_key = mint_session_certificate(data.session_id, ["127.0.0.1"], data.expiration)
    cert_pem, key_pem = session_tls_files(fake_cert, fake_key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["http/1.1", data.session_id])
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cpath, kpath = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        Path(cpath).write_bytes(cert_pem)
        Path(kpath).write_bytes(key_pem)
        ctx.load_cert_chain(cpath, kpath)
    with socket.create_connection((host, int(port)), timeout=GUARD) as raw:
        try:
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(b"GET /v1/proxy HTTP/1.1\r\n\r\n")
                assert tls.recv(100) == b""
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass  # refused during or right after the handshake
    # the real client still works
    _, proxy_port = start_connect(connects, dataplane, auth["authorization_token"])
    assert echo_through(proxy_port, b"fine") == b"fine"


def test_the_worker_appears_in_workers_list(dataplane) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOUNDARY_", "BCONNECT_"))}
    env.update(BOUNDARY_ADDR=dataplane.addr, BOUNDARY_TOKEN=dataplane.token("admin"))
    out = run_bconnect("workers", "list", "-format", "json", env=env)
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)["items"]
    assert [(w["name"], w["address"]) for w in items] == [("test-worker", dataplane.proxy_addr)]
    assert items[0]["id"].startswith("w_")


def test_connections_a_restarted_worker_forgot_are_closed(dataplane) -> None:
    """A worker that no longer reports a connection (it crashed and came back) gets it
    closed as a system error, so a canceled session can end."""
    from support.cluster_api import WorkerClient

    from bconnect.controller.sessionops import UNREPORTED_GRACE

    w = WorkerClient(dataplane)
    w.register("crashy")
    auth = authorize(dataplane, "ttcp_1234567890")
    sid = auth["session_id"]
    cid = w.call(
        "POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": "G" * 20}
    ).json()["connection_id"]
    version = session(dataplane, sid)["version"]
    dataplane.request("POST", f"/v1/sessions/{sid}:cancel", json={"version": version})
    # the connection is still open as far as the controller knows
    assert session(dataplane, sid)["status"] == "canceling"
    # pretend time passed beyond the grace period, then the restarted worker reports
    # without that connection
    from datetime import UTC, datetime

    from bconnect.controller.storage import schema as t

    with dataplane.engine.begin() as conn:
        conn.execute(
            t.session_connections.update()
            .where(t.session_connections.c.id == cid)
            .values(updated_time=datetime.now(UTC) - UNREPORTED_GRACE * 2)
        )
    w.call("POST", f"/v1/cluster/workers/{w.worker_id}:status", json={"connections": []})
    final = session(dataplane, sid)
    assert final["status"] == "terminated" and final["termination_reason"] == "canceled"
    assert final["connections"][0]["closed_reason"] == "system error"
