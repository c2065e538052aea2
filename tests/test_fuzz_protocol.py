"""Protocol fuzzing (hypothesis): every decoder a stranger's bytes reach answers random and
mutated input with its own clean error, never another exception. The authorization-token
decoder (text pasted by users), the ClientHello parser (the first bytes any TCP peer sends
a worker) and the handshake messages (the first WebSocket message, both ways).

Examples per test: the ``ci`` hypothesis profile (conftest.py); `nox -s hardening` runs
the ``hardening`` profile with many more."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.token_vector import TOKEN_BYTES
from support.worker_client import client_hello_bytes

from bconnect.core.base58 import ALPHABET, b58decode, b58encode
from bconnect.core.handshake import (
    ClientHelloInfo,
    HandshakeError,
    decode_client_handshake,
    decode_handshake_result,
    encode_client_handshake,
    parse_client_hello,
    session_id_from_hello,
)
from bconnect.core.token import AuthzTokenError, decode_authz_token

HELLO = client_hello_bytes("s_abcdefghij", ["http/1.1", "s_1234567890"], tls13_only=True)


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few bytes flipped, inserted, deleted, or cut short."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
        else:
            data[pos] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80]))
    return bytes(data)


def _token_outcome(text: str) -> None:
    with contextlib.suppress(AuthzTokenError):
        decode_authz_token(text)


@given(st.text(max_size=400))
def test_authz_token_decoder_takes_any_text(text: str) -> None:
    _token_outcome(text)


@given(mutated(TOKEN_BYTES))
def test_authz_token_decoder_takes_mutated_tokens(raw: bytes) -> None:
    _token_outcome(b58encode(raw) if raw else "")


@given(st.binary(max_size=600))
def test_authz_token_decoder_takes_random_protobuf_bytes(raw: bytes) -> None:
    _token_outcome(b58encode(raw) if raw else "x")


def _hello_outcome(data: bytes) -> None:
    try:
        info = parse_client_hello(data)
    except HandshakeError:
        return
    assert isinstance(info, ClientHelloInfo)
    session = session_id_from_hello(info)
    assert session is None or isinstance(session, str)


@given(st.binary(max_size=2048))
def test_client_hello_parser_takes_random_bytes(data: bytes) -> None:
    _hello_outcome(data)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(mutated(HELLO))
def test_client_hello_parser_takes_mutated_hellos(data: bytes) -> None:
    _hello_outcome(data)


@given(st.binary(max_size=64), st.binary(max_size=2048))
def test_client_hello_parser_takes_records_with_a_valid_header(head: bytes, body: bytes) -> None:
    # past the first check (content type 22, version 3.x), into the body parser
    record = bytes([22, 3, 1]) + len(head + body).to_bytes(2, "big") + head + body
    _hello_outcome(record)


@pytest.mark.parametrize("decode", [decode_client_handshake, decode_handshake_result])
@given(data=st.binary(max_size=512))
def test_handshake_messages_take_random_bytes(decode, data: bytes) -> None:  # noqa: ANN001
    with contextlib.suppress(HandshakeError):
        decode(data)


@given(mutated(encode_client_handshake("T" * 20, cancel=True)))
def test_client_handshake_takes_mutated_messages(data: bytes) -> None:
    with contextlib.suppress(HandshakeError):
        decode_client_handshake(data)


@given(st.binary(max_size=700))
def test_base58_matches_the_digit_by_digit_definition(data: bytes) -> None:
    stripped = data.lstrip(b"\x00")
    number, digits = int.from_bytes(stripped, "big"), []
    while number:
        number, rem = divmod(number, 58)
        digits.append(ALPHABET[rem])
    expected = "1" * (len(data) - len(stripped)) + "".join(reversed(digits))
    assert b58encode(data) == expected
    assert b58decode(expected) == data


def test_report() -> None:
    """The fuzzing figures, for `nox -s hardening`'s report."""
    from hypothesis import settings as current
    from support.hardening import hardening_report

    fuzz_tests = [name for name in globals() if name.startswith("test_") and name != "test_report"]
    examples = current.default.max_examples
    hardening_report(
        "protocol fuzzing",
        {"properties": len(fuzz_tests) + 1, "examples per property (max)": examples},
    )
