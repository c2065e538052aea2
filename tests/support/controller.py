"""Real controllers served by uvicorn in a thread on ephemeral 127.0.0.1 ports (the
fixtures in conftest.py start them with :func:`start_controller`)."""

from __future__ import annotations

import asyncio
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from bconnect.controller.server import Controller, bind
from bconnect.controller.settings import Settings
from support.constants import AUTH_METHOD


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
    # without a worker, sessions name the default worker address (nothing is bound there)
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


def new_database(request: pytest.FixtureRequest, backend: str, directory: Path) -> str:
    """A fresh, empty-of-data database for one controller: a file, or a PostgreSQL
    database on the session's server (the ``pg`` fixture)."""
    if backend == "postgresql":
        return request.getfixturevalue("pg").new_database()
    return str(directory / "bconnect.db")
