"""Many concurrent proxied connections: N connections through one client proxy and one
worker, each echoing 64 KiB and then held open until all have; errors, the peak memory
(VmHWM) of the worker and of the client proxy, and what each connection added to it.

Processes: an echo target, `bconnect dev` (the controller; its embedded worker is not
used), a separate `bconnect worker` (the one measured: the target's worker filter sends
the session there), `bconnect connect` (the client proxy), and this script as the load.

    python benchmarks/concurrency.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

from devserver import BCONNECT, GUARD, DevServer, drain, start_connect, stop

HERE = Path(__file__).resolve().parent
PAYLOAD = 64 * 1024


def _rss_mb(pid: int, field: str = "VmHWM") -> float:
    """The process's peak (VmHWM) or current (VmRSS) resident set size, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _peak_rss_mb(pid: int) -> float:
    return _rss_mb(pid)


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
    drain(proc)
    return [found[p] for p in patterns]


def _spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE,
        text=True,
        env=env,
    )


async def _one(port: int, payload: bytes, echoed: list[bool], release: asyncio.Event) -> bool:
    """Echo ``payload``, then hold the connection until ``release``."""
    ok = False
    writer = None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        await writer.drain()
        ok = await reader.readexactly(len(payload)) == payload
    except (OSError, asyncio.IncompleteReadError):
        pass
    echoed.append(ok)
    await release.wait()
    if writer is not None:
        writer.close()
    return ok


async def _load(port: int, count: int, pids: dict[str, int]) -> tuple[int, float, dict]:
    """``count`` connections at once; when every one has echoed (and is still open), the
    resident memory of each process in ``pids``; then they all close."""
    payload = os.urandom(PAYLOAD)
    start = time.perf_counter()
    echoed: list[bool] = []
    release = asyncio.Event()
    tasks = [asyncio.ensure_future(_one(port, payload, echoed, release)) for _ in range(count)]
    try:
        deadline = time.monotonic() + GUARD
        while len(echoed) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let the last reports and buffers settle
        held = {name: _rss_mb(pid, "VmRSS") for name, pid in pids.items()}
    finally:
        release.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), GUARD)
    return sum(not ok for ok in results), time.perf_counter() - start, held


def run(quick: bool) -> dict:
    count = 100 if quick else 1000
    procs: list[subprocess.Popen] = []
    dev = None
    try:
        echo = _spawn([sys.executable, str(HERE / "echo.py")])
        procs.append(echo)
        assert echo.stdout is not None
        echo_port = int(echo.stdout.readline())
        key = secrets.token_urlsafe(24)
        env = {**os.environ, "BENCH_WORKER_KEY": key, "BCONNECT_LOAD_PLUGINS": ""}
        dev = DevServer(
            extra_env={"BENCH_WORKER_KEY": key, "BCONNECT_LOAD_PLUGINS": ""},
            extra_args=("-worker-auth-key", "env://BENCH_WORKER_KEY"),
        )
        worker = _spawn(
            [*BCONNECT, "worker", "-controller-address", dev.cluster,
             "-worker-auth-key", "env://BENCH_WORKER_KEY", "-proxy-listen-address",
             "127.0.0.1:0", "-name", "bench-worker", "-log-level", "warning"],
            env,
        )  # fmt: skip
        procs.append(worker)
        _banner_values(worker, r"Worker proxy: (\S+)")
        target = dev.target(
            echo_port, "bench-concurrency", worker_filter='"/name" == "bench-worker"'
        )
        connect, port = start_connect(dev.authorize(target), env)
        procs.append(connect)
        time.sleep(0.5)  # the proxy's spare worker connection is made
        base = {"worker": _rss_mb(worker.pid, "VmRSS"), "proxy": _rss_mb(connect.pid, "VmRSS")}
        errors, elapsed, held = asyncio.run(
            _load(port, count, {"worker": worker.pid, "proxy": connect.pid})
        )
        peak = {"worker": _peak_rss_mb(worker.pid), "proxy": _peak_rss_mb(connect.pid)}
        per_conn = {k: round((peak[k] - base[k]) * 1024 / count, 1) for k in peak}
        per_held = {k: round((held[k] - base[k]) * 1024 / count, 1) for k in held}
        met = errors == 0 and max(peak.values()) <= 200
        return {
            "connections at once": count,
            "bytes echoed each": PAYLOAD,
            "errors": errors,
            "wall s": round(elapsed, 2),
            "worker peak RSS MB": peak["worker"],
            "client proxy peak RSS MB": peak["proxy"],
            "worker KiB per connection": per_conn["worker"],
            "client proxy KiB per connection": per_conn["proxy"],
            "worker RSS MB, all held open": held["worker"],
            "client proxy RSS MB, all held open": held["proxy"],
            "worker KiB per held connection": per_held["worker"],
            "client proxy KiB per held connection": per_held["proxy"],
            "target": "0 errors, <= 200 MB each (1,000 held open)",
            "met": met if not quick else "n/a (quick)",
        }
    finally:
        for proc in reversed(procs):
            stop(proc)
        if dev is not None:
            dev.stop()


if __name__ == "__main__":
    figures = run("--quick" in sys.argv[1:])
    for key, value in figures.items():
        print(f"  {key:<40} {value}")
    sys.exit(1 if figures["errors"] else 0)
