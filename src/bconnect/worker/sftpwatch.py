"""What an SFTP conversation did, for its recording: file transfers (path, direction,
bytes), removals, renames and directories made or removed — never file contents.

Pure: :class:`SftpWatch` is fed the bytes each way (as the relay sees them, split
anywhere) and returns one line per completed operation. SFTP v3 (draft-ietf-secsh-
filexfer-02, what OpenSSH speaks): ``uint32 length, byte type, payload``; requests carry
an ``id`` the answer repeats. A packet longer than :data:`MAX_PACKET` (not a real
client) stops the watching of that conversation, not the conversation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["MAX_PACKET", "SftpWatch"]

MAX_PACKET = 1024 * 1024 + 1024

OPEN, CLOSE, READ, WRITE = 3, 4, 5, 6
REMOVE, MKDIR, RMDIR, RENAME = 13, 14, 15, 18
STATUS, HANDLE, DATA = 101, 102, 103
_WRITE_FLAGS = 0x02 | 0x08 | 0x10  # WRITE, CREAT, TRUNC


class _Malformed(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def u32(self) -> int:
        if self.at + 4 > len(self.data):
            raise _Malformed
        (value,) = struct.unpack_from(">I", self.data, self.at)
        self.at += 4
        return int(value)

    def u64(self) -> int:
        if self.at + 8 > len(self.data):
            raise _Malformed
        (value,) = struct.unpack_from(">Q", self.data, self.at)
        self.at += 8
        return int(value)

    def string(self) -> bytes:
        size = self.u32()
        if self.at + size > len(self.data):
            raise _Malformed
        value = self.data[self.at : self.at + size]
        self.at += size
        return value


@dataclass
class _Open:
    path: str
    writing: bool
    bytes: int = 0


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class _Packets:
    """Reassembles one direction's packets."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.broken = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self.broken:
            return []
        self.buffer += data
        packets = []
        while len(self.buffer) >= 4:
            (size,) = struct.unpack_from(">I", self.buffer)
            if size < 1 or size > MAX_PACKET:
                self.broken = True
                self.buffer.clear()
                break
            if len(self.buffer) < 4 + size:
                break
            packets.append((self.buffer[4], bytes(self.buffer[5 : 4 + size])))
            del self.buffer[: 4 + size]
        return packets


class SftpWatch:
    """Feed :meth:`client` and :meth:`server` with the conversation; each returns the
    lines for operations that completed."""

    def __init__(self) -> None:
        self._up, self._down = _Packets(), _Packets()
        self._opening: dict[int, tuple[str, bool]] = {}
        self._handles: dict[bytes, _Open] = {}
        self._reads: dict[int, bytes] = {}

    def client(self, data: bytes) -> list[str]:
        events: list[str] = []
        for kind, payload in self._up.feed(data):
            try:
                events += self._request(kind, _Reader(payload))
            except _Malformed:
                continue
        return events

    def server(self, data: bytes) -> list[str]:
        for kind, payload in self._down.feed(data):
            try:
                self._answer(kind, _Reader(payload))
            except _Malformed:
                continue
        return []

    def finish(self) -> list[str]:
        """Transfers still open when the conversation ended."""
        events = [self._transfer(f, " (not closed)") for f in self._handles.values()]
        self._handles.clear()
        return events

    @staticmethod
    def _transfer(opened: _Open, suffix: str = "") -> str:
        verb = "upload" if opened.writing else "download"
        return f"sftp {verb} {opened.path} {opened.bytes} bytes{suffix}"

    def _request(self, kind: int, r: _Reader) -> list[str]:
        if kind == OPEN:
            request_id, path, flags = r.u32(), _text(r.string()), r.u32()
            self._opening[request_id] = (path, bool(flags & _WRITE_FLAGS))
        elif kind == READ:
            request_id, handle = r.u32(), r.string()
            self._reads[request_id] = handle
        elif kind == WRITE:
            r.u32()
            handle = r.string()
            r.u64()
            data = r.string()
            if handle in self._handles:
                self._handles[handle].bytes += len(data)
        elif kind == CLOSE:
            r.u32()
            opened = self._handles.pop(r.string(), None)
            if opened is not None:
                return [self._transfer(opened)]
        elif kind in (REMOVE, MKDIR, RMDIR):
            r.u32()
            verb = {REMOVE: "remove", MKDIR: "mkdir", RMDIR: "rmdir"}[kind]
            return [f"sftp {verb} {_text(r.string())}"]
        elif kind == RENAME:
            r.u32()
            old, new = _text(r.string()), _text(r.string())
            return [f"sftp rename {old} -> {new}"]
        return []

    def _answer(self, kind: int, r: _Reader) -> None:
        request_id = r.u32()
        if kind == HANDLE:
            opening = self._opening.pop(request_id, None)
            if opening is not None:
                self._handles[r.string()] = _Open(*opening)
        elif kind == DATA:
            handle = self._reads.pop(request_id, None)
            if handle is not None and handle in self._handles:
                self._handles[handle].bytes += len(r.string())
        elif kind == STATUS:
            self._opening.pop(request_id, None)
            self._reads.pop(request_id, None)
