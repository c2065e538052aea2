"""Sessions through the multi-process clusters of cluster_harness.py: targets, a live
transfer through the client proxy (:class:`Stream`) and what a test checks of it."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from support.cluster_harness import Cluster, WorkerProcess
from support.constants import GUARD
from support.dataplane import authorize, connection_closed, session, start_connect
from support.wait import wait_for


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


def kill_the_serving_worker(
    cluster: Any, sid: str, stream: Stream, flowing: int = 1024 * 1024
) -> tuple[WorkerProcess, WorkerProcess]:
    """Once ``stream`` flows (``flowing`` more bytes), SIGKILL the worker serving session
    ``sid`` (no close report, no goodbye) and see the transfer end under it; the stream
    is closed. The killed worker and the other one."""
    try:
        assert stream.flowing(flowing), cluster.logs()
        [doomed] = cluster.serving_workers(sid)
        victim, survivor = cluster.worker_and_other(doomed)
        victim.kill()
        assert stream.ended.wait(GUARD), "the transfer through the killed worker went on"
    finally:
        stream.close()
    return victim, survivor
