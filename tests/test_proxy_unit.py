"""Pure parts of the client proxy and the connect runner: no sockets."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from bconnect.core.credentials import parse_credentials
from bconnect.core.proxy import (
    REASON_EXPIRED,
    REASON_NO_CONNECTIONS,
    REASON_SHUTDOWN,
    ProxyError,
    ProxyResult,
    SessionInUse,
    effective_listen_port,
    format_listen_address,
    should_send_teardown,
)
from bconnect.core.runner import (
    child_env,
    exit_code,
    needs_api_cancel,
    proxied_env,
    render_args,
    returncode_to_exit,
    termination_reason,
)
from bconnect.core.workerconn import (
    ConnectionRefused,
    handshake_close_error,
    worker_server_name,
)


def result(**kw: object) -> ProxyResult:
    values: dict[str, object] = {
        "reason": "",
        "error": None,
        "teardown_sent": None,
        "connections_left": -1,
        "handshakes": 0,
    }
    values.update(kw)
    return ProxyResult(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("requested", "default", "expected"),
    [(None, 0, 0), (0, 0, 0), (None, 5432, 5432), (0, 5432, 5432), (2222, 5432, 2222)],
)
def test_listen_port_rule(requested: int | None, default: int, expected: int) -> None:
    assert effective_listen_port(requested, default) == expected


def test_teardown_only_more_than_five_minutes_before_expiry() -> None:
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert should_send_teardown(now, now + timedelta(minutes=5, seconds=1))
    assert not should_send_teardown(now, now + timedelta(minutes=5))
    assert not should_send_teardown(now, now - timedelta(seconds=1))


def test_listen_address_format() -> None:
    assert format_listen_address("127.0.0.1", 80) == "127.0.0.1:80"
    assert format_listen_address("::1", 80) == "[::1]:80"


@pytest.mark.parametrize(
    ("code", "reason", "kind", "message"),
    [
        (1008, "tofu token not allowed", SessionInUse, "session is already in use"),
        (1008, "", SessionInUse, "session is already in use"),
        (1011, "unable to authorize connection", ConnectionRefused, ""),
        (1011, "", ConnectionRefused, ""),
        (1008, "invalid handshake received", ProxyError, "invalid handshake received"),
        (1003, "invalid tofu token", ProxyError, "1003 invalid tofu token"),
        (3000, "", ProxyError, "3000"),
        (None, "", ProxyError, "websocket closed"),
    ],
)
def test_handshake_close_mapping(code, reason, kind, message) -> None:  # noqa: ANN001
    error = handshake_close_error(code, reason)
    assert type(error) is kind
    assert message in str(error)
    assert "\n" not in str(error)


def test_sni_only_for_host_names() -> None:
    assert worker_server_name("worker.example.com:9202") == "worker.example.com"
    assert worker_server_name("127.0.0.1:9202") is None
    assert worker_server_name("[::1]:9202") is None
    assert worker_server_name("worker") == "worker"


def test_templating_all_styles() -> None:
    args = [
        "-p",
        "{{boundary.port}}",
        "{{ boundary.ip}}@{{boundary.ip }}",
        "tcp://{{ boundary.addr }}/x",
        "{{boundary.other}}",
    ]
    assert render_args(args, "127.0.0.1", 4567, "127.0.0.1:4567") == [
        "-p",
        "4567",
        "127.0.0.1@127.0.0.1",
        "tcp://127.0.0.1:4567/x",
        "{{boundary.other}}",
    ]


def test_child_environment() -> None:
    assert proxied_env("::1", 99, "[::1]:99") == {
        "BOUNDARY_PROXIED_PORT": "99",
        "BOUNDARY_PROXIED_IP": "::1",
        "BOUNDARY_PROXIED_ADDR": "[::1]:99",
    }
    env = child_env({"PATH": "/bin", "BOUNDARY_PROXIED_PORT": "1"}, "h", 2, "h:2", {"X": "y"})
    assert env == {
        "PATH": "/bin",
        "BOUNDARY_PROXIED_PORT": "2",
        "BOUNDARY_PROXIED_IP": "h",
        "BOUNDARY_PROXIED_ADDR": "h:2",
        "X": "y",
    }


def test_reason_selection() -> None:
    expired = result(reason=REASON_EXPIRED)
    failed = result(error=ProxyError("unable to connect to worker at 127.0.0.1:9202"))
    assert termination_reason(shutdown=True, exec_used=True, result=expired) == REASON_SHUTDOWN
    assert termination_reason(shutdown=True, exec_used=False, result=expired) == REASON_SHUTDOWN
    assert termination_reason(shutdown=False, exec_used=True, result=expired) == ""
    assert termination_reason(shutdown=False, exec_used=False, result=expired) == REASON_EXPIRED
    assert (
        termination_reason(shutdown=False, exec_used=False, result=failed)
        == "Error from proxy client: unable to connect to worker at 127.0.0.1:9202"
    )
    assert termination_reason(shutdown=False, exec_used=False, result=result()) == "Unknown"
    assert termination_reason(shutdown=False, exec_used=False, result=None) == "Unknown"


def test_exit_codes() -> None:
    failed = result(error=ProxyError("x"))
    assert exit_code(exec_used=False, child_exit=None, result=result()) == 0
    assert exit_code(exec_used=False, child_exit=None, result=failed) == 1
    assert exit_code(exec_used=True, child_exit=7, result=failed) == 7
    assert exit_code(exec_used=True, child_exit=None, result=result()) == 2
    assert returncode_to_exit(3) == 3
    assert returncode_to_exit(-15) == 143


def test_api_cancel_fallback_rule() -> None:
    assert not needs_api_cancel(result(teardown_sent=True))
    assert needs_api_cancel(result(teardown_sent=False))
    assert needs_api_cancel(result(teardown_sent=None, reason=REASON_NO_CONNECTIONS))
    assert needs_api_cancel(result(error=ProxyError("unable to connect to worker at x")))
    assert not needs_api_cancel(result(error=SessionInUse()))
    assert needs_api_cancel(None)


def test_credentials_parsed_from_typed_and_raw_forms() -> None:
    raw = base64.b64encode(json.dumps({"username": "u2", "password": "p2"}).encode()).decode()
    creds = parse_credentials(
        [
            {
                "credential_source": {
                    "id": "credup_1",
                    "credential_store_id": "csst_1",
                    "type": "static",
                    "credential_type": "username_password",
                },
                "secret": {"raw": "eA=="},
                "credential": {"username": "u1", "password": "p1"},
            },
            {"credential_source": {"id": "credjson_1"}, "secret": {"raw": raw}},
            "junk",
        ]
    )
    assert [c.source_id for c in creds] == ["credup_1", "credjson_1"]
    assert (creds[0].username, creds[0].password) == ("u1", "p1")
    assert creds[0].credential_type == "username_password"
    assert creds[1].get("password") == "p2"
    assert "p1" not in repr(creds[0])
