"""Aliases (Boundary ≥ 0.16): the resource, its rules and grants, resolvable aliases, and
connecting by alias with `bconnect connect <alias>`."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import requests
from support.cli import run_bconnect
from support.constants import GUARD, ORG
from support.dataplane import make_target

pytestmark = pytest.mark.all_databases


def create(ctl: Any, who: str = "admin", **fields: Any) -> requests.Response:
    body = {"scope_id": "global", "type": "target", **fields}
    return ctl.request("POST", "/v1/aliases", who=who, json=body)


def field_error(resp: requests.Response) -> str:
    assert resp.status_code == 400, resp.text
    return resp.json()["details"]["request_fields"][0]["name"]


def test_create_read_list_update_delete(fresh_controller) -> None:
    ctl = fresh_controller
    made = create(
        ctl,
        value="Web.Prod",
        destination_id="ttcp_0987654321",
        name="web",
        description="the web servers",
        attributes={"authorize_session_arguments": {"host_id": "hst_1234567890"}},
    )
    assert made.status_code == 200, made.text
    alias = made.json()
    assert alias["id"].startswith("alt_") and len(alias["id"]) == 14
    assert alias["scope_id"] == "global" and alias["scope"]["id"] == "global"
    assert (alias["type"], alias["value"], alias["destination_id"]) == (
        "target",
        "Web.Prod",
        "ttcp_0987654321",
    )
    assert alias["attributes"] == {"authorize_session_arguments": {"host_id": "hst_1234567890"}}
    assert set(alias["authorized_actions"]) == {"read", "update", "delete", "no-op"}
    assert ctl.request("GET", f"/v1/aliases/{alias['id']}").json() == alias
    listed = ctl.request("GET", "/v1/aliases?scope_id=global").json()
    assert [a["id"] for a in listed["items"]] == [alias["id"]]
    global_scope = ctl.request("GET", "/v1/scopes/global").json()
    assert global_scope["authorized_collection_actions"]["aliases"] == ["create", "list"]

    changed = ctl.request(
        "PATCH", f"/v1/aliases/{alias['id']}", json={"version": 1, "value": "web.staging"}
    ).json()
    assert (changed["value"], changed["version"]) == ("web.staging", 2)
    # a destination cleared takes its host with it
    cleared = ctl.request(
        "PATCH", f"/v1/aliases/{alias['id']}", json={"version": 2, "destination_id": None}
    ).json()
    assert "destination_id" not in cleared and "attributes" not in cleared
    stale = ctl.request("PATCH", f"/v1/aliases/{alias['id']}", json={"version": 1, "name": "x"})
    assert field_error(stale) == "version"
    assert ctl.request("DELETE", f"/v1/aliases/{alias['id']}").status_code == 204
    assert ctl.request("GET", f"/v1/aliases/{alias['id']}").status_code == 404


@pytest.mark.parametrize(
    "value",
    [
        "web_prod",
        "-web.prod",
        "web-.prod",
        "web..prod",
        "web.123",
        " web.prod",
        "",
        "a" * 64,
        ".".join(["a" * 60] * 5),
    ],
)
def test_values_must_be_dns_like(controller, value: str) -> None:
    assert field_error(create(controller, value=value, destination_id="ttcp_1234567890")) == "value"


def test_values_are_unique_whatever_their_case(fresh_controller) -> None:
    ctl = fresh_controller
    assert create(ctl, value="db.prod", destination_id="ttcp_1234567890").status_code == 200
    assert field_error(create(ctl, value="DB.Prod", destination_id="ttcp_0987654321")) == "value"
    assert create(ctl, value="db.prod2").status_code == 200  # no destination yet is fine


def test_what_an_alias_may_point_at(controller) -> None:
    ctl = controller
    in_org = ctl.request(
        "POST", "/v1/aliases", json={"scope_id": ORG, "type": "target", "value": "x.y"}
    )
    assert field_error(in_org) == "scope_id"
    assert field_error(create(ctl, value="t.y", type="host")) == "type"
    assert field_error(create(ctl, value="a.b", destination_id="hst_1234567890")) == (
        "destination_id"
    )
    missing = create(ctl, value="c.d", destination_id="ttcp_0000000000")
    assert missing.status_code == 404 and "ttcp_0000000000" in missing.json()["message"]
    no_destination = create(
        ctl, value="e.f", attributes={"authorize_session_arguments": {"host_id": "hst_1234567890"}}
    )
    assert field_error(no_destination) == "destination_id"


def test_grants(fresh_controller) -> None:
    ctl = fresh_controller
    assert create(ctl, who="user", value="u.v", destination_id="ttcp_1234567890").status_code == 403
    anonymous = requests.post(
        f"{ctl.addr}/v1/aliases",
        json={"scope_id": "global", "type": "target", "value": "u.v"},
        timeout=30,
    )
    assert anonymous.status_code == 401
    assert ctl.request("GET", "/v1/aliases?scope_id=global", who="user").status_code == 403
    role = ctl.request("POST", "/v1/roles", json={"scope_id": "global", "name": "alias-readers"})
    role_id = role.json()["id"]
    ctl.request(
        "POST",
        f"/v1/roles/{role_id}:add-grants",
        json={"version": 1, "grant_strings": ["ids=*;type=alias;actions=list,read"]},
    )
    ctl.request(
        "POST",
        f"/v1/roles/{role_id}:add-principals",
        json={"version": 2, "principal_ids": ["u_0987654321"]},
    )
    made = create(ctl, value="u.v", destination_id="ttcp_1234567890").json()
    listed = ctl.request("GET", "/v1/aliases?scope_id=global", who="user").json()
    assert [(a["id"], a["authorized_actions"]) for a in listed["items"]] == [(made["id"], ["read"])]
    patch = ctl.request(
        "PATCH", f"/v1/aliases/{made['id']}", who="user", json={"version": 1, "name": "n"}
    )
    assert patch.status_code == 403


def test_authorize_and_read_by_alias(fresh_controller) -> None:
    ctl = fresh_controller
    create(ctl, value="web.prod", destination_id="ttcp_1234567890")
    create(
        ctl,
        value="hosts.prod",
        destination_id="ttcp_0987654321",
        attributes={"authorize_session_arguments": {"host_id": "hst_1234567890"}},
    )
    # no alias grant is needed: authorize-session on the target decides
    auth = ctl.request("POST", "/v1/targets/web.prod:authorize-session", who="user", json={})
    assert auth.status_code == 200, auth.text
    assert auth.json()["target_id"] == "ttcp_1234567890"
    assert ctl.request("POST", "/v1/targets/WEB.PROD:authorize-session", json={}).ok
    hosted = ctl.request("POST", "/v1/targets/hosts.prod:authorize-session", json={}).json()
    assert hosted["host_id"] == "hst_1234567890"
    other_host = ctl.request(
        "POST", "/v1/targets/hosts.prod:authorize-session", json={"host_id": "hst_0000000000"}
    )
    assert field_error(other_host) == "host_id"
    assert ctl.request("GET", "/v1/targets/web.prod").json()["id"] == "ttcp_1234567890"
    nowhere = ctl.request("POST", "/v1/targets/nowhere.prod:authorize-session", json={})
    assert nowhere.status_code == 404 and "nowhere.prod" in nowhere.json()["message"]


def test_deleting_the_target_leaves_the_alias_without_destination(fresh_controller) -> None:
    ctl = fresh_controller
    target = make_target(ctl, 12345)
    alias = create(
        ctl,
        value="gone.soon",
        destination_id=target,
        attributes={"authorize_session_arguments": {"host_id": "hst_1234567890"}},
    ).json()
    assert ctl.request("DELETE", f"/v1/targets/{target}").status_code == 204
    after = ctl.request("GET", f"/v1/aliases/{alias['id']}").json()
    assert "destination_id" not in after and "attributes" not in after
    assert after["version"] == 2
    gone = ctl.request("POST", "/v1/targets/gone.soon:authorize-session", json={})
    assert gone.status_code == 404


def test_resolvable_aliases_follow_the_users_target_grants(fresh_controller) -> None:
    ctl = fresh_controller
    mine = create(ctl, value="mine.prod", destination_id="ttcp_1234567890").json()
    create(ctl, value="loose.end")  # no destination: never resolvable
    other_project = ctl.request("POST", "/v1/scopes", json={"scope_id": ORG, "name": "p2"})
    elsewhere = make_target(ctl, 22, scope_id=other_project.json()["id"], name="hidden")
    # the authenticated users' role reads targets everywhere: take that away, leaving
    # `user` the dev project's grants
    role = ctl.request("GET", "/v1/roles/r_default_authn").json()
    removed = ctl.request(
        "POST",
        "/v1/roles/r_default_authn:remove-grants",
        json={"version": role["version"], "grant_strings": ["ids=*;type=target;actions=list,read"]},
    )
    assert removed.status_code == 200, removed.text
    create(ctl, value="theirs.prod", destination_id=elsewhere)
    path = "/v1/users/u_0987654321:list-resolvable-aliases"
    page = ctl.request("GET", path, who="user").json()
    assert [(a["value"], a["destination_id"]) for a in page["items"]] == [
        ("mine.prod", "ttcp_1234567890")
    ]
    assert set(page["items"][0]) == {
        "id",
        "created_time",
        "updated_time",
        "value",
        "destination_id",
        "type",
    }
    # another user's list needs a grant on that user
    assert (
        ctl.request("GET", "/v1/users/u_1234567890:list-resolvable-aliases", who="user").status_code
        == 403
    )
    assert ctl.request("GET", path).status_code == 200  # admin may ask about anyone
    # a refresh reports what went away
    ctl.request("DELETE", f"/v1/aliases/{mine['id']}")
    refresh = ctl.request("GET", path, who="user", params={"list_token": page["list_token"]}).json()
    assert refresh["items"] == [] and refresh["removed_ids"] == [mine["id"]]


def test_cli_aliases_and_connect_by_alias(dataplane, echo_server, tmp_path) -> None:
    ctl = dataplane
    target = make_target(ctl, echo_server.port)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "BOUNDARY_ADDR": ctl.addr,
        "BOUNDARY_TOKEN": ctl.token("user"),
        "BCONNECT_KEYRING_TYPE": "none",
        "BCONNECT_LOAD_PLUGINS": "",
    }

    def run(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        token = token or env["BOUNDARY_TOKEN"]
        return run_bconnect(*args, env={**env, "BOUNDARY_TOKEN": token}, timeout=GUARD * 2)

    admin = ctl.token("admin")
    made = run(
        "aliases",
        "create",
        "target",
        "-value",
        "echo.dev",
        "-destination-id",
        target,
        "-format",
        "json",
        token=admin,
    )
    assert made.returncode == 0, made.stderr
    alias = json.loads(made.stdout)["item"]
    table = run("aliases", "read", "-id", alias["id"], token=admin)
    assert "Alias information:" in table.stdout
    assert f"  Destination ID:      {target}" in table.stdout.splitlines()
    assert "  Value:               echo.dev" in table.stdout.splitlines()
    listed = run("aliases", "list", token=admin)
    assert f"  ID:               {alias['id']}" in listed.stdout.splitlines()

    probe = (
        "import os, socket; s = socket.create_connection(('127.0.0.1', "
        "int(os.environ['BOUNDARY_PROXIED_PORT']))); s.sendall(b'by alias'); "
        "print(s.recv(100).decode())"
    )
    used = run("connect", "echo.dev", "-exec", sys.executable, "--", "-c", probe)
    assert (used.returncode, used.stdout.strip().splitlines()[-1]) == (0, "by alias"), used.stderr
    both = run("connect", "echo.dev", "-target-id", target)
    assert both.returncode == 2
    assert "Cannot specify a Target alias and also other lookup parameters" in both.stderr
    unknown = run("connect", "nope.dev")
    assert unknown.returncode == 1 and "no alias 'nope.dev'" in unknown.stderr
    updated = run(
        "aliases",
        "update",
        "target",
        "-id",
        alias["id"],
        "-destination-id",
        "null",
        "-format",
        "json",
        token=admin,
    )
    assert "destination_id" not in json.loads(updated.stdout)["item"]
    assert run("aliases", "delete", "-id", alias["id"], token=admin).returncode == 0
