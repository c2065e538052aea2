"""A real OpenSSH server for the tests: ``/usr/sbin/sshd`` (Debian's ``openssh-server``)
on 127.0.0.1 with a throwaway configuration, host key and client key, in the
foreground of a child process. The current user logs in with ``client_key``, and
:meth:`OpenSSH.password_user` with a password (``sftp`` is the internal one).
conftest.py makes the ``openssh`` fixture.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.constants import GUARD
from support.ports import free_port
from support.processes import end_process
from support.servers import require

SSHD = "/usr/sbin/sshd"


#: a system user who logs in with a password (made by the fixture when run as root)
PASSWORD_USER = "bconnect-pw"


@dataclass(frozen=True)
class OpenSSH:
    """A running sshd: ``port``, the ``user`` who may log in with ``client_key`` (a
    file), the ``host_public_key`` line, and ``home`` (a scratch directory)."""

    port: int
    user: str
    client_key: Path
    host_public_key: str
    home: Path

    def password_user(self) -> tuple[str, str]:
        """(name, password) of a system user this sshd lets in with a password: made,
        and given a fresh password, on each call. Needs root (skipped otherwise, failed
        under CI, which runs as root)."""
        if os.geteuid() != 0:
            message = "a password user needs root (useradd, chpasswd)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        if subprocess.run(["id", PASSWORD_USER], capture_output=True).returncode != 0:
            subprocess.run(
                ["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", PASSWORD_USER],
                check=True,
                timeout=GUARD,
            )
        password = secrets.token_urlsafe(18)
        subprocess.run(["chpasswd"], input=f"{PASSWORD_USER}:{password}\n", text=True, check=True)
        return PASSWORD_USER, password

    def ssh_options(self) -> list[str]:
        """ssh options for a test: no user config or agent, this key, no prompts."""
        return [
            "-F",
            "/dev/null",
            "-i",
            str(self.client_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bconnect-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=GUARD,
    )


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError("sshd did not start listening")


@contextlib.contextmanager
def running_openssh(base: Path) -> Iterator[OpenSSH]:
    """An sshd in ``base`` (a fresh directory), stopped when the block ends."""
    require("sshd", SSHD if os.path.exists(SSHD) else None)
    require("ssh-keygen")
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    host_key, client_key = base / "host_key", base / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    authorized = base / "authorized_keys"
    shutil.copy(base / "client_key.pub", authorized)
    os.chmod(authorized, 0o600)
    home = base / "home"
    home.mkdir()
    port = free_port()
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation
    config = base / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {base / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication yes",
                "PermitEmptyPasswords no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "Subsystem sftp internal-sftp",
                "PrintMotd no",
                "PrintLastLog no",
                "LogLevel INFO",
                "",
            ]
        )
    )
    log = base / "sshd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        _wait_listening(port, proc, log)
        yield OpenSSH(
            port=port,
            user=getpass.getuser(),
            client_key=client_key,
            host_public_key=(base / "host_key.pub").read_text().strip(),
            home=home,
        )
    finally:
        end_process(proc)
