"""SftpWatch (worker/sftpwatch.py): the transfers of an SFTP conversation, from bytes
split anywhere. Packets built per draft-ietf-secsh-filexfer-02."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from bconnect.worker.sftpwatch import MAX_PACKET, SftpWatch


def _s(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _packet(kind: int, payload: bytes) -> bytes:
    return struct.pack(">IB", len(payload) + 1, kind) + payload


def _id(n: int) -> bytes:
    return struct.pack(">I", n)


UP = b"".join(
    [
        _packet(1, struct.pack(">I", 3)),  # INIT
        _packet(3, _id(1) + _s(b"/srv/up.bin") + struct.pack(">I", 0x1A) + _id(0)),  # OPEN w
        _packet(6, _id(2) + _s(b"H1") + struct.pack(">Q", 0) + _s(b"x" * 5000)),
        _packet(6, _id(3) + _s(b"H1") + struct.pack(">Q", 5000) + _s(b"y" * 1000)),
        _packet(4, _id(4) + _s(b"H1")),  # CLOSE
        _packet(3, _id(5) + _s(b"/srv/down.bin") + struct.pack(">I", 0x01) + _id(0)),  # OPEN r
        _packet(5, _id(6) + _s(b"H2") + struct.pack(">QI", 0, 32768)),
        _packet(4, _id(7) + _s(b"H2")),
        _packet(18, _id(8) + _s(b"/srv/a") + _s(b"/srv/b")),
        _packet(13, _id(9) + _s(b"/srv/old")),
    ]
)
DOWN = [
    (2, _packet(102, _id(1) + _s(b"H1"))),  # after the first OPEN
    (6, _packet(102, _id(5) + _s(b"H2"))),
    (7, _packet(103, _id(6) + _s(b"z" * 777))),
]
EXPECTED = [
    "sftp upload /srv/up.bin 6000 bytes",
    "sftp download /srv/down.bin 777 bytes",
    "sftp rename /srv/a -> /srv/b",
    "sftp remove /srv/old",
]


def _conversation(cuts: list[int]) -> list[str]:
    """The client's packets in order, each answer delivered before the packet that
    follows it, the client's bytes split at ``cuts``."""
    watch = SftpWatch()
    packets = []
    data = UP
    while data:
        (size,) = struct.unpack_from(">I", data)
        packets.append(data[: 4 + size])
        data = data[4 + size :]
    events: list[str] = []
    answers = dict(DOWN)
    for index, packet in enumerate(packets):
        pieces, last = [], 0
        for cut in sorted({c % len(packet) for c in cuts}):
            pieces.append(packet[last:cut])
            last = cut
        pieces.append(packet[last:])
        for piece in pieces:
            events += watch.client(piece)
        if index + 1 in answers:
            watch.server(answers[index + 1][:3])
            watch.server(answers[index + 1][3:])
    return events + watch.finish()


def test_transfers_and_operations() -> None:
    assert _conversation([]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    assert _conversation(cuts) == EXPECTED


def test_an_unclosed_transfer_is_reported_at_the_end() -> None:
    watch = SftpWatch()
    watch.client(_packet(3, _id(1) + _s(b"/x") + struct.pack(">I", 0x1A) + _id(0)))
    watch.server(_packet(102, _id(1) + _s(b"H")))
    watch.client(_packet(6, _id(2) + _s(b"H") + struct.pack(">Q", 0) + _s(b"abc")))
    assert watch.finish() == ["sftp upload /x 3 bytes (not closed)"]


def test_garbage_stops_watching_not_the_conversation() -> None:
    watch = SftpWatch()
    assert watch.client(struct.pack(">I", MAX_PACKET + 1) + b"\x03junk") == []
    assert watch.client(_packet(13, _id(1) + _s(b"/later"))) == []
    assert watch.client(_packet(13, b"\x00")) == []  # malformed inside: skipped
