"""Durations as text (pure): the one parser behind the config file's durations and the
CLI's duration flags.

A number of seconds (``7``, ``1.5``, ``-1``), or a duration as Go's
``time.ParseDuration`` reads it, plus days: ``500ms``, ``15s``, ``1m30s``, ``1h``,
``30d``, ``-1s``.
"""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")


def parse_duration(value: str) -> float:
    """Seconds from ``value`` (surrounding blanks ignored); ValueError
    (``time: invalid duration "…"``) when it is neither a number nor a duration.

    A number comes back as ``float()`` reads it, so it may be negative, infinite or NaN:
    callers check the range they accept."""
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    for match in _PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise ValueError(f'time: invalid duration "{value}"')
    return sign * total
