"""What a real Boundary client relies on (INTEROP.md): any token the controller cannot
verify is the anonymous user, anonymous auth-token lists are refused, Boundary's error
JSON in the CLI, login refusals that say what to do, and timestamps with fractions."""

from __future__ import annotations

import http.client
import json
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import update
from support.cli import run_bconnect
from support.constants import AUTH_METHOD, PROJECT

from bconnect.controller.context import utcnow
from bconnect.controller.storage import schema as t

pytestmark = pytest.mark.all_databases

LOGIN = {"command": "login", "attributes": {"login_name": "user", "password": "password"}}


def raw(ctl: Any, method: str, path: str, authorization: str | None, body: Any = None):  # noqa: ANN201
    """One request with exactly this Authorization header (``requests`` would not send
    ``Bearer `` with nothing after it as Boundary's Go client does)."""
    parts = urlsplit(ctl.addr)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data else None, dict(resp.getheaders())


def _token_id(token: str) -> str:
    return "_".join(token.split("_")[:2])


def stale_tokens(ctl: Any) -> dict[str, str]:
    """An expired, a revoked, an unknown and a malformed token."""
    expired, revoked = ctl.login("user"), ctl.login("user")
    with ctl.engine.begin() as conn:
        conn.execute(
            update(t.auth_tokens)
            .where(t.auth_tokens.c.id == _token_id(expired))
            .values(expiration_time=utcnow() - timedelta(minutes=1))
        )
    gone = ctl.request("DELETE", f"/v1/auth-tokens/{_token_id(revoked)}")
    assert gone.status_code == 204, gone.text
    return {
        "expired": expired,
        "revoked": revoked,
        "unknown": "at_1234567890_s1" + "x" * 40,
        "malformed": "not-a-token",
    }


def test_an_empty_bearer_token_is_the_anonymous_user(fresh_controller) -> None:
    ctl = fresh_controller
    # exactly what Boundary's Go client sends on `authenticate`
    status, body, _ = raw(
        ctl, "POST", f"/v1/auth-methods/{AUTH_METHOD}:authenticate", "Bearer ", LOGIN
    )
    assert status == 200, body
    assert body["attributes"]["token"].startswith("at_")
    status, body, _ = raw(ctl, "GET", "/v1/scopes?scope_id=global", "Bearer ")
    assert status == 200 and [s["id"] for s in body["items"]] == ["o_1234567890"]
    status, body, _ = raw(ctl, "GET", "/v1/auth-methods?scope_id=global", "Bearer")
    assert status == 200 and [m["id"] for m in body["items"]] == [AUTH_METHOD]


def test_a_stale_token_reads_what_u_anon_may_and_nothing_else(fresh_controller) -> None:
    ctl = fresh_controller
    sid = ctl.request(
        "POST", "/v1/targets/ttcp_1234567890:authorize-session", who="user", json={}
    ).json()["session_id"]
    for why, token in stale_tokens(ctl).items():
        auth = f"Bearer {token}"
        status, body, _ = raw(ctl, "GET", "/v1/scopes?scope_id=global", auth)
        assert status == 200, (why, body)
        assert body["items"][0]["authorized_actions"] == ["no-op"], why
        status, body, _ = raw(ctl, "GET", f"/v1/targets?scope_id={PROJECT}", auth)
        assert (status, body["kind"]) == (401, "Unauthenticated"), why
        status, body, _ = raw(ctl, "GET", f"/v1/sessions/{sid}", auth)
        assert status == 401, why
        status, body, _ = raw(
            ctl, "POST", f"/v1/auth-methods/{AUTH_METHOD}:authenticate", auth, LOGIN
        )
        assert status == 200, (why, body)


def test_a_header_that_is_not_bearer_keeps_its_error(fresh_controller) -> None:
    status, body, _ = raw(fresh_controller, "GET", "/v1/scopes", "Basic YWRtaW46cGFzc3dvcmQ=")
    assert status == 401
    assert body["kind"] == "Unauthenticated"
    assert "Bearer" in body["message"]


def test_anonymous_auth_token_list_is_401_and_a_user_lists_their_own(fresh_controller) -> None:
    ctl = fresh_controller
    status, body, _ = raw(ctl, "GET", "/v1/auth-tokens?scope_id=global", None)
    assert (status, body["kind"]) == (401, "Unauthenticated")
    status, _, _ = raw(ctl, "GET", "/v1/auth-tokens?scope_id=global", "Bearer ")
    assert status == 401
    mine = ctl.request("GET", "/v1/auth-tokens?scope_id=global", who="user").json()["items"]
    assert {item["user_id"] for item in mine} == {"u_0987654321"}
    assert len(mine) == 1


def test_a_throttled_login_is_429_with_retry_after(fresh_controller) -> None:
    ctl = fresh_controller
    wrong = {"command": "login", "attributes": {"login_name": "admin", "password": "nope-nope"}}
    statuses = [
        raw(ctl, "POST", f"/v1/auth-methods/{AUTH_METHOD}:authenticate", None, wrong)[0]
        for _ in range(10)
    ]
    assert statuses == [401] * 10
    status, body, headers = raw(
        ctl, "POST", f"/v1/auth-methods/{AUTH_METHOD}:authenticate", None, wrong
    )
    assert status == 429
    assert body["kind"] == "ResourceExhausted"
    retry = int(headers["retry-after"])
    assert 1 <= retry <= 60
    assert f"retry in {retry} s" in body["message"]


FRACTION = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$")


def test_session_times_keep_their_fraction_of_a_second(fresh_controller) -> None:
    ctl = fresh_controller
    found_fraction = False
    for _ in range(3):  # a whole second is possible, three in a row are not
        auth = ctl.request("POST", "/v1/targets/ttcp_1234567890:authorize-session", json={}).json()
        created = datetime.fromisoformat(auth["created_time"].replace("Z", "+00:00"))
        expiration = datetime.fromisoformat(auth["expiration"].replace("Z", "+00:00"))
        assert expiration - created == timedelta(seconds=28800)  # not rounded to a second
        assert FRACTION.match(auth["expiration"]), auth["expiration"]
        found_fraction |= "." in auth["expiration"]
        read = ctl.request("GET", f"/v1/sessions/{auth['session_id']}").json()
        assert read["expiration_time"] == auth["expiration"]
    assert found_fraction


# ---------------------------------------------------------------------- the CLI


def cli(ctl: Any, *args: str, token: str | None = None, tmp_path: Any = None) -> Any:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "BOUNDARY_ADDR": ctl.addr,
        "BCONNECT_KEYRING_TYPE": "none",
        "BCONNECT_LOAD_PLUGINS": "",
    }
    if token:
        env["BOUNDARY_TOKEN"] = token
    return run_bconnect(*args, env=env)


def test_cli_json_errors_are_boundarys_object(fresh_controller, tmp_path) -> None:
    ctl = fresh_controller
    result = cli(
        ctl,
        "targets",
        "read",
        "-id",
        "ttcp_0000000000",
        "-format",
        "json",
        token=ctl.token("admin"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 1
    error = json.loads(result.stderr)
    assert list(error) == ["context", "status_code", "api_error"]
    assert error["status_code"] == 404
    assert error["api_error"]["kind"] == "NotFound"
    assert error["api_error"]["op"] == "controller.api.read_targets"
    assert "status" not in error


def test_cli_says_how_to_log_in(fresh_controller, tmp_path) -> None:
    ctl = fresh_controller
    nothing = cli(ctl, "targets", "list", "-scope-id", PROJECT, tmp_path=tmp_path)
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == (
        f"no token for {ctl.addr}: this needs a login; run bconnect authenticate password "
        "-login-name NAME (or pass one with -token or BOUNDARY_TOKEN)"
    )
    stale = stale_tokens(ctl)["revoked"]
    old = cli(ctl, "targets", "list", "-scope-id", PROJECT, token=stale, tmp_path=tmp_path)
    assert old.returncode == 1
    assert old.stderr.strip() == (
        f"the token from BOUNDARY_TOKEN is not valid at {ctl.addr} (expired, revoked or from "
        "another controller): run bconnect authenticate password -login-name NAME"
    )
    # what anyone may do still works with a stale token, as in Boundary
    assert cli(ctl, "scopes", "list", token=stale, tmp_path=tmp_path).returncode == 0
    # JSON keeps Boundary's error object for scripts
    as_json = cli(
        ctl, "targets", "list", "-scope-id", PROJECT, "-format", "json", tmp_path=tmp_path
    )
    assert json.loads(as_json.stderr)["status_code"] == 401


def test_cli_says_when_a_login_is_throttled(fresh_controller, tmp_path) -> None:
    ctl = fresh_controller
    (tmp_path / "pw").write_text("wrong-password\n")
    args = ("authenticate", "password", "-auth-method-id", AUTH_METHOD, "-login-name", "user")
    for _ in range(10):
        failed = cli(ctl, *args, "-password", f"file://{tmp_path / 'pw'}", tmp_path=tmp_path)
        assert failed.returncode == 1
        assert "invalid login name or password" in failed.stderr
    (tmp_path / "pw").write_text("password\n")
    refused = cli(ctl, *args, "-password", f"file://{tmp_path / 'pw'}", tmp_path=tmp_path)
    assert refused.returncode == 1
    assert re.fullmatch(
        r"too many failed logins from this address, retry in \d+ s\n", refused.stderr
    ), refused.stderr
    assert "Traceback" not in refused.stderr


def test_logout_with_a_stale_token_forgets_it(fresh_controller, tmp_path) -> None:
    ctl = fresh_controller
    stale = stale_tokens(ctl)
    expired = cli(ctl, "logout", token=stale["expired"], tmp_path=tmp_path)
    assert expired.returncode == 0, expired.stderr
    assert "The token is no longer valid on the Boundary controller" in expired.stdout
    revoked = cli(ctl, "logout", token=stale["revoked"], tmp_path=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert "The token was not found on the Boundary controller" in revoked.stdout


def test_the_real_boundary_cli_cache_gets_resolvable_aliases(fresh_controller) -> None:
    """The request Boundary's CLI cache daemon makes on every refresh, as the user."""
    ctl = fresh_controller
    resp = ctl.request("GET", "/v1/users/u_0987654321:list-resolvable-aliases", who="user")
    assert resp.status_code == 200, resp.text
    assert resp.json()["response_type"] == "complete"
    assert (
        requests.get(
            f"{ctl.addr}/v1/users/u_0987654321:list-resolvable-aliases", timeout=30
        ).status_code
        == 401
    )
