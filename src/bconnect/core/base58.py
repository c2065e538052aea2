"""Base58 with the Bitcoin alphabet (what Boundary's ``mr-tron/base58`` uses).

Each leading zero byte is written as a leading ``"1"`` and vice versa; the rest is the
big-endian number in base 58. No checksum.
"""

from __future__ import annotations

__all__ = ["ALPHABET", "b58decode", "b58encode"]

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {char: value for value, char in enumerate(ALPHABET)}


_CHUNK_DIGITS = 10
_CHUNK = 58**_CHUNK_DIGITS  # big-number divisions by 58^10, not 58: ten digits per step


def b58encode(data: bytes) -> str:
    """Encode ``data`` as base58 text."""
    data = bytes(data)
    stripped = data.lstrip(b"\x00")
    zeros = len(data) - len(stripped)
    number = int.from_bytes(stripped, "big")
    chunks: list[int] = []
    while number:
        number, rem = divmod(number, _CHUNK)
        chunks.append(rem)
    parts: list[str] = []
    for chunk in reversed(chunks):  # most significant first; each is 10 digits
        digits = []
        for _ in range(_CHUNK_DIGITS):
            chunk, rem = divmod(chunk, 58)
            digits.append(ALPHABET[rem])
        parts.append("".join(reversed(digits)))
    text = "".join(parts).lstrip(ALPHABET[0])  # the top chunk's padding zero digits
    return "1" * zeros + text


def b58decode(text: str) -> bytes:
    """Decode base58 ``text``; raise ``ValueError`` naming the first invalid character."""
    if not isinstance(text, str):
        raise TypeError(f"base58 input must be str, not {type(text).__name__}")
    number = 0
    for position, char in enumerate(text):
        value = _INDEX.get(char)
        if value is None:
            raise ValueError(f"invalid base58 character {char!r} at position {position}")
        number = number * 58 + value
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\x00" * zeros + body
