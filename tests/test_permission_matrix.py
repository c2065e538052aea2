"""The permission matrix: every operation of the controller API (read from its OpenAPI
document), for admin, the dev `user`, an anonymous caller, an expired token and a revoked
token, against the result the grants promise (the dev fixtures' roles, written out in
:data:`GRANTED`): allowed (anything but 401/403), 403 for an authenticated caller without
the grant, 401 for an anonymous one. As in Boundary, a token the controller cannot
verify (expired, revoked) is the anonymous user. The resources are the admin's, so
`user`'s ``:self`` grants never apply to them. docs/permissions.md is this table
(regenerate with BCONNECT_WRITE_DOCS=1).

Then the cases the table cannot show: `user` reads, cancels and lists only their own
sessions; cannot authorize a target outside their grants; a deleted token is refused at
once."""

from __future__ import annotations

import itertools
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select, update
from support.constants import AUTH_METHOD, ORG, PROJECT
from support.dataplane import make_target
from support.hardening import hardening_report

from bconnect.controller import recordings
from bconnect.controller.context import utcnow
from bconnect.controller.storage import schema as t

pytestmark = pytest.mark.all_databases

DOC = Path(__file__).resolve().parent.parent / "docs" / "permissions.md"
PRINCIPALS = ("admin", "user", "anonymous", "expired token", "revoked token")

# What the dev fixtures grant (controller/seed.py), as (resource type, action): Boundary's
# login role (u_anon) and authenticated users' role (u_auth) in global and below, and the
# dev project's default grants for u_auth.
ANON_GRANTS = {
    ("scope", "list"),
    ("auth-method", "list"),
    ("auth-method", "authenticate"),
}
USER_GRANTS = ANON_GRANTS | {
    ("scope", "read"),
    ("auth-token", "list"),  # lists only the caller's own
    ("target", "list"),
    ("target", "read"),
    ("target", "authorize-session"),
    ("session", "list"),
}
USER_PROJECT_ONLY = {"target", "session"}
GRANTED = {"anonymous": ANON_GRANTS, "user": USER_GRANTS}

SINGULAR = {
    "aliases": "alias",
    "scopes": "scope",
    "auth-methods": "auth-method",
    "auth-tokens": "auth-token",
    "accounts": "account",
    "users": "user",
    "roles": "role",
    "host-catalogs": "host-catalog",
    "host-sets": "host-set",
    "hosts": "host",
    "targets": "target",
    "credential-stores": "credential-store",
    "credentials": "credential",
    "sessions": "session",
    "workers": "worker",
    "storage-buckets": "storage-bucket",
    "session-recordings": "session-recording",
}


def operations(ctl: Any) -> list[tuple[str, str, str, str]]:
    """(method, path template, resource type, action) for every public operation."""
    doc = requests.get(f"{ctl.addr}/v1/openapi.json", timeout=30).json()
    ops = []
    for path, methods in sorted(doc["paths"].items()):
        if path == "/v1/workers:create:controller-led":  # a create of its own
            ops.append(("POST", path, "worker", "create"))
            continue
        parts = path.removeprefix("/v1/").split("/")
        collection, _, custom = parts[-1].partition(":") if len(parts) > 1 else (parts[0], "", "")
        rtype = SINGULAR[parts[0]]
        for method in sorted(methods):
            if len(parts) == 1:
                action = {"get": "list", "post": "create"}[method]
            elif custom:
                action = custom
            else:
                action = {"get": "read", "patch": "update", "delete": "delete"}[method]
            ops.append((method.upper(), path, rtype, action))
    return ops


def resources(ctl: Any) -> dict[str, tuple[str, str]]:
    """resource type -> (id, scope id) of one admin-owned resource of each type."""

    def create(path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = ctl.request("POST", path, json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()

    store = create("/v1/credential-stores", {"scope_id": PROJECT, "name": "matrix-store"})
    cred = create(
        "/v1/credentials",
        {
            "credential_store_id": store["id"],
            "type": "username_password",
            "attributes": {"username": "u", "password": "p"},
        },
    )
    session = create("/v1/targets/ttcp_1234567890:authorize-session", {})
    from support.cluster_api import WorkerClient

    worker = WorkerClient(ctl)
    worker.register("matrix-worker")
    token_id = ctl.request("GET", "/v1/auth-tokens?scope_id=global").json()["items"][0]["id"]

    def first(path: str) -> str:
        return ctl.request("GET", path).json()["items"][0]["id"]

    catalog = first(f"/v1/host-catalogs?scope_id={PROJECT}")
    alias = create(
        "/v1/aliases",
        {"scope_id": "global", "value": "matrix.test", "destination_id": "ttcp_1234567890"},
    )
    bucket = create(
        "/v1/storage-buckets",
        {"scope_id": "global", "plugin_name": "local", "bucket_name": "/nonexistent/matrix"},
    )
    recorded = create(
        "/v1/targets",
        {
            "scope_id": PROJECT,
            "type": "ssh",
            "name": "matrix-recorded",
            "address": "127.0.0.1",
            "attributes": {"enable_session_recording": True, "storage_bucket_id": bucket["id"]},
            "injected_application_credential_source_ids": [cred["id"]],
        },
    )
    recording, channel = _recorded_session(ctl, recorded["id"])
    return {
        "storage-bucket": (bucket["id"], "global"),
        "session-recording": (recording, "global"),
        "channel-recording": (channel, "global"),
        "recorded-target": (recorded["id"], PROJECT),
        "alias": (alias["id"], "global"),
        "scope": (ORG, "global"),
        "auth-method": (AUTH_METHOD, "global"),
        "auth-token": (token_id, "global"),
        "account": (first(f"/v1/accounts?auth_method_id={AUTH_METHOD}"), "global"),
        "user": ("u_1234567890", "global"),
        "role": (first("/v1/roles?scope_id=global"), "global"),
        "host-catalog": (catalog, PROJECT),
        "host-set": (first(f"/v1/host-sets?host_catalog_id={catalog}"), PROJECT),
        "host": (first(f"/v1/hosts?host_catalog_id={catalog}"), PROJECT),
        "target": ("ttcp_0987654321", PROJECT),
        "credential-store": (store["id"], PROJECT),
        "credential": (cred["id"], PROJECT),
        "session": (session["session_id"], PROJECT),
        "worker": (worker.worker_id, "global"),
    }


def _recorded_session(ctl: Any, target: str) -> tuple[str, str]:
    """A session on the recorded target: its recording, and a channel recording row (as
    a worker would register it; its object was never written)."""
    session = ctl.request("POST", f"/v1/targets/{target}:authorize-session", json={})
    assert session.status_code == 200, session.text
    with ctl.engine.begin() as conn:
        recording = conn.execute(
            select(t.session_recordings.c.id).where(
                t.session_recordings.c.session_id == session.json()["session_id"]
            )
        ).scalar_one()
        channel = recordings.channel_started(
            conn, recording, "sc_1234567890", "session", "true", utcnow()
        )
    return recording, channel["id"]


LIST_PARAMS = {
    "account": {"auth_method_id": AUTH_METHOD},
    "host-set": {"host_catalog_id": "{host-catalog}"},
    "host": {"host_catalog_id": "{host-catalog}"},
    "credential": {"credential_store_id": "{credential-store}"},
}


def expected(principal: str, rtype: str, action: str, scope: str) -> str:
    if principal in ("expired token", "revoked token"):
        principal = "anonymous"
    if principal == "admin":
        return "allowed"
    granted = (rtype, action) in GRANTED[principal]
    if granted and rtype in USER_PROJECT_ONLY and scope != PROJECT:
        granted = False
    if granted:
        return "allowed"
    return "401" if principal == "anonymous" else "403"


def outcome(status: int) -> str:
    return str(status) if status in (401, 403) else "allowed"


def test_every_operation_for_every_principal(fresh_controller: Any) -> None:
    ctl = fresh_controller
    ids = resources(ctl)
    expired = ctl.login("user")
    revoked = ctl.login("user")
    with ctl.engine.begin() as conn:
        conn.execute(
            update(t.auth_tokens)
            .where(t.auth_tokens.c.id == _token_id(ctl, expired))
            .values(expiration_time=utcnow() - timedelta(minutes=1))
        )
    assert ctl.request("DELETE", f"/v1/auth-tokens/{_token_id(ctl, revoked)}").status_code in (
        200,
        204,
    )
    tokens = {
        "admin": ctl.token("admin"),
        "user": ctl.token("user"),
        "anonymous": None,
        "expired token": expired,
        "revoked token": revoked,
    }
    ops = operations(ctl)
    assert len(ops) > 50
    table: list[tuple[str, str, dict[str, str]]] = []
    mismatches = []
    # admin last, deleting throwaway resources: nothing it does changes the others' view
    for principal in (*PRINCIPALS[1:], PRINCIPALS[0]):
        for method, path, rtype, action in ops:
            rid, scope = ids[rtype]
            if principal == "admin" and method == "DELETE":
                rid = _throwaway(ctl, rtype, ids)
            url, params, body = _request(path, rtype, rid, scope, ids)
            headers = {"Authorization": f"Bearer {tokens[principal]}"} if tokens[principal] else {}
            resp = requests.request(
                method, f"{ctl.addr}{url}", params=params, json=body, headers=headers, timeout=30
            )
            assert resp.status_code < 500, (principal, method, url, resp.text)
            got, want = outcome(resp.status_code), expected(principal, rtype, action, scope)
            if got != want:
                mismatches.append((principal, method, url, resp.status_code, want, resp.text[:200]))
            row = next((r for r in table if r[0] == method and r[1] == path), None)
            if row is None:
                table.append((method, path, {}))
                row = table[-1]
            row[2][principal] = got
    console = _console_rows(ctl, ids, tokens, table, mismatches)
    hardening_report(
        "permission matrix",
        {
            "operations": len(ops),
            "cells checked": len(ops) * len(PRINCIPALS),
            "mismatches": len(mismatches),
        },
    )
    assert mismatches == [], "\n".join(map(str, mismatches))
    rendered = _render(table, console)
    if os.environ.get("BCONNECT_WRITE_DOCS"):
        DOC.write_text(rendered)
    assert DOC.read_text() == rendered, "docs/permissions.md is stale: BCONNECT_WRITE_DOCS=1"


def _throwaway(ctl: Any, rtype: str, ids: dict[str, tuple[str, str]]) -> str:
    """A new resource of ``rtype``, made by admin, for admin's delete to remove."""
    if rtype == "auth-token":
        return _token_id(ctl, ctl.login("admin"))
    if rtype == "session-recording":
        return _recorded_session(ctl, ids["recorded-target"][0])[0]
    if rtype == "worker":
        from support.cluster_api import WorkerClient

        worker = WorkerClient(ctl)
        return worker.register(f"throwaway-{next(_NAMES)}")
    collection = next(c for c, r in SINGULAR.items() if r == rtype)
    resp = ctl.request("POST", f"/v1/{collection}", json=_body(f"/v1/{collection}", rtype, ids))
    assert resp.status_code == 200, resp.text
    return resp.json()["id"]


def _token_id(ctl: Any, token: str) -> str:
    return "_".join(token.split("_")[:2])


def _request(
    path: str, rtype: str, rid: str, scope: str, ids: dict[str, tuple[str, str]]
) -> tuple[str, dict[str, str], Any]:
    """A concrete request: ids filled in; bodies that an allowed caller gets refused for
    (a stale version, a missing field), so allowed calls change nothing."""
    if path.endswith(":download"):
        rid = ids["channel-recording"][0]
    url = path.replace("{id}", rid)
    params: dict[str, str] = {}
    if "{id}" not in path:
        if rtype in LIST_PARAMS:
            params = {
                k: ids[v[1:-1]][0] if v.startswith("{") else v
                for k, v in LIST_PARAMS[rtype].items()
            }
        else:
            params = {"scope_id": scope}
    return url, params, _body(path, rtype, ids)


def _body(path: str, rtype: str, ids: dict[str, tuple[str, str]]) -> Any:
    """A body the request model accepts, so the grants are what decides. Creates make
    a new resource when allowed; everything else carries a stale version, so an
    allowed call is refused after the permission check and changes nothing."""
    stale = 987654
    name = f"matrix-{next(_NAMES)}"
    if path.endswith(":authenticate"):
        return {"command": "login", "attributes": {"login_name": "user", "password": "password"}}
    if path.endswith(":authorize-session"):
        return {}
    if "{id}" not in path:  # a create
        return {
            "alias": {"scope_id": "global", "type": "target", "value": f"{name}.test"},
            "worker": {"scope_id": "global", "name": name},
            "scope": {"scope_id": ORG, "name": name},
            "auth-method": {"scope_id": "global", "type": "password", "name": name},
            "account": {
                "auth_method_id": AUTH_METHOD,
                "type": "password",
                "attributes": {"login_name": name, "password": "matrix-password"},
            },
            "user": {"scope_id": "global", "name": name},
            "role": {"scope_id": "global", "name": name},
            "host-catalog": {"scope_id": PROJECT, "type": "static", "name": name},
            "host-set": {"host_catalog_id": ids["host-catalog"][0], "type": "static", "name": name},
            "host": {
                "host_catalog_id": ids["host-catalog"][0],
                "type": "static",
                "name": name,
                "attributes": {"address": "10.0.0.1"},
            },
            "target": {
                "scope_id": PROJECT,
                "type": "tcp",
                "name": name,
                "address": "127.0.0.1",
                "attributes": {"default_port": 22},
            },
            "credential-store": {"scope_id": PROJECT, "type": "static", "name": name},
            "storage-bucket": {
                "scope_id": "global",
                "name": name,
                "plugin_name": "local",
                "bucket_name": "/nonexistent/matrix-recordings",
            },
            "credential": {
                "credential_store_id": ids["credential-store"][0],
                "type": "username_password",
                "attributes": {"username": "u", "password": "p"},
            },
        }.get(rtype)
    action = path.rpartition(":")[2] if ":" in path.rpartition("/")[2] else ""
    lists = {
        "add-hosts": "host_ids",
        "remove-hosts": "host_ids",
        "set-hosts": "host_ids",
        "add-grants": "grant_strings",
        "remove-grants": "grant_strings",
        "set-grants": "grant_strings",
        "add-principals": "principal_ids",
        "remove-principals": "principal_ids",
        "set-principals": "principal_ids",
        "add-grant-scopes": "grant_scope_ids",
        "remove-grant-scopes": "grant_scope_ids",
        "set-grant-scopes": "grant_scope_ids",
        "add-accounts": "account_ids",
        "remove-accounts": "account_ids",
        "set-accounts": "account_ids",
        "add-host-sources": "host_source_ids",
        "remove-host-sources": "host_source_ids",
        "set-host-sources": "host_source_ids",
        "add-credential-sources": "brokered_credential_source_ids",
        "remove-credential-sources": "brokered_credential_source_ids",
        "set-credential-sources": "brokered_credential_source_ids",
    }
    values = {
        "host_ids": [ids["host"][0]],
        "grant_strings": ["ids=*;type=*;actions=read"],
        "principal_ids": ["u_0987654321"],
        "grant_scope_ids": ["this"],
        "account_ids": [ids["account"][0]],
        "host_source_ids": [ids["host-set"][0]],
        "brokered_credential_source_ids": [ids["credential"][0]],
    }
    if action in lists:
        return {"version": stale, lists[action]: values[lists[action]]}
    if action == "change-password":
        return {"version": stale, "current_password": "password", "new_password": "password2"}
    if action == "set-password":
        return {"version": stale, "password": "password2"}
    return {"version": stale}


_NAMES = itertools.count(1)


#: the admin console's pages and the API call that decides each (the console asks the
#: API as the signed-in user): its answer must be the page's
CONSOLE_PAGES = (
    ("/scopes", "GET", "/v1/scopes"),
    ("/projects/{project}/sessions", "GET", "/v1/sessions"),
    ("/sessions/{session}", "GET", "/v1/sessions/{id}"),
    ("/projects/{project}/targets", "GET", "/v1/targets"),
    ("/targets/{target}", "GET", "/v1/targets/{id}"),
    ("/workers", "GET", "/v1/workers"),
    # recursive lists from global: 200 with whatever the grants let the user see
    ("/users", "GET", ""),
    ("/roles", "GET", ""),
    ("/projects/{project}/recordings", "GET", ""),
    ("/recordings/{recording}", "GET", "/v1/session-recordings/{id}"),
)
_PAGE_FOR_API = {"allowed": "allowed", "403": "403", "401": "sign-in"}
_SIGNED_IN = {"admin": "allowed", "user": "allowed"}


def _console_rows(
    ctl: Any,
    ids: dict[str, Any],
    tokens: dict[str, str | None],
    table: list[tuple[str, str, dict[str, str]]],
    mismatches: list[Any],
) -> list[tuple[str, dict[str, str]]]:
    """Each console page for each principal (the token in the console's cookie): shown
    ("allowed"), a 403 page, or a redirect to sign in — as the page's API call answered."""
    rows = []
    for page, method, api_path in CONSOLE_PAGES:
        api = next((cells for m, p, cells in table if (m, p) == (method, api_path)), _SIGNED_IN)
        url = page.format(
            project=PROJECT,
            session=ids["session"][0],
            target=ids["target"][0],
            recording=ids["session-recording"][0],
        )
        cells = {}
        for principal in PRINCIPALS:
            token = tokens[principal]
            cookies = {"bconnect_console": token} if token else {}
            resp = requests.get(
                f"{ctl.addr}{url}", cookies=cookies, allow_redirects=False, timeout=30
            )
            location = resp.headers.get("location", "")
            got = {200: "allowed", 403: "403"}.get(resp.status_code, str(resp.status_code))
            if resp.status_code == 303 and location.startswith("/login"):
                got = "sign-in"
            # the console is for signed-in users: without a valid token, sign in first
            want = _PAGE_FOR_API[api.get(principal, "401")] if token else "sign-in"
            if principal in ("expired token", "revoked token"):
                want = "sign-in"
            if got != want:
                mismatches.append((principal, "console", url, resp.status_code, want))
            cells[principal] = got
        rows.append((page, cells))
    return rows


def _render(
    table: list[tuple[str, str, dict[str, str]]], console: list[tuple[str, dict[str, str]]]
) -> str:
    lines = [
        "# Permission matrix",
        "",
        "What the controller answers, per operation, for the dev fixtures' principals",
        "(`bconnect dev`): **admin** (`ids=*;type=*;actions=*`), **user** (Boundary's",
        "authenticated users' role in global and below: scopes read, auth tokens list,",
        "own account read and change-password, sessions list, read:self, cancel:self,",
        "targets list and read, own list-resolvable-aliases; and in the project: targets",
        "authorize-session), an **anonymous** caller (Boundary's login role: scopes list,",
        "auth methods list and authenticate, own auth token read and delete), an",
        "**expired** and a **revoked** token, which are the anonymous user as in Boundary.",
        "The resources are the admin's, so `user`'s `:self` grants do not apply here.",
        "*allowed* means the grants let the call through (the answer may still be a 400 or",
        "404 for the request itself); 403 = authenticated without the grant; 401 =",
        "anonymous (or a token the controller cannot verify) without the grant.",
        "",
        "Generated and checked by `tests/test_permission_matrix.py` against a live controller",
        "(SQLite and PostgreSQL); regenerate with `BCONNECT_WRITE_DOCS=1`.",
        "",
        "| operation | " + " | ".join(PRINCIPALS) + " |",
        "|---|" + "---|" * len(PRINCIPALS),
    ]
    for method, path, cells in table:
        lines.append(
            f"| `{method} {path}` | " + " | ".join(cells.get(p, "?") for p in PRINCIPALS) + " |"
        )
    lines += [
        "",
        "## The admin console's pages",
        "",
        "The console ([admin-console.md](admin-console.md)) asks the API as the signed-in",
        "user, so each page answers as its API call above does: *allowed* (shown), 403 (a",
        "page saying it is not permitted), *sign-in* (a redirect to the sign-in page: the",
        "console is for signed-in users, so no, an expired or a revoked token goes there).",
        "Users and Roles list recursively from global, showing what the grants let the",
        "user see (possibly nothing). Checked by the same test.",
        "",
        "| page | " + " | ".join(PRINCIPALS) + " |",
        "|---|" + "---|" * len(PRINCIPALS),
    ]
    for page, cells in console:
        lines.append(f"| `GET {page}` | " + " | ".join(cells[p] for p in PRINCIPALS) + " |")
    return "\n".join(lines) + "\n"


def test_user_sees_and_cancels_only_their_own_sessions(fresh_controller: Any) -> None:
    ctl = fresh_controller
    theirs = ctl.request(
        "POST", "/v1/targets/ttcp_1234567890:authorize-session", who="user", json={}
    ).json()["session_id"]
    admins = ctl.request("POST", "/v1/targets/ttcp_1234567890:authorize-session", json={}).json()[
        "session_id"
    ]
    listed = ctl.request("GET", f"/v1/sessions?scope_id={PROJECT}", who="user").json()
    assert [s["id"] for s in listed["items"]] == [theirs]
    assert ctl.request("GET", f"/v1/sessions/{admins}", who="user").status_code == 403
    own = ctl.request("GET", f"/v1/sessions/{theirs}", who="user")
    assert own.status_code == 200
    other_cancel = ctl.request(
        "POST", f"/v1/sessions/{admins}:cancel", who="user", json={"version": 1}
    )
    assert other_cancel.status_code == 403
    mine = ctl.request(
        "POST", f"/v1/sessions/{theirs}:cancel", who="user", json={"version": own.json()["version"]}
    )
    assert mine.status_code == 200 and mine.json()["status"] in ("canceling", "terminated")
    assert ctl.request("GET", f"/v1/sessions/{admins}").json()["status"] == "pending"


def test_user_cannot_authorize_a_target_outside_their_grants(fresh_controller: Any) -> None:
    ctl = fresh_controller
    other = ctl.request("POST", "/v1/scopes", json={"scope_id": ORG, "name": "other-project"})
    target = make_target(ctl, 22, scope_id=other.json()["id"], name="elsewhere")
    resp = ctl.request("POST", f"/v1/targets/{target}:authorize-session", who="user", json={})
    assert resp.status_code == 403
    assert ctl.request("POST", f"/v1/targets/{target}:authorize-session", json={}).ok


def test_a_deleted_token_is_refused_at_once(fresh_controller: Any) -> None:
    ctl = fresh_controller
    token = ctl.login("user")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{ctl.addr}/v1/targets?scope_id={PROJECT}"
    assert requests.get(url, headers=headers, timeout=30).status_code == 200
    gone = requests.delete(
        f"{ctl.addr}/v1/auth-tokens/{_token_id(ctl, token)}", headers=headers, timeout=30
    )
    assert gone.status_code in (200, 204), gone.text
    assert requests.get(url, headers=headers, timeout=30).status_code == 401
