"""Table/JSON output in Boundary's shapes, and the CLI's exit codes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.fake_controller import FakeController, unused_addr

from bconnect.cli import connect_output, output
from bconnect.cli.main import cli
from bconnect.cli.sessions import SESSION_VIEW
from bconnect.cli.targets import TARGET_VIEW, authorization_table
from bconnect.core.api import ApiError

T0 = "2024-05-01T10:00:00.123456789Z"
T1 = "2024-05-01T18:00:00Z"
RFC0 = "Wed, 01 May 2024 10:00:00 UTC"
RFC1 = "Wed, 01 May 2024 18:00:00 UTC"

PROJECT = {
    "id": "p_1234567890",
    "type": "project",
    "name": "Generated project scope",
    "parent_scope_id": "o_1234567890",
}

SESSION = {
    "id": "s_1234567890",
    "target_id": "ttcp_1234567890",
    "scope": PROJECT,
    "created_time": T0,
    "updated_time": T0,
    "version": 2,
    "type": "tcp",
    "expiration_time": T1,
    "auth_token_id": "at_1234567890",
    "user_id": "u_1234567890",
    "host_set_id": "hsst_1234567890",
    "host_id": "hst_1234567890",
    "scope_id": "p_1234567890",
    "endpoint": "tcp://localhost:22",
    "status": "active",
    "states": [
        {"status": "active", "start_time": T0},
        {"status": "pending", "start_time": T0, "end_time": T0},
    ],
    "authorized_actions": ["read:self", "cancel:self"],
    "connections": [
        {
            "client_tcp_address": "127.0.0.1",
            "client_tcp_port": 50000,
            "endpoint_tcp_address": "127.0.0.1",
            "endpoint_tcp_port": 22,
            "bytes_up": "1024",
            "bytes_down": "2048",
            "closed_reason": "closed by end-user",
        }
    ],
}

TARGET = {
    "id": "ttcp_1234567890",
    "scope_id": "p_1234567890",
    "scope": PROJECT,
    "name": "Generated target",
    "description": "Provides an initial target",
    "created_time": T0,
    "updated_time": T0,
    "version": 1,
    "type": "tcp",
    "host_sources": [{"id": "hsst_1234567890", "host_catalog_id": "hcst_1234567890"}],
    "session_max_seconds": 28800,
    "session_connection_limit": -1,
    "attributes": {"default_port": 22},
    "authorized_actions": ["read", "authorize-session"],
}


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_sessions_list_table() -> None:
    expected = "\n".join(
        [
            "",
            "Session information:",
            "  ID:                    s_1234567890",
            "    Status:              active",
            f"    Created Time:        {RFC0}",
            f"    Expiration Time:     {RFC1}",
            f"    Updated Time:        {RFC0}",
            "    User ID:             u_1234567890",
            "    Target ID:           ttcp_1234567890",
            "    Authorized Actions:",
            "      read:self",
            "      cancel:self",
            "",
            "  ID:                    s_0987654321",
            "    Scope ID:            p_1234567890",
            "    Status:              pending",
        ]
    )
    other = {"id": "s_0987654321", "scope_id": "p_1234567890", "status": "pending"}
    assert (
        SESSION_VIEW.list_table([SESSION, other], recursive=False).split("\n")[:12]
        == (expected.split("\n")[:12])
    )
    recursive = SESSION_VIEW.list_table([SESSION, other], recursive=True)
    assert "    Scope ID:            p_1234567890" in recursive
    assert SESSION_VIEW.list_table([]) == "No sessions found"


def test_session_read_table() -> None:
    expected = f"""
Session information:
  Auth Token ID:       at_1234567890
  Created Time:        {RFC0}
  Endpoint:            tcp://localhost:22
  Expiration Time:     {RFC1}
  Host ID:             hst_1234567890
  Host Set ID:         hsst_1234567890
  ID:                  s_1234567890
  Status:              active
  Target ID:           ttcp_1234567890
  Type:                tcp
  Updated Time:        {RFC0}
  User ID:             u_1234567890
  Version:             2

  Scope:
    ID:                p_1234567890
    Name:              Generated project scope
    Parent Scope ID:   o_1234567890
    Type:              project

  Authorized Actions:
    read:self
    cancel:self

  States:
    Start Time:        {RFC0}
    Status:            active

    End Time:          {RFC0}
    Start Time:        {RFC0}
    Status:            pending


  Connections:
    Bytes Down:        2048
    Bytes Up:          1024
    Client Address:    127.0.0.1:50000
    Closed Reason:     closed by end-user
    Endpoint Address:  127.0.0.1:22
"""
    assert SESSION_VIEW.item_table(SESSION, width=80) == expected


def test_target_read_table() -> None:
    # "Session Connection Limit" (24) is the longest key: values start at column 2+24+4 = 30.
    def kv(key: str, value: str, indent: int = 2) -> str:
        return f"{' ' * indent}{key}:".ljust(30) + value

    expected = "\n".join(
        [
            "",
            "Target information:",
            kv("Created Time", RFC0),
            kv("Description", "Provides an initial target"),
            kv("ID", "ttcp_1234567890"),
            kv("Name", "Generated target"),
            kv("Session Connection Limit", "-1"),
            kv("Session Max Seconds", "28800"),
            kv("Type", "tcp"),
            kv("Updated Time", RFC0),
            kv("Version", "1"),
            "",
            "  Scope:",
            kv("ID", "p_1234567890", 4),
            kv("Name", "Generated project scope", 4),
            kv("Parent Scope ID", "o_1234567890", 4),
            kv("Type", "project", 4),
            "",
            "  Authorized Actions:",
            "    read",
            "    authorize-session",
            "",
            "  Host Sources:",
            kv("Host Catalog ID", "hcst_1234567890", 4),
            kv("ID", "hsst_1234567890", 4),
            "",
            "  Attributes:",
            kv("Default Port", "22", 4),
        ]
    )
    assert TARGET_VIEW.item_table(TARGET, width=80) == expected


def test_authorize_session_table() -> None:
    item = {
        "session_id": "s_1234567890",
        "target_id": "ttcp_1234567890",
        "scope": PROJECT,
        "created_time": T0,
        "user_id": "u_1234567890",
        "host_id": "hst_1234567890",
        "endpoint": "tcp://localhost:22",
        "type": "tcp",
        "authorization_token": "abc",
        "credentials": [
            {
                "credential_source": {
                    "id": "credup_1234567890",
                    "credential_store_id": "csst_1234567890",
                    "name": "db",
                    "type": "static",
                    "credential_type": "username_password",
                },
                "secret": {"raw": "e30=", "decoded": {}},
                "credential": {"username": "alice", "password": "pw"},
            }
        ],
    }
    text = authorization_table(item, width=80)
    # WrapMap(2, 19+2): the longest key, "Authorization Token", is followed by 3 spaces.
    assert text.startswith("\nTarget information:\n  Authorization Token:   abc\n")
    assert "  Session ID:            s_1234567890" in text
    assert "    Credential Source ID:          credup_1234567890" in text
    assert "    Credential Type:               username_password" in text
    assert "    Secret:\n      password:   pw\n      username:   alice\n" in text


def test_json_envelopes() -> None:
    item = {"id": "s_1", "status": "active", "filter": "a<b & c>d"}
    assert output.json_item(200, item) == (
        '{"status_code":200,"item":{"id":"s_1","status":"active",'
        '"filter":"a\\u003cb \\u0026 c\\u003ed"}}'
    )
    assert json.loads(output.json_item(200, item))["item"] == item
    assert output.json_items(200, [item])[:29] == '{"status_code":200,"items":[{'
    assert output.json_items(200, None) == '{"status_code":200,"items":null}'
    assert output.json_item(204) == '{"status_code":204}'


def test_api_error_text() -> None:
    err = ApiError(
        404,
        kind="NotFound",
        op="sessions.(Service).GetSession",
        message="Resource not found.",
        details={"request_fields": [{"name": "attributes.login_name", "description": "bad"}]},
    )
    context = "Error from controller when performing read on session"
    assert output.api_error_text(err, context, width=200) == "\n".join(
        [
            context,
            "",
            "Error information:",
            "  Kind:                NotFound",
            "  Message:             Resource not found.",
            "  Operation:           sessions.(Service).GetSession",
            "  Status:              404",
            f"  context:             {context}",
            "",
            "  Field-specific Errors:",
            "    Name:              -login-name",
            "      Error:           bad",
        ]
    )
    body = json.loads(output.api_error_json(err, context))
    assert body["status_code"] == 404 and body["context"] == context
    assert list(body) == ["context", "status_code", "api_error"]  # Boundary's order


@pytest.mark.parametrize(
    ("text", "lim", "expected"),
    [
        ("foo bar baz", 4, "foo\nbar\nbaz"),
        ("foo bars bazzes", 4, "foo\nbars\nbazzes"),
        ("fo sop", 4, "fo\nsop"),
        ("foo bar\u00a0baz", 10, "foo\nbar\u00a0baz"),
        ("foo\nb\t r\n baz", 4, "foo\nb\t r\n baz"),
        ("foo    \nb   ar   ", 4, "foo\nb\nar"),
        ("\nfoo bar\n\n\nbaz\n", 4, "\nfoo\nbar\n\n\nbaz\n"),
        (
            " This is a list: \n\n\t* foo\n\t* bar\n\n\n\t* baz  \nBAM    ",
            6,
            " This\nis a\nlist: \n\n\t* foo\n\t* bar\n\n\n\t* baz\nBAM",
        ),
    ],
)
def test_go_wordwrap(text: str, lim: int, expected: str) -> None:
    assert output.go_wordwrap(text, lim) == expected


def test_wrap_for_help_text_keeps_indent() -> None:
    text = output.wrap_for_help_text(["    Description:  " + "word " * 20], width=40)
    lines = text.split("\n")
    assert all(line.startswith("    ") and len(line) <= 40 for line in lines)


def test_go_value() -> None:
    assert output.go_value(True) == "true"
    assert output.go_value(None) == "<nil>"
    assert output.go_value(["a", "b"]) == "[a b]"
    assert output.go_value({"b": 1, "a": "x"}) == "map[a:x b:1]"
    assert output.go_value(22.0) == "22"
    assert output.go_value(1e6) == "1e+06"


def test_control_characters_are_escaped() -> None:
    assert output.escape_controls("a\x1b]0;T\x07\n\t\x7f\x9b") == "a\\x1b]0;T\\a\\n\\t\\x7f\\u009b"
    assert output.escape_controls("a\nb\x1b", keep="\n") == "a\nb\\x1b"
    assert output.go_value({"k\x1b": ["v\n"]}) == "map[k\\x1b:[v\\n]]"
    err = ApiError(400, kind="Bad", message="m\x1b[2J\nforged")
    assert output.api_error_line(err) == "Error: m\\x1b[2J\\nforged (Bad, 400)"
    source = {"id": "credup_1", "name": "db\x1b]0;T\x07", "description": "two\nlines"}
    lines = connect_output.credentials_lines(0, [{"credential_source": source, "secret": {}}])
    text = "\n".join(lines)
    assert "Credential Source Name:        db\\x1b]0;T\\a" in text
    assert "two\\nlines" in text and "\x1b" not in text


# -- exit codes --------------------------------------------------------------------------------


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    for name in ("BOUNDARY_TOKEN", "BCONNECT_TOKEN", "BOUNDARY_ADDR", "BCONNECT_ADDR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("BOUNDARY_CLI_FORMAT", raising=False)
    monkeypatch.delenv("BCONNECT_CLI_FORMAT", raising=False)
    monkeypatch.setenv("BCONNECT_KEYRING_TYPE", "file")
    monkeypatch.setenv("BCONNECT_TOKEN_FILE", str(tmp_path / "token"))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def test_exit_code_api_error(fake: FakeController, run) -> None:  # type: ignore[no-untyped-def]
    fake.route(
        "GET",
        "/v1/sessions/s_nope",
        (404, {"kind": "NotFound", "op": "GetSession", "message": "Resource not found."}),
    )
    result = run("sessions", "read", "-id", "s_nope", "-addr", fake.addr)
    assert result.exit_code == 1
    assert "Error from controller when performing read on session" in result.stderr
    assert "Resource not found." in result.stderr
    assert result.stdout == ""

    result = run("sessions", "read", "-id=s_nope", f"-addr={fake.addr}", "-format=json")
    assert result.exit_code == 1
    assert json.loads(result.stderr)["api_error"]["kind"] == "NotFound"


def test_exit_code_user_and_usage_errors(run) -> None:  # type: ignore[no-untyped-def]
    result = run("sessions", "read")
    assert result.exit_code == 2
    assert "ID is required but not passed in via -id" in result.stderr
    result = run("sessions", "read", "-no-such-flag")
    assert result.exit_code == 2
    assert "-no-such-flag" in result.stderr
    result = run("sessions", "read", "-id", "s_1", "-token", "literal-token")
    assert result.exit_code == 3
    assert "env:// or file://" in result.stderr


def test_exit_code_unreachable(run) -> None:  # type: ignore[no-untyped-def]
    addr = unused_addr()
    result = run("sessions", "list", "-addr", addr)
    assert result.exit_code == 1
    assert f"unable to reach the controller at {addr}" in result.stderr
    assert "Traceback" not in result.output


def test_empty_list(fake: FakeController, run) -> None:  # type: ignore[no-untyped-def]
    fake.route("GET", "/v1/sessions", (200, {"items": [], "response_type": "complete"}))
    result = run("sessions", "list", "-scope-id", "p_1234567890", "--addr", fake.addr)
    assert result.exit_code == 0
    assert result.stdout == "No sessions found\n"
    assert fake.requests[-1].query == {"scope_id": "p_1234567890"}
    result = run(
        "sessions", "list", "-include-terminated", "-recursive", "-addr", fake.addr, "-format=json"
    )
    assert json.loads(result.stdout) == {"status_code": 200, "items": []}
    assert fake.requests[-1].query == {
        "scope_id": "global",
        "recursive": "true",
        "include_terminated": "true",
    }
