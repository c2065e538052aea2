"""Several controllers and workers as separate processes on one real PostgreSQL database
(`bconnect server -config`): sessions authorized on one controller and served through a
worker attached to the other, cancels crossing controllers, a worker killed mid-transfer,
a controller and the database restarted under a live transfer, and connection limits
held under concurrent admission through both controllers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from support.cluster_harness import Cluster
from support.cluster_sessions import (
    Stream,
    a_session_through,
    closed_by_the_end_user,
    kill_the_serving_worker,
    still_relaying_past_the_grace,
    target,
)
from support.constants import GUARD
from support.dataplane import authorize, connection_closed, session, start_connect, terminated
from support.echo import echo_through
from support.hardening import hardening_report
from support.wait import wait_for

pytestmark = pytest.mark.postgresql


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


def test_authorize_on_a_serve_through_b_cancel_on_b(cluster, echo_server, connects) -> None:
    # the filter sends the session through worker-b, which only knows controller b
    _, _, sid, _, port = a_session_through(
        cluster, echo_server.port, connects, worker_filter='"/name" == "worker-b"'
    )
    stream = Stream(port)
    try:
        assert stream.flowing(), cluster.logs()
        assert cluster.serving_workers(sid) == ["worker-b"]
        version = session(cluster.b, sid)["version"]
        canceled_at = time.monotonic()
        resp = cluster.b.request("POST", f"/v1/sessions/{sid}:cancel", json={"version": version})
        assert resp.status_code == 200, resp.text
        assert stream.ended.wait(GUARD), "the live transfer was not closed by the cancel"
        # documented: about one status interval (200 ms here); printed, never asserted
        print(f"cancel on b closed the transfer after {time.monotonic() - canceled_at:.2f} s")
        assert not stream.error
    finally:
        stream.close()
    final = terminated(cluster.a, sid)
    assert final, session(cluster.a, sid)
    assert final["termination_reason"] == "canceled"
    conn = final["connections"][0]
    assert conn["closed_reason"] == "canceled"
    assert int(conn["bytes_up"]) > 0 and int(conn["bytes_down"]) > 0


def test_kill_a_worker_mid_transfer(cluster, echo_server, connects) -> None:
    _, tid, sid, c, port = a_session_through(cluster, echo_server.port, connects)
    victim, survivor = kill_the_serving_worker(cluster, sid, Stream(port))
    doomed = victim.worker_name
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
