"""Password checks on threads of their own, bounded.

An argon2id check takes 64 MiB and a good fraction of a CPU second on purpose. Run on the
server's shared thread pool, a flood of logins held every thread and gigabytes of
memory, and the cluster API, which shares that pool, stopped answering workers. Here at
most ``workers`` checks run at once, at most ``backlog`` more wait, and a login beyond
that is refused at once (503 with Retry-After) instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from bconnect.controller import errors
from bconnect.controller.secrets import verify_password


class PasswordChecker:
    def __init__(self, workers: int = 2, backlog: int = 8) -> None:
        self._executor = ThreadPoolExecutor(max(1, workers), thread_name_prefix="argon2")
        self._slots = max(1, workers) + max(0, backlog)
        self._in_use = 0  # touched only on the event loop's thread

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches (an unknown account costs one hash too)."""
        if self._in_use >= self._slots:
            raise errors.Unavailable("Too many logins at once; retry shortly.", retry_after=1)
        self._in_use += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, verify_password, password_hash, password
            )
        finally:
            self._in_use -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
