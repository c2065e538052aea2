"""bconnect benchmarks: each figure is measured beside its reference in the same run.

    python benchmarks/run.py            # full run
    python benchmarks/run.py --quick    # seconds-long smoke run (CI)

Writes benchmarks/results.json. The server under test runs in its own process
(`bconnect dev` on an ephemeral 127.0.0.1 port); load comes from this process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
BCONNECT = [sys.executable, "-m", "bconnect"]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def time_command(argv: list[str], runs: int) -> float:
    """Median wall time of a command, in seconds."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_cli_startup(runs: int) -> dict:
    ref = time_command([sys.executable, "-c", "import click"], runs)
    main_help = time_command([*BCONNECT, "--help"], runs)
    ssh_help = time_command([*BCONNECT, "ssh", "--help"], runs)
    sessions_help = time_command([*BCONNECT, "sessions", "list", "--help"], runs)
    return {
        "python -c 'import click' (s)": round(ref, 4),
        "bconnect --help (s)": round(main_help, 4),
        "bconnect ssh --help (s)": round(ssh_help, 4),
        "bconnect sessions list --help (s)": round(sessions_help, 4),
        "bconnect --help / import click": round(main_help / ref, 2),
        "ssh --help / import click": round(ssh_help / ref, 2),
        "sessions list --help / import click": round(sessions_help / ref, 2),
        "target ratio": 2.0,
    }


def bench_list(server: Any, sessions: int, runs: int) -> dict:
    """The first page of 1,000 sessions, with ``sessions`` more in the store (seeded
    straight into the database beside the running controller)."""
    from seed import seed_sessions

    seed_sessions(server.database, sessions)
    headers = {"Authorization": f"Bearer {server.token}"}
    url = f"{server.addr}/v1/sessions?scope_id=p_1234567890&page_size=1000&include_terminated=true"
    samples = []
    count = 0
    body: dict = {}
    for _ in range(runs):
        start = time.perf_counter()
        body = requests.get(url, headers=headers, timeout=60).json()
        samples.append(time.perf_counter() - start)
        count = len(body["items"])
    return {
        "sessions in store": body.get("est_item_count"),
        "page items": count,
        "median ms": round(statistics.median(samples) * 1000, 1),
        "p99 ms": round(percentile(samples, 99) * 1000, 1),
        "target": "<= 200 ms for a page of 1,000 among 100,000",
    }


def machine() -> dict:
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "git revision": rev or "unknown",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results.json", help="where to write the figures"
    )
    args = parser.parse_args()
    quick = args.quick

    results: dict = {"machine": machine(), "quick": quick}
    results["cli start-up"] = bench_cli_startup(3 if quick else 15)
    from dataplane import run as dataplane

    results["data plane"] = dataplane(quick)
    from boundary import run as real_boundary

    # the same figures through a real Boundary, when BOUNDARY_BIN names one
    results["data plane, real Boundary"] = real_boundary(quick)
    from sshtarget import run as ssh_targets

    results["ssh targets"] = ssh_targets(quick)
    from concurrency import run as concurrency

    results["concurrent connections"] = concurrency(quick)
    import authorize

    results["authorize-session (SQLite)"] = authorize.run(quick)
    try:
        results["authorize-session (PostgreSQL)"] = authorize.with_postgres(quick, 8)
    except SystemExit as exc:  # no PostgreSQL binaries on this machine
        results["authorize-session (PostgreSQL)"] = {"skipped": str(exc)}
    from devserver import DevServer

    server = DevServer()
    try:
        results["sessions list"] = bench_list(
            server, sessions=2_000 if quick else 100_000, runs=2 if quick else 10
        )
    finally:
        server.stop()

    for section, figures in results.items():
        if not isinstance(figures, dict):
            continue
        print(f"\n{section}")
        for key, value in figures.items():
            print(f"  {key:<40} {value}")
    out = args.out
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    failed = results["authorize-session (SQLite)"]["errors"]
    failed += results["concurrent connections"]["errors"] if quick else 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
