"""`bconnect dev` as a user runs it: a real process, real signals, real ports."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import new_database

BCONNECT = [sys.executable, "-m", "bconnect"]


def start_dev(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            *BCONNECT,
            "dev",
            "-api-listen-address",
            "127.0.0.1:0",
            "-cluster-listen-address",
            "127.0.0.1:0",
            "-proxy-listen-address",
            "127.0.0.1:0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"Controller API: (http://\S+)", line)
        if m:
            addr = m.group(1)
            while time.monotonic() < deadline:
                try:
                    requests.get(f"{addr}/v1/scopes", timeout=5)
                    return proc, addr
                except requests.RequestException:
                    time.sleep(0.05)
    proc.kill()
    raise AssertionError("bconnect dev did not start: " + (proc.stdout.read() or ""))


def login(addr: str) -> requests.Response:
    return requests.post(
        f"{addr}/v1/auth-methods/ampw_1234567890:authenticate",
        json={"command": "login", "attributes": {"login_name": "admin", "password": "password"}},
        timeout=10,
    )


@pytest.mark.all_databases
def test_dev_serves_and_stops_on_ctrl_c(request, db_backend: str, tmp_path: Path) -> None:  # noqa: ANN001
    # a SQLite file, or `bconnect dev -database-url postgresql://…`
    db = new_database(request, db_backend, tmp_path)
    proc, addr = start_dev(tmp_path, "-database-url", str(db))
    try:
        assert login(addr).status_code == 200
        token = login(addr).json()["attributes"]["token"]
        made = requests.post(
            f"{addr}/v1/targets",
            json={"scope_id": "p_1234567890", "name": "survives-restart", "address": "127.0.0.1"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert made.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "Traceback" not in out
    assert "shutdown complete" in out
    assert "bconnect-test-pw" not in out  # the database password is never shown

    # a database path keeps data across restarts, and the seeds are not duplicated
    proc, addr = start_dev(tmp_path, "-database-url", str(db))
    try:
        token = login(addr).json()["attributes"]["token"]
        targets = requests.get(
            f"{addr}/v1/targets?scope_id=p_1234567890",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()["items"]
        names = sorted(t["name"] for t in targets)
        assert "survives-restart" in names and len(names) == 3
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_dev_port_in_use_is_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*BCONNECT, "dev", "-api-listen-address", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 1
    err = result.stderr.strip()
    assert err.startswith("Error: cannot listen on 127.0.0.1:") and "in use" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in result.stderr


def test_dev_refuses_a_newer_schema(tmp_path: Path) -> None:
    from sqlalchemy import text

    from bconnect.controller.storage.db import make_engine, migrate

    db = tmp_path / "newer.db"
    engine = make_engine(str(db))
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    result = subprocess.run(
        [*BCONNECT, "dev", "-api-listen-address", "127.0.0.1:0", "-database-url", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "newer than this bconnect" in result.stderr
    assert "Traceback" not in result.stderr
