"""Many concurrent proxied connections: N connections open at once through one client
proxy and one worker, each echoing 64 KiB; errors, and the peak memory (VmHWM) of the
worker and of the client proxy.

Processes: an echo target, `bconnect dev` (the controller; its embedded worker is not
used), a separate `bconnect worker` (the one measured: the target's worker filter sends
the session there), `bconnect connect` (the client proxy), and this script as the load.

    python benchmarks/concurrency.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
BCONNECT = [sys.executable, "-m", "bconnect"]
PAYLOAD = 64 * 1024
GUARD = 120.0  # seconds: every wait is bounded


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _banner_values(proc: subprocess.Popen, *patterns: str) -> list[str]:
    """The first match of each pattern in the process's start-up output (then the rest
    of its output is drained in a thread)."""
    assert proc.stdout is not None
    found: dict[str, str] = {}
    deadline = time.monotonic() + GUARD
    for line in proc.stdout:
        for pattern in patterns:
            match = re.search(pattern, line)
            if match and pattern not in found:
                found[pattern] = match.group(1)
        if len(found) == len(patterns) or time.monotonic() > deadline:
            break
    if len(found) != len(patterns):
        raise RuntimeError(f"{proc.args} did not start")
    threading.Thread(target=_drain, args=(proc,), daemon=True).start()
    return [found[p] for p in patterns]


def _drain(proc: subprocess.Popen) -> None:
    """Read the rest of a child's output; keep it under $BENCH_LOG_DIR when set."""
    assert proc.stdout is not None
    directory = os.environ.get("BENCH_LOG_DIR")
    if not directory:
        proc.stdout.read()
        return
    name = "-".join(a for a in proc.args[2:4] if not a.startswith("-")) or str(proc.pid)
    with open(Path(directory, f"{name}.log"), "a", encoding="utf-8") as out:
        for line in proc.stdout:
            out.write(line)


def _spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE,
        text=True,
        env=env,
    )


async def _one(port: int, payload: bytes) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(payload)
        await writer.drain()
        got = await reader.readexactly(len(payload))
        return got == payload
    except (OSError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()


async def _load(port: int, count: int) -> tuple[int, float]:
    payload = os.urandom(PAYLOAD)
    start = time.perf_counter()
    results = await asyncio.wait_for(
        asyncio.gather(*(_one(port, payload) for _ in range(count))), GUARD
    )
    return sum(not ok for ok in results), time.perf_counter() - start


def run(quick: bool) -> dict:
    count = 100 if quick else 1000
    procs: list[subprocess.Popen] = []
    tmp = tempfile.TemporaryDirectory(prefix="bconnect-bench-cc-")
    try:
        echo = _spawn([sys.executable, str(HERE / "echo.py")])
        procs.append(echo)
        assert echo.stdout is not None
        echo_port = int(echo.stdout.readline())
        key = secrets.token_urlsafe(24)
        env = {**os.environ, "BENCH_WORKER_KEY": key, "BCONNECT_LOAD_PLUGINS": ""}
        dev = _spawn(
            [*BCONNECT, "dev", "-api-listen-address", "127.0.0.1:0",
             "-cluster-listen-address", "127.0.0.1:0", "-proxy-listen-address", "127.0.0.1:0",
             "-worker-auth-key", "env://BENCH_WORKER_KEY",
             "-database-url", os.path.join(tmp.name, "b.db"), "-log-level", "warning"],
            env,
        )  # fmt: skip
        procs.append(dev)
        addr, cluster = _banner_values(
            dev, r"Controller API: (http://\S+)", r"Cluster API: (http://\S+)"
        )
        worker = _spawn(
            [*BCONNECT, "worker", "-controller-address", cluster,
             "-worker-auth-key", "env://BENCH_WORKER_KEY", "-proxy-listen-address",
             "127.0.0.1:0", "-name", "bench-worker", "-log-level", "warning"],
            env,
        )  # fmt: skip
        procs.append(worker)
        _banner_values(worker, r"Worker proxy: (\S+)")
        token = requests.post(
            f"{addr}/v1/auth-methods/ampw_1234567890:authenticate",
            json={"attributes": {"login_name": "admin", "password": "password"}},
            timeout=30,
        ).json()["attributes"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        target = requests.post(
            f"{addr}/v1/targets",
            json={
                "scope_id": "p_1234567890",
                "name": "bench-concurrency",
                "address": "127.0.0.1",
                "worker_filter": '"/name" == "bench-worker"',
                "attributes": {"default_port": echo_port},
            },
            headers=headers,
            timeout=30,
        ).json()["id"]
        deadline = time.monotonic() + GUARD
        while True:  # until the worker has registered and reported
            resp = requests.post(
                f"{addr}/v1/targets/{target}:authorize-session",
                json={},
                headers=headers,
                timeout=30,
            )
            if resp.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        authz = resp.json()["authorization_token"]
        connect = _spawn([*BCONNECT, "connect", "-authz-token", "-", "-format", "json"], env)
        procs.append(connect)
        assert connect.stdin is not None and connect.stdout is not None
        connect.stdin.write(authz + "\n")
        connect.stdin.close()
        port = int(json.loads(connect.stdout.readline())["port"])
        threading.Thread(target=_drain, args=(connect,), daemon=True).start()
        errors, elapsed = asyncio.run(_load(port, count))
        return {
            "connections at once": count,
            "bytes echoed each": PAYLOAD,
            "errors": errors,
            "wall s": round(elapsed, 2),
            "worker peak RSS MB": _peak_rss_mb(worker.pid),
            "client proxy peak RSS MB": _peak_rss_mb(connect.pid),
            "target": "0 errors; worker RSS <= 300 MB",
        }
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()


if __name__ == "__main__":
    figures = run("--quick" in sys.argv[1:])
    for key, value in figures.items():
        print(f"  {key:<40} {value}")
    sys.exit(1 if figures["errors"] else 0)
