"""`bconnect dev` as a real process, on ephemeral ports (never the default ones)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import requests

from support.cli import BCONNECT
from support.constants import AUTH_METHOD, GUARD

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
