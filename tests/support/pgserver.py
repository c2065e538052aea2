"""A real PostgreSQL server for the tests, started from the machine's binaries.

``initdb`` and ``postgres`` are found on PATH, under ``pg_config --bindir`` or in
Debian's ``/usr/lib/postgresql/<version>/bin``. The server listens on 127.0.0.1 only (no
Unix socket), with SCRAM password authentication for everyone, and runs as ``nobody``
when the tests run as root (PostgreSQL refuses root). It can be stopped, killed and
started again on the same port and data directory, for the restart tests.

Controllers under test each get a database of their own, copied from a template that
was migrated once (``CREATE DATABASE … TEMPLATE``), owned by the role ``bconnect``.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from support.ports import free_port as _free_port
from support.processes import end_process

SUPERUSER_PASSWORD = "superuser-pw-1234"
APP_ROLE = "bconnect"
APP_PASSWORD = "bconnect-test-pw"
TEMPLATE_DB = "bconnect_template"
START_GUARD = 60.0  # seconds: a hang guard for start-up, never a timing assertion


def postgres_bindir() -> str | None:
    """The directory holding initdb and postgres, or None."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return str(Path(os.path.realpath(initdb)).parent)
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30
            )
            candidates.append(out.stdout.strip())

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for directory in candidates:
        if directory and all(
            os.access(Path(directory, p), os.X_OK) for p in ("initdb", "postgres")
        ):
            return directory
    return None


def _traversable_tmp() -> str:
    """A temp base every user can traverse (pytest's tmp dirs are 0700 root)."""
    for base in (tempfile.gettempdir(), "/tmp"):
        path = Path(base).resolve()
        if all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents]):
            return str(path)
    raise RuntimeError("no world-traversable temporary directory for the PostgreSQL server")


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; ``start()`` it, ``close()`` it."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="bconnect-pg-", dir=_traversable_tmp()))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.base, nobody.pw_uid, nobody.pw_gid)
            self._run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",
            "HOME": str(self.base),
        }
        self._names = itertools.count(1)
        self._template_ready = False

    # ------------------------------------------------------------ process
    def init(self) -> None:
        pwfile = self.base / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if self._run_as:
            os.chown(pwfile, self._run_as["user"], self._run_as["group"])
        done = subprocess.run(
            [
                str(Path(self.bindir, "initdb")),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--no-locale",
                "-E",
                "UTF8",
            ],
            capture_output=True,
            text=True,
            env=self._env,
            cwd=self.base,
            timeout=START_GUARD * 3,
            **self._run_as,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
        with open(self.data / "pg_hba.conf", "w", encoding="utf-8") as hba:
            hba.write("host all all 127.0.0.1/32 scram-sha-256\n")

    def start(self) -> None:
        """Start the server (on a free port the first time, the same port afterwards)."""
        ports = [self.port] if self.port else [_free_port() for _ in range(5)]
        for port in ports:
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen(
                    [
                        str(Path(self.bindir, "postgres")),
                        "-D",
                        str(self.data),
                        "-c",
                        "listen_addresses=127.0.0.1",
                        "-c",
                        f"port={port}",
                        "-c",
                        "unix_socket_directories=",
                        "-c",
                        "password_encryption=scram-sha-256",
                        "-c",
                        "fsync=off",
                        "-c",
                        "max_connections=300",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self._env,
                    cwd=self.base,
                    start_new_session=True,
                    **self._run_as,
                )
            self.port = port
            deadline = time.monotonic() + START_GUARD
            while self.proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(Exception), self.connect():
                    return
                time.sleep(0.1)
            self.kill()
        raise RuntimeError("PostgreSQL did not start:\n" + self.log.read_text(errors="replace"))

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, data is kept."""
        if self.proc is not None:
            end_process(self.proc, signal.SIGINT, START_GUARD)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the postmaster's whole process group (a crash; recovery on start)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(START_GUARD)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------ SQL
    def connect(self, dbname: str = "postgres", **kw: Any) -> Any:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password=SUPERUSER_PASSWORD,
            dbname=dbname,
            connect_timeout=5,
            autocommit=True,
            **kw,
        )

    def url(self, dbname: str, user: str = APP_ROLE, password: str = APP_PASSWORD) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def _template(self) -> None:
        """Create the application role and a migrated template database, once."""
        if self._template_ready:
            return
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(APP_ROLE), sql.Literal(APP_PASSWORD)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(TEMPLATE_DB), sql.Identifier(APP_ROLE)
                )
            )
        from bconnect.controller.storage.db import make_engine, migrate

        engine = make_engine(self.url(TEMPLATE_DB))
        try:
            migrate(engine)
        finally:
            engine.dispose()
        self._template_ready = True

    def new_database(self, migrated: bool = True) -> str:
        """A fresh database owned by ``bconnect`` (schema at head unless ``migrated`` is
        False); returns its URL."""
        from psycopg import sql

        self._template()
        name = f"bconnect_{next(self._names)}"
        template = TEMPLATE_DB if migrated else "template0"
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(APP_ROLE), sql.Identifier(template)
                )
            )
        return self.url(name)
