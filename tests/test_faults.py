"""Faults on the embedded setup (the multi-controller ones are in test_cluster_e2e.py):
the client killed with SIGKILL mid-transfer, on SQLite and PostgreSQL; `bconnect dev`
(controller and worker in one process) killed with SIGKILL mid-transfer on SQLite and
started again on the same database and ports. Afterwards every session and connection
has its final state and reason, no session stays active past its expiry, the database
passes an integrity check, and the restarted processes carry on."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import hardening_report
from test_cluster_e2e import Stream
from test_dataplane_e2e import (
    GUARD,
    authorize,
    connects,
    echo_through,
    make_target,
    session,
    start_connect,
    wait_for,
)

__all__ = ["connects"]  # the fixture


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
    closed = wait_for(
        lambda: (s := session(dataplane, sid))["connections"][0].get("closed_reason") and s
    )
    assert closed, session(dataplane, sid)
    record = closed["connections"][0]
    # EOF reads as the end user hanging up; a reset (the kernel closing a killed
    # process's socket with unread data) as an error of the relay: either way a reason
    assert record["closed_reason"] in ("closed by end-user", "network error", "system error")
    assert int(record["bytes_up"]) > 0
    # nobody cancels: the session ends at its expiry, not later
    final = wait_for(lambda: (s := session(dataplane, sid))["status"] == "terminated" and s)
    assert final and final["termination_reason"] == "timed out", session(dataplane, sid)
    database_is_consistent(dataplane)
    hardening_report("faults", {"kill -9 of a client mid-transfer": 1, "sessions checked": 1})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dev:
    """`bconnect dev` on fixed ports and a database file, restartable."""

    def __init__(self, directory: Path) -> None:
        self.db = directory / "dev.db"
        self.ports = [_free_port() for _ in range(3)]
        self.log = directory / "dev.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.addr = f"http://127.0.0.1:{self.ports[0]}"
        self.token = ""

    def start(self) -> None:
        api, cluster, proxy = self.ports
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bconnect", "dev", "-database-url", str(self.db),
                 "-api-listen-address", f"127.0.0.1:{api}",
                 "-cluster-listen-address", f"127.0.0.1:{cluster}",
                 "-proxy-listen-address", f"127.0.0.1:{proxy}", "-job-interval", "0.2"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        assert wait_for(self._ready), self.log.read_text()

    def _ready(self) -> bool:
        try:
            resp = requests.post(
                f"{self.addr}/v1/auth-methods/ampw_1234567890:authenticate",
                json={"attributes": {"login_name": "admin", "password": "password"}},
                timeout=5,
            )
        except requests.RequestException:
            return False
        if resp.ok:
            self.token = resp.json()["attributes"]["token"]
        return resp.ok

    def request(self, method: str, path: str, who: str = "admin", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, f"{self.addr}{path}", headers=headers, timeout=30, **kw)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(GUARD)


def test_dev_killed_mid_transfer_and_restarted(tmp_path, echo_server, connects) -> None:  # noqa: ANN001
    dev = Dev(tmp_path)
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
        closed = wait_for(
            lambda: (s := session(dev, sid))["connections"][0].get("closed_reason") and s
        )
        assert closed and closed["connections"][0]["closed_reason"] == "system error"
        assert closed["status"] == "active"
        # the client carries on through the restarted worker, then leaves cleanly
        payload = os.urandom(128 * 1024)
        assert echo_through(port, payload) == payload
        code, _, err = c.finish(signal.SIGINT)
        assert code == 0, err
        final = wait_for(lambda: (s := session(dev, sid))["status"] == "terminated" and s)
        assert final and final["termination_reason"] == "closed by end-user"
        assert "Traceback" not in re.sub(r"\s+", " ", dev.log.read_text())
    finally:
        dev.kill()
    with sqlite3.connect(dev.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    hardening_report(
        "faults", {"kill -9 of bconnect dev (SQLite) mid-transfer": 1, "sessions checked": 1}
    )
