"""A token bucket per key (pure; the clock is passed in), shared by the controller's
login throttle and the worker's session lookups."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

__all__ = ["TokenBucket"]


@dataclass
class TokenBucket:
    """At most ``rate`` events per second per key on average, ``burst`` at once, for at
    most ``max_keys`` keys: the least recently seen is forgotten first (a forgotten key
    starts full again, which only matters to a client with that many keys)."""

    rate: float = 2.0
    burst: float = 20.0
    max_keys: int = 100_000
    _buckets: OrderedDict[Hashable, tuple[float, float]] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable, now: float) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there is."""
        tokens, stamp = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1 if not wait else tokens, now)  # most recent last
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait
