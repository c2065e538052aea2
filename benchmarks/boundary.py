"""The same data-plane figures through a real HashiCorp Boundary, for the README's side by
side table: `boundary connect` (its client proxy) -> `boundary dev`'s worker -> the echo
target. Runs only when BOUNDARY_BIN names a `boundary` binary (docs/development.md shows
how to build one) and PostgreSQL's binaries are on this machine (`boundary dev` needs a
database); otherwise it reports why it was skipped.

    BOUNDARY_BIN=~/.cache/boundary-bin/boundary python benchmarks/boundary.py [--quick]
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
GUARD = 120.0
DEV_TARGET = "ttcp_1234567890"
DEV_AUTH_METHOD = "ampw_1234567890"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _token(addr: str) -> str:
    body = {"command": "login", "attributes": {"login_name": "admin", "password": "password"}}
    resp = requests.post(f"{addr}/v1/auth-methods/{DEV_AUTH_METHOD}:authenticate", json=body)
    resp.raise_for_status()
    return str(resp.json()["attributes"]["token"])


class BoundaryDev:
    """`boundary dev` on a throwaway PostgreSQL database, its dev target at ``target_port``."""

    def __init__(self, binary: str, pg: Any, target_port: int) -> None:
        from support.pgserver import SUPERUSER_PASSWORD

        self.binary = binary
        self.home = tempfile.TemporaryDirectory(prefix="bconnect-bench-boundary-")
        db = f"boundary_{os.getpid()}"
        with pg.connect() as conn:
            conn.execute(f'CREATE DATABASE "{db}" TEMPLATE template0')
        url = pg.url(db, user="postgres", password=SUPERUSER_PASSWORD) + "?sslmode=disable"
        api, cluster, proxy, ops = (_free_port() for _ in range(4))
        self.log = open(Path(self.home.name, "boundary-dev.log"), "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [binary, "dev", "-database-url", url,
             "-api-listen-address", f"127.0.0.1:{api}",
             "-cluster-listen-address", f"127.0.0.1:{cluster}",
             "-proxy-listen-address", f"127.0.0.1:{proxy}",
             "-worker-public-address", f"127.0.0.1:{proxy}",
             "-ops-listen-address", f"127.0.0.1:{ops}",
             "-controller-public-cluster-address", f"127.0.0.1:{cluster}",
             "-host-address", "127.0.0.1",
             "-target-default-port", str(target_port),
             "-password", "password"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "HOME": self.home.name},
        )  # fmt: skip
        self.addr = f"http://127.0.0.1:{api}"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("boundary dev exited; see its log")
            try:
                token = _token(self.addr)
                workers = requests.get(
                    f"{self.addr}/v1/workers?scope_id=global",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                ).json()
                if any(w.get("last_status_time") for w in workers.get("items") or []):
                    self.token = token
                    self._unlimited_connections()
                    return
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError("boundary dev's worker never reported")

    def _unlimited_connections(self) -> None:
        """The dev target allows one connection per session; the benchmark opens many,
        as through bconnect's (whose dev target allows any number)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        url = f"{self.addr}/v1/targets/{DEV_TARGET}"
        version = requests.get(url, headers=headers, timeout=10).json()["version"]
        body = {"version": version, "session_connection_limit": -1}
        requests.patch(url, json=body, headers=headers, timeout=10).raise_for_status()

    def connect(self) -> tuple[subprocess.Popen, int]:
        """`boundary connect` to the dev target: the process and its listening port."""
        proc = subprocess.Popen(
            [self.binary, "connect", "-target-id", DEV_TARGET, "-addr", self.addr,
             "-token", "env://BOUNDARY_TOKEN", "-format", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env={**os.environ, "HOME": self.home.name, "BOUNDARY_TOKEN": self.token},
        )  # fmt: skip
        from devserver import listening_port

        return proc, listening_port(proc)

    def stop(self) -> None:
        from devserver import stop

        stop(self.proc)
        self.log.close()
        self.home.cleanup()


def run(quick: bool) -> dict:
    binary = os.environ.get("BOUNDARY_BIN", "")
    if not binary or not os.access(binary, os.X_OK):
        return {"skipped": "BOUNDARY_BIN does not name a boundary binary"}
    sys.path.insert(0, str(HERE.parent / "tests"))
    from support.pgserver import PostgresServer, postgres_bindir

    bindir = postgres_bindir()
    if bindir is None:
        return {"skipped": "no PostgreSQL binaries (boundary dev needs a database)"}
    import dataplane as dp

    total = (16 if quick else 1024) * 1024 * 1024
    count = 50 if quick else 1000
    echo, echo_port = dp._spawn_port([sys.executable, str(HERE / "echo.py")])
    relay_worker, worker_port = dp._spawn_port(
        [sys.executable, str(HERE / "relay.py"), str(echo_port)]
    )
    relay_client, chain_port = dp._spawn_port(
        [sys.executable, str(HERE / "relay.py"), str(worker_port)]
    )
    pg = PostgresServer(bindir)
    dev = None
    figures: dict[str, Any] = {}
    try:
        pg.init()
        pg.start()
        dev = BoundaryDev(binary, pg, echo_port)
        chain = dp.throughput(chain_port, total)
        figures["one"] = _measure(dev, lambda port, pids: dp.cpu_per_gib(
            pids, total, lambda: dp.throughput(port, total)))  # fmt: skip
        # latency before the parallel streams: Boundary's worker sometimes resets those
        # ("unexpected rsv bits"), and a session it broke so refuses what comes after
        direct = dp.latency(echo_port, count)
        figures["latency"] = _measure(dev, lambda port, pids: dp.latency(port, count))
        each = total // dp.STREAMS
        figures["eight"] = _measure(dev, lambda port, pids: dp.cpu_per_gib(
            pids, each * dp.STREAMS,
            lambda: dp.parallel_throughput(port, each, dp.STREAMS)))  # fmt: skip
    finally:
        if dev is not None:
            dev.stop()
        pg.close()
        for proc in (relay_client, relay_worker, echo):
            proc.terminate()
            proc.wait(10)
    mb = 1024 * 1024
    version = subprocess.run([binary, "version"], capture_output=True, text=True).stdout
    number = [ln.split()[-1] for ln in version.splitlines() if "Version Number" in ln]
    result: dict[str, Any] = {
        "boundary": number[0] if number else "",
        "relay chain MB/s": round(chain / mb, 1),
    }
    one, eight, lat = figures["one"], figures["eight"], figures["latency"]
    if isinstance(one, str):
        result["boundary MB/s"] = one
    else:
        result["boundary MB/s"] = round(one[0] / mb, 1)
        result["boundary / relay chain"] = round(one[0] / chain, 3)
        result["CPU s/GiB, 1 stream"] = one[1]
    if isinstance(eight, str):
        result[f"boundary {dp.STREAMS} streams MB/s"] = eight
    else:
        result[f"boundary {dp.STREAMS} streams MB/s"] = round(eight[0] / mb, 1)
        result[f"CPU s/GiB, {dp.STREAMS} streams"] = eight[1]
    if isinstance(lat, str):
        result["added p50 ms"] = lat
    else:
        result["added p50 ms"] = round(
            (statistics.median(lat) - statistics.median(direct)) * 1000, 2
        )
        result["added p99 ms"] = round((dp._pct(lat, 99) - dp._pct(direct, 99)) * 1000, 2)
    return result


#: tries of a figure, each through a fresh `boundary connect`
ATTEMPTS = 2


def _measure(dev: BoundaryDev, figure: Callable[[int, dict[str, int]], Any]) -> Any:
    """``figure(port, pids)`` through a fresh `boundary connect`; its value, or what went
    wrong in each of ``ATTEMPTS`` tries (a real Boundary client sometimes fails under
    this load: its worker closes a connection for "unexpected rsv bits", and the client
    then ends; the same figure often succeeds on the next try)."""
    from devserver import stop

    failures = []
    for _ in range(ATTEMPTS):
        client, port = dev.connect()
        try:
            pids = {"client proxy": client.pid, "worker (boundary dev)": dev.proc.pid}
            return figure(port, pids)
        except (OSError, RuntimeError) as exc:
            failures.append(str(exc))
        finally:
            stop(client)
    return f"failed {len(failures)} times: " + "; ".join(dict.fromkeys(failures))


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv[1:]), indent=2))
