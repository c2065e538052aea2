"""Handshake messages, close codes and ClientHello parsing (no sockets)."""

from __future__ import annotations

import contextlib
import random
import string
from datetime import UTC, datetime

import pytest
from support.worker_client import client_hello_bytes

from bconnect.core.handshake import (
    ClientHandshake,
    ClientHelloInfo,
    CloseCode,
    HandshakeCommand,
    HandshakeError,
    HandshakeResult,
    IncompleteClientHello,
    decode_client_handshake,
    decode_handshake_result,
    encode_client_handshake,
    encode_handshake_result,
    is_valid_tofu_token,
    new_tofu_token,
    parse_client_hello,
    session_id_from_hello,
)

TOFU = "abcdefghij0123456789"

# --- ClientHandshake --------------------------------------------------------------------


def test_encode_client_handshake_bytes() -> None:
    # field 10 (tofu_token, string): tag 0x52; field 20 (command, enum): tag 0xa0 0x01
    assert encode_client_handshake(TOFU) == b"\x52\x14" + TOFU.encode()
    assert (
        encode_client_handshake(TOFU, cancel=True) == b"\x52\x14" + TOFU.encode() + b"\xa0\x01\x01"
    )


def test_decode_client_handshake() -> None:
    normal = decode_client_handshake(encode_client_handshake(TOFU))
    assert normal == ClientHandshake(tofu_token=TOFU, command=HandshakeCommand.UNSPECIFIED)
    assert not normal.cancel
    cancel = decode_client_handshake(encode_client_handshake(TOFU, cancel=True))
    assert cancel.command is HandshakeCommand.SESSION_CANCEL
    assert cancel.cancel


def test_decode_client_handshake_unknown_command_is_kept() -> None:
    result = decode_client_handshake(b"\x52\x14" + TOFU.encode() + b"\xa0\x01\x07")
    assert result.command == 7
    assert not result.cancel


def test_decode_client_handshake_empty_message() -> None:
    assert decode_client_handshake(b"") == ClientHandshake(tofu_token="")


@pytest.mark.parametrize(
    "data",
    [
        b"\x52\x14abc",  # truncated string
        b"\x52",  # missing length
        b"\xff",  # truncated varint tag
        b"\x52\x02\xff\xfe",  # invalid UTF-8 in a string field
        b"\x0f",  # wire type 7 does not exist
    ],
)
def test_decode_client_handshake_rejects_garbage(data: bytes) -> None:
    with pytest.raises(HandshakeError, match="invalid handshake"):
        decode_client_handshake(data)


def test_decode_random_bytes_only_raise_handshake_error() -> None:
    rng = random.Random(3)
    for _ in range(500):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
        for decode in (decode_client_handshake, decode_handshake_result):
            with contextlib.suppress(HandshakeError):
                decode(data)


# --- HandshakeResult --------------------------------------------------------------------

RESULT_BYTES = bytes.fromhex(
    "52 0c 08 80 c3 d1 aa 06 10 80 ca b5 ee 01"  # 10 expiration{1700028800 s, 5e8 ns}
    "a0 01 ff ff ff ff ff ff ff ff ff 01"  # 20 connection_limit -1
    "f0 01 ff ff ff ff ff ff ff ff ff 01"  # 30 connections_left -1
)
EXPIRATION = datetime(2023, 11, 15, 6, 13, 20, 500000, tzinfo=UTC)


def test_encode_handshake_result_bytes() -> None:
    assert encode_handshake_result(EXPIRATION, -1, -1) == RESULT_BYTES


def test_decode_handshake_result() -> None:
    assert decode_handshake_result(RESULT_BYTES) == HandshakeResult(EXPIRATION, -1, -1)
    limited = decode_handshake_result(encode_handshake_result(EXPIRATION, 5, 4))
    assert (limited.connection_limit, limited.connections_left) == (5, 4)
    assert limited.expiration.tzinfo is not None


def test_handshake_result_rejects_naive_and_garbage() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_handshake_result(datetime(2030, 1, 1), 1, 1)
    with pytest.raises(HandshakeError):
        decode_handshake_result(RESULT_BYTES[:-3])
    with pytest.raises(HandshakeError, match="expiration"):
        decode_handshake_result(bytes.fromhex("52 0a 08 ff ff ff ff ff ff ff ff 7f"))


# --- tofu tokens and close codes --------------------------------------------------------


def test_new_tofu_token() -> None:
    tokens = {new_tofu_token() for _ in range(50)}
    assert len(tokens) == 50
    alphabet = set(string.ascii_letters + string.digits)
    for token in tokens:
        assert len(token) == 20
        assert set(token) <= alphabet
        assert is_valid_tofu_token(token)
    assert not is_valid_tofu_token("short")
    assert not is_valid_tofu_token("x" * 21)


def test_close_codes() -> None:
    assert CloseCode.NORMAL_CLOSURE == 1000
    assert CloseCode.UNSUPPORTED_DATA == 1003
    assert CloseCode.POLICY_VIOLATION == 1008
    assert CloseCode.INTERNAL_ERROR == 1011
    assert CloseCode.PROTOCOL_SETUP_ERROR == 3000


# --- ClientHello ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hello() -> bytes:
    return client_hello_bytes("s_abcdefghij", ["http/1.1", "s_1234567890"], tls13_only=True)


def test_parse_real_client_hello(hello: bytes) -> None:
    assert hello[0] == 22
    info = parse_client_hello(hello)
    assert info == ClientHelloInfo(sni="s_abcdefghij", alpn=("http/1.1", "s_1234567890"))
    assert session_id_from_hello(info) == "s_abcdefghij"


def test_boundary_style_hello_uses_alpn() -> None:
    # Boundary's client: SNI = worker host, ALPN = ["http/1.1", <session id>]
    info = parse_client_hello(
        client_hello_bytes("worker.example.com", ["http/1.1", "s_1234567890"], tls13_only=True)
    )
    assert info.sni == "worker.example.com"
    assert session_id_from_hello(info) == "s_1234567890"


def test_hello_without_sni_or_alpn() -> None:
    info = parse_client_hello(client_hello_bytes(None, None, tls13_only=True))
    assert info == ClientHelloInfo(sni=None, alpn=())
    assert session_id_from_hello(info) is None


def test_session_id_from_hello_prefers_sni() -> None:
    assert session_id_from_hello(ClientHelloInfo("s_a", ("s_b",))) == "s_a"
    assert session_id_from_hello(ClientHelloInfo("host", ("h2", "s_b", "s_c"))) == "s_b"
    assert session_id_from_hello(ClientHelloInfo("host", ("h2",))) is None


def test_trailing_bytes_after_hello_are_ignored(hello: bytes) -> None:
    assert parse_client_hello(hello + b"\x17\x03\x03\x00\x05hello") == parse_client_hello(hello)


def test_hello_split_over_records(hello: bytes) -> None:
    body = hello[5:]
    records = b""
    for start in range(0, len(body), 100):
        chunk = body[start : start + 100]
        records += hello[:3] + len(chunk).to_bytes(2, "big") + chunk
    assert parse_client_hello(records) == parse_client_hello(hello)
    with pytest.raises(IncompleteClientHello):
        parse_client_hello(records[:-1])


def test_every_truncation_is_incomplete(hello: bytes) -> None:
    for end in range(len(hello)):
        with pytest.raises(IncompleteClientHello):
            parse_client_hello(hello[:end])


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x17\x03\x03\x00\x05hello",  # application data record
        b"\x16\x02\x00\x00\x05hello",  # SSLv2-ish version
        b"\x16\x03\x01\x00\x00",  # empty record
        b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",  # ServerHello, not ClientHello
        b"\x16\x03\x01\x00\x04\x01\xff\xff\xff",  # absurd handshake length
        b"\x80\x2e\x01\x03\x01",  # SSLv2 ClientHello
    ],
)
def test_not_a_client_hello(data: bytes) -> None:
    with pytest.raises(HandshakeError) as info:
        parse_client_hello(data)
    assert not isinstance(info.value, IncompleteClientHello)


def _build_hello(extensions: bytes | None, *, suites: bytes = b"\x13\x01") -> bytes:
    body = b"\x03\x03" + bytes(32) + b"\x00" + len(suites).to_bytes(2, "big") + suites + b"\x01\x00"
    if extensions is not None:
        body += len(extensions).to_bytes(2, "big") + extensions
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(message).to_bytes(2, "big") + message


def _ext(ext_type: int, data: bytes) -> bytes:
    return ext_type.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def _sni(name: bytes) -> bytes:
    entry = b"\x00" + len(name).to_bytes(2, "big") + name
    return _ext(0, len(entry).to_bytes(2, "big") + entry)


def _alpn(*names: bytes) -> bytes:
    entries = b"".join(len(n).to_bytes(1, "big") + n for n in names)
    return _ext(16, len(entries).to_bytes(2, "big") + entries)


def test_hand_built_hello() -> None:
    assert parse_client_hello(_build_hello(None)) == ClientHelloInfo(None, ())
    data = _build_hello(_ext(43, b"\x02\x03\x04") + _sni(b"s_x") + _alpn(b"h2", b"s_y"))
    assert parse_client_hello(data) == ClientHelloInfo("s_x", ("h2", "s_y"))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_build_hello(_sni(b"a") + _sni(b"b")), "duplicate extension"),
        (_build_hello(_sni(b"")), "empty server name"),
        (_build_hello(_sni(b"caf\xc3\xa9")), "non-ASCII"),
        (_build_hello(_alpn()), "empty ALPN protocol list"),
        (_build_hello(_alpn(b"")), "empty ALPN protocol name"),
        (_build_hello(_ext(16, b"\x00\x05\x02h2")), "truncated"),
        (_build_hello(_ext(0, b"\x00\x01")), "truncated"),
        (_build_hello(_alpn(b"h2") + b"\x00"), "truncated"),
        (_build_hello(b"", suites=b""), "cipher suite"),
        (_build_hello(b"", suites=b"\x13"), "cipher suite"),
    ],
)
def test_malformed_hand_built_hello(data: bytes, match: str) -> None:
    with pytest.raises(HandshakeError, match=match) as info:
        parse_client_hello(data)
    assert not isinstance(info.value, IncompleteClientHello)


def test_mutated_hellos_only_raise_handshake_error(hello: bytes) -> None:
    rng = random.Random(22)
    for _ in range(1000):
        data = bytearray(hello)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            info = parse_client_hello(bytes(data))
        except HandshakeError:
            continue
        assert isinstance(info, ClientHelloInfo)


def test_random_bytes_only_raise_handshake_error() -> None:
    rng = random.Random(1)
    for _ in range(1000):
        prefix = b"\x16\x03\x01" if rng.random() < 0.5 else b""
        data = prefix + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        with contextlib.suppress(HandshakeError):
            parse_client_hello(data)
