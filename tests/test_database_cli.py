"""`bconnect database init|migrate` as a real process, against SQLite files and real
PostgreSQL databases."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import text
from support.cli import run_bconnect
from support.cluster_harness import KMS_BLOCK, TEST_ROOT_KEY
from support.constants import GUARD

from bconnect.controller.server import Controller, bind
from bconnect.controller.settings import Settings
from bconnect.controller.storage.db import head_revision, make_engine, migrate


@pytest.fixture
def empty_db(request: pytest.FixtureRequest, db_backend: str, tmp_path: Path) -> str:
    """An empty database: a new SQLite file, or a new PostgreSQL database."""
    if db_backend == "postgresql":
        return request.getfixturevalue("pg").new_database(migrated=False)
    return str(tmp_path / "bconnect.db")


def database(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "BCONNECT_DATABASE_URL"}
    return run_bconnect("database", *args, env={**environ, **(env or {})}, timeout=GUARD * 2)


def one_line_error(result: subprocess.CompletedProcess, code: int = 1) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    return err


@contextmanager
def api(db: Path | str) -> Iterator[str]:
    """A controller (no dev seed) serving *db* on a free port, in a thread."""
    sock = bind("127.0.0.1:0", 0)
    controller = Controller.open(Settings(database_url=str(db)))
    server = controller.uvicorn_server()
    thread = threading.Thread(target=lambda: asyncio.run(controller.run(server, sock)), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "controller did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        controller.close()
        sock.close()


@pytest.mark.all_databases
def test_init_creates_an_admin_that_can_log_in(empty_db: str) -> None:
    db = empty_db
    result = database("init", "-database-url", str(db), "-format", "json")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    auth = created["auth_method"]
    assert auth["login_name"] == "admin" and auth["scope_id"] == "global"
    assert len(auth["password"]) >= 16
    assert created["login_role"]["role_id"] == "r_default_global"
    assert auth["password"] not in result.stderr

    with api(db) as addr:
        resp = requests.post(
            f"{addr}/v1/auth-methods/{auth['auth_method_id']}:authenticate",
            json={
                "command": "login",
                "attributes": {"login_name": "admin", "password": auth["password"]},
            },
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        token = resp.json()["attributes"]["token"]
        assert resp.json()["attributes"]["user_id"] == auth["user_id"]
        # the admin role: everything in global and its descendants
        made = requests.post(
            f"{addr}/v1/scopes",
            json={"scope_id": "global", "name": "org-by-admin"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert made.status_code == 200, made.text
        scope = requests.get(
            f"{addr}/v1/scopes/global", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ).json()
        assert scope["primary_auth_method_id"] == auth["auth_method_id"]


@pytest.mark.all_databases
def test_init_twice_is_refused(empty_db: str) -> None:
    db = empty_db
    first = database("init", "-database-url", str(db), "-login-name", "root")
    assert first.returncode == 0, first.stderr
    assert "Login Name:        root" in first.stdout
    assert "Password:" in first.stdout
    err = one_line_error(database("init", "-database-url", str(db)))
    assert err.startswith("Error: database already initialized")


def test_init_from_a_config_file_and_skip_auth_method(tmp_path: Path) -> None:
    db = tmp_path / "from-config.db"
    config = tmp_path / "controller.toml"
    config.write_text(
        KMS_BLOCK
        + """
[controller]
database_url = "env://TEST_DB_URL"
worker_auth_key = "env://TEST_WORKER_KEY"
[[listener]]
purpose = "api"
[[listener]]
purpose = "cluster"
"""
    )
    # the file wins over BCONNECT_DATABASE_URL (which the file may well refer to)
    env = {
        "TEST_DB_URL": str(db),
        "TEST_WORKER_KEY": "k" * 16,
        "BCONNECT_DATABASE_URL": "other.db",
        "BCONNECT_TEST_ROOT_KEY": TEST_ROOT_KEY,
    }
    result = database(
        "init", "-config", str(config), "-skip-auth-method-creation", "-format", "json", env=env
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "login_role": {"role_id": "r_default_global", "name": "Login and Default Grants"},
        "authenticated_user_role": {
            "role_id": "r_default_authn",
            "name": "Authenticated User Grants",
        },
    }
    engine = make_engine(str(db))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM auth_methods")).scalar() == 0
            assert conn.execute(text("SELECT id FROM scopes")).scalars().all() == ["global"]
    finally:
        engine.dispose()


@pytest.mark.all_databases
def test_migrate_fresh_then_up_to_date(empty_db: str) -> None:
    db = empty_db
    engine = make_engine(db)
    head = head_revision(engine)
    engine.dispose()
    result = database("migrate", "-format", "json", env={"BCONNECT_DATABASE_URL": str(db)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "from_revision": None,
        "to_revision": head,
        "migrated": True,
    }
    again = database("migrate", "-database-url", str(db))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"Database schema is up to date (revision {head})."


@pytest.mark.all_databases
def test_migrate_refuses_a_newer_schema(empty_db: str) -> None:
    db = empty_db
    engine = make_engine(str(db))
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    err = one_line_error(database("migrate", "-database-url", str(db)))
    assert "newer than this bconnect" in err
    err = one_line_error(database("init", "-database-url", str(db)))
    assert "newer than this bconnect" in err


def test_usage_errors(tmp_path: Path) -> None:
    result = database("migrate")  # a usage error: click's usage lines, exit 2
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("Error: one of -config or -database-url is required")
    result = database("init", "-database-url", str(tmp_path / "x.db"), "-login-name", "A!")
    assert result.returncode == 2 and "-login-name" in result.stderr
    err = one_line_error(database("migrate", "-config", str(tmp_path / "missing.toml")))
    assert err.startswith("Error: ") and "missing.toml: cannot read" in err
    result = database("migrate", "-config", "c.toml", "-database-url", "x.db")
    assert result.returncode == 2 and "not both" in result.stderr
    err = one_line_error(database("migrate", "-database-url", "env://TEST_NO_SUCH_VAR"))
    assert "TEST_NO_SUCH_VAR is not set" in err
