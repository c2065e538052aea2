"""The built-in helpers end to end with the real clients: ``python -m bconnect ssh |
postgres | http`` against a real controller and embedded worker (the ``dataplane``
fixture), through the real ``ssh``/``sshpass``, ``psql`` and ``curl`` to real servers on
127.0.0.1: an asyncssh server (public key and password logins, exec requests), a
PostgreSQL server started from the machine's binaries (SCRAM password authentication),
and ``http.server``.

What the machine needs: ``ssh`` (openssh-client), ``sshpass``, ``psql`` and the
PostgreSQL server binaries (``initdb``, ``postgres``: on PATH, under ``pg_config
--bindir`` or ``/usr/lib/postgresql/*/bin``), ``curl``. A missing program skips its
tests on a developer's machine and fails them under CI (``CI`` set in the environment).
The PostgreSQL server runs as ``nobody`` when the tests run as root (it refuses root).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_bconnect
from support.constants import GUARD
from support.dataplane import add_credential, all_ended, make_alias, make_target, sessions_of
from support.plugin_dists import bconnect_env
from support.servers import (
    PG_PASSWORD,
    SSH_PASSWORD,
    PostgresRole,
    SSHServer,
    require,
    ssh_key_target,
)
from support.wait import wait_for

# no user config, no known_hosts writes, no prompts for the key logins
SSH_OPTIONS = (
    "-F",
    "/dev/null",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
)


def _glue_missing() -> bool:
    """True while the plugin manager (the other half of this feature) does not exist."""
    return importlib.util.find_spec("bconnect.plugins.manager") is None


pytestmark = pytest.mark.skipif(
    _glue_missing(), reason="bconnect.plugins.manager (the helper glue) is not written yet"
)


# ---------------------------------------------------------------------- running bconnect
@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A hermetic environment; TMPDIR is the test's, so leftover temp files show."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return bconnect_env(tmp_path / "cache", TMPDIR=str(tmp))


def bconnect(
    ctl: Any, env: dict[str, str], *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m bconnect ARGS`` as admin, without a terminal (nothing can prompt)."""
    full = {**env, "BOUNDARY_ADDR": ctl.addr, "BOUNDARY_TOKEN": ctl.token("admin")}
    full.update(extra_env or {})
    return run_bconnect(*args, env=full, timeout=GUARD * 2, start_new_session=True)


def leftovers(env: dict[str, str]) -> list[str]:
    """bconnect's private temp dirs still in TMPDIR (there must be none)."""
    return [p.name for p in Path(env["TMPDIR"]).iterdir() if p.name.startswith("bconnect-")]


def assert_sessions_ended(ctl: Any, target: str) -> None:
    """Every session of ``target`` is canceled or terminated (bconnect tore it down)."""
    assert wait_for(lambda: all_ended(ctl, target)), sessions_of(ctl, target)


# ---------------------------------------------------------------------- the SSH server
def test_ssh_with_a_brokered_private_key(dataplane, ssh_server: SSHServer, env) -> None:
    require("ssh")
    target, cred = ssh_key_target(dataplane, ssh_server)
    result = bconnect(
        dataplane,
        env,
        "ssh",
        "-target-id",
        target,
        "-remote-command",
        "echo hello; exit 3",
        "--",
        *SSH_OPTIONS,
        "-o",
        "BatchMode=yes",
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == "hello\n"  # the key was consumed: no "Credentials:" block
    assert cred not in result.stdout + result.stderr
    assert ssh_server.logins == [("keyuser", "publickey")]
    assert ssh_server.commands == ["echo hello; exit 3"]
    assert leftovers(env) == []
    assert_sessions_ended(dataplane, target)

    # -username overrides the brokered user name: the server refuses that user
    other = bconnect(
        dataplane,
        env,
        "ssh",
        "-target-id",
        target,
        "-username",
        "someone-else",
        "-remote-command",
        "echo no",
        "--",
        *SSH_OPTIONS,
        "-o",
        "BatchMode=yes",
    )
    assert other.returncode == 255, other.stderr  # ssh's own exit code for a failed login
    assert "Permission denied" in other.stderr
    assert ssh_server.commands == ["echo hello; exit 3"]
    assert leftovers(env) == []


def test_ssh_with_a_brokered_password_through_sshpass(
    dataplane, ssh_server: SSHServer, env
) -> None:
    require("ssh")
    require("sshpass")
    target = make_target(dataplane, ssh_server.port)
    add_credential(
        dataplane,
        target,
        "username_password",
        {"username": "pwuser", "password": SSH_PASSWORD},
    )
    result = bconnect(
        dataplane,
        env,
        "ssh",
        "-target-id",
        target,
        "-remote-command",
        "echo via sshpass; exit 0",
        "--",
        *SSH_OPTIONS,
        "-o",
        "PubkeyAuthentication=no",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "via sshpass\n"
    assert SSH_PASSWORD not in result.stdout + result.stderr
    assert ssh_server.logins == [("pwuser", "password")]

    # the exit code passes through sshpass and bconnect too
    failing = bconnect(
        dataplane,
        env,
        "ssh",
        "-target-id",
        target,
        "-style",
        "sshpass",
        "-remote-command",
        "echo bye; exit 42",
        "--",
        *SSH_OPTIONS,
        "-o",
        "PubkeyAuthentication=no",
    )
    assert (failing.returncode, failing.stdout) == (42, "bye\n"), failing.stderr
    assert leftovers(env) == []
    assert_sessions_ended(dataplane, target)


def test_ssh_by_alias(dataplane, ssh_server: SSHServer, env) -> None:
    require("ssh")
    target, _ = ssh_key_target(dataplane, ssh_server)
    make_alias(dataplane, "ssh.box", target)
    for command in (("ssh",), ("connect", "ssh")):  # Boundary's positional alias, both ways
        result = bconnect(
            dataplane,
            env,
            *command,
            "ssh.box",
            "-remote-command",
            "echo by alias",
            "--",
            *SSH_OPTIONS,
            "-o",
            "BatchMode=yes",
        )
        assert (result.returncode, result.stdout) == (0, "by alias\n"), result.stderr
    assert ssh_server.logins == [("keyuser", "publickey")] * 2
    assert leftovers(env) == []
    assert_sessions_ended(dataplane, target)


# ---------------------------------------------------------------------- PostgreSQL
def test_postgres_with_a_brokered_password(dataplane, postgres_server: PostgresRole, env) -> None:
    target = make_target(dataplane, postgres_server.port)
    add_credential(
        dataplane, target, "username_password", {"username": "bob", "password": PG_PASSWORD}
    )
    result = bconnect(
        dataplane, env, "postgres", "-target-id", target, "-username", "bob", "--", "-c", "select 1"
    )
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[:4] == ["?column?", "----------", "1", "(1 row)"], result.stdout
    assert PG_PASSWORD not in result.stdout + result.stderr
    assert leftovers(env) == []

    # psql's own result, through bconnect: which user, which database, over TCP
    who = bconnect(
        dataplane,
        env,
        "postgres",
        "-target-id",
        target,
        "--",
        "-tA",
        "-c",
        "select current_user || '@' || current_database()",
    )
    assert (who.returncode, who.stdout) == (0, "bob@bob\n"), who.stderr
    assert_sessions_ended(dataplane, target)


def test_postgres_by_alias(dataplane, postgres_server: PostgresRole, env) -> None:
    target = make_target(dataplane, postgres_server.port)
    add_credential(
        dataplane, target, "username_password", {"username": "bob", "password": PG_PASSWORD}
    )
    make_alias(dataplane, "db.bob", target)
    result = bconnect(
        dataplane,
        env,
        "postgres",
        "db.bob",
        "-username",
        "bob",
        "--",
        "-tA",
        "-c",
        "select current_user",
    )
    assert (result.returncode, result.stdout) == (0, "bob\n"), result.stderr
    assert leftovers(env) == []
    assert_sessions_ended(dataplane, target)


def test_postgres_wrong_password_passes_psql_exit_code(
    dataplane, postgres_server: PostgresRole, env
) -> None:
    target = make_target(dataplane, postgres_server.port)
    add_credential(
        dataplane, target, "username_password", {"username": "bob", "password": "wrong-pw-123"}
    )
    result = bconnect(dataplane, env, "postgres", "-target-id", target, "--", "-c", "select 1")
    assert result.returncode == 2, result.stderr  # psql: "connection to server failed"
    assert 'password authentication failed for user "bob"' in result.stderr
    assert result.stdout == ""
    assert leftovers(env) == []
    assert_sessions_ended(dataplane, target)


# ---------------------------------------------------------------------- HTTP
def test_http_prints_the_body(dataplane, http_server, env) -> None:
    require("curl")
    port, seen = http_server
    target = make_target(dataplane, port)
    result = bconnect(dataplane, env, "http", "-target-id", target, "-path", "/hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello over http\n"
    assert seen[0][:2] == ("GET", "/hello")

    named = bconnect(
        dataplane,
        env,
        "http",
        "-target-id",
        target,
        "-host",
        "web.internal",
        "-method",
        "PUT",
        "-path",
        "hello",
        "--",
        "-sS",
    )
    assert (named.returncode, named.stdout) == (0, "hello over http\n"), named.stderr
    assert seen[1] == ("PUT", "/hello", "web.internal")
    assert_sessions_ended(dataplane, target)


# ---------------------------------------------------------------------- no secret in argv
STAND_IN = """#!{python}
import json, os, stat, sys
name = os.path.basename(sys.argv[0])
with open("/proc/self/cmdline", "rb") as f:
    cmdline = [a.decode() for a in f.read().split(b"\\0") if a]
files = {{}}
for var in ("PGPASSFILE",):
    if var in os.environ:
        path = os.environ[var]
        files[var] = {{"mode": stat.S_IMODE(os.stat(path).st_mode), "path": path,
                      "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode),
                      "content": open(path).read()}}
for i, arg in enumerate(sys.argv):
    if arg == "-i" and i + 1 < len(sys.argv):
        path = sys.argv[i + 1]
        files["key"] = {{"mode": stat.S_IMODE(os.stat(path).st_mode), "path": path,
                        "content": open(path).read()}}
# every process's command line on the machine while the helper runs (bconnect itself,
# its proxy, the controller, this stand-in's parents)
everyone = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            with open(f"/proc/{{pid}}/cmdline", "rb") as f:
                everyone.append(f.read().replace(b"\\0", b" ").decode(errors="replace"))
        except OSError:
            pass
report = {{"name": name, "argv": sys.argv[1:], "cmdline": cmdline,
          "env_keys": sorted(os.environ), "files": files,
          "sshpass_set": bool(os.environ.get("SSHPASS")), "all_cmdlines": everyone}}
with open(os.environ["STAND_IN_DUMP"], "a") as out:
    out.write(json.dumps(report) + "\\n")
"""


@pytest.fixture
def stand_ins(tmp_path: Path) -> tuple[Path, Path]:
    """``ssh``, ``sshpass`` and ``psql`` stand-ins that record what they were given."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("ssh", "sshpass", "psql"):
        script = bindir / name
        script.write_text(STAND_IN.format(python=sys.executable))
        script.chmod(0o755)
    return bindir, tmp_path / "dump.jsonl"


def test_no_secret_reaches_a_command_line(dataplane, echo_server, env, stand_ins) -> None:
    bindir, dump = stand_ins
    extra = {"PATH": f"{bindir}{os.pathsep}{env['PATH']}", "STAND_IN_DUMP": str(dump)}
    key_pem = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1ib2R5\n"
        "-----END OPENSSH PRIVATE KEY-----"
    )
    target = make_target(dataplane, echo_server.port)
    add_credential(
        dataplane, target, "username_password", {"username": "bob", "password": PG_PASSWORD}
    )
    # at debug level, so that a secret in any log line would show
    extra["BCONNECT_LOG_LEVEL"] = "debug"
    runs = [bconnect(dataplane, env, "postgres", "-target-id", target, extra_env=extra)]
    runs.append(bconnect(dataplane, env, "ssh", "-target-id", target, extra_env=extra))
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    key_target = make_target(dataplane, echo_server.port)
    add_credential(
        dataplane, key_target, "ssh_private_key", {"username": "keyuser", "private_key": key_pem}
    )
    runs.append(bconnect(dataplane, env, "ssh", "-target-id", key_target, extra_env=extra))
    assert runs[-1].returncode == 0, runs[-1].stderr
    assert all("[DEBUG]" in r.stderr for r in runs)  # the logs were on

    psql, sshpass, ssh = (json.loads(line) for line in dump.read_text().splitlines())
    secrets = (PG_PASSWORD, "c2VjcmV0LWtleS1ib2R5", "PRIVATE KEY", dataplane.token("admin"))
    for report in (psql, sshpass, ssh):
        assert len(report["all_cmdlines"]) > 3
        for secret in secrets:
            assert secret not in "\n".join(report["cmdline"]), report["name"]
            assert secret not in "\n".join(report["argv"]), report["name"]
            assert secret not in "\n".join(report["all_cmdlines"]), report["name"]
    for run in runs:  # nor in any log line, at debug level
        for secret in secrets:
            assert secret not in run.stdout + run.stderr
        assert "PGPASSWORD" not in report["env_keys"]
        assert {"BOUNDARY_PROXIED_PORT", "BOUNDARY_PROXIED_ADDR"} <= set(report["env_keys"])

    assert psql["name"] == "psql"
    assert psql["argv"][:4] == ["-p", psql["argv"][1], "-h", "127.0.0.1"]
    assert psql["argv"][-2:] == ["-U", "bob"]
    pgpass = psql["files"]["PGPASSFILE"]
    assert (pgpass["mode"], pgpass["dir_mode"]) == (0o600, 0o700)
    assert pgpass["content"].endswith(":bob:b\\:o\\\\b pw#1 'quoted'\n")
    assert not Path(pgpass["path"]).exists()

    assert sshpass["name"] == "sshpass"
    assert sshpass["argv"][:2] == ["-e", "ssh"]
    assert sshpass["sshpass_set"] and "SSHPASS" in sshpass["env_keys"]
    assert sshpass["argv"][-3:] == ["-l", "bob", "127.0.0.1"]

    assert ssh["name"] == "ssh"
    key = ssh["files"]["key"]
    assert key["mode"] == 0o600 and key["content"] == key_pem + "\n"
    assert not Path(key["path"]).exists()
    assert ssh["argv"][-5:] == ["-o", "IdentitiesOnly=yes", "-l", "keyuser", "127.0.0.1"]
    assert "SSHPASS" not in ssh["env_keys"]
    assert leftovers(env) == []
