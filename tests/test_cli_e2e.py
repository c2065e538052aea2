"""The seeds' scenario as a user types it: the real `bconnect` executable against a real
controller, with the token stored in a 0600 file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from support.cli import run_bconnect

from bconnect.core.token import decode_authz_token

pytestmark = pytest.mark.all_databases


@pytest.fixture
def run(controller, tmp_path: Path):  # noqa: ANN201
    """Run `bconnect …` as a child process with a private token file."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BOUNDARY_", "BCONNECT_"))}
    base.update(
        BOUNDARY_ADDR=controller.addr,
        BCONNECT_TOKEN_FILE=str(tmp_path / "token.json"),
        BCONNECT_KEYRING_TYPE="file",
        BC_TEST_PASSWORD="password",
    )

    def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return run_bconnect(*args, env={**base, **(env or {})})

    _run.token_file = tmp_path / "token.json"  # type: ignore[attr-defined]
    return _run


def login(run, who: str = "admin") -> None:  # noqa: ANN001
    result = run(
        "authenticate",
        "password",
        "-auth-method-id",
        "ampw_1234567890",
        "-login-name",
        who,
        "-password",
        "env://BC_TEST_PASSWORD",
    )
    assert result.returncode == 0, result.stderr
    assert "Authentication information:" in result.stdout
    assert "at_" not in result.stdout  # the token is stored, not shown


def test_seed_scenario(run) -> None:  # noqa: ANN001
    login(run)
    mode = stat.S_IMODE(run.token_file.stat().st_mode)
    assert mode == 0o600

    scopes = run("scopes", "list", "-recursive")
    assert scopes.returncode == 0, scopes.stderr
    assert "Scope information:" in scopes.stdout
    assert "p_1234567890" in scopes.stdout and "o_1234567890" in scopes.stdout

    auth = run("targets", "authorize-session", "-id", "ttcp_1234567890", "-format", "json")
    assert auth.returncode == 0, auth.stderr
    body = json.loads(auth.stdout)
    assert body["status_code"] == 200
    item = body["item"]
    data = decode_authz_token(item["authorization_token"])
    assert data.session_id == item["session_id"]
    assert data.endpoint == "tcp://127.0.0.1:22"
    sid = item["session_id"]

    listed = run("sessions", "list", "-scope-id", "p_1234567890")
    assert listed.returncode == 0 and "Session information:" in listed.stdout
    assert sid in listed.stdout

    read = (
        run("--format=json", "sessions", "read", "-id", sid)
        if False
        else run("sessions", "read", "-id", sid)
    )
    assert read.returncode == 0, read.stderr
    assert "Session information:" in read.stdout and "pending" in read.stdout

    cancel = run("sessions", "cancel", "-id", sid, "-format", "json")
    assert cancel.returncode == 0, cancel.stderr
    assert json.loads(cancel.stdout)["item"]["status"] == "canceling"

    deadline = time.monotonic() + 15
    while True:
        state = json.loads(run("sessions", "read", "-id=" + sid, "-format=json").stdout)["item"]
        if state["status"] == "terminated" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert state["status"] == "terminated"
    assert state["termination_reason"] == "canceled"

    gone = run("sessions", "list", "-scope-id", "p_1234567890", "-filter", f'"/item/id" == "{sid}"')
    assert gone.returncode == 0 and "No sessions found" in gone.stdout
    shown = run(
        "sessions",
        "list",
        "-scope-id",
        "p_1234567890",
        "-include-terminated",
        "-filter",
        f'"/item/id" == "{sid}"',
    )
    assert sid in shown.stdout


def test_user_cannot_read_or_cancel_admins_session(controller, run) -> None:  # noqa: ANN001
    sid = controller.request(
        "POST", "/v1/targets/ttcp_1234567890:authorize-session", json={}
    ).json()["session_id"]
    login(run, "user")
    read = run("sessions", "read", "-id", sid)
    assert read.returncode == 1
    assert "PermissionDenied" in read.stderr and len(read.stderr.strip().splitlines()) == 1
    cancel = run("sessions", "cancel", "-id", sid)
    assert cancel.returncode == 1
    listed = run("sessions", "list", "-scope-id", "p_1234567890")
    assert sid not in listed.stdout


def test_logout_forgets_the_token(run) -> None:  # noqa: ANN001
    login(run)
    assert run("logout").returncode == 0
    after = run("targets", "list", "-scope-id", "p_1234567890")
    # anonymous users may not list targets
    assert after.returncode == 1


@pytest.mark.parametrize(
    ("args", "env", "expect"),
    [
        (
            ("authenticate", "password", "-auth-method-id", "ampw_1234567890"),
            {"BC_WRONG": "wrong-password"},
            "Unauthenticated",
        ),
        (("sessions", "read", "-id", "s_0000000000"), {}, "NotFound"),
        (("sessions", "list"), {"BOUNDARY_TOKEN": "garbage"}, "is not valid at"),
        (("scopes", "list"), {"BOUNDARY_ADDR": "http://127.0.0.1:9"}, "unable to reach"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(run, args, env, expect) -> None:  # noqa: ANN001
    if args[0] == "authenticate":
        args = (*args, "-login-name", "admin", "-password", "env://BC_WRONG")
    else:
        login(run)
    result = run(*args, env=env)
    assert result.returncode == 1, result
    err = result.stderr.strip()
    assert expect in err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in result.stderr
    if expect == "unable to reach":
        assert err == "unable to reach the controller at http://127.0.0.1:9"


def test_usage_errors_exit_2(run) -> None:  # noqa: ANN001
    result = run("sessions", "read")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
