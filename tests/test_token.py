"""Authorization-token codec and base58: fixed vectors, round trips, hostile input."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest
from support.token_vector import TOKEN_BYTES, TOKEN_DATA, TOKEN_TEXT

from bconnect.core.base58 import ALPHABET, b58decode, b58encode
from bconnect.core.certs import mint_session_certificate
from bconnect.core.token import (
    AuthzTokenError,
    ScopeInfo,
    decode_authz_token,
    encode_authz_token,
)

# --- base58 -----------------------------------------------------------------------------

# Bitcoin Core's src/test/data/base58_encode_decode.json, plus a few classics.
BASE58_VECTORS = [
    ("", ""),
    ("61", "2g"),
    ("626262", "a3gV"),
    ("636363", "aPEr"),
    ("73696d706c792061206c6f6e6720737472696e67", "2cFupjhnEsSn59qHXstmK2ffpLv2"),
    ("00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"),
    ("516b6fcd0f", "ABnLTmg"),
    ("bf4f89001e670274dd", "3SEo3LWLoPntC"),
    ("572e4794", "3EFU7m"),
    ("ecac89cad93923c02321", "EJDM8drfXA6uyA"),
    ("10c8511e", "Rt5zm"),
    ("00000000000000000000", "1111111111"),
    (
        "000111d38e5fc9071ffcd20b4a763cc9ae4f252bb4e48fd66a835e252ada93ff480d6dd43dc62a641155a5",
        ALPHABET,
    ),
    ("000001", "112"),
    ("00", "1"),
    (b"Hello World".hex(), "JxF12TrwUP45BMd"),
]


@pytest.mark.parametrize(("hex_data", "text"), BASE58_VECTORS)
def test_base58_vectors(hex_data: str, text: str) -> None:
    assert b58encode(bytes.fromhex(hex_data)) == text
    assert b58decode(text) == bytes.fromhex(hex_data)


def test_base58_round_trip_random() -> None:
    rng = random.Random(58)
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        if rng.random() < 0.3:
            data = b"\x00" * rng.randrange(1, 4) + data
        assert b58decode(b58encode(data)) == data


@pytest.mark.parametrize("bad", ["0", "O", "I", "l", "abc+", "ab c", "é", "2g\n"])
def test_base58_rejects_invalid_characters(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid base58 character"):
        b58decode(bad)


@pytest.mark.parametrize(
    ("text", "position"), [("0", 0), ("abc0", 3), ("1111l", 4), ("x" * 30 + "O", 30)]
)
def test_base58_names_the_first_bad_character_and_its_position(text: str, position: int) -> None:
    with pytest.raises(ValueError, match=f"invalid base58 character .* at position {position}$"):
        b58decode(text)


def _plain_b58encode(data: bytes) -> str:
    """The definition, one digit at a time (the codec works ten digits and halves at a
    time)."""
    number = int.from_bytes(data, "big")
    digits = ""
    while number:
        number, rem = divmod(number, 58)
        digits = ALPHABET[rem] + digits
    return "1" * (len(data) - len(data.lstrip(b"\x00"))) + digits


def _bytes_of(number: int, zeros: int) -> bytes:
    return b"\x00" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


#: numbers around the powers of 58 where the codec's leaves (10 digits) and halves split
BASE58_BOUNDARIES = [
    _bytes_of(58**k + delta, zeros)
    for k in (1, 9, 10, 11, 19, 20, 21, 39, 40, 41, 80, 160, 320, 1650)
    for delta in (-1, 0, 1)
    for zeros in (0, 2)
]


@pytest.mark.parametrize("data", BASE58_BOUNDARIES)
def test_base58_matches_the_definition_at_its_boundaries(data: bytes) -> None:
    text = _plain_b58encode(data)
    assert b58encode(data) == text
    assert b58decode(text) == data


def test_base58_matches_the_definition_at_token_sizes() -> None:
    rng = random.Random(1650)
    for size in [*range(1, 60), 600, 1200, 2000]:
        data = b"\x00" * rng.randrange(3) + rng.randbytes(size)
        text = _plain_b58encode(data)
        assert b58encode(data) == text, size
        assert b58decode(text) == data, size


# --- the token: a hand-computed vector (support/token_vector.py) ------------------------


def test_token_text_is_base58_of_the_vector() -> None:
    assert b58encode(TOKEN_BYTES) == TOKEN_TEXT


def test_encode_gives_exact_bytes() -> None:
    token = encode_authz_token(TOKEN_DATA)
    assert token == TOKEN_TEXT
    assert b58decode(token) == TOKEN_BYTES


def test_decode_vector() -> None:
    data = decode_authz_token(TOKEN_TEXT)
    assert data == TOKEN_DATA
    assert data.created_time.tzinfo is not None
    assert data.created_time.utcoffset() == timedelta(0)
    assert data.worker_address == "127.0.0.1:9202"


def test_decode_strips_whitespace() -> None:
    assert decode_authz_token(f"  \n\t{TOKEN_TEXT}\r\n ") == TOKEN_DATA


def test_repr_hides_secrets() -> None:
    text = repr(TOKEN_DATA)
    assert "s_1234567890" in text
    assert repr(bytes(range(64))) not in text
    assert "private_key" not in text


def test_nanoseconds_truncate_to_microseconds() -> None:
    # created_time{seconds=1700000000, nanos=123456789}; expiration as in the vector.
    raw = TOKEN_BYTES.replace(
        bytes.fromhex("c2 02 0b 08 80 e2 cf aa 06 10 80 94 ef 3a"),
        bytes.fromhex("c2 02 0b 08 80 e2 cf aa 06 10 95 9a ef 3a"),
    )
    data = decode_authz_token(b58encode(raw))
    assert data.created_time == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)


def test_round_trip_with_real_certificate() -> None:
    expiration = datetime.now(UTC).replace(microsecond=987654) + timedelta(hours=8)
    cert, key = mint_session_certificate("s_abcdefghij", ["worker.example:9202"], expiration)
    data = dataclasses.replace(
        TOKEN_DATA,
        session_id="s_abcdefghij",
        scope=ScopeInfo(id="global", type="global"),
        expiration=expiration,
        certificate=cert,
        private_key=key,
        worker_addresses=("worker.example:9202", "10.0.0.2:9202"),
        connection_limit=5,
        default_client_port=0,
    )
    assert decode_authz_token(encode_authz_token(data)) == data


def test_non_utc_datetimes_are_normalised() -> None:
    from datetime import timezone

    tz = timezone(timedelta(hours=2))
    data = dataclasses.replace(TOKEN_DATA, expiration=TOKEN_DATA.expiration.astimezone(tz))
    assert encode_authz_token(data) == TOKEN_TEXT


def test_encode_rejects_naive_datetime() -> None:
    data = dataclasses.replace(TOKEN_DATA, expiration=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_authz_token(data)


# --- malformed input: only AuthzTokenError, with a one-line message ---------------------


def _expect_error(token: object, match: str | None = None) -> AuthzTokenError:
    with pytest.raises(AuthzTokenError, match=match) as info:
        decode_authz_token(token)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("malformed authorization token: ")
    assert "\n" not in message
    return info.value


def _decodes_or_token_error(token: str) -> bool:
    """True if ``token`` decodes; False if it raises AuthzTokenError; anything else fails."""
    try:
        decode_authz_token(token)
    except AuthzTokenError as exc:
        assert "\n" not in str(exc)
        return False
    return True


@pytest.mark.parametrize("token", ["", "   ", "\n"])
def test_empty(token: str) -> None:
    _expect_error(token, "empty")


@pytest.mark.parametrize("token", ["0abc", "Il1", TOKEN_TEXT[:50] + "O" + TOKEN_TEXT[50:]])
def test_not_base58(token: str) -> None:
    _expect_error(token, "not base58")


@pytest.mark.parametrize("token", [None, b"abc", 42])
def test_not_text(token: object) -> None:
    _expect_error(token)


def test_leading_ones_only() -> None:
    _expect_error("1111", "not a protobuf message|missing session_id")


def test_not_protobuf() -> None:
    _expect_error(b58encode(b"\xff\xff\xff"), "not a protobuf message")
    _expect_error(b58encode(b"hello world, not protobuf"), "not a protobuf message")


def _vector_without(field: str) -> bytes:
    """TOKEN_BYTES re-serialized without one field."""
    from bconnect.core.proto import target_pb2

    msg = target_pb2.SessionAuthorizationData.FromString(TOKEN_BYTES)
    msg.ClearField(field)
    return msg.SerializeToString()


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("session_id", "missing session_id"),
        ("certificate", "missing certificate"),
        ("private_key", "missing private key"),
        ("worker_info", "no worker address"),
        ("expiration", "missing expiration"),
    ],
)
def test_missing_required_field(field: str, message: str) -> None:
    _expect_error(b58encode(_vector_without(field)), message)


def test_private_key_wrong_size() -> None:
    raw = TOKEN_BYTES.replace(
        bytes.fromhex("92 08 40") + bytes(range(64)), bytes.fromhex("92 08 20") + bytes(32)
    )
    _expect_error(b58encode(raw), "private key is 32 bytes, expected 64")


def test_bad_timestamps() -> None:
    # expiration nanos = -1 (out of range)
    raw = TOKEN_BYTES.replace(
        bytes.fromhex("ca 06 06 08 80 c3 d1 aa 06"),
        bytes.fromhex("ca 06 11 08 80 c3 d1 aa 06 10 ff ff ff ff ff ff ff ff ff 01"),
    )
    _expect_error(b58encode(raw), "expiration")
    # expiration seconds far beyond year 9999
    raw = TOKEN_BYTES.replace(
        bytes.fromhex("ca 06 06 08 80 c3 d1 aa 06"),
        bytes.fromhex("ca 06 0a 08 ff ff ff ff ff ff ff ff 7f"),
    )
    _expect_error(b58encode(raw), "expiration")


def test_invalid_utf8_string_field() -> None:
    raw = TOKEN_BYTES.replace(b"s_1234567890", b"s_12345678\xff\xfe", 1)
    _expect_error(b58encode(raw))


def test_truncated_text_never_raises_other_errors() -> None:
    results = [_decodes_or_token_error(TOKEN_TEXT[:n]) for n in range(len(TOKEN_TEXT))]
    assert not any(results)


def test_truncated_bytes_never_raise_other_errors() -> None:
    decoded = [_decodes_or_token_error(b58encode(TOKEN_BYTES[:n])) for n in range(len(TOKEN_BYTES))]
    # Only cuts after the worker_info field (losing default_client_port) stay usable.
    assert decoded.count(True) == 1
    assert decoded[-4] is True


def test_random_bytes_and_text() -> None:
    rng = random.Random(20240601)
    for _ in range(500):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        _decodes_or_token_error(b58encode(raw))
        text = "".join(rng.choice(ALPHABET + "0OIl+/= \x00é") for _ in range(rng.randrange(1, 200)))
        _decodes_or_token_error(text)


def test_bit_flips_never_raise_other_errors() -> None:
    rng = random.Random(7)
    for _ in range(500):
        raw = bytearray(TOKEN_BYTES)
        for _ in range(rng.randrange(1, 4)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        _decodes_or_token_error(b58encode(bytes(raw)))


def test_error_is_value_error() -> None:
    assert issubclass(AuthzTokenError, ValueError)
