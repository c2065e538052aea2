"""``bconnect connect``: flag parsing, token input forms and output blocks (no sockets)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from bconnect.cli import connect_output, output
from bconnect.cli.connect import parse_duration, parse_listen_port
from bconnect.cli.main import cli
from bconnect.cli.options import FlagError
from bconnect.core.certs import mint_session_certificate
from bconnect.core.runner import ListenInfo
from bconnect.core.session import LookupProblem, SessionError, TargetRef, authz_token_from_text
from bconnect.core.token import AuthzData, ScopeInfo, encode_authz_token

EXPIRATION = datetime(2030, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)
INFO = ListenInfo(
    host="127.0.0.1",
    port=40123,
    address="127.0.0.1:40123",
    session_id="s_1234567890",
    protocol="tcp",
    expiration=EXPIRATION,
    connection_limit=-1,
)


def token(expiration: datetime, worker: str = "127.0.0.1:9") -> str:
    cert, key = mint_session_certificate(
        "s_1234567890", ["127.0.0.1"], expiration, not_before=expiration - timedelta(hours=9)
    )
    return encode_authz_token(
        AuthzData(
            session_id="s_1234567890",
            target_id="ttcp_1234567890",
            scope=ScopeInfo(id="p_1234567890", type="project"),
            created_time=expiration - timedelta(hours=8),
            type="tcp",
            connection_limit=-1,
            endpoint_port=22,
            expiration=expiration,
            certificate=cert,
            private_key=key,
            host_id="",
            endpoint="tcp://127.0.0.1:22",
            worker_addresses=(worker,),
        )
    )


# -- token input forms ---------------------------------------------------------------------


def test_token_input_forms() -> None:
    item = {"session_id": "s_1", "authorization_token": "3mJr7AoUXx2Wqd"}
    assert authz_token_from_text("  3mJr7AoUXx2Wqd\n") == "3mJr7AoUXx2Wqd"
    assert authz_token_from_text(json.dumps(item)) == "3mJr7AoUXx2Wqd"
    assert authz_token_from_text(json.dumps({"item": item})) == "3mJr7AoUXx2Wqd"
    envelope = json.dumps({"status_code": 200, "item": item}, indent=2) + "\n"
    assert authz_token_from_text(envelope) == "3mJr7AoUXx2Wqd"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Authorization data was empty"),
        ("  \n", "Authorization data was empty"),
        ("{not json", "Error decoding session authorization data: invalid JSON"),
        ('{"item": {}}', "the JSON has no authorization_token"),
        ('{"status_code": 200}', "the JSON has no authorization_token"),
    ],
)
def test_token_input_errors(text: str, message: str) -> None:
    with pytest.raises(SessionError, match=message):
        authz_token_from_text(text)


# -- flags -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tok", "ttcp_1", None, None, None), "-target-id and -authz-token cannot both"),
        (("tok", None, "web", None, None), "-target-name and -authz-token cannot both"),
        ((None, None, None, None, None), "Target ID was not passed in"),
        ((None, None, "web", None, None), "Target ID was not passed in"),
        ((None, "ttcp_1", "web", None, None), "Cannot specify a target ID and also other"),
        ((None, "ttcp_1", None, "p_1", None), "Cannot specify a target ID and also other"),
        ((None, None, "web", "p_1", "proj"), "Both scope ID and scope name"),
    ],
)
def test_lookup_errors(args: tuple, message: str) -> None:
    with pytest.raises(LookupProblem, match=message):
        check_lookup(*args)


def test_lookup_accepted() -> None:
    check_lookup("tok", None, None, None, None)
    check_lookup(None, "ttcp_1", None, None, None)
    check_lookup(None, None, "web", "p_1", None)
    check_lookup(None, None, "web", None, "proj")


def check_lookup(
    authz: str | None,
    target_id: str | None,
    name: str | None,
    scope_id: str | None,
    scope: str | None,
) -> None:
    TargetRef(target_id=target_id, name=name, scope_id=scope_id, scope_name=scope).check(authz)


def test_listen_port_flag() -> None:
    assert parse_listen_port(None) is None
    assert parse_listen_port("") is None
    assert parse_listen_port("0") == 0
    assert parse_listen_port("65535") == 65535
    for bad in ("-1", "65536"):
        with pytest.raises(FlagError, match="Invalid listen port supplied"):
            parse_listen_port(bad)
    with pytest.raises(FlagError, match="parse error"):
        parse_listen_port("http")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", None),
        ("0s", None),
        ("30", 30.0),
        ("1.5", 1.5),
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        ("-1", -1.0),
        ("-1s", -1.0),
    ],
)
def test_duration_flag(value: str | None, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "10x", "1h-", "nan", "s"])
def test_duration_flag_errors(value: str) -> None:
    with pytest.raises(FlagError, match="-inactive-timeout"):
        parse_duration(value)


# -- output ----------------------------------------------------------------------------------


def test_json_time_like_go() -> None:
    assert connect_output.go_json_time(EXPIRATION) == "2030-05-01T12:30:15.25Z"
    assert connect_output.go_json_time(EXPIRATION.replace(microsecond=0)) == "2030-05-01T12:30:15Z"


def test_session_info_json() -> None:
    text = connect_output.session_info(INFO, json_format=True)
    assert text == (
        '{"address":"127.0.0.1","port":40123,"protocol":"tcp",'
        '"expiration":"2030-05-01T12:30:15.25Z","connection_limit":-1,'
        '"session_id":"s_1234567890"}'
    )
    creds = [{"credential_source": {"id": "credup_1"}, "credential": {"username": "u"}}]
    data = json.loads(connect_output.session_info(INFO, creds, json_format=True))
    assert data["credentials"] == creds


def test_session_info_table() -> None:
    text = connect_output.session_info(INFO, width=80)
    expiration = output.format_time("2030-05-01T12:30:15.25Z")  # RFC 1123, local time
    assert text == (
        "\nProxy listening information:\n"
        "  Address:             127.0.0.1\n"
        "  Connection Limit:    -1\n"
        f"  Expiration:          {expiration}\n"
        "  Port:                40123\n"
        "  Protocol:            tcp\n"
        "  Session ID:          s_1234567890"
    )


def test_session_info_table_with_credentials() -> None:
    creds = [
        {
            "credential_source": {
                "id": "credup_1234567890",
                "credential_store_id": "csst_1234567890",
                "type": "static",
                "credential_type": "username_password",
            },
            "secret": {"raw": "e30="},
            "credential": {"username": "alice", "password": "pa55"},
        }
    ]
    lines = connect_output.session_info(INFO, creds, width=80).splitlines()
    start = lines.index("  Credentials:")
    assert lines[start:] == [
        "  Credentials:",
        "    Credential Source ID:  credup_1234567890",
        "    Credential Store ID:   csst_1234567890",
        "    Credential Store Type: static",
        "    Credential Type:       username_password",
        "    Secret:",
        "          password:   pa55",
        "          username:   alice",
    ]


def test_connection_and_termination_blocks() -> None:
    assert connect_output.connection_info(4) == "\nConnection information:\n  Connections Left:   4"
    assert connect_output.connection_info(0, json_format=True) == '{"connections_left":0}'
    assert connect_output.termination_info("Session has expired") == (
        "\nTermination information:\n  Reason:   Session has expired"
    )
    assert connect_output.termination_info("No connections left in session", json_format=True) == (
        '{"termination_reason":"No connections left in session"}'
    )


# -- the command, up to the point it would open anything ------------------------------------


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path) -> CliRunner:  # noqa: ANN001
    for var in ("BOUNDARY_TOKEN", "BCONNECT_TOKEN", "BOUNDARY_CLI_FORMAT", "BCONNECT_CLI_FORMAT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BCONNECT_KEYRING_TYPE", "none")
    monkeypatch.setenv("BCONNECT_TOKEN_FILE", str(tmp_path / "token"))
    return CliRunner()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-authz-token", "x", "-target-id", "ttcp_1"], 2, "-target-id and -authz-token"),
        ([], 2, "Target ID was not passed in"),
        (["-authz-token", "x", "-listen-port", "70000"], 2, "Invalid listen port supplied"),
        (["-authz-token", "x", "-listen-addr", "localhost"], 2, "Error parsing listen address"),
        (["-authz-token", "x", "-inactive-timeout", "soon"], 2, "invalid duration"),
        (["-authz-token", "0OIl"], 1, "Error decoding session authorization data: malformed"),
        (["-authz-token", "3mJr7AoUXx2Wqd"], 1, "Error decoding session authorization data"),
        (["-authz-token", "-"], 1, "No authorization data read from stdin"),
    ],
)
def test_bad_invocations(runner: CliRunner, args: list[str], code: int, message: str) -> None:
    result = runner.invoke(cli, ["connect", *args], input="")
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_expired_token_from_stdin(runner: CliRunner) -> None:
    expired = token(datetime.now(UTC) - timedelta(minutes=1))
    stdin = json.dumps({"item": {"authorization_token": expired}})
    result = runner.invoke(cli, ["connect", "-authz-token", "-"], input=stdin)
    assert result.exit_code == 1
    assert "Session s_1234567890 has expired" in result.stderr
    assert result.stdout == ""


def test_json_errors_in_json_format(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["connect", "-authz-token", "0OIl", "-format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.stderr)["error"].startswith(
        "Error decoding session authorization data"
    )


def test_help_shows_examples(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["connect", "-h"])
    assert result.exit_code == 0
    assert "bconnect connect -target-id ttcp_1234567890" in result.output
    for flag in (
        "-authz-token",
        "-target-id",
        "-target-name",
        "-target-scope-id",
        "-target-scope-name",
        "-host-id",
        "-listen-addr",
        "-listen-port",
        "-exec",
        "-inactive-timeout",
        "-format",
    ):
        assert flag in result.output
