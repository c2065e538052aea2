"""Several controllers and workers as separate processes on one real PostgreSQL database
(`bconnect server -config`): sessions authorized on one controller and served through a
worker attached to the other, cancels crossing controllers, a worker killed mid-transfer,
a controller and the database restarted under a live transfer, and connection limits
held under concurrent admission through both controllers."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from cluster_harness import GUARD, Cluster, wait_for
from conftest import hardening_report
from test_dataplane_e2e import (
    authorize,
    connection_closed,
    connects,
    echo_through,
    session,
    start_connect,
    terminated,
)

pytestmark = pytest.mark.postgresql
__all__ = ["connects"]  # the fixture, shared with the data-plane tests


def running_cluster(pg: Any, directory: Path, failover: bool = False) -> Iterator[Cluster]:
    """Short grace periods: a worker silent for 3 s is given up on, and a worker no
    controller answered for 3 s closes its connections."""
    running = Cluster(
        pg,
        directory,
        {"job_interval": "200ms", "worker_grace": "3s"},
        {"status_interval": "200ms", "controller_grace": "3s"},
        failover=failover,
    )
    try:
        running.start()
        yield running
    finally:
        running.close()


@pytest.fixture
def cluster(pg: Any, tmp_path: Path) -> Iterator[Cluster]:
    yield from running_cluster(pg, tmp_path)


@pytest.fixture
def failover_cluster(pg: Any, tmp_path: Path) -> Iterator[Cluster]:
    """worker-a knows both controllers: it fails over to b while a is down."""
    yield from running_cluster(pg, tmp_path, failover=True)


class Stream:
    """A live transfer through the client proxy: 64 KiB chunks sent and their echoes
    checked, until stopped or the connection is closed under it."""

    CHUNK = 64 * 1024

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
        self.echoed = 0
        self.error = ""
        self.ended = threading.Event()  # the connection closed under us
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = os.urandom(self.CHUNK)
                self.sock.sendall(chunk)
                got = bytearray()
                while len(got) < len(chunk):
                    part = self.sock.recv(len(chunk) - len(got))
                    if not part:
                        self.ended.set()
                        return
                    got += part
                if bytes(got) != chunk:
                    self.error = "echo differs from what was sent"
                    return
                self.echoed += len(chunk)
                time.sleep(0.01)
        except OSError:
            self.ended.set()

    def flowing(self, more: int = 1024 * 1024) -> bool:
        """Wait until ``more`` bytes were echoed beyond what has been so far."""
        start = self.echoed
        return bool(wait_for(lambda: self.echoed >= start + more or self.ended.is_set())) and (
            not self.ended.is_set() and not self.error
        )

    def close(self) -> int:
        self._stop.set()
        self._thread.join(GUARD)
        self.sock.close()
        return self.echoed


def target(cluster: Cluster, project: str, port: int, **extra: Any) -> str:
    resp = cluster.a.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": project,
            "name": f"echo-{time.monotonic_ns()}",
            "address": "127.0.0.1",
            "attributes": {"default_port": port},
            **extra,
        },
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["id"]


def still_relaying_past_the_grace(ctl: Any, sid: str, stream: Stream, reader: Any) -> None:
    """The live connection outlives another grace period (4 s > the tests' 3 s): still
    flowing, not closed in ``ctl``'s records, and its byte counts still reported (as
    ``reader``, a controller, reads them)."""
    time.sleep(4)
    assert stream.flowing() and not stream.ended.is_set()
    assert not session(ctl, sid)["connections"][0].get("closed_reason")
    assert wait_for(
        lambda: int(session(reader, sid)["connections"][0]["bytes_up"]) >= stream.echoed // 2
    )


def closed_by_the_end_user(ctl: Any, sid: str, sent: int) -> None:
    """After the test stopped its Stream: the connection is closed by the end user with
    every byte counted both ways, and the session is still active."""
    closed = connection_closed(ctl, sid)
    assert closed, session(ctl, sid)
    record = closed["connections"][0]
    assert record["closed_reason"] == "closed by end-user"
    assert int(record["bytes_up"]) == sent and int(record["bytes_down"]) == sent
    assert closed["status"] == "active"


def a_session_through(
    cluster: Any, echo_port: int, connects: list, ctl: Any = None, **target_extra: Any
) -> tuple:
    """A project, a target on the echo server, a session authorized on ``ctl``
    (controller a by default) and its `bconnect connect`:
    (project, target id, session id, the Connect, its port)."""
    ctl = ctl or cluster.a
    project = cluster.project()
    tid = target(cluster, project, echo_port, **target_extra)
    auth = authorize(ctl, tid)
    c, port = start_connect(connects, ctl, auth["authorization_token"])
    return project, tid, auth["session_id"], c, port


def test_authorize_on_a_serve_through_b_cancel_on_b(cluster, echo_server, connects) -> None:
    project = cluster.project()
    # the filter sends the session through worker-b, which only knows controller b
    tid = target(cluster, project, echo_server.port, worker_filter='"/name" == "worker-b"')
    auth = authorize(cluster.a, tid)
    _, port = start_connect(connects, cluster.a, auth["authorization_token"])
    stream = Stream(port)
    try:
        assert stream.flowing(), cluster.logs()
        assert cluster.serving_workers(auth["session_id"]) == ["worker-b"]
        version = session(cluster.b, auth["session_id"])["version"]
        canceled_at = time.monotonic()
        resp = cluster.b.request(
            "POST", f"/v1/sessions/{auth['session_id']}:cancel", json={"version": version}
        )
        assert resp.status_code == 200, resp.text
        assert stream.ended.wait(GUARD), "the live transfer was not closed by the cancel"
        # documented: about one status interval (200 ms here); printed, never asserted
        print(f"cancel on b closed the transfer after {time.monotonic() - canceled_at:.2f} s")
        assert not stream.error
    finally:
        stream.close()
    final = terminated(cluster.a, auth["session_id"])
    assert final, session(cluster.a, auth["session_id"])
    assert final["termination_reason"] == "canceled"
    conn = final["connections"][0]
    assert conn["closed_reason"] == "canceled"
    assert int(conn["bytes_up"]) > 0 and int(conn["bytes_down"]) > 0


def test_kill_a_worker_mid_transfer(cluster, echo_server, connects) -> None:
    _, tid, sid, c, port = a_session_through(cluster, echo_server.port, connects)
    stream = Stream(port)
    try:
        assert stream.flowing(), cluster.logs()
        [doomed] = cluster.serving_workers(sid)
        victim, survivor = cluster.worker_and_other(doomed)
        victim.kill()  # SIGKILL: no close report, no goodbye
        assert stream.ended.wait(GUARD), "the transfer through the killed worker went on"
    finally:
        stream.close()
    # the dead worker's connection is closed by the controllers after the grace period
    closed = connection_closed(cluster.b, sid)
    assert closed, session(cluster.b, sid)
    assert closed["connections"][0]["closed_reason"] == "system error"
    assert closed["status"] == "active"
    # the other worker keeps serving: this session (the client fails over) and new ones
    payload = os.urandom(256 * 1024)
    assert echo_through(port, payload) == payload
    assert set(cluster.serving_workers(sid)) == {doomed, survivor.worker_name}
    assert cluster.healthy_workers() == {survivor.worker_name}
    other = authorize(cluster.b, tid)
    _, other_port = start_connect(connects, cluster.b, other["authorization_token"])
    assert echo_through(other_port, b"still serving") == b"still serving"
    # the client leaves: its cancel goes through the surviving worker; the session ends
    code, _, err = c.finish()
    assert code == 0, err
    final = terminated(cluster.a, sid)
    assert final and final["termination_reason"] == "canceled", session(cluster.a, sid)
    hardening_report("faults", {"kill -9 of a worker mid-transfer": 1, "sessions checked": 2})


def test_restart_a_controller_and_the_database_under_a_live_transfer(
    failover_cluster, pg, echo_server, connects
) -> None:
    cluster = failover_cluster
    _, _, sid, c, port = a_session_through(
        cluster, echo_server.port, connects, cluster.b, worker_filter='"/name" == "worker-a"'
    )
    stream = Stream(port)
    try:
        assert stream.flowing(), cluster.logs()
        assert cluster.serving_workers(sid) == ["worker-a"]

        # controller a dies: worker-a fails over to b, reports there, keeps serving;
        # held down past the 3 s grace periods, so a missed failover would show
        cluster.a.kill()
        assert stream.flowing(), "the transfer stalled while controller a was down"
        time.sleep(4)
        assert "worker-a" in cluster.healthy_workers(), cluster.logs()
        assert stream.flowing() and not stream.ended.is_set()
        cluster.a.start()
        assert wait_for(cluster.a.healthy), cluster.a.output()

        # the database goes away for longer than the grace periods: the API says so,
        # the data plane carries on, and no worker is judged dead when it returns
        pg.stop()
        down = cluster.a.request("GET", "/v1/scopes?scope_id=global")
        assert down.status_code == 503, down.text
        assert down.json()["kind"] == "Unavailable"
        assert stream.flowing(), "the transfer stalled while the database was down"
        time.sleep(4)
        assert stream.flowing() and not stream.ended.is_set()
        pg.start()
        assert wait_for(lambda: cluster.a.request("GET", f"/v1/sessions/{sid}").ok)
        assert wait_for(lambda: cluster.healthy_workers() == {"worker-a", "worker-b"}), (
            cluster.logs()
        )
        # after both restarts
        still_relaying_past_the_grace(cluster.a, sid, stream, reader=cluster.b)
    finally:
        sent = stream.close()
    assert not stream.error and not stream.ended.is_set()
    closed_by_the_end_user(cluster.a, sid, sent)
    code, _, err = c.finish()
    assert code == 0, err
    final = terminated(cluster.b, sid)
    assert final and final["termination_reason"] == "canceled"
    for ctl in (cluster.a, cluster.b):
        assert ctl.healthy()
    hardening_report(
        "faults",
        {"kill -9 of a controller": 1, "database outages past the grace": 1, "sessions checked": 1},
    )


def test_limits_hold_under_concurrent_admission_through_both_controllers(
    cluster, echo_server
) -> None:
    project = cluster.project()
    tid = target(cluster, project, echo_server.port, session_connection_limit=3)
    # sessions authorized on both controllers at once: all distinct, none lost
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: authorize((cluster.a, cluster.b)[i % 2], tid), range(16)))
    ids = {r["session_id"] for r in results}
    assert len(ids) == 16
    listed = cluster.b.request("GET", f"/v1/sessions?scope_id={project}").json()["items"]
    assert ids <= {s["id"] for s in listed}

    # one session's connections admitted through both controllers' cluster listeners
    sid = results[0]["session_id"]
    key = cluster.env["BCONNECT_TEST_WORKER_KEY"]

    def admit(i: int) -> int:
        ctl = (cluster.a, cluster.b)[i % 2]
        worker = cluster.sql("SELECT id FROM workers WHERE name = %s", f"worker-{'ab'[i % 2]}")
        resp = requests.post(
            f"http://{ctl.cluster_addr}/v1/cluster/sessions/{sid}:authorize-connection",
            json={"tofu_token": "T" * 24},
            headers={"Authorization": f"Bearer {key}", "X-Bconnect-Worker-Id": worker[0][0]},
            timeout=30,
        )
        return resp.status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(admit, range(20)))
    assert sorted(codes) == [200] * 3 + [409] * 17
    rows = cluster.sql("SELECT count(*) FROM session_connections WHERE session_id = %s", sid)
    assert rows[0][0] == 3
