"""asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/), the format of
session recordings: a JSON header line, then one JSON line per event
``[seconds, "o" | "i" | "r" | "m", data]``. Pure: the worker encodes with
:class:`AsciicastEncoder`, ``session-recordings play`` reads with :func:`playback`.

Terminal bytes are decoded as UTF-8 incrementally (a character split across two reads
is kept whole; bytes that are not UTF-8 become U+FFFD), one decoder per stream.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["AsciicastEncoder", "AsciicastError", "playback"]


def _line(value: object) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode()


class AsciicastEncoder:
    """Turns a channel's traffic into asciicast v2 lines; times are seconds since
    ``timestamp`` (the channel's start, Unix time)."""

    def __init__(
        self,
        *,
        width: int,
        height: int,
        timestamp: float,
        command: str | None = None,
        title: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.timestamp = timestamp
        header: dict[str, object] = {
            "version": 2,
            "width": max(1, width),
            "height": max(1, height),
            "timestamp": int(timestamp),
        }
        if command:
            header["command"] = command
        if title:
            header["title"] = title
        if env:
            header["env"] = dict(env)
        self._header = header
        self._decoders = {
            kind: codecs.getincrementaldecoder("utf-8")(errors="replace") for kind in "oi"
        }

    def header(self) -> bytes:
        return _line(self._header)

    def _event(self, now: float, kind: str, data: str) -> bytes:
        return _line([round(max(0.0, now - self.timestamp), 6), kind, data])

    def output(self, data: bytes, now: float) -> bytes:
        text = self._decoders["o"].decode(data)
        return self._event(now, "o", text) if text else b""

    def input(self, data: bytes, now: float) -> bytes:
        text = self._decoders["i"].decode(data)
        return self._event(now, "i", text) if text else b""

    def resize(self, width: int, height: int, now: float) -> bytes:
        return self._event(now, "r", f"{width}x{height}")

    def marker(self, label: str, now: float) -> bytes:
        return self._event(now, "m", label)

    def flush(self, now: float) -> bytes:
        """What the decoders still hold (an incomplete character at the end)."""
        out = b""
        for kind, decoder in self._decoders.items():
            text = decoder.decode(b"", final=True)
            if text:
                out += self._event(now, kind, text)
        return out


class AsciicastError(ValueError):
    """Not an asciicast v2 recording; the message says where."""


def playback(
    lines: Iterable[str], *, speed: float = 1.0, idle_limit: float | None = None
) -> Iterator[tuple[float, str]]:
    """``(seconds to wait, text to print)`` for each output event of a recording:
    times divided by ``speed``, pauses cut to ``idle_limit`` seconds (the header's
    ``idle_time_limit`` when None). A recording that ends mid-line (a worker that
    stopped writing) plays up to its last whole event."""
    it = iter(lines)
    try:
        header = json.loads(next(it))
    except StopIteration:
        raise AsciicastError("the recording is empty") from None
    except ValueError:
        raise AsciicastError("line 1 is not JSON: not an asciicast recording") from None
    if not isinstance(header, dict) or header.get("version") != 2:
        raise AsciicastError("not an asciicast v2 recording (no version 2 header)")
    if idle_limit is None:
        idle_limit = header.get("idle_time_limit")
    previous = 0.0
    for number, line in enumerate(it, start=2):
        if not line.strip():
            continue
        try:
            event: Any = json.loads(line)
            at, kind, data = float(event[0]), str(event[1]), str(event[2])
        except (ValueError, IndexError, TypeError, KeyError):
            if line.endswith("\n"):
                raise AsciicastError(f"line {number} is not an asciicast event") from None
            return  # the last line, cut short
        if kind != "o":
            continue
        wait = max(0.0, at - previous)
        previous = at
        if idle_limit:
            wait = min(wait, float(idle_limit))
        yield wait / speed, data
