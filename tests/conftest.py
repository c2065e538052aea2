"""Shared fixtures: real controllers served by uvicorn on ephemeral 127.0.0.1 ports."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from pgserver import PostgresServer, postgres_bindir

from bconnect.controller.server import Controller, bind
from bconnect.controller.settings import Settings

ADMIN = ("admin", "password")
USER = ("user", "password")
AUTH_METHOD = "ampw_1234567890"


_SAVED_ENV: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Before collection: no third-party plugin of the machine loads in tests
    (BCONNECT_LOAD_PLUGINS empty; tests that want one set it), and the helper-index cache
    lives in a temp dir, not in the user's ~/.cache."""
    for name in ("BCONNECT_LOAD_PLUGINS", "XDG_CACHE_HOME"):
        _SAVED_ENV[name] = os.environ.get(name)
    os.environ["BCONNECT_LOAD_PLUGINS"] = ""
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="bconnect-test-cache-")


def _hypothesis_profiles() -> None:
    """``ci`` (default): a few hundred examples per fuzz test, no deadline (the machine is
    shared); ``hardening`` (`nox -s hardening`, HYPOTHESIS_PROFILE=hardening): many more."""
    from hypothesis import settings

    settings.register_profile("ci", max_examples=300, deadline=None, print_blob=True)
    settings.register_profile("hardening", max_examples=20_000, deadline=None, print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_hypothesis_profiles()


def hardening_report(section: str, figures: dict[str, Any]) -> None:
    """Add figures to the hardening report (`nox -s hardening` sets
    BCONNECT_HARDENING_REPORT to a JSON file; sections from several tests add up)."""
    import json

    path = os.environ.get("BCONNECT_HARDENING_REPORT")
    if not path:
        return
    report = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    current = report.setdefault(section, {})
    for key, value in figures.items():
        if isinstance(value, int | float) and isinstance(current.get(key), int | float):
            current[key] += value
        else:
            current[key] = value
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


def pytest_unconfigure(config: pytest.Config) -> None:
    cache = os.environ.get("XDG_CACHE_HOME")
    if cache and Path(cache).name.startswith("bconnect-test-cache-"):
        shutil.rmtree(cache, ignore_errors=True)
    for name, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@dataclass
class RunningController:
    """A controller on a real socket, plus helpers to talk to it over HTTP."""

    controller: Controller
    addr: str
    _server: Any
    _thread: threading.Thread
    cluster_addr: str = ""
    worker_key: str = ""
    proxy_addr: str = ""  # the embedded worker's proxy ("host:port"), when it runs one
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self):  # noqa: ANN201
        return self.controller.engine

    def login(self, login_name: str, password: str = "password") -> str:
        resp = requests.post(
            f"{self.addr}/v1/auth-methods/{AUTH_METHOD}:authenticate",
            json={
                "command": "login",
                "attributes": {"login_name": login_name, "password": password},
            },
            timeout=10,
        )
        resp.raise_for_status()
        return resp.json()["attributes"]["token"]

    def token(self, who: str) -> str:
        if who not in self._tokens:
            self._tokens[who] = self.login(who)
        return self._tokens[who]

    def request(self, method: str, path: str, who: str | None = "admin", **kw: Any):  # noqa: ANN201
        headers = kw.pop("headers", {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.token(who)}"
        return requests.request(method, f"{self.addr}{path}", headers=headers, timeout=30, **kw)

    def stop(self) -> None:
        # as on Ctrl-C: the embedded worker stops (and reports) first, then uvicorn
        self._server.handle_exit(signal.SIGINT, None)
        self._thread.join(timeout=30)
        self.controller.close()


def start_controller(
    db_path: Path | str,
    job_interval: float = 0.2,
    with_worker: bool = False,
    settings: dict[str, Any] | None = None,
    listener_http: dict[str, Any] | None = None,
    **seed: Any,
) -> RunningController:
    """A controller (API + cluster listener) in a thread; with ``with_worker`` also an
    embedded worker on its own proxy port, as `bconnect dev` runs them. ``settings``
    overrides :class:`Settings` fields; ``listener_http`` gives the api/cluster listeners
    limits and X-Forwarded-For trust (``config.HttpListener`` by purpose)."""
    sock = bind("127.0.0.1:0", 0)
    cluster_sock = bind("127.0.0.1:0", 0)
    proxy_sock = bind("127.0.0.1:0", 0) if with_worker else None
    host, port = sock.getsockname()[:2]
    cluster_port = cluster_sock.getsockname()[1]
    proxy_addr = f"127.0.0.1:{proxy_sock.getsockname()[1]}" if proxy_sock else "127.0.0.1:9202"
    key = secrets.token_urlsafe(24)
    config = Settings(
        database_url=str(db_path),
        api_address=f"{host}:{port}",
        worker_addresses=[proxy_addr],
        job_interval=job_interval,
        worker_auth_key=key,
        **(settings or {}),
    )
    controller = Controller.open(config, dev_seed=True, **seed)
    controller.listener_http = listener_http or {}
    server = controller.uvicorn_server()
    worker = None
    if proxy_sock is not None:
        from bconnect.worker.server import Worker

        worker = Worker(
            f"http://127.0.0.1:{cluster_port}",
            key,
            proxy_sock,
            public_address=proxy_addr,
            name="test-worker",
            status_interval=0.2,
        )
    thread = threading.Thread(
        target=lambda: asyncio.run(controller.run(server, sock, cluster_sock, worker)),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("controller did not start")
        time.sleep(0.02)
    return RunningController(
        controller,
        f"http://{host}:{port}",
        server,
        thread,
        cluster_addr=f"http://127.0.0.1:{cluster_port}",
        worker_key=key,
        proxy_addr=proxy_addr if proxy_sock else "",
    )


# ---------------------------------------------------------------- databases
# The modules marked ``all_databases`` run every test that uses a controller fixture on
# SQLite and on PostgreSQL; the others on SQLite only. BCONNECT_TEST_DATABASES (comma
# separated) narrows that, e.g. to "sqlite" for a quick local run.
BACKENDS = ("sqlite", "postgresql")


def _backends(all_databases: bool) -> list[str]:
    wanted = [b for b in os.environ.get("BCONNECT_TEST_DATABASES", "").split(",") if b]
    chosen = list(BACKENDS) if all_databases else ["sqlite"]
    return [b for b in chosen if not wanted or b in wanted] or chosen[:1]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker("all_databases") is not None
        metafunc.parametrize("db_backend", _backends(marked), indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "db_backend" in getattr(item, "fixturenames", ()) and "[postgresql" in item.name:
            item.add_marker(pytest.mark.postgresql)


@pytest.fixture(scope="session")
def db_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql`` (parametrised by pytest_generate_tests)."""
    return getattr(request, "param", "sqlite")


def require(program: str, path: str | None) -> str:
    """The program's path; without it the test is skipped, or fails under CI."""
    if path:
        return path
    message = f"{program} is not installed"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must provide it: see .ci/run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    """The test session's PostgreSQL server (see tests/pgserver.py)."""
    server = PostgresServer(require("PostgreSQL server (initdb, postgres)", postgres_bindir()))
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.close()


def new_database(request: pytest.FixtureRequest, backend: str, directory: Path) -> str:
    """A fresh, empty-of-data database for one controller: a file, or a PostgreSQL db."""
    if backend == "postgresql":
        return request.getfixturevalue("pg").new_database()
    return str(directory / "bconnect.db")


@pytest.fixture(scope="session")
def controller(
    request: pytest.FixtureRequest, db_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningController]:
    """One controller shared by the tests that only add to its data."""
    url = new_database(request, db_backend, tmp_path_factory.mktemp("ctl"))
    running = start_controller(url)
    yield running
    running.stop()


@pytest.fixture
def fresh_controller(
    request: pytest.FixtureRequest, db_backend: str, tmp_path: Path
) -> Iterator[RunningController]:
    """A controller of the test's own, for tests that need an empty, known state."""
    running = start_controller(new_database(request, db_backend, tmp_path))
    yield running
    running.stop()


@pytest.fixture
def cli_env(controller: RunningController, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Environment for running the CLI against the shared controller, hermetically."""
    monkeypatch.setenv("BOUNDARY_ADDR", controller.addr)
    monkeypatch.setenv("BCONNECT_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("BCONNECT_KEYRING_TYPE", "file")
    for var in ("BOUNDARY_TOKEN", "BCONNECT_TOKEN", "BOUNDARY_CLI_FORMAT", "BCONNECT_CLI_FORMAT"):
        monkeypatch.delenv(var, raising=False)
    return controller


class EchoServer:
    """A real TCP echo server (a thread per connection) on 127.0.0.1, for targets."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn) -> None:  # noqa: ANN001
        with conn:
            try:
                while data := conn.recv(262144):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def dataplane(
    request: pytest.FixtureRequest, db_backend: str, tmp_path: Path
) -> Iterator[RunningController]:
    """A controller with its embedded worker, as `bconnect dev` runs them."""
    running = start_controller(new_database(request, db_backend, tmp_path), with_worker=True)
    yield running
    running.stop()
