"""The worker-facing cluster API over real HTTP: keys, listeners, admission rules."""

from __future__ import annotations

import threading

import pytest
import requests
from support.cluster_api import WorkerClient, new_session
from support.constants import PROJECT

pytestmark = pytest.mark.all_databases


def limited_target(ctl, limit: int) -> str:  # noqa: ANN001
    return ctl.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": PROJECT,
            "name": f"limited-{limit}-{threading.get_ident()}-{id(ctl)}",
            "address": "127.0.0.1",
            "session_connection_limit": limit,
            "attributes": {"default_port": 22},
        },
    ).json()["id"]


def test_keys_and_listeners_are_separate(fresh_controller) -> None:
    ctl = fresh_controller
    assert WorkerClient(ctl, key="wrong").call("GET", "/v1/cluster/sessions/s_x").status_code == 401
    # a user's token is not a worker key
    user = WorkerClient(ctl, key=ctl.token("admin"))
    assert user.call("POST", "/v1/cluster/workers:register", json={}).status_code == 401
    # the cluster API is not on the public listener, the public API not on the cluster one
    assert requests.get(f"{ctl.addr}/v1/cluster/sessions/s_x", timeout=10).status_code == 404
    assert requests.get(f"{ctl.cluster_addr}/v1/scopes", timeout=10).status_code == 404


def test_register_is_idempotent_and_workers_are_listed(fresh_controller) -> None:
    ctl = fresh_controller
    w = WorkerClient(ctl)
    first = w.register("edge-1")
    assert first.startswith("w_") and w.register("edge-1") == first
    listed = ctl.request("GET", "/v1/workers?scope_id=global").json()["items"]
    assert [x["id"] for x in listed] == [first]
    assert listed[0]["address"] == "127.0.0.1:9202"


def test_connection_admission_and_bookkeeping(fresh_controller) -> None:
    ctl = fresh_controller
    w = WorkerClient(ctl)
    w.register()
    sid = new_session(ctl, limited_target(ctl, 2))
    got = w.call("GET", f"/v1/cluster/sessions/{sid}").json()
    assert got["status"] == "pending" and got["connection_limit"] == 2
    assert got["endpoint"] == "tcp://127.0.0.1:22" and got["private_key"]

    tofu = "A" * 20
    first = w.call(
        "POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": tofu}
    )
    assert first.status_code == 200, first.text
    assert first.json()["connections_left"] == 1
    read = ctl.request("GET", f"/v1/sessions/{sid}").json()
    assert read["status"] == "active"

    other = w.call(
        "POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": "B" * 20}
    )
    assert other.status_code == 409 and other.json()["kind"] == "TofuMismatch"

    cid = first.json()["connection_id"]
    ok = w.call(
        "POST",
        f"/v1/cluster/connections/{cid}:connected",
        json={
            "client_tcp_address": "127.0.0.1",
            "client_tcp_port": 50000,
            "endpoint_tcp_address": "127.0.0.1",
            "endpoint_tcp_port": 22,
        },
    )
    assert ok.status_code == 200
    status = w.call(
        "POST",
        f"/v1/cluster/workers/{w.worker_id}:status",
        json={"connections": [{"connection_id": cid, "bytes_up": 10, "bytes_down": 20}]},
    ).json()
    assert status == {"cancel_sessions": [], "cancel_connections": []}
    second = w.call(
        "POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": tofu}
    )
    assert second.json()["connections_left"] == 0
    third = w.call(
        "POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": tofu}
    )
    assert third.status_code == 409 and third.json()["kind"] == "ConnectionLimitReached"

    for c, up in ((cid, 100), (second.json()["connection_id"], 5)):
        done = w.call(
            "POST",
            f"/v1/cluster/connections/{c}:closed",
            json={"bytes_up": up, "bytes_down": 200, "closed_reason": "closed by end-user"},
        )
        assert done.status_code == 200
    read = ctl.request("GET", f"/v1/sessions/{sid}").json()
    assert read["status"] == "terminated" and read["termination_reason"] == "connection limit"
    conns = {c["bytes_up"] for c in read["connections"]}
    assert conns == {"100", "5"}
    first_conn = [c for c in read["connections"] if c["bytes_up"] == "100"][0]
    assert (
        first_conn["client_tcp_port"] == 50000
        and first_conn["closed_reason"] == "closed by end-user"
    )


def test_cancel_reaches_the_worker_through_status(fresh_controller) -> None:
    ctl = fresh_controller
    w = WorkerClient(ctl)
    w.register()
    sid = new_session(ctl)
    cid = w.call(
        "POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": "C" * 20}
    ).json()["connection_id"]
    ctl.request("POST", f"/v1/sessions/{sid}:cancel", json={"version": 2}).raise_for_status()
    status = w.call(
        "POST",
        f"/v1/cluster/workers/{w.worker_id}:status",
        json={"connections": [{"connection_id": cid}]},
    ).json()
    assert status["cancel_sessions"] == [sid]
    assert ctl.request("GET", f"/v1/sessions/{sid}").json()["status"] == "canceling"
    w.call(
        "POST",
        f"/v1/cluster/connections/{cid}:closed",
        json={"closed_reason": "canceled"},
    ).raise_for_status()
    final = ctl.request("GET", f"/v1/sessions/{sid}").json()
    assert final["status"] == "terminated" and final["termination_reason"] == "canceled"


def test_client_cancel_command(fresh_controller) -> None:
    ctl = fresh_controller
    w = WorkerClient(ctl)
    w.register()
    sid = new_session(ctl)
    tofu = "D" * 20
    w.call("POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": tofu})
    wrong = w.call("POST", f"/v1/cluster/sessions/{sid}:cancel", json={"tofu_token": "E" * 20})
    assert wrong.status_code == 409
    assert w.call("POST", f"/v1/cluster/sessions/{sid}:cancel", json={"tofu_token": tofu}).ok
    assert ctl.request("GET", f"/v1/sessions/{sid}").json()["status"] == "canceling"


def test_concurrent_connects_respect_the_limit(fresh_controller) -> None:
    ctl = fresh_controller
    w = WorkerClient(ctl)
    w.register()
    sid = new_session(ctl, limited_target(ctl, 3))
    tofu = "F" * 20
    w.call("POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": tofu})
    codes: list[int] = []

    def connect() -> None:
        r = w.call(
            "POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": tofu}
        )
        codes.append(r.status_code)

    threads = [threading.Thread(target=connect) for _ in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(codes) == [200, 200] + [409] * 14
