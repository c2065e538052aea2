"""Workers as the controller sees them: health (status reports within the grace period),
worker filters choosing which workers a session is offered, and connections of workers
that went silent closed by the dead-workers job. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from support.cluster_api import WorkerClient, new_session
from support.constants import PROJECT
from support.controller import start_controller
from support.dataplane import connection_closed, session, terminated
from support.wait import wait_for

from bconnect.core.token import decode_authz_token

pytestmark = pytest.mark.all_databases


@pytest.fixture
def ctl(request, db_backend, tmp_path):  # noqa: ANN001, ANN201
    from support.controller import new_database

    running = start_controller(
        new_database(request, db_backend, tmp_path), settings={"worker_grace": 1.0}
    )
    yield running
    running.stop()


def filtered_target(ctl, worker_filter: str | None) -> str:  # noqa: ANN001
    body = {
        "scope_id": PROJECT,
        "name": f"filtered-{len(worker_filter or '')}-{id(worker_filter)}",
        "address": "127.0.0.1",
        "attributes": {"default_port": 22},
    }
    if worker_filter is not None:
        body["worker_filter"] = worker_filter
    resp = ctl.request("POST", "/v1/targets", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["id"]


def report(worker: WorkerClient, connections: list[dict] | None = None) -> dict:
    resp = worker.call(
        "POST",
        f"/v1/cluster/workers/{worker.worker_id}:status",
        json={"connections": connections or []},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def worker_info(ctl, target: str) -> list[str]:  # noqa: ANN001
    resp = ctl.request("POST", f"/v1/targets/{target}:authorize-session", json={})
    assert resp.status_code == 200, resp.text
    return list(decode_authz_token(resp.json()["authorization_token"]).worker_addresses)


def test_worker_filter_chooses_the_workers_offered(ctl) -> None:
    prod = WorkerClient(ctl)
    prod.register("edge-prod", "127.0.0.1:19202", {"type": ["prod", "web"], "region": ["eu"]})
    dev = WorkerClient(ctl)
    dev.register("edge-dev", "127.0.0.1:29202", {"type": ["dev"]})
    report(prod)
    report(dev)
    assert worker_info(ctl, filtered_target(ctl, '"prod" in "/tags/type"')) == ["127.0.0.1:19202"]
    assert worker_info(ctl, filtered_target(ctl, '"/name" == "edge-dev"')) == ["127.0.0.1:29202"]
    assert worker_info(ctl, filtered_target(ctl, None)) == ["127.0.0.1:19202", "127.0.0.1:29202"]
    none = filtered_target(ctl, '"us" in "/tags/region"')
    resp = ctl.request("POST", f"/v1/targets/{none}:authorize-session", json={})
    assert resp.status_code == 400
    assert resp.json()["kind"] == "FailedPrecondition"
    assert "No workers are available" in resp.json()["message"]


def test_a_worker_filter_must_parse(ctl) -> None:
    resp = ctl.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": PROJECT,
            "name": "bad-filter",
            "address": "127.0.0.1",
            "worker_filter": '"prod" in',
            "attributes": {"default_port": 22},
        },
    )
    assert resp.status_code == 400
    assert "worker_filter" in resp.json()["details"]["request_fields"][0]["name"]
    target = filtered_target(ctl, None)
    version = ctl.request("GET", f"/v1/targets/{target}").json()["version"]
    bad = ctl.request(
        "PATCH", f"/v1/targets/{target}", json={"version": version, "worker_filter": "=="}
    )
    assert bad.status_code == 400


def test_silent_workers_are_not_offered(ctl) -> None:
    alive = WorkerClient(ctl)
    alive.register("alive", "127.0.0.1:19202")
    silent = WorkerClient(ctl)
    silent.register("silent", "127.0.0.1:29202")
    report(alive)
    report(silent)
    target = filtered_target(ctl, None)
    assert worker_info(ctl, target) == ["127.0.0.1:19202", "127.0.0.1:29202"]

    def only_alive() -> bool:
        report(alive)
        return worker_info(ctl, target) == ["127.0.0.1:19202"]

    assert wait_for(only_alive)  # past the 1 s grace the silent one is left out


def admitted(ctl, name: str) -> tuple[WorkerClient, str, str]:  # noqa: ANN001
    """A worker that reported once and admitted one connection: (worker, session, conn)."""
    worker = WorkerClient(ctl)
    worker.register(name, "127.0.0.1:19202")
    report(worker)
    sid = new_session(ctl, filtered_target(ctl, None))
    grant = worker.call(
        "POST", f"/v1/cluster/sessions/{sid}:authorize-connection", json={"tofu_token": "T" * 20}
    )
    assert grant.status_code == 200, grant.text
    return worker, sid, grant.json()["connection_id"]


def test_connections_of_a_dead_worker_are_closed(ctl) -> None:
    worker, sid, cid = admitted(ctl, "doomed")
    report(worker, [{"connection_id": cid, "bytes_up": 7, "bytes_down": 9}])
    # the worker dies: no more reports. The job closes its connection after the grace.
    closed = connection_closed(ctl, sid)
    assert closed, session(ctl, sid)
    conn = closed["connections"][0]
    assert conn["closed_reason"] == "system error"
    assert (conn["bytes_up"], conn["bytes_down"]) == ("7", "9")
    assert closed["status"] == "active"  # the session itself lives on, for other workers
    ctl.request("POST", f"/v1/sessions/{sid}:cancel", json={"version": closed["version"]})
    ended = terminated(ctl, sid)
    assert ended, session(ctl, sid)


def test_a_worker_that_comes_back_is_told_to_close_what_was_closed(ctl) -> None:
    worker, sid, cid = admitted(ctl, "flaky")
    assert wait_for(lambda: session(ctl, sid)["connections"][0].get("closed_reason"))
    answer = report(worker, [{"connection_id": cid, "bytes_up": 1, "bytes_down": 1}])
    assert answer["cancel_connections"] == [cid]


def test_concurrent_registrations_of_one_name_make_one_worker(ctl) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: WorkerClient(ctl).register("twin", "127.0.0.1:1"), range(16)))
    assert len(ids) == 1
    listed = ctl.request("GET", "/v1/workers?scope_id=global").json()["items"]
    assert [w["id"] for w in listed if w.get("name") == "twin"] == list(ids)
