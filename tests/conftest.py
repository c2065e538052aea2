"""Shared fixtures: real controllers served by uvicorn on ephemeral 127.0.0.1 ports, the
session's PostgreSQL server, an echo target, `bconnect connect` processes; and the guard
that holds the default ports for the whole session. Plain helpers live in support/."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.constants import DEV_PORTS
from support.controller import RunningController, new_database, start_controller
from support.dataplane import Connect
from support.echo import EchoServer
from support.fake_controller import FakeController
from support.fake_worker import FakeWorker
from support.openssh import OpenSSH, running_openssh
from support.pgserver import PostgresServer, postgres_bindir
from support.s3 import S3Server, running_s3
from support.servers import (
    PostgresRole,
    SSHServer,
    postgres_role,
    require,
    running_http_server,
    running_ssh_server,
)

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


def pytest_unconfigure(config: pytest.Config) -> None:
    cache = os.environ.get("XDG_CACHE_HOME")
    if cache and Path(cache).name.startswith("bconnect-test-cache-"):
        shutil.rmtree(cache, ignore_errors=True)
    for name, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# ---------------------------------------------------------------- the default ports
def _hold(port: int) -> socket.socket | None:
    """127.0.0.1:``port`` bound and listening, or None when something else has it.

    With SO_REUSEPORT every test process (pytest-xdist's workers) holds the port for its
    whole session: one worker that finishes early and lets go leaves it held by the
    others, while a socket bound without the option still finds it in use."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, not LISTEN
    with contextlib.suppress(AttributeError, OSError):  # not on every platform
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(8)
    except OSError:
        sock.close()
        return None
    return sock


def _refuse(sock: socket.socket) -> None:
    """Accept and reset at once: a test that connects to a held port fails fast (much
    as on a port where nothing listens) instead of waiting for an answer."""
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return  # closed at the end of the session
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


@pytest.fixture(scope="session", autouse=True)
def default_ports_held() -> Iterator[list[int]]:
    """The ports `bconnect dev` and `bconnect server` use by default (API, cluster, proxy,
    ops: support.constants.DEV_PORTS), held by the test process for the whole session:
    a test that binds one of them by mistake gets "address already in use" every time, on
    a clean machine too, not only beside a developer's running `bconnect dev`. Ports
    already taken (by that `bconnect dev`) are left to their owner. Yields the ports held."""
    held = {port: sock for port in DEV_PORTS if (sock := _hold(port)) is not None}
    for sock in held.values():
        threading.Thread(target=_refuse, args=(sock,), daemon=True).start()
    try:
        yield sorted(held)
    finally:
        for sock in held.values():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


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


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    """The test session's PostgreSQL server (see support/pgserver.py)."""
    server = PostgresServer(require("PostgreSQL server (initdb, postgres)", postgres_bindir()))
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.close()


def _running_controller(
    request: pytest.FixtureRequest, backend: str, directory: Path, **kw: bool
) -> Iterator[RunningController]:
    """A controller on a new database, stopped when the fixture ends."""
    running = start_controller(new_database(request, backend, directory), **kw)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def controller(
    request: pytest.FixtureRequest, db_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningController]:
    """One controller shared by the tests that only add to its data."""
    yield from _running_controller(request, db_backend, tmp_path_factory.mktemp("ctl"))


@pytest.fixture
def fresh_controller(
    request: pytest.FixtureRequest, db_backend: str, tmp_path: Path
) -> Iterator[RunningController]:
    """A controller of the test's own, for tests that need an empty, known state."""
    yield from _running_controller(request, db_backend, tmp_path)


@pytest.fixture
def cli_env(controller: RunningController, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Environment for running the CLI against the shared controller, hermetically."""
    monkeypatch.setenv("BOUNDARY_ADDR", controller.addr)
    monkeypatch.setenv("BCONNECT_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("BCONNECT_KEYRING_TYPE", "file")
    for var in ("BOUNDARY_TOKEN", "BCONNECT_TOKEN", "BOUNDARY_CLI_FORMAT", "BCONNECT_CLI_FORMAT"):
        monkeypatch.delenv(var, raising=False)
    return controller


@pytest.fixture
def fake() -> Iterator[FakeController]:
    """A fake controller (support/fake_controller.py): it answers what the test routes and
    records every request."""
    controller = FakeController().start()
    yield controller
    controller.stop()


@pytest.fixture
async def worker() -> AsyncIterator[FakeWorker]:
    """A fake worker (support/fake_worker.py) serving one session, for the client side."""
    fake = FakeWorker()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def ssh_server() -> Iterator[SSHServer]:
    """An SSH server on 127.0.0.1 (support/servers.py): key and password logins."""
    with running_ssh_server() as server:
        yield server


@pytest.fixture(scope="module")
def openssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSSH]:
    """A real OpenSSH sshd on 127.0.0.1 (support/openssh.py): public key logins."""
    with running_openssh(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server on 127.0.0.1 (moto's standalone server)."""
    with running_s3() as server:
        yield server


@pytest.fixture(scope="module")
def postgres_server(pg: PostgresServer) -> PostgresRole:
    """The session's PostgreSQL server with the role and database ``bob``."""
    return postgres_role(pg)


@pytest.fixture
def http_server() -> Iterator[tuple[int, list[tuple[str, str, str]]]]:
    """An HTTP server on 127.0.0.1: its port, and the (method, path, Host) it was sent."""
    with running_http_server() as server:
        yield server


@pytest.fixture
def dataplane(
    request: pytest.FixtureRequest, db_backend: str, tmp_path: Path
) -> Iterator[RunningController]:
    """A controller with its embedded worker, as `bconnect dev` runs them."""
    yield from _running_controller(request, db_backend, tmp_path, with_worker=True)


@pytest.fixture
def connects() -> Iterator[list[Connect]]:
    """The `bconnect connect` processes a test starts (support.dataplane.start_connect):
    killed at the end if still running."""
    started: list[Connect] = []
    yield started
    for c in started:
        c.kill()
