"""The real servers the end-to-end tests point targets at: an SSH server (asyncssh), a
PostgreSQL role and database on the session's server, an HTTP server; and the system
programs the tests drive against them (``require``). conftest.py makes fixtures of them
(``ssh_server``, ``postgres_server``, ``http_server``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from support.constants import GUARD
from support.dataplane import add_credential, make_target
from support.http_servers import QuietHandler, serve, stop

SSH_PASSWORD = "ssh pw:with\\odd#chars"
PG_PASSWORD = "b:o\\b pw#1 'quoted'"  # ':' and '\' need pgpass escaping


def require(program: str, path: str | None = None) -> str:
    """The path of ``program`` (``path`` when given, else found on PATH); without it the
    test is skipped, or fails under CI, which must provide it (see .ci/run)."""
    found = path or shutil.which(program)
    if found:
        return found
    message = f"{program} is not installed"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must provide it: see .ci/run)")
    pytest.skip(message)


# ---------------------------------------------------------------------- SSH
@dataclass
class SSHServer:
    """An asyncssh server on 127.0.0.1 in its own thread: user ``keyuser`` logs in with
    ``client_key``, user ``pwuser`` with :data:`SSH_PASSWORD`. Exec requests run a tiny
    shell: ``echo WORDS`` and ``exit N`` separated by ``;``."""

    port: int
    client_key_pem: str
    logins: list[tuple[str, str]] = field(default_factory=list)  # (user, method)
    commands: list[str] = field(default_factory=list)


def _run_command(command: str) -> tuple[str, int]:
    output, status = "", 0
    for part in (p.strip() for p in command.split(";")):
        if not part:
            continue
        word, _, rest = part.partition(" ")
        if word == "echo":
            output += rest + "\n"
        elif word == "exit":
            return output, int(rest or "0")
        else:
            return output + f"{word}: command not found\n", 127
    return output, status


@contextlib.contextmanager
def running_ssh_server() -> Iterator[SSHServer]:
    """An :class:`SSHServer`, stopped when the block ends."""
    import asyncssh

    client_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_public = client_key.export_public_key("openssh").decode().split()[1]
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    class Server(asyncssh.SSHServer):
        def __init__(self) -> None:
            self.user = self.method = ""

        def begin_auth(self, username: str) -> bool:
            self.user = username
            return True

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: Any) -> bool:
            ok = username == "keyuser" and key.export_public_key("openssh").decode().split()[1] == (
                client_public
            )
            if ok:
                self.method = "publickey"  # asked twice: without, then with a signature
            return ok

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            ok = username == "pwuser" and password == SSH_PASSWORD
            if ok:
                self.method = "password"
            return ok

        def auth_completed(self) -> None:
            server.logins.append((self.user, self.method))

    def handle(process: Any) -> None:
        command = process.command or ""
        server.commands.append(command)
        output, status = _run_command(command)
        process.stdout.write(output)
        process.exit(status)

    async def start() -> None:
        listener = await asyncssh.create_server(
            Server,
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            process_factory=handle,
            encoding="utf-8",
        )
        state["listener"] = listener
        state["port"] = listener.sockets[0].getsockname()[1]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=GUARD)
    assert ready.wait(GUARD)
    server = SSHServer(
        port=state["port"],
        client_key_pem=client_key.export_private_key("openssh").decode(),
    )
    yield server

    async def stop_listening() -> None:
        state["listener"].close()
        await state["listener"].wait_closed()

    asyncio.run_coroutine_threadsafe(stop_listening(), loop).result(timeout=GUARD)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(GUARD)
    loop.close()


# ---------------------------------------------------------------------- PostgreSQL
@dataclass
class PostgresRole:
    """The role ``bob`` on the session's PostgreSQL server: its port, and ``psql``."""

    port: int
    psql: str


def postgres_role(pg: Any) -> PostgresRole:
    """On ``pg`` (support/pgserver.py), a role ``bob`` (password :data:`PG_PASSWORD`,
    SCRAM) owning a database ``bob``, unless there is one already."""
    psql = require("psql")
    from psycopg import sql

    with pg.connect() as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'bob'").fetchone()
        if not exists:
            conn.execute(
                sql.SQL("CREATE ROLE bob LOGIN PASSWORD {}").format(sql.Literal(PG_PASSWORD))
            )
            conn.execute("CREATE DATABASE bob OWNER bob")
    return PostgresRole(port=pg.port, psql=psql)


# ---------------------------------------------------------------------- HTTP
class _HelloHandler(QuietHandler):
    """``/hello`` answers "hello over http"; every request is noted in ``seen``."""

    seen: list[tuple[str, str, str]] = []

    def _answer(self) -> None:
        type(self).seen.append((self.command, self.path, self.headers.get("Host", "")))
        if self.path != "/hello":
            self.send_error(404)
            return
        body = b"hello over http\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = _answer


@contextlib.contextmanager
def running_http_server() -> Iterator[tuple[int, list[tuple[str, str, str]]]]:
    """An HTTP server on 127.0.0.1: its port, and the (method, path, Host) it was sent."""
    handler = type("Handler", (_HelloHandler,), {"seen": []})
    server = serve(handler)
    try:
        yield server.server_address[1], handler.seen
    finally:
        stop(server)


def ssh_key_target(ctl: Any, server: SSHServer) -> tuple[str, str]:
    """A target on ``server`` brokering ``keyuser``'s private key: (target, credential)."""
    target = make_target(ctl, server.port)
    credential = add_credential(
        ctl,
        target,
        "ssh_private_key",
        {"username": "keyuser", "private_key": server.client_key_pem.strip()},
    )
    return target, credential
