"""Polling until something holds, bounded by the hang guard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from support.constants import GUARD


def wait_for(fn: Callable[[], Any], timeout: float = GUARD) -> Any:
    """Poll ``fn`` until it returns something truthy; its last value (falsy on time-out)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def wait_until(fn: Callable[[], Any], what: str, timeout: float = GUARD) -> Any:
    """``fn``'s first truthy value; AssertionError naming ``what`` when none comes in time."""
    value = wait_for(fn, timeout)
    if not value:
        raise AssertionError(f"timed out waiting for {what}")
    return value


async def eventually(check: Callable[[], object], what: str, timeout: float = GUARD) -> object:
    """:func:`wait_until` on the running loop: ``check``'s first truthy value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
