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


def _events(w: WorkerClient, *events: dict) -> list[dict]:
    resp = w.call("POST", "/v1/cluster/connection-events", json={"events": list(events)})
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def test_connection_events_are_taken_each_as_its_own_call_would_be(fresh_controller) -> None:
    """One call: a connection admitted by the worker is recorded connected, then
    closed; a connection the controller authorized is connected and closed; each
    refused event says why and leaves the others be."""
    ctl = fresh_controller
    w = WorkerClient(ctl)
    w.register()
    sid = new_session(ctl)
    tofu = "G" * 20
    first = w.call(
        "POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": tofu}
    ).json()["connection_id"]
    mine = "sc_Admitted01"
    addresses = {
        "client_tcp_address": "127.0.0.1",
        "client_tcp_port": 40001,
        "endpoint_tcp_address": "127.0.0.1",
        "endpoint_tcp_port": 22,
    }
    results = _events(
        w,
        {"event": "connected", "connection_id": first, **addresses},
        {"event": "admitted", "connection_id": mine, "session_id": sid, "tofu_token": tofu,
         **addresses, "client_tcp_port": 40002},
        {"event": "admitted", "connection_id": "sc_Admitted02", "session_id": sid,
         "tofu_token": "H" * 20},
        {"event": "admitted", "connection_id": mine, "session_id": sid, "tofu_token": tofu},
        {"event": "admitted", "connection_id": "sc_Admitted03", "session_id": "s_nosuch1234",
         "tofu_token": tofu},
        {"event": "closed", "connection_id": mine, "bytes_up": 7, "bytes_down": 9,
         "closed_reason": "closed by end-user"},
        {"event": "closed", "connection_id": "sc_unknown123", "closed_reason": "canceled"},
    )  # fmt: skip
    assert results[0] == {} and results[1] == {} and results[5] == {}
    assert results[2]["kind"] == "TofuMismatch"
    assert results[3]["kind"] == "InvalidArgument"  # an id in use
    assert results[4]["kind"] == "NotFound"
    assert results[6]["kind"] == "NotFound"
    read = ctl.request("GET", f"/v1/sessions/{sid}").json()
    conns = {c["client_tcp_port"]: c for c in read["connections"]}
    assert set(conns) == {40001, 40002}  # the controller's, and the one admitted
    assert "closed_reason" not in conns[40001]  # connected, still open
    assert conns[40002]["bytes_up"] == "7" and conns[40002]["endpoint_tcp_port"] == 22
    assert conns[40002]["closed_reason"] == "closed by end-user"
    # a repeated close changes nothing; a canceled session takes no more admissions
    assert _events(w, {"event": "closed", "connection_id": mine, "bytes_up": 1}) == [{}]
    ctl.request("POST", f"/v1/sessions/{sid}:cancel", json={"version": 2}).raise_for_status()
    (refused,) = _events(
        w, {"event": "admitted", "connection_id": "sc_Admitted04", "session_id": sid,
            "tofu_token": tofu},
    )  # fmt: skip
    assert refused["kind"] == "SessionNotActive"
    closing = _events(w, {"event": "closed", "connection_id": first, "closed_reason": "canceled"})
    assert closing == [{}]
    final = ctl.request("GET", f"/v1/sessions/{sid}").json()
    assert final["status"] == "terminated" and final["termination_reason"] == "canceled"
    kept = {c["client_tcp_port"]: c["bytes_up"] for c in final["connections"]}
    assert kept[40002] == "7"  # the repeated close changed nothing


def test_admitted_connections_respect_a_limit_and_need_an_active_session(
    fresh_controller,
) -> None:
    ctl = fresh_controller
    w = WorkerClient(ctl)
    w.register()
    pending = new_session(ctl)
    (never,) = _events(
        w, {"event": "admitted", "connection_id": "sc_Pending001", "session_id": pending,
            "tofu_token": "J" * 20},
    )  # fmt: skip
    assert never["kind"] == "SessionNotActive"  # only the controller begins a session
    sid = new_session(ctl, limited_target(ctl, 2))
    tofu = "K" * 20
    w.call("POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": tofu})
    results = _events(
        w,
        *(
            {"event": "admitted", "connection_id": f"sc_Limited00{i}", "session_id": sid,
             "tofu_token": tofu}
            for i in range(3)
        ),
    )  # fmt: skip
    assert [r.get("kind") for r in results] == [None, *["ConnectionLimitReached"] * 2]
    assert len(ctl.request("GET", f"/v1/sessions/{sid}").json()["connections"]) == 2
