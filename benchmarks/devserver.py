"""`bconnect dev` and `bconnect connect` as child processes, for the benchmarks.

Every listener is on a free 127.0.0.1 port; the database URL travels in the
environment (it may hold a password). With $BENCH_LOG_DIR set, children's output is
kept there (``<command>.log``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

BCONNECT = [sys.executable, "-m", "bconnect"]
PROJECT = "p_1234567890"  # bconnect dev's project
GUARD = 120.0  # seconds: every wait is bounded
_URL_ENV = "BCONNECT_BENCH_DATABASE_URL"


def drain(proc: subprocess.Popen, lines: list[str] | None = None) -> None:
    """Read the rest of a child's output in a thread (into ``lines`` when given, and
    under $BENCH_LOG_DIR when set), so that it never blocks on a full pipe."""

    def run() -> None:
        assert proc.stdout is not None
        directory = os.environ.get("BENCH_LOG_DIR")
        name = "-".join(a for a in proc.args[2:4] if not a.startswith("-")) or str(proc.pid)
        path = Path(directory, f"{name}.log") if directory else Path(os.devnull)
        with open(path, "a", encoding="utf-8") as out:
            for line in proc.stdout:
                if lines is not None:
                    lines.append(line)
                out.write(line)

    threading.Thread(target=run, daemon=True).start()


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class DevServer:
    """`bconnect dev`, logged in as the dev admin: ``addr`` (the API), ``cluster`` (the
    cluster listener), ``token``, ``headers``."""

    def __init__(
        self,
        database_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="bconnect-bench-")
        url = database_url or os.path.join(self.tmp.name, "bench.db")
        self.database = url  # may hold a password: never printed
        env = {**os.environ, _URL_ENV: url, **(extra_env or {})}
        self.proc = subprocess.Popen(
            [*BCONNECT, "dev",
             "-api-listen-address", "127.0.0.1:0",
             "-cluster-listen-address", "127.0.0.1:0",
             "-proxy-listen-address", "127.0.0.1:0",
             "-database-url", f"env://{_URL_ENV}",
             "-log-level", "warning", *extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        self.output: list[str] = []
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # never leave a dev server behind
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        found: dict[str, str] = {}
        assert self.proc.stdout is not None
        while time.monotonic() < deadline and len(found) < 2:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            m = re.search(r"(Controller|Cluster) API: (http://\S+)", line)
            if m:
                found[m.group(1)] = m.group(2)
        if len(found) < 2:
            raise RuntimeError("bconnect dev did not start:\n" + "".join(self.output[-20:]))
        self.addr, self.cluster = found["Controller"], found["Cluster"]
        drain(self.proc, self.output)
        while True:
            try:
                requests.get(f"{self.addr}/v1/scopes", timeout=5)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        resp = requests.post(
            f"{self.addr}/v1/auth-methods/ampw_1234567890:authenticate",
            json={
                "command": "login",
                "attributes": {"login_name": "admin", "password": "password"},
            },
            timeout=10,
        )
        resp.raise_for_status()
        self.token = resp.json()["attributes"]["token"]
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def target(self, port: int, name: str, **extra: Any) -> str:
        """A TCP target on 127.0.0.1:``port`` in the dev project; its id."""
        resp = requests.post(
            f"{self.addr}/v1/targets",
            json={
                "scope_id": PROJECT,
                "name": name,
                "address": "127.0.0.1",
                "attributes": {"default_port": port},
                **extra,
            },
            headers=self.headers,
            timeout=30,
        )
        resp.raise_for_status()
        return resp.json()["id"]

    def authorize(self, target: str) -> str:
        """An authorization token for ``target``, retried until a worker can serve it
        (a separately started worker has registered)."""
        deadline = time.monotonic() + GUARD
        while True:
            resp = requests.post(
                f"{self.addr}/v1/targets/{target}:authorize-session",
                json={},
                headers=self.headers,
                timeout=30,
            )
            if resp.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        resp.raise_for_status()
        return resp.json()["authorization_token"]

    def stop(self) -> None:
        stop(self.proc)
        self.tmp.cleanup()


def start_connect(authz: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    """`bconnect connect` for ``authz`` (read from stdin); the process and its port."""
    proc = subprocess.Popen(
        [*BCONNECT, "connect", "-authz-token", "-", "-format", "json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env,
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(authz + "\n")
    proc.stdin.close()
    return proc, listening_port(proc)


def listening_port(proc: subprocess.Popen) -> int:
    """The port a `connect -format json` process (bconnect's or boundary's) prints it
    listens on; then the rest of its output is drained."""
    assert proc.stdout is not None
    for _ in range(50):  # the JSON object, after any log line
        line = proc.stdout.readline()
        if line.startswith("{"):
            port = int(json.loads(line)["port"])
            break
        if not line:
            raise RuntimeError(f"{proc.args[0]} connect did not start")
    else:
        raise RuntimeError(f"{proc.args[0]} connect printed no listening information")
    drain(proc)
    return port
