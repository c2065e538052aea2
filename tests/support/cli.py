"""The bconnect CLI as a child process, the way a user's shell runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from support.constants import GUARD

BCONNECT = [sys.executable, "-m", "bconnect"]


def run_bconnect(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = GUARD, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """`python -m bconnect ARGS` in ``env`` (this process's when None), run to its end
    without a terminal (stdin is /dev/null, so nothing can prompt): exit code, stdout and
    stderr as text. ``kw`` goes to :func:`subprocess.run`."""
    return subprocess.run(
        [*BCONNECT, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        **kw,
    )


SESSION_LINE = re.compile(r"Session (s_\w+); cancel with bconnect sessions cancel -id \1\n")


def after_session_line(stderr: str) -> str:
    """A helper's stderr after its first line, which names the session (checked)."""
    first, _, rest = stderr.partition("\n")
    assert SESSION_LINE.fullmatch(first + "\n"), stderr
    return rest
