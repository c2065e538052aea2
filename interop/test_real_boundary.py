"""The real `boundary` CLI against `bconnect dev`, and `bconnect` against a real
`boundary dev` on a local PostgreSQL (docs/development.md lists what it covers).
Needs BOUNDARY_BIN."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

BOUNDARY = os.environ.get("BOUNDARY_BIN", "boundary")
GUARD = 60
PROJECT = "p_1234567890"
MiB = 1 << 20
# both CLIs log in the same way, the password in the environment variable PW
LOGIN = (
    "authenticate",
    "password",
    "-auth-method-id",
    "ampw_1234567890",
    "-login-name",
    "admin",
    "-password",
    "env://PW",
)

# An -exec program: echoes random bytes through the proxy and checks they come back whole.
ECHO_CHECK = """
import hashlib, os, socket, sys, threading
size = int(sys.argv[1])
payload = os.urandom(size)
sock = socket.create_connection(("127.0.0.1", int(os.environ["BOUNDARY_PROXIED_PORT"])))
threading.Thread(target=sock.sendall, args=(payload,), daemon=True).start()
got = bytearray()
while len(got) < size:
    chunk = sock.recv(1 << 18)
    if not chunk:
        break
    got += chunk
same = hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
print("echo", len(got), "ok" if same else "MISMATCH")
sys.exit(0 if same else 1)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError(f"nothing answers at {url}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def echo_check(tmp_path: Path) -> Path:
    path = tmp_path / "echo_check.py"
    path.write_text(ECHO_CHECK)
    return path


@pytest.fixture
def bconnect_dev(tmp_path: Path, echo_server: Any) -> Iterator[str]:
    """`bconnect dev` on ephemeral ports; its dev target points at the echo server."""
    api, cluster, proxy = free_port(), free_port(), free_port()
    log = open(tmp_path / "bconnect-dev.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bconnect",
            "dev",
            "-api-listen-address",
            f"127.0.0.1:{api}",
            "-cluster-listen-address",
            f"127.0.0.1:{cluster}",
            "-proxy-listen-address",
            f"127.0.0.1:{proxy}",
            "-target-default-port",
            str(echo_server.port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    addr = f"http://127.0.0.1:{api}"
    try:
        wait_http(f"{addr}/v1/scopes")
        yield addr
    finally:
        stop(proc)
        log.close()


class Boundary:
    """Runs the real `boundary` CLI with a HOME of its own; stops the cache daemon it
    starts (one per HOME) when done."""

    def __init__(self, home: Path, addr: str) -> None:
        self.home = home
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "BOUNDARY_ADDR": addr,
            "PW": "password",
        }

    def __call__(self, *args: str, token: str | None = None, check: bool = True) -> Any:
        env = dict(self.env)
        extra: list[str] = ["-keyring-type", "none"]
        if token:
            env["BTOKEN"] = token
            extra += ["-token", "env://BTOKEN"]
        result = subprocess.run(
            [BOUNDARY, *args[:1], *self._with(args[1:], extra)],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=GUARD * 3,
        )
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    @staticmethod
    def _with(rest: tuple[str, ...], extra: list[str]) -> list[str]:
        """Flags go before a `--` (and after an alias or subcommand words)."""
        rest = list(rest)
        cut = rest.index("--") if "--" in rest else len(rest)
        return [*rest[:cut], *extra, *rest[cut:]]

    def json(self, *args: str, token: str | None = None) -> Any:
        return json.loads(self(*args, "-format", "json", token=token).stdout)

    def close(self) -> None:
        pid_file = self.home / ".boundary" / "cache.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)

    def cache_errors(self) -> list[str]:
        log = self.home / ".boundary" / "cache.log"
        text = log.read_text() if log.exists() else ""
        return [line for line in text.splitlines() if re.search(r"error", line, re.I)]


@pytest.fixture
def boundary(tmp_path: Path, bconnect_dev: str) -> Iterator[Boundary]:
    home = tmp_path / "home"
    home.mkdir()
    cli = Boundary(home, bconnect_dev)
    yield cli
    cli.close()


def session_after(addr: str, token: str, sid: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + GUARD
    while True:
        item = requests.get(
            f"{addr}/v1/sessions/{sid}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()
        if item["status"] == status or time.monotonic() > deadline:
            return item
        time.sleep(0.2)


def test_the_boundary_cli_against_bconnect(
    boundary: Boundary, bconnect_dev: str, echo_check: Path
) -> None:
    addr = bconnect_dev
    # anonymous, as every Boundary guide starts: the Go client sends an empty bearer token
    assert boundary("scopes", "list").returncode == 0
    methods = boundary.json("auth-methods", "list", "-scope-id", "global")
    assert [m["id"] for m in methods["items"]] == ["ampw_1234567890"]
    refused = boundary("targets", "list", "-scope-id", PROJECT, "-format", "json", check=False)
    assert refused.returncode == 1
    assert json.loads(refused.stderr)["status_code"] == 401
    login = boundary.json(*LOGIN)
    token = login["item"]["attributes"]["token"]
    scopes = boundary.json("scopes", "list", "-recursive", token=token)
    assert {s["id"] for s in scopes["items"]} == {"o_1234567890", PROJECT}
    methods = boundary.json("auth-methods", "list", "-scope-id", "global", token=token)
    assert "authenticate" in methods["items"][0]["authorized_actions"]
    targets = boundary.json("targets", "list", "-scope-id", PROJECT, token=token)
    assert {t["id"] for t in targets["items"]} == {"ttcp_1234567890", "ttcp_0987654321"}

    # authorize-session, then sessions read and cancel: canceling, then terminated
    auth = boundary.json("targets", "authorize-session", "-id", "ttcp_1234567890", token=token)
    sid = auth["item"]["session_id"]
    assert "." in auth["item"]["expiration"]  # Boundary's precision
    boundary("sessions", "cancel", "-id", sid, token=token)
    ended = session_after(addr, token, sid, "terminated")
    assert (ended["status"], ended["termination_reason"]) == ("terminated", "canceled")
    assert [s["status"] for s in ended["states"]] == ["terminated", "canceling", "pending"]

    # connect -exec: a checksum-verified echo of 16 MiB through bconnect's worker
    run = boundary(
        "connect",
        "-target-id",
        "ttcp_1234567890",
        "-exec",
        sys.executable,
        "--",
        str(echo_check),
        str(16 * MiB),
        token=token,
    )
    assert f"echo {16 * MiB} ok" in run.stdout
    sid = re.search(r"Session ID:\s+(s_\w+)", run.stdout).group(1)
    ended = session_after(addr, token, sid, "terminated")
    assert ended["termination_reason"] == "canceled"
    assert [s["status"] for s in ended["states"]] == [
        "terminated",
        "canceling",
        "active",
        "pending",
    ]
    read = boundary.json("sessions", "read", "-id", sid, token=token)
    assert read["item"]["termination_reason"] == "canceled"

    # aliases with the real CLI, and connect by alias
    value = f"echo-{secrets.token_hex(3)}.interop"
    boundary(
        "aliases",
        "create",
        "target",
        "-value",
        value,
        "-destination-id",
        "ttcp_1234567890",
        token=token,
    )
    by_alias = boundary(
        "connect", value, "-exec", sys.executable, "--", str(echo_check), str(MiB), token=token
    )
    assert f"echo {MiB} ok" in by_alias.stdout

    # the CLI cache: search answers, and the daemon logged no error (it calls
    # :list-resolvable-aliases on every refresh)
    found = boundary("search", "-resource", "targets", token=token)
    assert "ttcp_1234567890" in found.stdout
    time.sleep(2)
    assert boundary.cache_errors() == []


@pytest.fixture
def boundary_dev(tmp_path: Path, pg: Any, echo_server: Any) -> Iterator[str]:
    """A real `boundary dev` on the suite's PostgreSQL server, its dev target pointing
    at the echo server."""
    db = f"boundary_{secrets.token_hex(4)}"
    with pg.connect() as conn:
        conn.execute(f'CREATE DATABASE "{db}" TEMPLATE template0')
    url = pg.url(db, user="postgres", password=_superuser_password()) + "?sslmode=disable"
    api, cluster, proxy, ops = (free_port() for _ in range(4))
    log = open(tmp_path / "boundary-dev.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            BOUNDARY,
            "dev",
            "-database-url",
            url,
            "-api-listen-address",
            f"127.0.0.1:{api}",
            "-cluster-listen-address",
            f"127.0.0.1:{cluster}",
            "-proxy-listen-address",
            f"127.0.0.1:{proxy}",
            "-worker-public-address",
            f"127.0.0.1:{proxy}",
            "-ops-listen-address",
            f"127.0.0.1:{ops}",
            "-controller-public-cluster-address",
            f"127.0.0.1:{cluster}",
            "-host-address",
            "127.0.0.1",
            "-target-default-port",
            str(echo_server.port),
            "-password",
            "password",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    addr = f"http://127.0.0.1:{api}"
    try:
        wait_http(f"{addr}/v1/scopes")
        _wait_for_worker(addr)
        yield addr
    finally:
        stop(proc)
        log.close()


def _superuser_password() -> str:
    from support.pgserver import SUPERUSER_PASSWORD

    return SUPERUSER_PASSWORD


def _wait_for_worker(addr: str) -> None:
    token = requests.post(
        f"{addr}/v1/auth-methods/ampw_1234567890:authenticate",
        json={"command": "login", "attributes": {"login_name": "admin", "password": "password"}},
        timeout=30,
    ).json()["attributes"]["token"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = requests.get(
            f"{addr}/v1/workers?scope_id=global",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        if any(w.get("last_status_time") for w in workers.get("items") or []):
            return
        time.sleep(0.5)
    raise AssertionError("boundary dev's worker never reported")


def test_bconnect_against_a_real_boundary(
    boundary_dev: str, tmp_path: Path, echo_check: Path
) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "BOUNDARY_ADDR": boundary_dev,
        "BCONNECT_KEYRING_TYPE": "none",
        "BCONNECT_LOAD_PLUGINS": "",
        "PW": "password",
    }

    def bconnect(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "bconnect", *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=GUARD * 3,
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    login = json.loads(bconnect(*LOGIN, "-format", "json").stdout)
    env["BOUNDARY_TOKEN"] = token = login["item"]["attributes"]["token"]
    listed = json.loads(bconnect("targets", "list", "-scope-id", PROJECT, "-format", "json").stdout)
    assert "ttcp_1234567890" in {t["id"] for t in listed["items"]}
    run = bconnect(
        "connect",
        "-target-id",
        "ttcp_1234567890",
        "-exec",
        sys.executable,
        "--",
        str(echo_check),
        str(16 * MiB),
    )
    assert f"echo {16 * MiB} ok" in run.stdout
    sid = re.search(r"Session ID:\s+(s_\w+)", run.stdout).group(1)
    ended = session_after(boundary_dev, token, sid, "terminated")
    assert ended["status"] in ("canceling", "terminated")

    # connect -stdio through the real worker: the stream on the pipes, SIGHUP ends it
    stdio = subprocess.Popen(
        [sys.executable, "-m", "bconnect", "connect", "-stdio", "-target-id", "ttcp_1234567890"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert stdio.stdin is not None and stdio.stdout is not None
    payload = os.urandom(MiB)
    threading.Thread(target=lambda: (stdio.stdin.write(payload), stdio.stdin.flush())).start()
    got = bytearray()
    while len(got) < len(payload):
        chunk = stdio.stdout.read1(1 << 16)
        assert chunk, stdio.stderr.read() if stdio.stderr else b""
        got += chunk
    assert bytes(got) == payload
    stdio.send_signal(signal.SIGHUP)
    assert stdio.wait(GUARD) == 0
