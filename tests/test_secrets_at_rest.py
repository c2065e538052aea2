"""Secrets at rest: brokered credentials and session private keys are encrypted with the
operator's root key (Boundary's `kms "aead"` blocks), database files are 0600, dev keeps
its key beside a persistent database, keys rotate, and database URLs never show a
password."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from support.cli import run_bconnect
from support.cluster_harness import KMS_BLOCK, TEST_ROOT_KEY
from support.controller import start_controller
from support.dataplane import add_credential, make_target
from support.dev import login, start_dev

from bconnect.controller.kms import MAGIC, TEXT_PREFIX, RootKey
from bconnect.controller.storage import schema as t
from bconnect.controller.storage.db import display_database_url, make_engine
from bconnect.core.token import decode_authz_token

MARKER = "pw-marker-7f3a9c"


def brokered_target(ctl: Any, password: str = MARKER) -> tuple[str, str]:
    """A target with a brokered username/password credential: (target, credential)."""
    target = make_target(ctl, 22)
    attributes = {"username": "alice", "password": password}
    return target, add_credential(ctl, target, "username_password", attributes)


@pytest.mark.all_databases
def test_secrets_are_encrypted_in_the_database(fresh_controller) -> None:
    ctl = fresh_controller
    target, cred = brokered_target(ctl)
    auth = ctl.request("POST", f"/v1/targets/{target}:authorize-session", json={}).json()
    assert auth["credentials"][0]["credential"]["password"] == MARKER  # brokered as before
    key = decode_authz_token(auth["authorization_token"]).private_key
    with ctl.engine.connect() as conn:
        secret = conn.execute(select(t.credentials.c.secret).where(t.credentials.c.id == cred))
        stored_secret = secret.scalar_one()
        stored_key = conn.execute(
            select(t.sessions.c.private_key).where(t.sessions.c.id == auth["session_id"])
        ).scalar_one()
        everything = " ".join(
            str(row) for table in (t.credentials, t.sessions) for row in conn.execute(select(table))
        )
    assert stored_secret.startswith(TEXT_PREFIX) and MARKER not in stored_secret
    assert bytes(stored_key).startswith(MAGIC) and key not in bytes(stored_key)
    assert MARKER not in everything
    # the worker still gets the key it needs, through the cluster API
    import requests

    got = requests.get(
        f"{ctl.cluster_addr}/v1/cluster/sessions/{auth['session_id']}",
        headers={"Authorization": f"Bearer {ctl.worker_key}"},
        timeout=30,
    ).json()
    assert base64.b64decode(got["private_key"]) == key
    # a ciphertext moved to another row does not decrypt there (the row id is bound in)
    other_target, other = brokered_target(ctl, "another-password-1")
    with ctl.engine.begin() as conn:
        conn.execute(
            update(t.credentials).where(t.credentials.c.id == other).values(secret=stored_secret)
        )
    moved = ctl.request("POST", f"/v1/targets/{other_target}:authorize-session", json={})
    assert moved.status_code == 500


def test_sqlite_files_are_private(tmp_path: Path) -> None:
    ctl = start_controller(str(tmp_path / "private.db"))
    try:
        brokered_target(ctl)
    finally:
        ctl.stop()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("private.db")]
    assert {p.name for p in files} >= {"private.db"}
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}
    assert MARKER.encode() not in b"".join(p.read_bytes() for p in files)


def _dev(tmp_path: Path, db: Path) -> tuple[subprocess.Popen, str]:
    return start_dev(tmp_path, "-database-url", str(db))


def test_dev_keeps_its_key_beside_a_persistent_database(tmp_path: Path) -> None:
    import requests

    db = tmp_path / "dev.db"
    proc, addr = _dev(tmp_path, db)
    try:
        token = login(addr).json()["attributes"]["token"]
        ctl = _Remote(addr, token)
        target, _ = brokered_target(ctl)
    finally:
        proc.terminate()
        proc.wait(30)
    key_file = Path(str(db) + ".root-key")
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert len(base64.b64decode(key_file.read_text())) == 32
    proc, addr = _dev(tmp_path, db)  # restarted on the same file: the secrets still read
    try:
        token = login(addr).json()["attributes"]["token"]
        auth = requests.post(
            f"{addr}/v1/targets/{target}:authorize-session",
            json={},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert auth.json()["credentials"][0]["credential"]["password"] == MARKER
    finally:
        proc.terminate()
        proc.wait(30)


class _Remote:
    """Enough of RunningController for brokered_target against any address."""

    def __init__(self, addr: str, token: str) -> None:
        self.addr, self.token = addr, token

    def request(self, method: str, path: str, **kw: Any):  # noqa: ANN201
        import requests

        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, f"{self.addr}{path}", headers=headers, timeout=30, **kw)


def _config(tmp_path: Path, db: Path, keys: str) -> Path:
    path = tmp_path / "controller.toml"
    path.write_text(
        keys
        + f"""
[controller]
database_url = {json.dumps(str(db))}
worker_auth_key = "env://BCONNECT_TEST_WORKER_KEY"
[[listener]]
purpose = "api"
address = "127.0.0.1:0"
[[listener]]
purpose = "cluster"
address = "127.0.0.1:0"
"""
    )
    return path


def _kms(purpose: str, key_id: str, variable: str) -> str:
    return (
        f'\n[[kms]]\ntype = "aead"\npurpose = "{purpose}"\naead_type = "aes-gcm"\n'
        f'key = "env://{variable}"\nkey_id = "{key_id}"\n'
    )


def _rotate(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_bconnect(
        "database", "rotate-keys", "-config", str(config), "-format", "json", env=env, timeout=120
    )


def test_rotating_the_root_key(tmp_path: Path) -> None:
    db = tmp_path / "rotate.db"
    old = RootKey.from_text("old_root", TEST_ROOT_KEY)
    new_text = base64.b64encode(os.urandom(32)).decode()
    ctl = start_controller(str(db), settings={"kms_root": old})
    try:
        target, cred = brokered_target(ctl)
        sid = ctl.request("POST", f"/v1/targets/{target}:authorize-session", json={}).json()[
            "session_id"
        ]
    finally:
        ctl.stop()
    with make_engine(str(db)).begin() as conn:  # a secret stored before encryption existed
        legacy = conn.execute(select(t.credentials).where(t.credentials.c.id == cred)).one()
        plain = json.dumps({"password": MARKER})
        conn.execute(update(t.credentials).where(t.credentials.c.id == cred).values(secret=plain))
    env = {
        **os.environ,
        "BCONNECT_TEST_WORKER_KEY": "k" * 32,
        "OLD_KEY": TEST_ROOT_KEY,
        "NEW_KEY": new_text,
    }
    keys = _kms("root", "new_root", "NEW_KEY") + _kms("previous-root", "old_root", "OLD_KEY")
    rotated = _rotate(_config(tmp_path, db, keys), env)
    assert rotated.returncode == 0, rotated.stderr
    counts = json.loads(rotated.stdout)
    assert counts["root_key_id"] == "new_root" and counts["data_keys_rewrapped"] == 1
    assert counts["credentials.secret_encrypted"] >= 1
    assert counts["sessions.private_key_encrypted"] == 1
    assert counts["targets.ssh_host_key_encrypted"] == 0  # no ssh target here
    assert legacy.secret.startswith(TEXT_PREFIX)
    # only the new key from now on: everything still reads
    new = RootKey.from_text("new_root", new_text)
    ctl = start_controller(str(db), settings={"kms_root": new})
    try:
        auth = ctl.request("POST", f"/v1/targets/{target}:authorize-session", json={}).json()
        assert auth["credentials"][0]["credential"]["password"] == MARKER
        assert ctl.request("GET", f"/v1/sessions/{sid}").status_code == 200
    finally:
        ctl.stop()
    with make_engine(str(db)).connect() as conn:
        stored = conn.execute(select(t.credentials.c.secret).where(t.credentials.c.id == cred))
        assert stored.scalar_one().startswith(TEXT_PREFIX)
    # the old key alone no longer opens the database, and says why in one line
    again = _rotate(_config(tmp_path, db, _kms("root", "old_root", "OLD_KEY")), env)
    assert again.returncode == 1
    assert re.fullmatch(
        r"Error: data key kdk_\w+ is wrapped with root key 'new_root', which the "
        r'configuration does not have \(add it as purpose = "previous-root"\)\n',
        again.stderr,
    ), again.stderr


@pytest.mark.parametrize(
    ("url", "shown", "hidden"),
    [
        ("postgresql://u:p@ss@db.example/x", "postgresql+psycopg://u:***@db.example/x", "ss@"),
        ("postgresql://u:pw@h/db?sslpassword=zz9&sslmode=require", "sslpassword=***", "zz9"),
        ("postgresql://h/db?user=u&password=hunter2", "password=***", "hunter2"),
    ],
)
def test_database_urls_never_show_a_password(url: str, shown: str, hidden: str) -> None:
    assert shown in display_database_url(url) and hidden not in display_database_url(url)
    unreachable = (
        url.replace("db.example", "127.0.0.1:1")
        .replace("@h/", "@127.0.0.1:1/")
        .replace("//h/", "//127.0.0.1:1/")
    )
    migrate = run_bconnect("database", "migrate", "-database-url", unreachable)
    assert migrate.returncode == 1
    assert hidden not in migrate.stdout + migrate.stderr
    assert len(migrate.stderr.strip().splitlines()) == 1


def test_a_config_without_a_root_key_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "x.db", "")
    env = {**os.environ, "BCONNECT_TEST_WORKER_KEY": "k" * 32}
    result = run_bconnect("server", "-config", str(config), env=env)
    assert result.returncode != 0
    assert 'needs a [[kms]] block with purpose = "root"' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert KMS_BLOCK  # the tests' own configs carry one
