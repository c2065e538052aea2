"""Benchmark ``POST /v1/targets/{id}:authorize-session`` under concurrent clients.

    python benchmarks/authorize.py                     # SQLite file in a temp dir
    python benchmarks/authorize.py --quick             # seconds-long smoke run
    python benchmarks/authorize.py --database-url postgresql://user:pw@host/db
    python benchmarks/authorize.py --pg                # a PostgreSQL of tests/support/pgserver.py

The server under test is ``bconnect dev`` in a child process on an ephemeral 127.0.0.1
port; the load comes from separate processes (one ``requests.Session`` each), so the
client's own GIL does not shape the figures. ``run()`` is what benchmarks/run.py calls.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import sys
import time
from pathlib import Path

import requests
from dataplane import cpu_seconds
from devserver import DevServer

HERE = Path(__file__).resolve().parent
TARGET = "ttcp_1234567890"
CLIENTS = 8


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def _client(url: str, token: str, start_at: float, warm_until: float, stop_at: float, out) -> None:  # noqa: ANN001
    """One load-generating process: requests back to back until ``stop_at``; only those
    started after ``warm_until`` count. Puts (latencies, errors, statuses) on ``out``."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    while time.time() < start_at:
        time.sleep(0.001)
    while True:
        now = time.time()
        if now >= stop_at:
            break
        start = time.perf_counter()
        try:
            resp = session.post(url, json={}, headers=headers, timeout=30)
            status = resp.status_code
            resp.content  # noqa: B018 - read the whole body
        except requests.RequestException:
            status = 0
        elapsed = time.perf_counter() - start
        if now < warm_until:
            continue
        latencies.append(elapsed)
        if status != 200:
            errors += 1
            statuses[status] = statuses.get(status, 0) + 1
    out.put((latencies, errors, statuses))


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), or None."""
    try:
        return cpu_seconds(pid)
    except (OSError, ValueError, IndexError):
        return None


def drive(
    addr: str,
    token: str,
    clients: int,
    seconds: float,
    warmup: float,
    server_pid: int | None = None,
) -> dict:
    """Load ``addr`` from ``clients`` processes for ``warmup`` + ``seconds``; with
    ``server_pid``, also report the server's CPU time per request over the window."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    url = f"{addr}/v1/targets/{TARGET}:authorize-session"
    # leave the spawned interpreters time to start before the clock runs
    start_at = time.time() + 1.5
    warm_until = start_at + warmup
    stop_at = warm_until + seconds
    procs = [
        ctx.Process(target=_client, args=(url, token, start_at, warm_until, stop_at, out))
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    deadline = stop_at + 60
    cpu = [None, None]
    try:
        if server_pid is not None:
            time.sleep(max(0.0, warm_until - time.time()))
            cpu[0] = _cpu_seconds(server_pid)
            time.sleep(max(0.0, stop_at - time.time()))
            cpu[1] = _cpu_seconds(server_pid)
        for _ in procs:
            while True:
                try:
                    mine, bad, codes = out.get(timeout=0.5)
                    break
                except queue.Empty:
                    dead = [p for p in procs if p.exitcode not in (None, 0)]
                    if dead or time.time() > deadline:
                        raise RuntimeError("a load-generating process failed") from None
            latencies.extend(mine)
            errors += bad
            for code, n in codes.items():
                statuses[code] = statuses.get(code, 0) + n
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    result = {
        "clients": clients,
        "seconds": seconds,
        "requests": len(latencies),
        "errors": errors,
        "req/s": round(len(latencies) / seconds, 1),
        "p50 ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
        "p99 ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
        "max ms": round(max(latencies) * 1000, 2) if latencies else None,
        "target": ">= 300 req/s, p99 <= 50 ms",
    }
    if None not in cpu and latencies:
        result["server CPU ms/req"] = round((cpu[1] - cpu[0]) / len(latencies) * 1000, 2)
        result["server CPU %"] = round((cpu[1] - cpu[0]) / seconds * 100, 1)
    if statuses:
        result["error statuses"] = {str(k): v for k, v in sorted(statuses.items())}
    return result


def run(quick: bool, database_url: str | None = None, clients: int = CLIENTS) -> dict:
    """Start `bconnect dev` on ``database_url`` (default: a fresh SQLite file), load it
    from ``clients`` processes and return the figures."""
    server = DevServer(database_url)
    try:
        result = drive(
            server.addr,
            server.token,
            clients,
            seconds=2.0 if quick else 10.0,
            warmup=0.5 if quick else 2.0,
            server_pid=server.proc.pid,
        )
    finally:
        server.stop()
    result["database"] = "PostgreSQL" if database_url and "postgres" in database_url else "SQLite"
    return result


def with_postgres(quick: bool, clients: int) -> dict:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from support.pgserver import PostgresServer, postgres_bindir

    bindir = postgres_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries found (initdb, postgres)")
    pg = PostgresServer(bindir)
    try:
        pg.init()
        pg.start()
        return run(quick, pg.new_database(), clients)
    finally:
        pg.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--database-url", help="SQLite path/URL or PostgreSQL URL")
    parser.add_argument("--pg", action="store_true", help="start a throwaway PostgreSQL")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    args = parser.parse_args()
    if args.pg:
        result = with_postgres(args.quick, args.clients)
    else:
        result = run(args.quick, args.database_url, args.clients)
    print(json.dumps(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
