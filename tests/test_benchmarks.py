"""The benchmark suite's smoke mode (`nox -s bench -- --quick`): the scripts still run
end to end and write well-formed figures. Nothing here looks at how fast anything is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SECTIONS = {
    "cli start-up": ["bconnect --help / import click", "target ratio"],
    "data plane": [
        "bconnect / relay chain",
        "bconnect / buffered relay chain",
        "added p50 ms",
        "added p99 ms",
        "bconnect 8 streams MB/s",
    ],
    "concurrent connections": [
        "errors",
        "worker peak RSS MB",
        "client proxy peak RSS MB",
        "worker KiB per connection",
        "client proxy KiB per connection",
    ],
    "authorize-session (SQLite)": ["req/s", "p99 ms", "errors"],
    "authorize-session (PostgreSQL)": ["req/s", "p99 ms", "errors"],
    "sessions list": ["page items", "median ms"],
}


def test_quick_benchmarks_run_and_write_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["quick"] is True
    assert figures["machine"]["git revision"]
    for section, keys in SECTIONS.items():
        for key in keys:
            assert isinstance(figures[section][key], int | float), (section, key)
        assert section in result.stdout
    assert figures["concurrent connections"]["errors"] == 0
    ssh = figures["ssh targets"]
    if os.path.exists("/usr/sbin/sshd") and shutil.which("ssh"):
        for direction in ("up", "down"):
            for key in ("tcp target / direct", "ssh target / tcp target", "recorded / ssh target"):
                assert isinstance(ssh[f"{key}, {direction}"], float), (key, ssh)
    else:  # said, not hidden: the machine has no OpenSSH server or client
        assert "is not installed" in ssh["skipped"]
    cpu = figures["data plane"]["CPU s/GiB, 8 streams"]
    assert set(cpu) == {"client proxy", "worker (bconnect dev)"}
    split = figures["data plane"]["user + system CPU s/GiB, 1 stream, beside the relay chain's"]
    assert set(split) == {"client proxy", "worker (bconnect dev)", "client relay", "worker relay"}
    for value in split.values():
        user, system = (float(part) for part in value.split(" + "))
        assert user >= 0 and system >= 0, split
    assert set(figures["data plane"]["met"]) == {
        "vs relay chain",
        "vs buffered relay chain",
        "added p50",
        "added p99",
    }
    assert figures["authorize-session (SQLite)"]["errors"] == 0
    assert figures["authorize-session (PostgreSQL)"]["errors"] == 0
    assert figures["sessions list"]["page items"] > 0


def test_a_proxy_that_breaks_the_echo_is_one_error_not_a_thread_traceback() -> None:
    """The throughput harness reports a connection the proxy resets as the reader's
    error, with the sender stopped (Boundary's worker does reset some)."""
    code = """
import socket, struct, sys, threading
sys.path.insert(0, sys.argv[1])
import dataplane
server = socket.create_server(("127.0.0.1", 0))
def reset_after_a_while():
    conn, _ = server.accept()
    got = 0
    while got < 1 << 20:
        got += len(conn.recv(65536))
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # a reset, with the client still sending and waiting for its echo
threading.Thread(target=reset_after_a_while).start()
try:
    dataplane.throughput(server.getsockname()[1], 256 << 20)
except (OSError, RuntimeError) as exc:
    print("reported:", type(exc).__name__)
"""
    result = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "benchmarks")],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("reported: "), result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
