"""RFC 3339 times as text (pure): the one parser for the times the controller writes
(``2024-01-02T03:04:05.123456789Z``, protobuf-JSON and Go style)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_time"]


def parse_time(value: str, *, assume_utc: bool = False) -> datetime:
    """An RFC 3339 time (``Z`` or an offset; a fraction past microseconds is cut off),
    timezone-aware. ValueError when malformed, and for a time without a zone unless
    ``assume_utc`` (then it is read as UTC)."""
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        if not assume_utc:
            raise ValueError(f"time without a timezone: {value!r}")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
