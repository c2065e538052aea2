"""Worker identities: controller-led registration gives each worker a credential of its
own (Boundary's `workers create controller-led` and activation token), and a worker with
one acts only as itself: it reads the keys of sessions offered to it only, reports only
its own connections, and its name cannot be taken with the shared key."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support.cluster_harness import Process, SQLiteCluster, bconnect_json
from support.cluster_sessions import Stream, a_session_through, target
from support.constants import GUARD
from support.dataplane import authorize, start_connect
from support.ports import free_port
from support.wait import wait_for


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SQLiteCluster]:
    running = SQLiteCluster(
        tmp_path, {"job_interval": "200ms", "worker_grace": "3s"}, {"status_interval": "500ms"}
    )
    try:
        running.start()
        yield running
    finally:
        running.close()


def own_credential_worker(cluster: SQLiteCluster, token: str | None, name: str) -> Process:
    """A `bconnect server` worker with auth storage (and the activation token, if any)."""
    storage = cluster.directory / f"{name}-auth"
    proxy, ops = free_port(), free_port()
    lines = [
        "[worker]",
        f"controllers = [{json.dumps(cluster.a.cluster_addr)}]",
        f"auth_storage_path = {json.dumps(str(storage))}",
        'status_interval = "500ms"',
    ]
    env = dict(cluster.env)
    if token:
        env["BCONNECT_TEST_ACTIVATION_TOKEN"] = token
        lines.append(
            'controller_generated_activation_token = "env://BCONNECT_TEST_ACTIVATION_TOKEN"'
        )
    config = (
        "\n".join(lines)
        + f"""

[[listener]]
purpose = "proxy"
address = "127.0.0.1:{proxy}"

[[listener]]
purpose = "ops"
address = "127.0.0.1:{ops}"
"""
    )
    process = Process(name, config, cluster.directory, env)
    process.address = f"127.0.0.1:{proxy}"  # type: ignore[attr-defined]
    process.storage = storage  # type: ignore[attr-defined]
    return process


def create_controller_led(cluster: SQLiteCluster, name: str) -> dict[str, Any]:
    """`bconnect workers create controller-led`, the real CLI, as admin."""
    env = {
        **cluster.env,
        "BOUNDARY_ADDR": cluster.a.addr,
        "BOUNDARY_TOKEN": cluster.a.token(),
        "BCONNECT_KEYRING_TYPE": "none",
    }
    return bconnect_json("workers", "create", "controller-led", "-name", name, env=env)["item"]


def cluster_call(cluster: SQLiteCluster, method: str, path: str, secret: str, **kw: Any) -> Any:
    return requests.request(
        method,
        f"http://{cluster.a.cluster_addr}{path}",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=GUARD,
        **kw,
    )


def test_a_worker_with_its_own_credential(
    cluster: SQLiteCluster,
    echo_server,
    connects,
) -> None:
    item = create_controller_led(cluster, "worker-c")
    token = item["controller_generated_activation_token"]
    assert token.startswith("wat_") and item["name"] == "worker-c"
    # the token is shown once: a read does not have it
    read = cluster.a.request("GET", f"/v1/workers/{item['id']}").json()
    assert "controller_generated_activation_token" not in read

    worker = own_credential_worker(cluster, token, "worker-c")
    worker.start()
    cluster.processes.append(worker)
    assert wait_for(lambda: "worker-c" in cluster.healthy_workers()), worker.output()
    stored = worker.storage / "worker-credential.json"  # type: ignore[attr-defined]
    # the controller counts the worker from its activation; the file follows the answer
    assert wait_for(stored.exists), worker.output()
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
    assert oct(stored.parent.stat().st_mode & 0o777) == "0o700"
    credential = json.loads(stored.read_text())["credential"]
    assert credential.startswith(f"{item['id']}_c1")
    assert token not in worker.output() and credential not in worker.output()
    # the token is spent
    again = cluster_call(
        cluster,
        "POST",
        "/v1/cluster/workers:activate",
        "x",
        json={"activation_token": token, "address": "127.0.0.1:1"},
    )
    assert again.status_code == 401

    # it serves sessions: a transfer through it alone (a worker filter on its name)
    project, _, sid, _, port = a_session_through(
        cluster, echo_server.port, connects, worker_filter='"/name" == "worker-c"'
    )
    stream = Stream(port)
    try:
        assert stream.flowing(), worker.output()
    finally:
        stream.close()
    assert cluster.serving_workers(sid) == ["worker-c"]

    # restarted without a token, it logs in with the stored credential
    worker.stop()
    restarted = own_credential_worker(cluster, None, "worker-c")
    restarted.start()
    cluster.processes.append(restarted)

    def registered_address() -> str:
        return cluster.sql("SELECT address FROM workers WHERE name = 'worker-c'")[0][0]

    # the old process may still count as healthy: wait for the new one's own login
    assert wait_for(lambda: registered_address() == restarted.address), restarted.output()  # type: ignore[attr-defined]
    assert "worker-c" in cluster.healthy_workers()
    restarted.stop()

    # it acts only as itself
    other = authorize(
        cluster.a, target(cluster, project, echo_server.port, worker_filter='"/name" == "worker-a"')
    )
    offered_elsewhere = cluster_call(
        cluster, "GET", f"/v1/cluster/sessions/{other['session_id']}", credential
    )
    assert offered_elsewhere.status_code == 403
    mine = cluster_call(cluster, "GET", f"/v1/cluster/sessions/{sid}", credential)
    assert mine.status_code == 200
    worker_a = cluster.sql("SELECT id FROM workers WHERE name = 'worker-a'")[0][0]
    as_other = cluster_call(
        cluster,
        "POST",
        f"/v1/cluster/workers/{worker_a}:status",
        credential,
        json={"connections": []},
    )
    assert as_other.status_code == 403
    # a connection served by another worker cannot be reported by this one
    _, other_port = start_connect(connects, cluster.a, other["authorization_token"])
    with socket.create_connection(("127.0.0.1", other_port), timeout=GUARD) as sock:
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
        connection = cluster.sql(
            "SELECT id FROM session_connections WHERE session_id = ?", other["session_id"]
        )[0][0]
        forged = cluster_call(
            cluster,
            "POST",
            f"/v1/cluster/connections/{connection}:closed",
            credential,
            json={"bytes_up": 0, "bytes_down": 0, "closed_reason": "system error"},
        )
        assert forged.status_code == 403
        # nor in a batch, nor admit connections for a session offered to another
        batch = cluster_call(
            cluster,
            "POST",
            "/v1/cluster/connection-events",
            credential,
            json={
                "events": [
                    {"event": "closed", "connection_id": connection},
                    {
                        "event": "admitted",
                        "connection_id": "sc_Forged0001",
                        "session_id": other["session_id"],
                        "tofu_token": "T" * 20,
                    },
                ]
            },
        )
        assert batch.status_code == 200
        assert [r["kind"] for r in batch.json()["results"]] == ["PermissionDenied"] * 2
    # and nobody with the shared key can take its name (and so its clients)
    taken = cluster_call(
        cluster,
        "POST",
        "/v1/cluster/workers:register",
        cluster.env["BCONNECT_TEST_WORKER_KEY"],
        json={"name": "worker-c", "address": "127.0.0.1:9"},
    )
    assert taken.status_code == 403
    assert registered_address() == restarted.address  # type: ignore[attr-defined]
    # a made-up credential is refused
    made_up = f"{item['id']}_c1" + "x" * 40
    assert cluster_call(cluster, "GET", f"/v1/cluster/sessions/{sid}", made_up).status_code == 401


def test_a_refused_activation_token_is_one_clear_line(cluster: SQLiteCluster) -> None:
    worker = own_credential_worker(cluster, "wat_not-a-real-token", "worker-x")
    worker.start()
    assert worker.proc is not None
    worker.proc.wait(GUARD)
    assert worker.proc.returncode == 1
    assert "refused the activation token" in worker.output()
    assert "Traceback" not in worker.output()
    assert not os.path.exists(worker.storage / "worker-credential.json")  # type: ignore[attr-defined]
