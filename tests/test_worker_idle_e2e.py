"""The worker's idle timeout end to end: `bconnect server` with `[worker] idle_timeout`,
the real `bconnect connect` client. An idle connection is closed, recorded as timed
out, and the client and the session carry on."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cluster_harness import SQLiteCluster
from support.cluster_sessions import target
from support.constants import GUARD
from support.dataplane import authorize, connection_closed, session, start_connect, terminated
from support.echo import echo_through


@pytest.fixture
def idle_cluster(tmp_path: Path) -> Iterator[SQLiteCluster]:
    running = SQLiteCluster(tmp_path, {}, {"idle_timeout": "2s"})
    try:
        running.start()
        yield running
    finally:
        running.close()


def test_an_idle_connection_is_closed_and_the_session_goes_on(
    idle_cluster: SQLiteCluster,
    echo_server,  # noqa: ANN001
    connects,  # noqa: ANN001
) -> None:
    cluster = idle_cluster
    tid = target(cluster, cluster.project(), echo_server.port)
    auth = authorize(cluster.a, tid)
    sid = auth["session_id"]
    c, port = start_connect(connects, cluster.a, auth["authorization_token"])
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
        sock.sendall(b"hi")
        assert sock.recv(2) == b"hi"
        # then silence: the worker closes the connection, the client closes ours
        assert sock.recv(1) == b""
    closed = connection_closed(cluster.a, sid)
    assert closed, session(cluster.a, sid)
    record = closed["connections"][0]
    assert (record["closed_reason"], int(record["bytes_up"])) == ("timed out", 2)
    assert closed["status"] == "active"
    # the client still listens and the session takes a new connection
    payload = os.urandom(64 * 1024)
    assert echo_through(port, payload) == payload
    code, _, err = c.finish(signal.SIGINT)
    assert code == 0, err
    final = terminated(cluster.a, sid)
    assert final and final["termination_reason"] == "canceled", session(cluster.a, sid)
    assert "idle for 2s, closing" in "".join(
        w.output() for w in (cluster.worker_a, cluster.worker_b)
    )
