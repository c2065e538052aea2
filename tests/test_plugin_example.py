"""The third-party plugin example (examples/bconnect-nc) installed and run end to end.

A session fixture installs the package with pip (``--target`` a temporary directory, so
the test environment is left untouched and nothing needs uninstalling); the tests run
``python -m bconnect`` with that directory on PYTHONPATH, so the plugin is found only
through its ``bconnect`` entry point, against a real controller, worker and echo target.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import after_session_line, run_bconnect
from support.dataplane import add_credential, make_target, session
from support.plugin_dists import bconnect_env, install_example
from support.wait import wait_for

PASSWORD = "nc-s3cret-pw"


@pytest.fixture(scope="session")
def nc_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """examples/bconnect-nc, installed into a private --target directory."""
    target = tmp_path_factory.mktemp("nc-install") / "site"
    install_example(target)
    assert (target / "bconnect_nc" / "plugin.py").is_file()
    yield target


@pytest.fixture
def env(nc_site: Path, tmp_path: Path) -> dict[str, str]:
    return bconnect_env(
        tmp_path / "cache",
        nc_site,
        BCONNECT_NC_EVENT_LOG=str(tmp_path / "events.jsonl"),
        TMPDIR=str(tmp_path),
    )


def bconnect(env: dict[str, str], *args: str, ctl=None) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    if ctl is not None:
        env = {**env, "BOUNDARY_ADDR": ctl.addr, "BOUNDARY_TOKEN": ctl.token("admin")}
    return run_bconnect(*args, env=env)


def events(env: dict[str, str]) -> list[dict]:
    path = Path(env["BCONNECT_NC_EVENT_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_entry_point_discovery_and_plugins_list(env: dict[str, str]) -> None:
    listed = bconnect(env, "plugins", "list", "-format", "json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""
    nc = next(item for item in json.loads(listed.stdout)["items"] if item["name"] == "nc")
    assert nc == {
        "name": "nc",
        "package": "bconnect-nc",
        "version": "0.1.0",
        "builtin": False,
        "hooks": ["bconnect_connect_helpers", "bconnect_connect_launch", "bconnect_session_event"],
        "helpers": ["nc"],
    }
    table = bconnect(env, "plugins", "list").stdout
    assert "Package:  bconnect-nc 0.1.0" in table

    top = bconnect(env, "--help").stdout
    assert re.search(r"\n  nc +Talk to a TCP target with a tiny netcat\n", top)
    helper_help = bconnect(env, "nc", "--help").stdout
    assert "-send, --send TEXT" in helper_help
    assert "-client, --client [python|nc]" in helper_help
    assert "bconnect nc -target-id ttcp_1234567890 -send 'PING'" in helper_help

    hidden = bconnect({**env, "BCONNECT_LOAD_PLUGINS": ""}, "nc", "--help")
    assert hidden.returncode == 2 and "No such command 'nc'" in hidden.stderr


def test_nc_sends_and_prints_the_echo(env: dict[str, str], dataplane, echo_server) -> None:
    target = make_target(dataplane, echo_server.port)
    result = bconnect(env, "nc", "-target-id", target, "-send", "hello", ctl=dataplane)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"
    assert after_session_line(result.stderr) == ""
    kinds = [e["event"] for e in events(env)]
    assert kinds[0] == "started" and kinds[-1] == "ended"
    assert events(env)[-1]["data"] == {"reason": "Program exited", "exit_code": 0}
    sid = events(env)[0]["session_id"]
    assert wait_for(lambda: session(dataplane, sid)["status"] in ("canceling", "terminated"))

    again = bconnect(env, "connect", "nc", "-target-id", target, "-send", "again", ctl=dataplane)
    assert (again.returncode, again.stdout) == (0, "again\n"), again.stderr


def test_nc_auth_uses_the_brokered_credential(env: dict[str, str], dataplane, echo_server) -> None:
    target = make_target(dataplane, echo_server.port)
    cred_id = add_credential(
        dataplane, target, "username_password", {"username": "nc-user", "password": PASSWORD}
    )

    # -auth: the credential is consumed (sent from a 0600 file), so it is not printed
    used = bconnect(env, "nc", "-target-id", target, "-auth", "-send", "hi", ctl=dataplane)
    assert (used.returncode, used.stdout) == (0, "hi\n"), used.stderr
    assert PASSWORD not in used.stdout + used.stderr
    assert [p for p in Path(env["TMPDIR"]).iterdir() if p.name.startswith("bconnect-")] == []

    # without -auth it is not consumed: Boundary's "Credentials:" block shows it
    shown = bconnect(env, "nc", "-target-id", target, "-send", "hi", ctl=dataplane)
    assert shown.returncode == 0, shown.stderr
    assert "Credentials:" in shown.stdout and cred_id in shown.stdout
    assert shown.stdout.endswith("hi\n")


def test_nc_helper_error(env: dict[str, str], dataplane, echo_server) -> None:
    target = make_target(dataplane, echo_server.port)
    result = bconnect(env, "nc", "-target-id", target, "-client", "nc", "-send", "x", ctl=dataplane)
    assert result.returncode == 2
    message = "Failed to collect args: -send and -auth work only with -client python"
    assert after_session_line(result.stderr) == message + "\n"
    sid = events(env)[0]["session_id"]
    assert wait_for(lambda: session(dataplane, sid)["status"] in ("canceling", "terminated"))
