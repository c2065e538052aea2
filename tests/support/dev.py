"""`bconnect dev` as a real process, on ephemeral ports (never the default ones)."""

from __future__ import annotations

import re
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from support.cli import BCONNECT
from support.constants import AUTH_METHOD, GUARD
from support.ports import free_port
from support.wait import wait_for

#: the listen flags that put every listener of `bconnect dev` on an ephemeral port
EPHEMERAL_LISTENERS = (
    "-api-listen-address",
    "127.0.0.1:0",
    "-cluster-listen-address",
    "127.0.0.1:0",
    "-proxy-listen-address",
    "127.0.0.1:0",
)


def start_dev(directory: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`bconnect dev` (more flags in ``extra``) in ``directory`` on ephemeral ports, once
    its API answers: the process and the API's address."""
    proc = subprocess.Popen(
        [*BCONNECT, "dev", *EPHEMERAL_LISTENERS, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=directory,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + GUARD
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
    """The dev admin's password login at ``addr``."""
    return requests.post(
        f"{addr}/v1/auth-methods/{AUTH_METHOD}:authenticate",
        json={"command": "login", "attributes": {"login_name": "admin", "password": "password"}},
        timeout=10,
    )


class DevProcess:
    """`bconnect dev` on fixed ports and a database file in ``directory``, restartable
    (``kill`` is SIGKILL). ``file_size_limit``: the process's RLIMIT_FSIZE in bytes (a
    write past it fails with EFBIG, as on a full disk)."""

    def __init__(self, directory: Path, file_size_limit: int | None = None) -> None:
        self.db = directory / "dev.db"
        self.ports = [free_port() for _ in range(3)]
        self.log = directory / "dev.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.addr = f"http://127.0.0.1:{self.ports[0]}"
        self.file_size_limit = file_size_limit
        self._token = ""

    def _limits(self) -> None:  # runs in the child, before exec
        if self.file_size_limit is not None:
            limit = self.file_size_limit
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    def start(self) -> None:
        api, cluster, proxy = self.ports
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*BCONNECT, "dev", "-database-url", str(self.db),
                 "-api-listen-address", f"127.0.0.1:{api}",
                 "-cluster-listen-address", f"127.0.0.1:{cluster}",
                 "-proxy-listen-address", f"127.0.0.1:{proxy}", "-job-interval", "0.2"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=self._limits if self.file_size_limit is not None else None,
            )  # fmt: skip
        assert wait_for(self._ready), self.log.read_text()

    def _ready(self) -> bool:
        try:
            resp = login(self.addr)
        except requests.RequestException:
            return False
        if resp.ok:
            self._token = resp.json()["attributes"]["token"]
        return resp.ok

    def token(self, who: str = "admin") -> str:
        assert who == "admin", "the dev process signs in its admin only"
        return self._token

    def request(self, method: str, path: str, who: str = "admin", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token(who)}"}
        return requests.request(method, f"{self.addr}{path}", headers=headers, timeout=30, **kw)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(GUARD)
