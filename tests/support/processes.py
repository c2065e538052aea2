"""Child processes the tests start and stop, and what /proc says of a process."""

from __future__ import annotations

import os
import signal
import subprocess

from support.constants import GUARD


def end_process(
    proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = GUARD
) -> int | None:
    """Send ``sig`` to ``proc`` (if it still runs) and wait; SIGKILL it when it has not
    ended within ``timeout``. Its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


def memory_mb(pid: int | None = None, field: str = "VmRSS") -> float:
    """A memory figure of process ``pid`` (this one by default) from Linux's
    /proc/<pid>/status, in MiB: ``VmRSS`` (resident now) or ``VmHWM`` (the peak)."""
    with open(f"/proc/{pid or os.getpid()}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/{pid or os.getpid()}/status")
