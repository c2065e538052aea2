"""CRUD, versions, pagination and bad input on the controller API over real HTTP."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import insert
from support.constants import PROJECT

from bconnect.controller.storage import schema as t

pytestmark = pytest.mark.all_databases


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_wrong_password_is_unauthenticated(controller) -> None:
    resp = requests.post(
        f"{controller.addr}/v1/auth-methods/ampw_1234567890:authenticate",
        json={"command": "login", "attributes": {"login_name": "admin", "password": "nope-nope"}},
        timeout=10,
    )
    assert resp.status_code == 401
    assert resp.json()["kind"] == "Unauthenticated"
    assert "nope" not in resp.text


@pytest.mark.parametrize("header", ["Bearer garbage", "Bearer at_1234567890_s1xyz", "Bearer "])
def test_bad_tokens_are_the_anonymous_user(controller, header: str) -> None:
    """As in Boundary: what u_anon may do works, the rest is 401."""
    resp = requests.get(
        f"{controller.addr}/v1/scopes", headers={"Authorization": header}, timeout=10
    )
    assert resp.status_code == 200
    resp = requests.get(
        f"{controller.addr}/v1/targets?scope_id={PROJECT}",
        headers={"Authorization": header},
        timeout=10,
    )
    assert resp.status_code == 401
    assert resp.json()["kind"] == "Unauthenticated"


def test_a_header_that_is_not_bearer_is_unauthenticated(controller) -> None:
    resp = requests.get(
        f"{controller.addr}/v1/scopes", headers={"Authorization": "Basic abc"}, timeout=10
    )
    assert resp.status_code == 401
    assert resp.json()["kind"] == "Unauthenticated"


def test_expired_token_is_unauthenticated(controller) -> None:
    token = controller.login("admin")
    token_id = "_".join(token.split("_")[:2])
    with controller.engine.begin() as conn:
        conn.execute(
            t.auth_tokens.update()
            .where(t.auth_tokens.c.id == token_id)
            .values(expiration_time=datetime.now(UTC) - timedelta(seconds=1))
        )
    resp = requests.get(
        f"{controller.addr}/v1/targets?scope_id={PROJECT}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert resp.status_code == 401


def test_logout_revokes_at_once(controller) -> None:
    token = controller.login("user")
    token_id = "_".join(token.split("_")[:2])
    headers = {"Authorization": f"Bearer {token}"}
    ok = requests.get(
        f"{controller.addr}/v1/targets?scope_id={PROJECT}", headers=headers, timeout=10
    )
    assert ok.status_code == 200
    gone = requests.delete(
        f"{controller.addr}/v1/auth-tokens/{token_id}", headers=headers, timeout=10
    )
    assert gone.status_code == 204
    again = requests.get(
        f"{controller.addr}/v1/targets?scope_id={PROJECT}", headers=headers, timeout=10
    )
    assert again.status_code == 401


def test_unknown_id_is_not_found(controller) -> None:
    for path in ("/v1/targets/ttcp_nope000000", "/v1/sessions/s_nope000000", "/v1/scopes/o_none"):
        resp = controller.request("GET", path)
        assert resp.status_code == 404, path
        assert resp.json()["kind"] == "NotFound"
    resp = controller.request("POST", "/v1/targets/ttcp_nope000000:authorize-session", json={})
    assert resp.status_code == 404


def test_invalid_fields_name_the_field(controller) -> None:
    resp = controller.request(
        "POST",
        "/v1/targets",
        json={"scope_id": PROJECT, "name": "bad-port", "attributes": {"default_port": 70000}},
    )
    assert resp.status_code == 400
    body = resp.json()
    assert body["kind"] == "InvalidArgument"
    names = [f["name"] for f in body["details"]["request_fields"]]
    assert names == ["attributes.default_port"]

    resp = controller.request("POST", "/v1/targets", json={"scope_id": PROJECT, "nmae": "typo"})
    assert resp.status_code == 400
    names = {f["name"] for f in resp.json()["details"]["request_fields"]}
    assert "nmae" in names and "name" in names

    resp = controller.request("POST", "/v1/targets", data="{not json")
    assert resp.status_code == 400
    assert resp.json()["kind"] == "InvalidArgument"

    resp = controller.request("POST", "/v1/targets", json={"scope_id": "global", "name": "x"})
    assert resp.status_code == 400
    assert resp.json()["details"]["request_fields"][0]["name"] == "scope_id"

    resp = controller.request("GET", "/v1/sessions?scope_id=global&filter=%22/item/x%22%20%3D%3D")
    assert resp.status_code == 400
    assert resp.json()["details"]["request_fields"][0]["name"] == "filter"


def test_target_crud_with_versions(controller) -> None:
    name = unique("db")
    created = controller.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": PROJECT,
            "name": name,
            "type": "tcp",
            "address": "10.0.0.5",
            "session_connection_limit": 2,
            "attributes": {"default_port": 5432, "default_client_port": 15432},
        },
    )
    assert created.status_code == 200, created.text
    target = created.json()
    assert target["id"].startswith("ttcp_") and len(target["id"]) == 15
    assert target["version"] == 1
    assert target["attributes"] == {"default_port": 5432, "default_client_port": 15432}
    assert target["session_max_seconds"] == 28800
    assert "authorize-session" in target["authorized_actions"]

    dup = controller.request("POST", "/v1/targets", json={"scope_id": PROJECT, "name": name})
    assert dup.status_code == 400

    tid = target["id"]
    updated = controller.request(
        "PATCH", f"/v1/targets/{tid}", json={"version": 1, "description": "primary db"}
    )
    assert updated.status_code == 200
    assert updated.json()["version"] == 2
    assert updated.json()["description"] == "primary db"

    stale = controller.request(
        "PATCH", f"/v1/targets/{tid}", json={"version": 1, "description": "lost update"}
    )
    assert stale.status_code == 400
    assert stale.json()["details"]["request_fields"][0]["name"] == "version"
    after = controller.request("GET", f"/v1/targets/{tid}").json()
    assert after["description"] == "primary db" and after["version"] == 2

    cleared = controller.request(
        "PATCH", f"/v1/targets/{tid}", json={"version": 2, "description": None}
    )
    assert "description" not in cleared.json()

    assert controller.request("DELETE", f"/v1/targets/{tid}").status_code == 204
    assert controller.request("GET", f"/v1/targets/{tid}").status_code == 404


def test_hosts_host_sets_and_host_sources(controller) -> None:
    cat = controller.request(
        "POST", "/v1/host-catalogs", json={"scope_id": PROJECT, "name": unique("cat")}
    ).json()
    host = controller.request(
        "POST",
        "/v1/hosts",
        json={"host_catalog_id": cat["id"], "attributes": {"address": "127.0.0.1"}},
    ).json()
    assert host["id"].startswith("hst_") and host["attributes"] == {"address": "127.0.0.1"}
    hset = controller.request(
        "POST", "/v1/host-sets", json={"host_catalog_id": cat["id"], "name": "set"}
    ).json()
    added = controller.request(
        "POST",
        f"/v1/host-sets/{hset['id']}:add-hosts",
        json={"version": 1, "host_ids": [host["id"]]},
    )
    assert added.status_code == 200 and added.json()["host_ids"] == [host["id"]]
    listed = controller.request("GET", f"/v1/hosts?host_catalog_id={cat['id']}").json()
    assert [h["id"] for h in listed["items"]] == [host["id"]]

    target = controller.request(
        "POST",
        "/v1/targets",
        json={"scope_id": PROJECT, "name": unique("hs"), "attributes": {"default_port": 8080}},
    ).json()
    with_src = controller.request(
        "POST",
        f"/v1/targets/{target['id']}:add-host-sources",
        json={"version": 1, "host_source_ids": [hset["id"]]},
    )
    assert with_src.status_code == 200
    assert with_src.json()["host_source_ids"] == [hset["id"]]
    auth = controller.request(
        "POST",
        f"/v1/targets/{target['id']}:authorize-session",
        json={"host_id": host["id"]},
    ).json()
    assert auth["endpoint"] == "tcp://127.0.0.1:8080" and auth["host_id"] == host["id"]
    wrong = controller.request(
        "POST", f"/v1/targets/{target['id']}:authorize-session", json={"host_id": "hst_1234567890"}
    )
    assert wrong.status_code == 400


def test_brokered_credentials(controller) -> None:
    store = controller.request(
        "POST", "/v1/credential-stores", json={"scope_id": PROJECT, "name": unique("store")}
    ).json()
    cred = controller.request(
        "POST",
        "/v1/credentials",
        json={
            "credential_store_id": store["id"],
            "type": "username_password",
            "attributes": {"username": "postgres", "password": "s3cret-pw"},
        },
    )
    assert cred.status_code == 200, cred.text
    item = cred.json()
    assert item["id"].startswith("credup_")
    assert "s3cret-pw" not in cred.text and "password_hmac" in item["attributes"]
    read = controller.request("GET", f"/v1/credentials/{item['id']}")
    assert "s3cret-pw" not in read.text

    missing = controller.request(
        "POST",
        "/v1/credentials",
        json={
            "credential_store_id": store["id"],
            "type": "ssh_private_key",
            "attributes": {"username": "u"},
        },
    )
    assert missing.status_code == 400
    assert missing.json()["details"]["request_fields"][0]["name"] == "attributes.private_key"

    target = controller.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": PROJECT,
            "name": unique("pg"),
            "address": "127.0.0.1",
            "attributes": {"default_port": 5432},
        },
    ).json()
    linked = controller.request(
        "POST",
        f"/v1/targets/{target['id']}:add-credential-sources",
        json={"version": 1, "brokered_credential_source_ids": [item["id"]]},
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["brokered_credential_source_ids"] == [item["id"]]
    auth = controller.request("POST", f"/v1/targets/{target['id']}:authorize-session", json={})
    creds = auth.json()["credentials"]
    assert creds[0]["credential_source"]["credential_type"] == "username_password"
    assert creds[0]["credential"] == {"username": "postgres", "password": "s3cret-pw"}
    assert creds[0]["secret"]["decoded"] == creds[0]["credential"]


def test_users_accounts_roles(controller) -> None:
    org = controller.request(
        "POST", "/v1/scopes", json={"scope_id": "global", "name": unique("org")}
    )
    assert org.status_code == 200
    org_id = org.json()["id"]
    proj = controller.request("POST", "/v1/scopes", json={"scope_id": org_id, "name": "proj"})
    proj_id = proj.json()["id"]
    assert proj.json()["type"] == "project"
    nested = controller.request("POST", "/v1/scopes", json={"scope_id": proj_id})
    assert nested.status_code == 400

    am = controller.request(
        "POST", "/v1/auth-methods", json={"scope_id": org_id, "type": "password"}
    )
    am_id = am.json()["id"]
    acct = controller.request(
        "POST",
        "/v1/accounts",
        json={
            "auth_method_id": am_id,
            "attributes": {"login_name": "alice", "password": "alicepass1"},
        },
    ).json()
    short = controller.request(
        "POST",
        "/v1/accounts",
        json={"auth_method_id": am_id, "attributes": {"login_name": "bob", "password": "short"}},
    )
    assert short.status_code == 400
    user = controller.request(
        "POST", "/v1/users", json={"scope_id": org_id, "name": "alice"}
    ).json()
    controller.request(
        "POST",
        f"/v1/users/{user['id']}:add-accounts",
        json={"version": 1, "account_ids": [acct["id"]]},
    ).raise_for_status()
    role = controller.request(
        "POST", "/v1/roles", json={"scope_id": proj_id, "name": "readers"}
    ).json()
    assert role["grant_scope_ids"] == ["this"]
    bad = controller.request(
        "POST",
        f"/v1/roles/{role['id']}:add-grants",
        json={"version": 1, "grant_strings": ["ids=*;actions=*"]},
    )
    assert bad.status_code == 400
    controller.request(
        "POST",
        f"/v1/roles/{role['id']}:add-grants",
        json={"version": 1, "grant_strings": ["ids=*;type=target;actions=list,read"]},
    ).raise_for_status()
    r = controller.request(
        "POST",
        f"/v1/roles/{role['id']}:add-principals",
        json={"version": 2, "principal_ids": [user["id"]]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["principal_ids"] == [user["id"]]

    login = requests.post(
        f"{controller.addr}/v1/auth-methods/{am_id}:authenticate",
        json={"command": "login", "attributes": {"login_name": "alice", "password": "alicepass1"}},
        timeout=10,
    )
    assert login.status_code == 200
    token = login.json()["attributes"]["token"]
    headers = {"Authorization": f"Bearer {token}"}
    ok = requests.get(
        f"{controller.addr}/v1/targets?scope_id={proj_id}", headers=headers, timeout=10
    )
    assert ok.status_code == 200
    # her grants reach only her project's targets: not the org's users, nor creating
    denied = requests.get(
        f"{controller.addr}/v1/users?scope_id={org_id}", headers=headers, timeout=10
    )
    assert denied.status_code == 403
    create = requests.post(
        f"{controller.addr}/v1/targets",
        json={"scope_id": proj_id, "name": "nope"},
        headers=headers,
        timeout=10,
    )
    assert create.status_code == 403


def test_openapi_document(controller) -> None:
    doc = requests.get(f"{controller.addr}/v1/openapi.json", timeout=10).json()
    paths = doc["paths"]
    for path in (
        "/v1/targets/{id}:authorize-session",
        "/v1/sessions/{id}:cancel",
        "/v1/auth-methods/{id}:authenticate",
        "/v1/sessions",
        "/v1/host-sets/{id}:add-hosts",
    ):
        assert path in paths, path
    # the token goes in a bearer header, and may be left out (the anonymous user)
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert doc["security"] == [{"bearerAuth": []}, {}]
    anonymous = requests.get(f"{controller.addr}/v1/auth-methods?scope_id=global", timeout=10)
    assert anonymous.status_code == 200, anonymous.text


def test_pagination_returns_each_session_once(fresh_controller) -> None:
    now = datetime.now(UTC)
    rows = []
    # 2,500 sessions, many sharing a created_time so ties are broken by id
    for i, stamp in zip(range(2500), itertools.cycle(range(700)), strict=False):
        created = now - timedelta(seconds=stamp)
        rows.append(
            {
                "id": f"s_{i:010d}",
                "scope_id": PROJECT,
                "target_id": "ttcp_1234567890",
                "type": "tcp",
                "user_id": "u_1234567890" if i % 3 else "u_0987654321",
                "auth_token_id": "at_0000000000",
                "endpoint": "tcp://127.0.0.1:22",
                "expiration_time": now + timedelta(hours=8),
                "connection_limit": -1,
                "certificate": b"x",
                "private_key": b"y",
                "status": "active" if i % 2 else "pending",
                "created_time": created,
                "updated_time": created,
                "version": 1,
            }
        )
    with fresh_controller.engine.begin() as conn:
        conn.execute(insert(t.sessions), rows)

    def collect(who: str, page_size: int, extra: str = "") -> list[str]:
        seen: list[str] = []
        token = None
        pages = 0
        while True:
            q = f"/v1/sessions?scope_id={PROJECT}&page_size={page_size}{extra}"
            if token:
                q += f"&list_token={token}"
            body = fresh_controller.request("GET", q, who=who).json()
            pages += 1
            assert len(body["items"]) <= page_size
            seen.extend(i["id"] for i in body["items"])
            token = body["list_token"]
            if body["response_type"] == "complete":
                return seen
            assert pages < 100

    ids = collect("admin", 300)
    assert len(ids) == 2500 and len(set(ids)) == 2500
    mine = collect("user", 100)
    assert len(mine) == len(set(mine)) == sum(1 for r in rows if r["user_id"] == "u_0987654321")
    active = collect("admin", 1000, "&filter=%22/item/status%22%20%3D%3D%20%22active%22")
    assert len(active) == 1250 and len(set(active)) == 1250

    # a token from one query is refused for another
    first = fresh_controller.request("GET", f"/v1/sessions?scope_id={PROJECT}&page_size=10").json()
    other = fresh_controller.request(
        "GET", f"/v1/sessions?scope_id=global&recursive=true&list_token={first['list_token']}"
    )
    assert other.status_code == 400
    assert other.json()["details"]["request_fields"][0]["name"] == "list_token"


def test_deleting_containers_takes_their_contents(controller) -> None:
    org = controller.request("POST", "/v1/scopes", json={"scope_id": "global"}).json()["id"]
    proj = controller.request("POST", "/v1/scopes", json={"scope_id": org}).json()["id"]
    target = controller.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": proj,
            "name": "t",
            "address": "127.0.0.1",
            "attributes": {"default_port": 1},
        },
    ).json()["id"]
    sid = controller.request("POST", f"/v1/targets/{target}:authorize-session", json={}).json()[
        "session_id"
    ]
    am = controller.request("POST", "/v1/auth-methods", json={"scope_id": org}).json()["id"]
    acct = controller.request(
        "POST",
        "/v1/accounts",
        json={"auth_method_id": am, "attributes": {"login_name": "carol", "password": "carolpass"}},
    ).json()["id"]

    # an auth method takes its accounts with it
    assert controller.request("DELETE", f"/v1/auth-methods/{am}").status_code == 204
    assert controller.request("GET", f"/v1/accounts/{acct}").status_code == 404

    # an org takes its projects, their targets and sessions
    assert controller.request("DELETE", f"/v1/scopes/{org}").status_code == 204
    for path in (f"/v1/scopes/{proj}", f"/v1/targets/{target}", f"/v1/sessions/{sid}"):
        assert controller.request("GET", path).status_code == 404, path
    assert controller.request("DELETE", "/v1/scopes/global").status_code == 400
