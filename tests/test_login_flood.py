"""An anonymous login flood must not starve the controller: 400 logins with made-up
login names, 64 at a time, from one address, against a `bconnect server` controller
(SQLite) while a proxied connection carries data through a separate worker. The flood
is turned away before it costs more than a few password hashes, the workers' status
reports keep coming (their connections would be closed otherwise), the live
connection keeps flowing and the controller's memory stays bounded."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import requests
from support.cluster_harness import SQLiteCluster
from support.cluster_sessions import Stream, a_session_through
from support.dataplane import session
from support.hardening import hardening_report
from support.processes import memory_mb

WORKER_GRACE = 5.0  # seconds without a status report before the controller gives up


@pytest.fixture
def sqlite_cluster(tmp_path: Path) -> Iterator[SQLiteCluster]:
    running = SQLiteCluster(
        tmp_path,
        {"job_interval": "200ms", "worker_grace": f"{WORKER_GRACE:g}s"},
        {"status_interval": "500ms", "controller_grace": f"{WORKER_GRACE:g}s"},
    )
    try:
        running.start()
        yield running
    finally:
        running.close()


class StatusWatch:
    """Reads the workers' last status report times off the database file, and keeps
    the longest gap between two reports of one worker."""

    def __init__(self, cluster: SQLiteCluster) -> None:
        self.cluster = cluster
        self.longest = 0.0
        self.reports = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last: dict[str, datetime] = {}
        while not self._stop.wait(0.05):
            for name, stamp in self.cluster.sql("SELECT name, last_status_time FROM workers"):
                when = datetime.fromisoformat(str(stamp))
                if name in last and when != last[name]:
                    self.reports += 1
                    self.longest = max(self.longest, (when - last[name]).total_seconds())
                last[name] = when

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def test_an_anonymous_login_flood_cannot_cut_live_sessions(
    sqlite_cluster: SQLiteCluster,
    echo_server,
    connects,
) -> None:
    cluster = sqlite_cluster
    _, _, sid, _, port = a_session_through(cluster, echo_server.port, connects)
    stream = Stream(port)
    watch = StatusWatch(cluster)
    try:
        assert stream.flowing(), cluster.logs()
        url = f"{cluster.a.addr}/v1/auth-methods/{cluster.a.auth_method}:authenticate"

        def login(i: int) -> int:
            body = {
                "command": "login",
                "attributes": {"login_name": f"nobody{i}", "password": "not-the-password"},
            }
            return requests.post(url, json=body, timeout=60).status_code

        unrelated: list[float] = []

        def browse() -> None:  # an unrelated caller meanwhile
            for _ in range(10):
                start = time.monotonic()
                requests.get(f"{cluster.a.addr}/v1/scopes", timeout=60).raise_for_status()
                unrelated.append(time.monotonic() - start)

        browser = threading.Thread(target=browse)
        started = time.monotonic()
        browser.start()
        with ThreadPoolExecutor(64) as pool:
            statuses = Counter(pool.map(login, range(400)))
        flood_seconds = time.monotonic() - started
        browser.join(60)
        # the bytes kept flowing through the flood, and after it
        assert stream.flowing(), cluster.logs()
        assert not stream.ended.is_set() and not stream.error
        # nothing was closed under the client: no 'system error' for a silent worker
        conns = session(cluster.a, sid)["connections"]
        assert [c.get("closed_reason") for c in conns] == [None]
    finally:
        stream.close()
        watch.stop()
    assert set(statuses) <= {401, 429, 503}, statuses
    assert statuses[401] < 400  # most were turned away before any hash
    assert watch.longest < WORKER_GRACE, watch.longest
    peak = memory_mb(cluster.a.proc.pid, "VmHWM")
    assert peak < 600, f"the controller peaked at {peak:.0f} MB"
    assert "Traceback" not in cluster.a.output()
    hardening_report(
        "login flood",
        {
            "logins": sum(statuses.values()),
            "answers": dict(sorted((str(k), v) for k, v in statuses.items())),
            "flood seconds": round(flood_seconds, 1),
            "live connection kept": True,
            "status reports during the test": watch.reports,
            "longest gap between status reports (s)": round(watch.longest, 2),
            "unrelated GET /v1/scopes, slowest (s)": round(max(unrelated), 3),
            "controller peak RSS (MB)": round(peak),
        },
    )
