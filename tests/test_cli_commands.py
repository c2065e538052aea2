"""Resource commands end to end against a fake controller (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from support.fake_controller import FakeController, Request, login_attributes

from bconnect.cli.main import cli

TOKEN = "at_1234567890_s1secretsecret"
ATTRS = login_attributes(TOKEN)


@pytest.fixture
def fake(fake: FakeController) -> FakeController:
    """conftest's fake controller, answering the dev admin's password login."""
    fake.route(
        "POST",
        "/v1/auth-methods/ampw_1234567890:authenticate",
        (200, {"command": "login", "attributes": ATTRS}),
    )
    return fake


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return tmp_path / "cfg" / "token"


@pytest.fixture
def run(fake: FakeController, token_file: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in (
        "BOUNDARY_TOKEN",
        "BCONNECT_TOKEN",
        "BOUNDARY_CLI_FORMAT",
        "BCONNECT_CLI_FORMAT",
        "BOUNDARY_SCOPE_ID",
        "BCONNECT_SCOPE_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BCONNECT_ADDR", fake.addr)
    monkeypatch.setenv("BCONNECT_KEYRING_TYPE", "file")
    monkeypatch.setenv("BCONNECT_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("TZ", "UTC")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def _login(run: Any, monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.setenv("ADMIN_PW", "password")
    return run(
        "authenticate",
        "password",
        "-auth-method-id",
        "ampw_1234567890",
        "-login-name",
        "admin",
        "-password",
        "env://ADMIN_PW",
    )


def test_authenticate_stores_token_and_commands_use_it(
    fake: FakeController, run: Any, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _login(run, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "Authentication information:" in result.stdout
    assert "  Account ID:      acctpw_1234567890" in result.stdout
    assert "  Auth Method ID:  ampw_1234567890" in result.stdout
    assert "  Expiration Time: " in result.stdout
    assert "  User ID:         u_1234567890" in result.stdout
    assert "successfully stored in the chosen keyring and is not displayed here" in result.stdout
    assert TOKEN not in result.output
    assert fake.requests[-1].body["attributes"] == {"login_name": "admin", "password": "password"}
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert TOKEN in token_file.read_text()

    fake.route("GET", "/v1/scopes", (200, {"items": [], "response_type": "complete"}))
    result = run("scopes", "list")
    assert result.stdout == "No child scopes found\n"
    assert fake.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"

    fake.route("DELETE", "/v1/auth-tokens/at_1234567890", (204, None))
    result = run("logout")
    assert result.exit_code == 0, result.output
    assert "successfully deleted within the Boundary controller" in result.stdout
    assert "successfully removed from the local credential store" in result.stdout
    assert fake.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in token_file.read_text()

    result = run("logout")
    assert result.exit_code == 3
    assert "no token found" in result.stderr.lower()


def test_authenticate_keyring_none_prints_token(run: Any, token_file: Path) -> None:
    result = run(
        "authenticate",
        "password",
        "-auth-method-id=ampw_1234567890",
        "-login-name=admin",
        "-password=string://password",
        "-keyring-type=none",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(TOKEN)
    assert "Storing the token in a keyring was disabled" in result.stderr
    assert not token_file.exists()


def test_authenticate_json_output(run: Any, token_file: Path) -> None:
    result = run(
        "authenticate",
        "password",
        "-auth-method-id",
        "ampw_1234567890",
        "-login-name",
        "admin",
        "-password",
        "string://password",
        "-format",
        "json",
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["status_code"] == 200
    assert body["item"]["attributes"]["token"] == TOKEN


def test_authenticate_needs_a_terminal_for_the_prompt(run: Any) -> None:
    result = run("authenticate", "password", "-auth-method-id", "ampw_1", "-login-name", "admin")
    assert result.exit_code == 3
    assert "stdin is not a terminal" in result.stderr
    result = run(
        "authenticate",
        "password",
        "-auth-method-id",
        "ampw_1",
        "-login-name",
        "a",
        "-password",
        "x",
    )
    assert result.exit_code == 3
    assert "Password flag must be used with env:// or file:// syntax" in result.stderr


def test_authenticate_uses_primary_auth_method(fake: FakeController, run: Any) -> None:
    fake.route(
        "GET",
        "/v1/auth-methods",
        (200, {"items": [{"id": "ampw_1234567890", "is_primary": True}]}),
    )
    result = run("authenticate", "password", "-login-name", "admin", "-password", "string://pw")
    assert result.exit_code == 0, result.output
    assert fake.requests[0].query == {"scope_id": "global"}
    assert fake.requests[1].path == "/v1/auth-methods/ampw_1234567890:authenticate"


def test_bad_credentials(fake: FakeController, run: Any) -> None:
    fake.route(
        "POST",
        "/v1/auth-methods/ampw_1234567890:authenticate",
        (401, {"kind": "Unauthenticated", "message": "Unauthenticated, or invalid token."}),
    )
    result = run(
        "authenticate",
        "password",
        "-auth-method-id",
        "ampw_1234567890",
        "-login-name",
        "admin",
        "-password",
        "string://wrong",
    )
    assert result.exit_code == 1
    assert "Error from controller when performing authentication" in result.stderr
    assert "Unauthenticated" in result.stderr


def test_target_create_update_and_sources(fake: FakeController, run: Any) -> None:
    def echo_item(req: Request) -> tuple[int, Any]:
        return 200, {"id": "ttcp_1234567890", "version": 1, **(req.body or {})}

    fake.route("POST", "/v1/targets", echo_item)
    result = run(
        "targets",
        "create",
        "tcp",
        "-scope-id",
        "p_1234567890",
        "-name",
        "ssh",
        "-address",
        "10.0.0.5",
        "-default-port",
        "22",
        "-session-max-seconds",
        "1h30m",
        "-session-connection-limit",
        "-1",
        "-format",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].body == {
        "scope_id": "p_1234567890",
        "type": "tcp",
        "name": "ssh",
        "address": "10.0.0.5",
        "session_max_seconds": 5400,
        "session_connection_limit": -1,
        "attributes": {"default_port": 22},
    }
    assert json.loads(result.stdout)["item"]["id"] == "ttcp_1234567890"

    fake.route("GET", "/v1/targets/ttcp_1234567890", (200, {"id": "ttcp_1234567890", "version": 3}))
    fake.route("PATCH", "/v1/targets/ttcp_1234567890", echo_item)
    result = run("targets", "update", "tcp", "-id", "ttcp_1234567890", "-description", "null")
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].body == {"description": None, "version": 3}
    assert "Target information:" in result.stdout

    fake.route("POST", "/v1/targets/ttcp_1234567890:set-host-sources", echo_item)
    result = run(
        "targets",
        "set-host-sources",
        "-id",
        "ttcp_1234567890",
        "-host-source",
        "null",
        "-version=3",
    )
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].body == {"host_source_ids": [], "version": 3}

    fake.route("POST", "/v1/targets/ttcp_1234567890:add-credential-sources", echo_item)
    result = run(
        "targets",
        "add-credential-sources",
        "-id",
        "ttcp_1234567890",
        "-brokered-credential-source",
        "credup_1",
        "-brokered-credential-source",
        "credup_2",
    )
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].body == {
        "brokered_credential_source_ids": ["credup_1", "credup_2"],
        "version": 3,
    }

    result = run("targets", "add-host-sources", "-id", "ttcp_1234567890")
    assert result.exit_code == 2
    assert "No host sources supplied via -host-source" in result.stderr


def test_authorize_session_by_name(fake: FakeController, run: Any) -> None:
    auth = {
        "session_id": "s_1234567890",
        "target_id": "ttcp_1234567890",
        "scope": {"id": "p_1234567890"},
        "authorization_token": "AUTHZ",
        "endpoint": "tcp://localhost:22",
        "type": "tcp",
        "created_time": "2024-05-01T10:00:00Z",
    }
    fake.route("POST", "/v1/targets/Generated target:authorize-session", (200, auth))
    result = run(
        "targets",
        "authorize-session",
        "-name",
        "Generated target",
        "-scope-id",
        "p_1234567890",
        "-format",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"status_code": 200, "item": auth}
    assert fake.requests[-1].body == {"scope_id": "p_1234567890", "name": "Generated target"}

    result = run("targets", "authorize-session", "-name", "x")
    assert result.exit_code == 2
    result = run("targets", "authorize-session", "-id", "ttcp_1", "-name", "x")
    assert result.exit_code == 2
    assert "Cannot specify a target ID and also other lookup parameters" in result.stderr


def test_sessions_cancel_and_delete(fake: FakeController, run: Any) -> None:
    fake.route("GET", "/v1/sessions/s_1", (200, {"id": "s_1", "version": 5, "status": "active"}))
    fake.route(
        "POST",
        "/v1/sessions/s_1:cancel",
        lambda req: (200, {"id": "s_1", "version": 6, "status": "canceling"}),
    )
    result = run("sessions", "cancel", "-id", "s_1")
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].body == {"version": 5}
    assert "  Status:              canceling" in result.stdout

    fake.route("DELETE", "/v1/hosts/hst_1", (204, None))
    result = run("hosts", "delete", "-id", "hst_1")
    assert result.stdout == "The delete operation completed successfully.\n"
    result = run("hosts", "delete", "-id", "hst_1", "-format", "json")
    assert result.stdout == '{"status_code":204}\n'


def test_credentials_secrets_from_env_and_file(
    fake: FakeController, run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.route("POST", "/v1/credentials", lambda req: (200, {"id": "credup_1", **req.body}))
    monkeypatch.setenv("DB_PW", "s3cret")
    result = run(
        "credentials",
        "create",
        "username-password",
        "-credential-store-id",
        "csst_1234567890",
        "-username",
        "postgres",
        "-password",
        "env://DB_PW",
    )
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].body == {
        "credential_store_id": "csst_1234567890",
        "type": "username_password",
        "attributes": {"username": "postgres", "password": "s3cret"},
    }

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(pem)
    result = run(
        "credentials",
        "create",
        "ssh-private-key",
        "-credential-store-id",
        "csst_1234567890",
        "-username",
        "ubuntu",
        "-private-key",
        f"file://{key_file}",
    )
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].body["attributes"] == {
        "username": "ubuntu",
        "private_key": pem.strip(),
    }

    bad = tmp_path / "bad"
    bad.write_text("not a key")
    result = run(
        "credentials",
        "create",
        "ssh-private-key",
        "-credential-store-id",
        "csst_1",
        "-private-key",
        f"file://{bad}",
    )
    assert result.exit_code == 3
    assert "Error parsing private key" in result.stderr


def test_members_and_grants(fake: FakeController, run: Any) -> None:
    fake.route("GET", "/v1/roles/r_1", (200, {"id": "r_1", "version": 2}))
    fake.route("POST", "/v1/roles/r_1:add-grants", lambda req: (200, {"id": "r_1", **req.body}))
    result = run("roles", "add-grants", "-id", "r_1", "-grant", "ids=*;type=*;actions=read")
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].body == {"grant_strings": ["ids=*;type=*;actions=read"], "version": 2}

    result = run("roles", "add-grants", "-id", "r_1", "-grant", "id=*;actions=read")
    assert result.exit_code == 3
    assert 'uses the "id" field which is no longer supported' in result.stderr

    fake.route("GET", "/v1/users/u_1", (200, {"id": "u_1", "version": 1}))
    fake.route("POST", "/v1/users/u_1:add-accounts", lambda req: (200, {"id": "u_1"}))
    result = run("users", "add-accounts", "-id", "u_1", "-account", "a1", "-account", "a2")
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].body == {"account_ids": ["a1", "a2"], "version": 1}


def test_auth_tokens_read_self(fake: FakeController, run: Any, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BCONNECT_TOKEN", TOKEN)
    fake.route("GET", "/v1/auth-tokens/at_1234567890", (200, ATTRS))
    result = run("auth-tokens", "read", "-id", "self")
    assert result.exit_code == 0, result.output
    assert "Auth Token information:" in result.stdout
    assert "at_1234567890" in result.stdout
    result = run("auth-tokens", "read", input="n\n")
    assert result.exit_code == 3
