"""List refreshes: nothing created, changed or removed while a client pages is lost."""

from __future__ import annotations

import time

import pytest
from support.constants import PROJECT

pytestmark = pytest.mark.all_databases


def page_all(ctl, path: str, who: str = "admin", token: str | None = None):  # noqa: ANN001, ANN201
    """Follow list tokens to the end; return (items, removed ids, last token)."""
    items, removed = [], []
    while True:
        url = path + (f"&list_token={token}" if token else "")
        body = ctl.request("GET", url, who=who).json()
        items += body["items"]
        removed += body["removed_ids"]
        token = body["list_token"]
        if body["response_type"] == "complete":
            return items, removed, token


def authorize(ctl, who: str = "admin") -> str:  # noqa: ANN001
    resp = ctl.request("POST", "/v1/targets/ttcp_1234567890:authorize-session", who=who, json={})
    return resp.json()["session_id"]


def test_item_created_while_paging_arrives_in_the_refresh(fresh_controller) -> None:
    ctl = fresh_controller
    for _ in range(5):
        authorize(ctl)
    path = f"/v1/sessions?scope_id={PROJECT}&page_size=2"
    first = ctl.request("GET", path).json()
    assert first["response_type"] == "delta"
    newcomer = authorize(ctl)  # created after the listing began
    rest, _, token = page_all(ctl, path, token=first["list_token"])
    seen = {i["id"] for i in first["items"] + rest}
    assert newcomer not in seen and len(seen) == 5
    refreshed, removed, _ = page_all(ctl, path, token=token)
    assert newcomer in {i["id"] for i in refreshed}
    assert removed == []


def test_refresh_pages_and_reports_terminated_and_deleted(fresh_controller) -> None:
    ctl = fresh_controller
    sids = [authorize(ctl, "user") for _ in range(3)]
    path = f"/v1/sessions?scope_id={PROJECT}&page_size=1"
    items, _, token = page_all(ctl, path, who="user")
    assert sorted(i["id"] for i in items) == sorted(sids)

    cancel = ctl.request("POST", f"/v1/sessions/{sids[0]}:cancel", who="user", json={"version": 1})
    assert cancel.status_code == 200
    deadline = time.monotonic() + 15
    while ctl.request("GET", f"/v1/sessions/{sids[0]}").json()["status"] != "terminated":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # two more changes so the refresh itself spans pages of one
    ctl.request("POST", f"/v1/sessions/{sids[1]}:cancel", who="user", json={"version": 1})
    changed, removed, _ = page_all(ctl, path, who="user", token=token)
    assert sids[0] in removed
    # canceling, or already terminated by the periodic job (then it is a removal)
    assert sids[1] in {i["id"] for i in changed} | set(removed)
    assert sids[2] not in {i["id"] for i in changed} | set(removed)

    # deletions through a container are reported too
    cat = ctl.request("POST", "/v1/host-catalogs", json={"scope_id": PROJECT}).json()["id"]
    host = ctl.request(
        "POST", "/v1/hosts", json={"host_catalog_id": cat, "attributes": {"address": "10.1.1.1"}}
    ).json()["id"]
    _, _, htoken = page_all(ctl, f"/v1/host-catalogs?scope_id={PROJECT}")
    assert ctl.request("DELETE", f"/v1/host-catalogs/{cat}").status_code == 204
    _, removed, _ = page_all(ctl, f"/v1/host-catalogs?scope_id={PROJECT}", token=htoken)
    assert removed == [cat]
    assert ctl.request("GET", f"/v1/hosts/{host}").status_code == 404


def test_user_counts_and_removals_are_their_own(fresh_controller) -> None:
    ctl = fresh_controller
    admins = authorize(ctl)
    mine = authorize(ctl, "user")
    body = ctl.request("GET", f"/v1/sessions?scope_id={PROJECT}", who="user").json()
    assert [i["id"] for i in body["items"]] == [mine]
    assert body["est_item_count"] == 1  # admin's session is not even counted
    assert admins not in str(body)


def test_page_size_above_the_maximum_is_cut(fresh_controller) -> None:
    body = fresh_controller.request("GET", "/v1/scopes?recursive=true&page_size=50000")
    assert body.status_code == 200
