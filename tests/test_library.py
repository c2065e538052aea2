"""The public library API (docs/library.md): every example of that page run as its own
program against a real controller and worker, with the real ``psql``, ``ssh`` and
``curl``; then what the examples do not show (errors, the token store, no leftovers)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.constants import GUARD
from support.dataplane import add_credential, make_target
from support.plugin_dists import bconnect_env
from support.servers import PG_PASSWORD, require, ssh_key_target

from bconnect import ApiError, Client, LaunchError, SessionError

ROOT = Path(__file__).resolve().parents[1]
LIBRARY_MD = ROOT / "docs" / "library.md"
#: the target id the examples name; each run gets the id of a target it needs instead
EXAMPLE_TARGET = "ttcp_1234567890"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", LIBRARY_MD.read_text(), re.S)


def example(marker: str) -> str:
    """The one example of docs/library.md that contains ``marker``."""
    found = [code for code in examples() if marker in code]
    assert len(found) == 1, f"{len(found)} examples of docs/library.md contain {marker!r}"
    return found[0]


def run_example(ctl: Any, tmp_path: Path, code: str, target: str | None = None) -> str:
    """Run an example as ``python -c`` with BOUNDARY_ADDR/BOUNDARY_TOKEN set (admin) and
    its target id replaced by ``target``; returns what it printed (it must exit 0)."""
    if target is not None:
        code = code.replace(EXAMPLE_TARGET, target)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = bconnect_env(
        tmp_path / "cache",
        BOUNDARY_ADDR=ctl.addr,
        BOUNDARY_TOKEN=ctl.token("admin"),
        HOME=str(home),
        TMPDIR=str(tmp_path),
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=GUARD * 2,
    )
    assert done.returncode == 0, done.stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("bconnect-")]
    return done.stdout


def session_states(ctl: Any, target: str) -> list[str]:
    resp = ctl.request(
        "GET",
        "/v1/sessions",
        params={"scope_id": "p_1234567890", "include_terminated": "true"},
    )
    return [s["status"] for s in resp.json().get("items", []) if s["target_id"] == target]


def test_every_example_is_tested() -> None:
    markers = [
        'client.list("targets"',
        "authenticate_password",
        "socket.create_connection",
        '"curl", "-s", "http://{{boundary.addr}}/hello"',
        'alias="web.example"',
        '"postgres",',
        '"ssh",',
        "aconnect",
        "SessionEvents(",
        "except ApiError",
    ]
    assert len(examples()) == len(markers)
    for marker in markers:
        example(marker)


# ---------------------------------------------------------------------- the examples
def test_example_list_targets(dataplane, tmp_path: Path) -> None:
    out = run_example(dataplane, tmp_path, example('client.list("targets"'))
    assert "ttcp_1234567890 Generated target with a direct address" in out.splitlines()


def test_example_password_login(dataplane, tmp_path: Path) -> None:
    assert run_example(dataplane, tmp_path, example("authenticate_password")) == "tcp\n"


def test_example_tunnel(dataplane, echo_server, tmp_path: Path) -> None:
    target = make_target(dataplane, echo_server.port)
    out = run_example(dataplane, tmp_path, example("socket.create_connection"), target)
    first, echoed, ended = out.splitlines()
    assert re.fullmatch(r"session s_\w+ on 127\.0\.0\.1:\d+", first), first
    assert echoed == "b'hello'"
    assert ended == "ended: Received shutdown signal"
    assert session_states(dataplane, target) in (["canceling"], ["terminated"])


def test_example_run_curl(dataplane, http_server, tmp_path: Path) -> None:
    require("curl")
    port, seen = http_server
    target = make_target(dataplane, port)
    code = example('"curl", "-s", "http://{{boundary.addr}}/hello"')
    assert run_example(dataplane, tmp_path, code, target) == "0 hello over http\n\n"
    assert seen[0][:2] == ("GET", "/hello")


def test_example_alias_with_exec(dataplane, http_server, tmp_path: Path) -> None:
    require("curl")
    port, seen = http_server
    target = make_target(dataplane, port)
    made = dataplane.request(
        "POST",
        "/v1/aliases",
        json={
            "scope_id": "global",
            "type": "target",
            "value": "web.example",
            "destination_id": target,
        },
    )
    assert made.status_code == 200, made.text
    try:
        out = run_example(dataplane, tmp_path, example('alias="web.example"'))
    finally:
        dataplane.request("DELETE", f"/v1/aliases/{made.json()['id']}")
    # curl's 404 page for "/" is printed by curl itself (inherited stdout), then the result
    assert out.endswith("0 \n"), out
    assert seen[0][:2] == ("GET", "/")


def test_example_psql(dataplane, postgres_server, tmp_path: Path) -> None:
    target = make_target(dataplane, postgres_server.port)
    add_credential(
        dataplane, target, "username_password", {"username": "bob", "password": PG_PASSWORD}
    )
    assert run_example(dataplane, tmp_path, example('"postgres",'), target) == "0 bob\n"


def test_example_ssh(dataplane, ssh_server, tmp_path: Path) -> None:
    require("ssh")
    target, _ = ssh_key_target(dataplane, ssh_server)
    assert run_example(dataplane, tmp_path, example('"ssh",'), target) == "0 hello\n"
    assert ssh_server.logins == [("keyuser", "publickey")]
    assert ssh_server.commands == ["echo hello"]


def test_example_asyncio(dataplane, echo_server, tmp_path: Path) -> None:
    target = make_target(dataplane, echo_server.port)
    out = run_example(dataplane, tmp_path, example("aconnect"), target)
    assert out == "b'ping'\nended: Received shutdown signal\n"


def test_example_events(dataplane, echo_server, tmp_path: Path) -> None:
    target = make_target(dataplane, echo_server.port)
    out = run_example(dataplane, tmp_path, example("SessionEvents("), target)
    assert re.fullmatch(r"\[\('listening', \d+\), \('ended', 0\)\]\n", out), out


def test_example_errors(dataplane, tmp_path: Path) -> None:
    assert run_example(dataplane, tmp_path, example("except ApiError")) == "404 NotFound\n"


# ---------------------------------------------------------------------- beyond the examples
def test_client_authorize_and_cancel(controller) -> None:
    """The API calls as docs/quickstart.md shows them."""
    with Client(controller.addr) as client:
        client.token = client.authenticate_password("ampw_1234567890", "admin", "password")["token"]
        auth = client.authorize_session("ttcp_1234567890")
        assert auth["endpoint"] == "tcp://127.0.0.1:22"
        assert client.cancel_session(auth["session_id"])["status"] == "canceling"
        with pytest.raises(ApiError) as info:
            client.read("sessions", "s_0000000000")
        assert info.value.status == 404 and info.value.kind == "NotFound"


def test_from_env_uses_the_saved_token(dataplane, tmp_path: Path, monkeypatch) -> None:
    token_file = tmp_path / "tokens.json"
    for name in ("BOUNDARY_TOKEN", "BCONNECT_TOKEN", "BCONNECT_ADDR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOUNDARY_ADDR", dataplane.addr)
    monkeypatch.setenv("BCONNECT_KEYRING_TYPE", "file")
    monkeypatch.setenv("BCONNECT_TOKEN_FILE", str(token_file))
    assert Client.from_env().token is None
    from bconnect.core.tokenstore import FileTokenStore

    FileTokenStore(token_file).set(dataplane.addr, dataplane.token("admin"))
    with Client.from_env() as client:
        assert client.token == dataplane.token("admin")
        assert client.read("targets", "ttcp_1234567890")["type"] == "tcp"
    assert Client.from_env(token="at_given").token == "at_given"


def test_launch_errors_are_exceptions(dataplane, echo_server) -> None:
    target = make_target(dataplane, echo_server.port)
    with Client(dataplane.addr, dataplane.token("admin")) as client:
        with pytest.raises(LaunchError, match="no-such-helper"):
            client.launch("no-such-helper", target)
        with pytest.raises(SessionError):
            client.run(["true"], target_name="web")  # a name needs a scope
        with pytest.raises(TypeError, match="listen_adress"):
            client.run(["true"], target, listen_adress="127.0.0.1")  # type: ignore[call-arg]
        with pytest.raises(ApiError) as info:
            client.connect("ttcp_0000000000").__enter__()
        assert info.value.kind == "NotFound"
    # nothing was left pending by the refusals that happened after authorizing
    assert all(s in ("canceling", "terminated") for s in session_states(dataplane, target))


def test_a_program_that_fails_is_a_result_not_an_exception(dataplane, echo_server) -> None:
    target = make_target(dataplane, echo_server.port)
    with Client(dataplane.addr, dataplane.token("admin")) as client:
        done = client.run(
            [sys.executable, "-c", "import sys; sys.exit(7)"], target, capture_output=True
        )
    assert (done.exit_code, done.stdout, done.stderr) == (7, "", "")
    assert done.session_id.startswith("s_")
    assert session_states(dataplane, target) in (["canceling"], ["terminated"])
