"""Data-plane benchmarks: throughput and connect+first-byte latency through the proxy,
each beside its references measured in the same run:

- direct TCP to the echo target;
- a plain two-hop asyncio relay chain without TLS, shaped like ours
  (listener relay -> worker relay -> target), on asyncio streams (relay.py);
- the same chain on ``asyncio.BufferedProtocol`` (relay_buffered.py): the fastest a
  pure-Python asyncio relay gets;
- bconnect: `bconnect connect` (client proxy) -> `bconnect dev`'s worker -> target.

Every server is its own process; the load comes from this one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from devserver import DevServer, start_connect, stop

HERE = Path(__file__).resolve().parent
CHUNK = 256 * 1024
STREAMS = 8
ROUNDS = 4
#: the issue's targets (docs: README "Performance")
TARGET_VS_CHAIN = 1.0
TARGET_VS_BUFFERED = 0.55
TARGET_ADDED_P50_MS = 3.0
TARGET_ADDED_P99_MS = 8.0


def _spawn_port(argv: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def throughput(port: int, total: int) -> float:
    """Echo ``total`` bytes through 127.0.0.1:port; payload bytes per second."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    block = os.urandom(CHUNK)
    failed: list[OSError] = []

    def send() -> None:
        sent = 0
        try:
            while sent < total:
                n = min(CHUNK, total - sent)
                sock.sendall(block[:n])
                sent += n
        except OSError as exc:  # the proxy broke the connection: the reader reports it
            failed.append(exc)

    start = time.perf_counter()
    sender = threading.Thread(target=send)
    sender.start()
    got = 0
    buf = bytearray(CHUNK)
    try:
        while got < total:
            n = sock.recv_into(buf)
            if not n:
                raise RuntimeError(f"connection closed after {got} of {total} bytes")
            got += n
    finally:
        elapsed = time.perf_counter() - start
        with contextlib.suppress(OSError):  # wakes a sender still blocked in sendall
            sock.shutdown(socket.SHUT_RDWR)
        sender.join()
        sock.close()
    if failed:
        raise failed[0]
    return total / elapsed


def parallel_throughput(port: int, total: int, streams: int) -> float:
    """``streams`` echo connections at once, ``total`` bytes each; aggregate bytes/s."""
    errors: list[BaseException] = []

    def one() -> None:
        try:
            throughput(port, total)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(streams)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} of {streams} parallel streams failed: {errors[0]}")
    return streams * total / elapsed


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    return sum(cpu_times(pid))


def cpu_split_per_gib(
    pids: dict[str, int], moved: int, run: Callable[[], float]
) -> tuple[float, dict[str, tuple[float, float]]]:
    """Run ``run`` (which returns a rate) and the user and system CPU seconds each
    process spent per GiB it relayed (``moved`` bytes each way: both directions pass
    through every process)."""
    before = {name: cpu_times(pid) for name, pid in pids.items()}
    rate = run()
    gib = 2 * moved / 2**30
    used = {}
    for name, pid in pids.items():
        user, system = cpu_times(pid)
        used[name] = ((user - before[name][0]) / gib, (system - before[name][1]) / gib)
    return rate, used


def cpu_per_gib(pids: dict[str, int], moved: int, run: Callable[[], float]) -> tuple[float, dict]:
    """``cpu_split_per_gib`` with each process's user and system time added up."""
    rate, split = cpu_split_per_gib(pids, moved, run)
    return rate, {name: round(user + system, 2) for name, (user, system) in split.items()}


def latency(port: int, count: int) -> list[float]:
    """Seconds from connect() to the first echoed byte, ``count`` times in a row."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"x")
        if sock.recv(1) != b"x":
            raise RuntimeError("no echo")
        samples.append(time.perf_counter() - start)
        sock.close()
    return samples


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


class Proxied:
    """bconnect dev (controller + worker) and bconnect connect, as child processes."""

    def __init__(self, target_port: int) -> None:
        self.dev = DevServer()
        self.connect: subprocess.Popen | None = None
        try:
            authz = self.dev.authorize(self.dev.target(target_port, "bench-echo"))
            self.connect, self.port = start_connect(authz)
        except BaseException:
            self.stop()  # never leave the dev server or the proxy behind
            raise

    def stop(self) -> None:
        stop(self.connect)
        self.dev.stop()


def _median_split(splits: Iterable[tuple[float, float]]) -> str:
    """``"user + system"`` seconds, each the median over rounds."""
    users, systems = zip(*splits, strict=True)
    return f"{statistics.median(users):.2f} + {statistics.median(systems):.2f}"


def run(quick: bool) -> dict:
    total = (16 if quick else 1024) * 1024 * 1024
    count = 50 if quick else 1000
    echo, echo_port = _spawn_port([sys.executable, str(HERE / "echo.py")])
    relay_worker, worker_port = _spawn_port(
        [sys.executable, str(HERE / "relay.py"), str(echo_port)]
    )
    relay_client, chain_port = _spawn_port(
        [sys.executable, str(HERE / "relay.py"), str(worker_port)]
    )
    buffered_worker, buffered_worker_port = _spawn_port(
        [sys.executable, str(HERE / "relay_buffered.py"), str(echo_port)]
    )
    buffered_client, buffered_port = _spawn_port(
        [sys.executable, str(HERE / "relay_buffered.py"), str(buffered_worker_port)]
    )
    proxied = None
    try:
        proxied = Proxied(echo_port)
        assert proxied.connect is not None
        pids = {"client proxy": proxied.connect.pid, "worker (bconnect dev)": proxied.dev.proc.pid}
        # interleaved rounds, each path in turn: this machine's speed drifts by tens of
        # percent within a minute, so a ratio is taken within a round, then the median
        rounds = 1 if quick else ROUNDS
        part = total // rounds
        samples: dict[str, list[float]] = {}
        cpu_rounds: list[dict] = []
        chain_pids = {"client relay": relay_client.pid, "worker relay": relay_worker.pid}
        chain_cpu_rounds: list[dict] = []
        for _ in range(rounds):
            samples.setdefault("direct", []).append(throughput(echo_port, part))
            rate, split = cpu_split_per_gib(chain_pids, part, lambda: throughput(chain_port, part))
            samples.setdefault("relay chain", []).append(rate)
            chain_cpu_rounds.append(split)
            samples.setdefault("buffered relay chain", []).append(throughput(buffered_port, part))
            rate, split = cpu_split_per_gib(pids, part, lambda: throughput(proxied.port, part))
            samples.setdefault("bconnect", []).append(rate)
            cpu_rounds.append(split)
        rates = {name: statistics.median(values) for name, values in samples.items()}
        cpu_one = {
            name: round(statistics.median(sum(r[name]) for r in cpu_rounds), 2) for name in pids
        }
        # where the time goes, beside the plain relay's: user (Python, TLS crypto, copies)
        # and system (the kernel's TCP work), per process
        cpu_split = {name: _median_split(r[name] for r in cpu_rounds) for name in pids} | {
            name: _median_split(r[name] for r in chain_cpu_rounds) for name in chain_pids
        }
        ratio = {
            ref: statistics.median(
                b / r for b, r in zip(samples["bconnect"], samples[ref], strict=True)
            )
            for ref in ("relay chain", "buffered relay chain", "direct")
        }
        each = total // STREAMS
        rates["bconnect 8 streams"], cpu_eight = cpu_per_gib(
            pids, each * STREAMS, lambda: parallel_throughput(proxied.port, each, STREAMS)
        )
        lat = {
            "direct": latency(echo_port, count),
            "bconnect": latency(proxied.port, count),
        }
    finally:
        if proxied is not None:
            proxied.stop()
        for proc in (buffered_client, buffered_worker, relay_client, relay_worker, echo):
            proc.terminate()
            proc.wait(10)
    mb = 1024 * 1024
    p50 = statistics.median(lat["bconnect"]) - statistics.median(lat["direct"])
    p99 = _pct(lat["bconnect"], 99) - _pct(lat["direct"], 99)
    vs_chain = ratio["relay chain"]
    vs_buffered = ratio["buffered relay chain"]
    return {
        "bytes echoed per run": total,
        "direct MB/s": round(rates["direct"] / mb, 1),
        "relay chain MB/s": round(rates["relay chain"] / mb, 1),
        "bconnect MB/s": round(rates["bconnect"] / mb, 1),
        "buffered relay chain MB/s": round(rates["buffered relay chain"] / mb, 1),
        "bconnect / relay chain": round(vs_chain, 3),
        "bconnect / buffered relay chain": round(vs_buffered, 3),
        "bconnect / direct": round(ratio["direct"], 3),
        "rounds (median of per-round ratios)": rounds,
        "connections timed": count,
        "direct connect+first byte p50 ms": round(statistics.median(lat["direct"]) * 1000, 2),
        "bconnect connect+first byte p50 ms": round(statistics.median(lat["bconnect"]) * 1000, 2),
        "added p50 ms": round(p50 * 1000, 2),
        "added p99 ms": round(p99 * 1000, 2),
        "CPU s/GiB, 1 stream": cpu_one,
        "user + system CPU s/GiB, 1 stream, beside the relay chain's": cpu_split,
        f"bconnect {STREAMS} streams MB/s": round(rates["bconnect 8 streams"] / mb, 1),
        f"CPU s/GiB, {STREAMS} streams": cpu_eight,
        "targets": (
            f"throughput >= {TARGET_VS_CHAIN}x relay chain, >= {TARGET_VS_BUFFERED}x buffered "
            f"chain; added <= {TARGET_ADDED_P50_MS} ms p50, <= {TARGET_ADDED_P99_MS} ms p99"
        ),
        "met": {
            "vs relay chain": vs_chain >= TARGET_VS_CHAIN,
            "vs buffered relay chain": vs_buffered >= TARGET_VS_BUFFERED,
            "added p50": p50 * 1000 <= TARGET_ADDED_P50_MS,
            "added p99": p99 * 1000 <= TARGET_ADDED_P99_MS,
        },
    }


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv[1:]), indent=2))
