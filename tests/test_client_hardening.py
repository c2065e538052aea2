"""The CLI against what it is given: hostile names, a hostile controller, secrets in argv.

Real ``python -m bconnect`` processes: against a real controller (names full of terminal
escapes), against a tiny hostile HTTP server in a thread (endless lists, a 100 MB
answer, control characters in an error), and through a real worker (``-authz-token``
from ``env://`` and ``file://``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from support.constants import GUARD, PROJECT
from support.dataplane import Connect, authorize, make_target
from support.echo import echo_through
from support.http_servers import QuietHandler, send_json, serve, stop, url

from bconnect.cli.output import dumps_compact

HOSTILE_NAME = "x\x1b]0;TITLE\x07\x1b[2J"
HOSTILE_DESCRIPTION = "line one\nline\ttwo\r\x7f\x9b31m\x08"  # (the controller refuses NUL)
#: any control character but the line feed, as text (C1 included)
RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


# Runs the command and writes its peak RSS (KiB) to argv[1]. On Linux a child's peak RSS
# starts at its parent's at fork time (exec keeps the old high-water mark), so the
# command must be forked from this small process, not from the test's large one.
_MEASURED = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(min(255, abs(os.waitstatus_to_exitcode(status))))
"""


def bconnect(tmp: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str, int]:
    """Run ``python -m bconnect ARGS`` hermetically (its output in files under *tmp*): exit
    code, stdout, stderr and the command's own peak RSS in KiB."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BOUNDARY_", "BCONNECT_"))}
    base.update(BCONNECT_KEYRING_TYPE="none", **(env or {}))
    stdout_path, stderr_path, rss_path = tmp / "stdout", tmp / "stderr", tmp / "peak-rss"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", _MEASURED, str(rss_path), sys.executable, "-m", "bconnect"]
            + list(args),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=base,
            start_new_session=True,
        )
        # 10,000 list pages: ~20 s when quiet
        timer = threading.Timer(3 * GUARD, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            code = proc.wait()
        finally:
            timer.cancel()
    return (
        code,
        stdout_path.read_bytes().decode(),
        stderr_path.read_bytes().decode(),
        int(rss_path.read_text()),
    )


# ---------------------------------------------------------------------- 1. terminal escapes
def test_control_characters_in_names_are_escaped(controller, tmp_path: Path) -> None:
    resp = controller.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": PROJECT,
            "type": "tcp",
            "name": HOSTILE_NAME,
            "description": HOSTILE_DESCRIPTION,
            "address": "127.0.0.1",
            "attributes": {"default_port": 22},
        },
    )
    assert resp.status_code == 200, resp.text
    target_id = resp.json()["id"]
    env = {"BOUNDARY_ADDR": controller.addr, "BOUNDARY_TOKEN": controller.token("admin")}

    for args in (["targets", "list", "-scope-id", PROJECT], ["targets", "read", "-id", target_id]):
        code, out, err, _ = bconnect(tmp_path, *args, env=env)
        assert code == 0, err
        assert RAW_CONTROL.search(out) is None, repr(out)
        assert "x\\x1b]0;TITLE\\a\\x1b[2J" in out
        assert "line one\\nline\\ttwo\\r\\x7f\\u009b31m\\b" in out

    # JSON is unchanged: the controller's item as Go's encoding/json writes it
    code, out, err, _ = bconnect(
        tmp_path, "targets", "read", "-id", target_id, "-format", "json", env=env
    )
    assert code == 0, err
    item = controller.request("GET", f"/v1/targets/{target_id}").json()
    assert out == dumps_compact({"status_code": 200, "item": item}) + "\n"
    assert json.loads(out)["item"]["name"] == HOSTILE_NAME
    assert "\\u001b]0;TITLE\\u0007" in out


# ---------------------------------------------------------------------- 2. hostile controller
class HostileController:
    """An HTTP/1.1 server on 127.0.0.1 answering every GET with ``answer(handler)``."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.requests = 0
        owner = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # 10,000 pages on one connection, no ACK delays

            def do_GET(self) -> None:  # noqa: N802
                owner.requests += 1
                try:
                    answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        self.server = serve(Handler)
        self.addr = url(self.server)

    def close(self) -> None:
        stop(self.server)


def list_token(handler: BaseHTTPRequestHandler) -> str:
    match = re.search(r"[?&]list_token=([^&]*)", handler.path)
    return match.group(1) if match else ""


def same_token(handler: BaseHTTPRequestHandler) -> None:
    send_json(handler, {"items": [], "response_type": "delta", "list_token": "again"})


def new_token(handler: BaseHTTPRequestHandler) -> None:
    number = int(list_token(handler) or "0") + 1
    item = {"id": f"o_{number % 50}", "name": "scope"}  # ids repeat: memory stays small
    send_json(handler, {"items": [item], "response_type": "delta", "list_token": str(number)})


def hundred_megabytes(handler: BaseHTTPRequestHandler, status: int = 200) -> None:
    """A 100 MB answer, sent as it is made, with no Content-Length (read to the end)."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    if status == 302:
        handler.send_header("Location", "/v1/scopes?again=1")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(b'{"items": [], "padding": "')
    chunk = b"x" * (1 << 20)
    for _ in range(100):
        handler.wfile.write(chunk)
    handler.wfile.write(b'"}')
    handler.close_connection = True


def redirect_of_hundred_megabytes(handler: BaseHTTPRequestHandler) -> None:
    """A redirect with a 100 MB body (which requests itself would read whole)."""
    hundred_megabytes(handler, status=302)


def declared_hundred_megabytes(handler: BaseHTTPRequestHandler) -> None:
    """A 100 MB Content-Length: refused before the body is read."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(100 << 20))
    handler.end_headers()
    handler.wfile.write(b"{")
    handler.close_connection = True


def escaped_error(handler: BaseHTTPRequestHandler) -> None:
    send_json(
        handler,
        {
            "kind": "InvalidArgument",
            "message": "bad\x1b[2J\nforged line",
            "details": {"request_fields": [{"name": "name", "description": "no\x07\r"}]},
        },
        status=400,
    )


@pytest.fixture
def hostile() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler], None]], str]]:
    servers: list[HostileController] = []

    def start(answer: Callable[[BaseHTTPRequestHandler], None]) -> str:
        servers.append(HostileController(answer))
        return servers[-1].addr

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            same_token,
            "the controller repeated a list token after 2 pages: refusing the list",
        ),
        (
            new_token,
            "the controller's list goes on past 10,000 pages or 1,000,000 items: refusing it",
        ),
        (hundred_megabytes, "the controller's answer is larger than 64 MiB: refusing it"),
        (declared_hundred_megabytes, "the controller's answer is larger than 64 MiB: refusing it"),
        (
            redirect_of_hundred_megabytes,
            "the controller's answer is larger than 64 MiB: refusing it",
        ),
    ],
)
def test_hostile_answers_end_in_one_line(hostile, tmp_path: Path, answer, message: str) -> None:  # noqa: ANN001
    addr = hostile(answer)
    code, out, err, peak_kib = bconnect(tmp_path, "scopes", "list", "-addr", addr)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err
    assert peak_kib < 300 * 1024  # the 100 MB answer was never held whole


def test_control_characters_in_an_error_stay_one_line(hostile, tmp_path: Path) -> None:  # noqa: ANN001
    addr = hostile(escaped_error)
    code, out, err, _ = bconnect(tmp_path, "scopes", "read", "-id", "global", "-addr", addr)
    assert code == 1
    assert err.count("\n") == 1 and RAW_CONTROL.search(err) is None, repr(err)
    assert "bad\\x1b[2J\\nforged line" in err and "no\\a\\r" in err
    # -v: Boundary's block, several lines of its own but none started by the controller
    code, _, err, _ = bconnect(tmp_path, "scopes", "read", "-id", "global", "-addr", addr, "-v")
    assert code == 1 and RAW_CONTROL.search(err) is None, repr(err)
    assert not any(line.startswith("forged") for line in err.splitlines()), err


# ---------------------------------------------------------------------- 3. -authz-token refs
@pytest.fixture
def connects() -> Iterator[list[Connect]]:
    started: list[Connect] = []
    yield started
    for c in started:
        c.kill()


def test_authz_token_from_env_and_file(
    dataplane, echo_server, connects, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = make_target(dataplane, echo_server.port)
    token_file = tmp_path / "authz"
    envelope = tmp_path / "authz.json"
    for ref in ("env://BC_TEST_AUTHZ", f"file://{token_file}"):
        auth = authorize(dataplane, target)
        token = auth["authorization_token"]
        monkeypatch.setenv("BC_TEST_AUTHZ", token)  # Connect copies os.environ
        token_file.write_text(token + "\n")
        c = Connect(dataplane, "-authz-token", ref)
        connects.append(c)
        listening = c.listening()
        assert listening["session_id"] == auth["session_id"]
        cmdline = Path(f"/proc/{c.proc.pid}/cmdline").read_bytes().decode()
        assert token not in cmdline and ref in cmdline
        assert echo_through(int(listening["port"]), b"by reference") == b"by reference"
        code, events, err = c.finish()
        assert code == 0, err
        assert events[-1] == {"termination_reason": "Received shutdown signal"}

    # the JSON of `targets authorize-session -format json`, from a file, works too
    auth = authorize(dataplane, target)
    envelope.write_text(json.dumps({"status_code": 200, "item": auth}))
    c = Connect(dataplane, "-authz-token", f"file://{envelope}")
    connects.append(c)
    assert echo_through(int(c.listening()["port"]), b"json") == b"json"
    assert c.finish()[0] == 0

    # a literal still works (and "-" is covered by the data plane tests)
    auth = authorize(dataplane, target)
    c = Connect(dataplane, "-authz-token", auth["authorization_token"])
    connects.append(c)
    assert c.listening()["session_id"] == auth["session_id"]
    assert c.finish()[0] == 0


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("env://BC_TEST_UNSET_AUTHZ", "environment variable BC_TEST_UNSET_AUTHZ is not set"),
        ("file:///nonexistent/authz", "error reading file at /nonexistent/authz"),
    ],
)
def test_bad_authz_token_reference(tmp_path: Path, ref: str, message: str) -> None:
    env = {"BOUNDARY_ADDR": "http://127.0.0.1:1"}
    code, out, err, _ = bconnect(tmp_path, "connect", "-authz-token", ref, env=env)
    assert code == 3 and out == ""
    assert err.startswith(f"Error parsing authz token flag: {message}")
    assert err.count("\n") == 1
