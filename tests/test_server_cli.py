"""`bconnect server -config FILE` as operators run it: real processes, signals and ports;
and the ops listener's /health on a real socket."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from support.cli import BCONNECT, run_bconnect
from support.cluster_harness import KMS_BLOCK, TEST_ROOT_KEY, bconnect_json
from support.constants import GUARD
from support.ports import busy_port, free_port
from support.wait import wait_until

from bconnect.controller.server import bind
from bconnect.health import HealthServer

WORKER_KEY = "worker-key-for-the-server-tests"


def env() -> dict[str, str]:
    return {
        **os.environ,
        "TEST_WORKER_KEY": WORKER_KEY,
        "BCONNECT_LOG_LEVEL": "info",
        "BCONNECT_TEST_ROOT_KEY": TEST_ROOT_KEY,
    }


def listeners(**ports: int) -> str:
    return "".join(
        f'[[listener]]\npurpose = "{purpose}"\naddress = "127.0.0.1:{port}"\n'
        for purpose, port in ports.items()
    )


def controller_section(db: Path, name: str = "controller-1") -> str:
    return f"""{KMS_BLOCK}
[controller]
name = "{name}"
database_url = "{db}"
worker_auth_key = "env://TEST_WORKER_KEY"
job_interval = "1s"
"""


class Server:
    """A `bconnect server` process; its output goes to files (no pipe to fill up)."""

    def __init__(self, tmp_path: Path, name: str, config: str) -> None:
        self.config = tmp_path / f"{name}.toml"
        self.config.write_text(config)
        self.out_path, self.err_path = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [*BCONNECT, "server", "-config", str(self.config)],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env(),
            )

    @property
    def output(self) -> str:
        return self.out_path.read_text() + self.err_path.read_text()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=GUARD)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the server did not stop: " + self.output) from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def running(tmp_path: Path, name: str, config: str) -> Iterator[Server]:
    server = Server(tmp_path, name, config)
    try:
        yield server
    finally:
        server.kill()


def health(port: int) -> requests.Response | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
    except requests.RequestException:
        return None


def healthy(port: int, server: Server) -> dict[str, Any]:
    """Wait until /health says 200 (the process must stay alive meanwhile)."""

    def check() -> dict[str, Any] | None:
        assert server.proc.poll() is None, "server exited: " + server.output
        resp = health(port)
        return resp.json() if resp is not None and resp.status_code == 200 else None

    return wait_until(check, "/health to answer 200")


def registered(port: int, server: Server) -> dict[str, Any]:
    """Wait until the worker of this process says it is registered; its /health body."""
    return wait_until(
        lambda: (body := healthy(port, server))["worker"]["registered"] and body,
        "the worker to register",
    )


def init_database(db: Path) -> dict[str, Any]:
    return bconnect_json("database", "init", "-database-url", str(db))["auth_method"]


def login(api: int, auth: dict[str, Any]) -> str:
    resp = requests.post(
        f"http://127.0.0.1:{api}/v1/auth-methods/{auth['auth_method_id']}:authenticate",
        json={
            "command": "login",
            "attributes": {"login_name": auth["login_name"], "password": auth["password"]},
        },
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["attributes"]["token"]


def workers(api: int, token: str) -> list[dict[str, Any]]:
    resp = requests.get(
        f"http://127.0.0.1:{api}/v1/workers",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return resp.json().get("items", [])


def assert_clean_stop(server: Server, code: int) -> None:
    output = server.output
    assert code == 0, output
    assert "Traceback" not in output
    stdout = server.out_path.read_text()
    assert stdout.startswith("==> bconnect server started!")
    assert stdout.rstrip().endswith("==> bconnect server shutdown complete")
    assert WORKER_KEY not in output


# ---------------------------------------------------------------- whole processes
def test_controller_worker_and_ops_in_one_process(tmp_path: Path) -> None:
    db = tmp_path / "bconnect.db"
    auth = init_database(db)
    api, cluster, proxy, ops = (free_port() for _ in range(4))
    config = (
        'log_level = "info"\n'
        + controller_section(db)
        + '[worker]\nname = "worker-1"\ntags = { type = ["test"] }\n'
        + listeners(api=api, cluster=cluster, proxy=proxy, ops=ops)
    )
    with running(tmp_path, "both", config) as server:
        body = registered(ops, server)
        assert body["status"] == "ok"
        assert body["controller"] == {"name": "controller-1"}
        assert body["worker"]["name"] == "worker-1"
        assert body["worker"]["public_address"] == f"127.0.0.1:{proxy}"
        assert requests.get(f"http://127.0.0.1:{ops}/nope", timeout=5).status_code == 404
        # the API answers: anonymous callers may not list workers, the admin may
        anonymous = requests.get(f"http://127.0.0.1:{api}/v1/workers", timeout=30)
        assert anonymous.status_code in (401, 403)
        token = login(api, auth)
        listed = wait_until(lambda: workers(api, token), "the worker in /v1/workers")
        assert [w["name"] for w in listed] == ["worker-1"]
        assert listed[0]["address"] == f"127.0.0.1:{proxy}"
        assert listed[0]["id"] == body["worker"]["id"]
        code = server.stop(signal.SIGTERM)
    assert_clean_stop(server, code)
    banner = server.out_path.read_text()
    assert f"Controller API: http://127.0.0.1:{api}" in banner
    assert f"Health: http://127.0.0.1:{ops}/health" in banner
    assert f"Database: sqlite:///{db}" in banner


def test_worker_only_process_registers_with_a_controller_only_process(tmp_path: Path) -> None:
    db = tmp_path / "bconnect.db"
    auth = init_database(db)
    api, cluster, ctl_ops, proxy, worker_ops = (free_port() for _ in range(5))
    controller_config = controller_section(db) + listeners(api=api, cluster=cluster, ops=ctl_ops)
    worker_config = f"""
[worker]
name = "remote-worker"
public_address = "worker.example:9202"
controllers = ["127.0.0.1:{cluster}"]
auth_key = "env://TEST_WORKER_KEY"
status_interval = "200ms"
""" + listeners(proxy=proxy, ops=worker_ops)
    with running(tmp_path, "controller", controller_config) as ctl:
        body = healthy(ctl_ops, ctl)
        assert body == {"status": "ok", "controller": {"name": "controller-1"}}
        with running(tmp_path, "worker", worker_config) as worker:
            body = registered(worker_ops, worker)
            assert set(body) == {"status", "worker"}
            token = login(api, auth)
            listed = wait_until(lambda: workers(api, token), "the worker in /v1/workers")
            assert [(w["name"], w["address"]) for w in listed] == [
                ("remote-worker", "worker.example:9202")
            ]
            worker_code = worker.stop(signal.SIGINT)
        assert_clean_stop(worker, worker_code)
        assert "Controllers: http://127.0.0.1:" in worker.out_path.read_text()
        ctl_code = ctl.stop(signal.SIGTERM)
    assert_clean_stop(ctl, ctl_code)


def run_server(tmp_path: Path, config: str) -> subprocess.CompletedProcess:
    path = tmp_path / "config.toml"
    path.write_text(config)
    return run_bconnect("server", "-config", str(path), env=env())


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "==> bconnect server started" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[worker]\nbogus = 1\n", "[worker] bogus: unknown key"),
        (
            "[controller]\ndatabase_url = 'x.db'\nworker_auth_key = 'hunter2-literal'\n",
            "[controller] worker_auth_key: must be an env:// or file:// reference",
        ),
        (
            "[controller]\ndatabase_url = 'x.db'\nworker_auth_key = 'env://TEST_NOT_SET'\n"
            + listeners(api=0, cluster=0),
            "environment variable TEST_NOT_SET is not set",
        ),
        ("", "needs a [controller] or a [worker] section"),
        ("[controller\n", "invalid TOML"),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, config: str, message: str) -> None:
    line = one_line_error(run_server(tmp_path, config))
    assert line.startswith(f"Error: {tmp_path / 'config.toml'}: ") and message in line
    assert "hunter2-literal" not in line


def test_a_wildcard_proxy_needs_a_public_address(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    init_database(db)
    config = (
        controller_section(db)
        + "[worker]\nname = 'w'\n"
        + listeners(api=0, cluster=0)
        + '[[listener]]\npurpose = "proxy"\naddress = "0.0.0.0:0"\n'
    )
    line = one_line_error(run_server(tmp_path, config))
    assert "[worker] public_address: is required when the proxy listener is a wildcard" in line


def test_port_in_use_is_one_line_error(tmp_path: Path) -> None:
    with busy_port() as port:
        config = controller_section(tmp_path / "x.db") + listeners(api=0, cluster=port)
        line = one_line_error(run_server(tmp_path, config))
    assert line.startswith(f"Error: cannot listen on 127.0.0.1:{port}") and "in use" in line
    assert not (tmp_path / "x.db").exists()  # nothing started


def test_database_errors_are_one_line_without_the_password(tmp_path: Path) -> None:
    pg_port = free_port()  # nothing listens there
    url = f"postgresql://bc:topsecret-pw@127.0.0.1:{pg_port}/bconnect"
    config = controller_section(tmp_path / "x.db").replace(str(tmp_path / "x.db"), url)
    line = one_line_error(run_server(tmp_path, config + listeners(api=0, cluster=0)))
    assert line.startswith("Error: cannot open the database postgresql+psycopg://bc:***@127")
    assert "topsecret-pw" not in line

    missing = tmp_path / "no-such-dir" / "x.db"
    config = controller_section(missing) + listeners(api=0, cluster=0)
    line = one_line_error(run_server(tmp_path, config))
    assert line.startswith(f"Error: cannot open the database sqlite:///{missing}: ")

    # a server does not create or migrate a schema: `bconnect database init|migrate` does
    empty = tmp_path / "empty.db"
    config = controller_section(empty) + listeners(api=0, cluster=0)
    line = one_line_error(run_server(tmp_path, config))
    assert "not initialized: run `bconnect database init` first" in line
    for version, says in (
        ("0001", "run `bconnect database migrate`"),  # older than the code
        ("9999", "newer than this bconnect"),
    ):
        db = tmp_path / f"v{version}.db"
        init_database(db)
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE alembic_version SET version_num = ?", (version,))
        config = controller_section(db) + listeners(api=0, cluster=0)
        assert says in one_line_error(run_server(tmp_path, config))


# ---------------------------------------------------------------- the ops listener
async def _get(port: int, request: bytes) -> tuple[int, dict[str, Any] | None]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), GUARD)
    except ConnectionResetError:  # dropped before we finished sending
        data = b""
    finally:
        writer.close()
    if not data:
        return 0, None
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


async def test_health_server_answers_and_reports_failures() -> None:
    sock = bind("127.0.0.1:0", 0)
    port = sock.getsockname()[1]
    database_ok = True

    def check_database() -> None:
        if not database_ok:
            raise RuntimeError("database gone")

    ops = HealthServer(
        sock,
        controller=lambda: {"name": "c"},
        worker=lambda: {"name": "w"},
        check_database=check_database,
    )
    task = asyncio.ensure_future(ops.run())
    get = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        assert await _get(port, get) == (
            200,
            {"status": "ok", "controller": {"name": "c"}, "worker": {"name": "w"}},
        )
        assert (await _get(port, b"GET /other HTTP/1.1\r\n\r\n"))[0] == 404
        assert (await _get(port, b"POST /health HTTP/1.1\r\n\r\n"))[0] == 404
        # an oversized request is dropped without an answer; the server keeps serving
        assert await _get(port, b"GET /health HTTP/1.1\r\nX: " + b"a" * 20000) == (0, None)
        database_ok = False
        assert await _get(port, get) == (503, {"status": "database unavailable"})
        database_ok = True
        ops.stopping = True
        assert await _get(port, get) == (503, {"status": "shutting down"})
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sock.close()
