"""Brute-force and flood protection for password logins (pure; the clock is passed in).

Three limits, all checked before any password is hashed:

- failures per (auth method, login name, client address): after ``limit`` failures
  within ``window`` seconds that triple is refused for ``lockout`` seconds. Keying on
  the client address means an attacker elsewhere cannot lock the real user out, which a
  per-account lockout would allow;
- failures per client address, whatever the login name (``address_limit``): made-up
  login names from one place cannot bypass the first limit;
- attempts per client address (a token bucket, ``rate`` per second up to ``burst``): a
  flood is turned away before it costs a hash.

State is in memory, per controller process, and bounded (oldest keys dropped first).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from bconnect.ratelimit import TokenBucket

__all__ = ["FailureWindow", "LoginThrottle", "TokenBucket"]


@dataclass
class FailureWindow:
    """After ``limit`` failures of one key within ``window`` seconds, the key is refused
    for ``lockout`` seconds."""

    limit: int = 10
    window: float = 300.0
    lockout: float = 60.0
    max_keys: int = 100_000
    _failures: OrderedDict[Hashable, deque[float]] = field(default_factory=OrderedDict)
    _locked: dict[Hashable, float] = field(default_factory=dict)

    def blocked(self, key: Hashable, now: float) -> float:
        """Seconds ``key`` stays refused (0.0: not refused)."""
        until = self._locked.get(key)
        if until is None:
            return 0.0
        if now >= until:
            del self._locked[key]
            self._failures.pop(key, None)
            return 0.0
        return until - now

    def failed(self, key: Hashable, now: float) -> None:
        times = self._failures.pop(key, None) or deque()
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        self._failures[key] = times
        if len(times) >= self.limit:
            self._locked[key] = now + self.lockout
        while len(self._failures) > self.max_keys:
            old, _ = self._failures.popitem(last=False)
            self._locked.pop(old, None)

    def succeeded(self, key: Hashable) -> None:
        self._failures.pop(key, None)
        self._locked.pop(key, None)


@dataclass
class LoginThrottle:
    """The three limits of the module docstring."""

    per_login: FailureWindow = field(default_factory=FailureWindow)
    per_address: FailureWindow = field(
        default_factory=lambda: FailureWindow(limit=30, window=300.0, lockout=60.0)
    )
    attempts: TokenBucket = field(default_factory=TokenBucket)

    def refused_for(self, method: str, login: str, address: str, now: float) -> int:
        """Whole seconds this login attempt must wait (0: go ahead, and it counts as an
        attempt of ``address``)."""
        wait = max(
            self.per_login.blocked((method, login, address), now),
            self.per_address.blocked(address, now),
        )
        if not wait:
            wait = self.attempts.take(address, now)
        return math.ceil(wait)

    def failed(self, method: str, login: str, address: str, now: float) -> None:
        self.per_login.failed((method, login, address), now)
        self.per_address.failed(address, now)

    def succeeded(self, method: str, login: str, address: str) -> None:
        # the address's failures stand: succeeding with one's own account now and then
        # must not buy an attacker more guesses at others'
        self.per_login.succeeded((method, login, address))
