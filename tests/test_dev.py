"""`bconnect dev` as a user runs it: a real process, real signals, real ports."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest
import requests
from support.cli import run_bconnect
from support.constants import DEV_PORTS, PROJECT
from support.controller import new_database
from support.dev import EPHEMERAL_LISTENERS, login, start_dev
from support.ports import busy_port


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
            json={"scope_id": PROJECT, "name": "survives-restart", "address": "127.0.0.1"},
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
            f"{addr}/v1/targets?scope_id={PROJECT}",
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
    with busy_port() as port:
        result = run_bconnect(
            "dev",
            "-api-listen-address",
            f"127.0.0.1:{port}",
            "-cluster-listen-address",
            "127.0.0.1:0",
            "-proxy-listen-address",
            "127.0.0.1:0",
        )
    assert result.returncode == 1
    err = result.stderr.strip()
    assert err.startswith(f"Error: cannot listen on 127.0.0.1:{port}") and "in use" in err
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
    result = run_bconnect("dev", *EPHEMERAL_LISTENERS, "-database-url", str(db))
    assert result.returncode == 1
    assert "newer than this bconnect" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_default_ports_are_boundarys_and_held_by_the_suite(
    default_ports_held: list[int],
) -> None:
    """`bconnect dev` listens on Boundary's dev ports by default (read here, not bound: a
    developer's own `bconnect dev` may hold them), and conftest.py holds those same ports
    for the whole session: no test can bind one, whether a dev server runs or not."""
    from bconnect.cli.dev import DEFAULT_API, DEFAULT_CLUSTER, DEFAULT_PROXY
    from bconnect.config import DEFAULT_PORTS

    assert (DEFAULT_API, DEFAULT_CLUSTER, DEFAULT_PROXY) == (
        "127.0.0.1:9200",
        "127.0.0.1:9201",
        "127.0.0.1:9202",
    )
    assert DEFAULT_PORTS == {"api": 9200, "cluster": 9201, "proxy": 9202, "ops": 9203}
    assert set(DEFAULT_PORTS.values()) == set(DEV_PORTS)
    assert set(default_ports_held) <= set(DEV_PORTS)
    for port in DEV_PORTS:  # held here, or by whatever had it first
        with socket.socket() as stray, pytest.raises(OSError):
            stray.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            stray.bind(("127.0.0.1", port))
            stray.listen()
