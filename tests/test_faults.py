"""Faults, each with SIGKILL mid-transfer (the multi-controller PostgreSQL ones are in
test_cluster_e2e.py): the client, on SQLite and PostgreSQL; `bconnect dev` (controller
and worker in one process) on SQLite, started again on the same database and ports; and
on SQLite with the controller and two workers as separate `bconnect server -config`
processes, a worker (the client fails over, the worker is started again) and the
controller (started again on the same file and ports while the worker relays on).
Afterwards every session and connection has its final state and reason, no session
stays active past its expiry, the database passes an integrity check, and the restarted
processes carry on."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy
from support.cluster_harness import SQLiteCluster
from support.cluster_sessions import (
    Stream,
    a_session_through,
    closed_by_the_end_user,
    kill_the_serving_worker,
    still_relaying_past_the_grace,
    target,
)
from support.constants import GUARD
from support.dataplane import (
    authorize,
    connection_closed,
    make_target,
    session,
    start_connect,
    terminated,
)
from support.dev import DevProcess
from support.echo import echo_through
from support.hardening import hardening_report
from support.wait import wait_for


def database_is_consistent(ctl: Any) -> None:
    """SQLite's integrity check, and on both engines: no connection without its session,
    no open connection of an ended session, no state history with a gap."""
    engine = ctl.engine
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        orphans = conn.exec_driver_sql(
            "SELECT count(*) FROM session_connections c "
            "LEFT JOIN sessions s ON s.id = c.session_id WHERE s.id IS NULL"
        ).scalar()
        open_of_ended = conn.exec_driver_sql(
            "SELECT count(*) FROM session_connections c JOIN sessions s ON s.id = c.session_id "
            "WHERE s.status = 'terminated' AND c.status <> 'closed'"
        ).scalar()
        current_states = conn.exec_driver_sql(
            "SELECT count(*) FROM sessions s WHERE (SELECT count(*) FROM session_states st "
            "WHERE st.session_id = s.id AND st.end_time IS NULL) <> 1"
        ).scalar()
    assert (orphans, open_of_ended, current_states) == (0, 0, 0)


@pytest.mark.all_databases
def test_client_killed_mid_transfer(dataplane, echo_server, connects) -> None:  # noqa: ANN001
    target = make_target(dataplane, echo_server.port, session_max_seconds=4)
    auth = authorize(dataplane, target)
    sid = auth["session_id"]
    c, port = start_connect(connects, dataplane, auth["authorization_token"])
    stream = Stream(port)
    try:
        assert stream.flowing(256 * 1024)
        c.proc.kill()  # SIGKILL: no cancel, no goodbye
        c.proc.wait(GUARD)
        assert stream.ended.wait(GUARD)
    finally:
        stream.close()
    # the worker saw the client go: the connection is closed, with its bytes
    closed = connection_closed(dataplane, sid)
    assert closed, session(dataplane, sid)
    record = closed["connections"][0]
    # EOF reads as the end user hanging up; a reset (the kernel closing a killed
    # process's socket with unread data) as an error of the relay: either way a reason
    assert record["closed_reason"] in ("closed by end-user", "network error", "system error")
    assert int(record["bytes_up"]) > 0
    # nobody cancels: the session ends at its expiry, not later
    final = terminated(dataplane, sid)
    assert final and final["termination_reason"] == "timed out", session(dataplane, sid)
    database_is_consistent(dataplane)
    hardening_report("faults", {"kill -9 of a client mid-transfer": 1, "sessions checked": 1})


def test_dev_killed_mid_transfer_and_restarted(tmp_path, echo_server, connects) -> None:  # noqa: ANN001
    dev = DevProcess(tmp_path)
    try:
        dev.start()
        target = make_target(dev, echo_server.port)
        auth = authorize(dev, target)
        sid = auth["session_id"]
        c, port = start_connect(connects, dev, auth["authorization_token"])
        stream = Stream(port)
        try:
            assert stream.flowing(256 * 1024)
            dev.kill()  # controller and worker gone at once, mid-write
            assert stream.ended.wait(GUARD)
        finally:
            stream.close()
        with sqlite3.connect(dev.db) as conn:  # the file survived a SIGKILL mid-write
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        dev.start()
        # the restarted worker does not report the dead connection: closed, system error
        closed = connection_closed(dev, sid)
        assert closed and closed["connections"][0]["closed_reason"] == "system error"
        assert closed["status"] == "active"
        # the client carries on through the restarted worker, then leaves cleanly
        payload = os.urandom(128 * 1024)
        assert echo_through(port, payload) == payload
        code, _, err = c.finish(signal.SIGINT)
        assert code == 0, err
        final = terminated(dev, sid)
        assert final and final["termination_reason"] == "canceled"
        assert "Traceback" not in re.sub(r"\s+", " ", dev.log.read_text())
    finally:
        dev.kill()
    with sqlite3.connect(dev.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    hardening_report(
        "faults", {"kill -9 of bconnect dev (SQLite) mid-transfer": 1, "sessions checked": 1}
    )


@pytest.fixture
def sqlite_cluster(tmp_path: Path) -> Iterator[SQLiteCluster]:
    """Controller a on a SQLite file, workers a and b as separate processes. A worker
    silent for 3 s is given up on by the controller; a worker keeps its connections for
    a minute without a controller (the controller's restart has to fit in that)."""
    running = SQLiteCluster(
        tmp_path,
        {"job_interval": "200ms", "worker_grace": "3s"},
        {"status_interval": "200ms", "controller_grace": "60s"},
    )
    try:
        running.start()
        yield running
    finally:
        running.close()


def _file_is_consistent(cluster: SQLiteCluster) -> None:
    """database_is_consistent on the cluster's database file, read beside the controller."""
    engine = sqlalchemy.create_engine(cluster.url)
    try:
        database_is_consistent(SimpleNamespace(engine=engine))
    finally:
        engine.dispose()


def _no_traceback(cluster: SQLiteCluster) -> None:
    for proc in cluster.processes:
        assert "Traceback" not in proc.output(), f"{proc.name}:\n{proc.output()[-3000:]}"


def test_worker_killed_mid_transfer_on_sqlite(sqlite_cluster, echo_server, connects) -> None:  # noqa: ANN001
    cluster = sqlite_cluster
    project, tid, sid, c, port = a_session_through(cluster, echo_server.port, connects)
    stream = Stream(port)
    victim, survivor = kill_the_serving_worker(cluster, sid, stream, flowing=256 * 1024)
    doomed = victim.worker_name
    assert not stream.error
    # the controller's dead-workers job closes the connection after the grace period
    closed = connection_closed(cluster.a, sid)
    assert closed, session(cluster.a, sid)
    assert closed["connections"][0]["closed_reason"] == "system error"
    assert closed["status"] == "active"
    assert cluster.healthy_workers() == {survivor.worker_name}
    # the client fails over: the session carries on through the other worker
    payload = os.urandom(256 * 1024)
    assert echo_through(port, payload) == payload
    assert cluster.serving_workers(sid) == [doomed, survivor.worker_name]

    # the killed worker is started again (same name, same worker id) and serves again
    victim.start()
    assert wait_for(lambda: cluster.healthy_workers() == {"worker-a", "worker-b"}), cluster.logs()
    pinned = target(cluster, project, echo_server.port, worker_filter=f'"/name" == "{doomed}"')
    other = authorize(cluster.a, pinned)
    oc, other_port = start_connect(connects, cluster.a, other["authorization_token"])
    assert echo_through(other_port, b"carrying on") == b"carrying on"
    assert cluster.serving_workers(other["session_id"]) == [doomed]

    # it has not brought the dead connection back
    def reasons() -> list[str]:
        return sorted(
            conn.get("closed_reason", "") for conn in session(cluster.a, sid)["connections"]
        )

    assert wait_for(lambda: reasons() == ["closed by end-user", "system error"]), reasons()

    # both clients leave: their sessions end canceled, as Boundary records it
    for client, ended in ((c, sid), (oc, other["session_id"])):
        code, _, err = client.finish(signal.SIGINT)
        assert code == 0, err
        final = terminated(cluster.a, ended) or session(cluster.a, ended)
        assert final["termination_reason"] == "canceled", final
        assert all(conn.get("closed_reason") for conn in final["connections"]), final
    _file_is_consistent(cluster)
    _no_traceback(cluster)
    hardening_report(
        "faults", {"kill -9 of a worker (SQLite) mid-transfer": 1, "sessions checked": 2}
    )


def test_controller_killed_mid_transfer_on_sqlite(sqlite_cluster, echo_server, connects) -> None:  # noqa: ANN001
    cluster = sqlite_cluster
    project, tid, sid, c, port = a_session_through(cluster, echo_server.port, connects)
    stream = Stream(port)
    try:
        assert stream.flowing(), cluster.logs()
        cluster.a.kill()  # SIGKILL, mid-write of the workers' status reports
        # the worker relays on without its controller; held down past the worker grace,
        # so a restarted controller taking the silent worker for dead would show
        assert stream.flowing(), "the transfer stalled while the controller was down"
        # the file survived a SIGKILL mid-write
        assert cluster.sql("PRAGMA integrity_check") == [("ok",)]
        time.sleep(4)
        assert stream.flowing() and not stream.ended.is_set()

        cluster.a.start()  # same file, same ports
        assert wait_for(cluster.a.healthy), cluster.a.output()
        assert wait_for(lambda: cluster.healthy_workers() == {"worker-a", "worker-b"}), (
            cluster.logs()
        )
        # the restarted controller carries on: a new session through the same worker
        fresh = authorize(cluster.a, tid)
        fc, fresh_port = start_connect(connects, cluster.a, fresh["authorization_token"])
        assert echo_through(fresh_port, b"carrying on") == b"carrying on"
        code, _, err = fc.finish(signal.SIGINT)
        assert code == 0, err
        # the byte counts are reported again to the restarted controller
        still_relaying_past_the_grace(cluster.a, sid, stream, reader=cluster.a)
    finally:
        sent = stream.close()
    assert not stream.error and not stream.ended.is_set()
    closed_by_the_end_user(cluster.a, sid, sent)
    code, _, err = c.finish(signal.SIGINT)
    assert code == 0, err
    final = terminated(cluster.a, sid)
    assert final and final["termination_reason"] == "canceled", session(cluster.a, sid)
    states = [s["status"] for s in final["states"]]
    assert states == ["terminated", "canceling", "active", "pending"]
    ended = terminated(cluster.a, fresh["session_id"]) or session(cluster.a, fresh["session_id"])
    assert ended["termination_reason"] == "canceled", ended
    assert ended["connections"][0]["closed_reason"] == "closed by end-user", ended
    _file_is_consistent(cluster)
    _no_traceback(cluster)
    hardening_report(
        "faults", {"kill -9 of a controller (SQLite) mid-transfer": 1, "sessions checked": 2}
    )
