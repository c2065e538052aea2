"""Brute-force protection for password logins (pure; the clock is passed in).

Failures are counted per (auth method, login name, client address). After ``limit``
failures within ``window`` seconds, that triple is refused for ``lockout`` seconds
without the password even being checked. Keying on the client address means an
attacker elsewhere cannot lock the real user out, which a per-account lockout would
allow. State is in memory and bounded to ``max_keys`` entries (oldest dropped first).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

Key = tuple[str, str, str]


@dataclass
class LoginThrottle:
    limit: int = 10
    window: float = 300.0
    lockout: float = 60.0
    max_keys: int = 100_000
    _failures: OrderedDict[Key, deque[float]] = field(default_factory=OrderedDict)
    _locked: dict[Key, float] = field(default_factory=dict)

    def blocked(self, key: Key, now: float) -> float:
        """Seconds ``key`` stays refused (0.0: not refused)."""
        until = self._locked.get(key)
        if until is None:
            return 0.0
        if now >= until:
            del self._locked[key]
            self._failures.pop(key, None)
            return 0.0
        return until - now

    def failed(self, key: Key, now: float) -> None:
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

    def succeeded(self, key: Key) -> None:
        self._failures.pop(key, None)
        self._locked.pop(key, None)
