"""Base58 with the Bitcoin alphabet (what Boundary's ``mr-tron/base58`` uses).

Each leading zero byte is written as a leading ``"1"`` and vice versa; the rest is the
big-endian number in base 58. No checksum.

An authorization token is about 1,200 bytes (a 1,650-digit number), made for each
authorize-session and read by each ``connect``, so both directions work on ten digits
at a time (``58**10`` fits a machine word) with a table of two-digit strings, and the
encoder splits the big number in halves (a few large divisions done in C) rather than
peeling ten digits off it at a time (one pass over the whole number per ten digits).
"""

from __future__ import annotations

__all__ = ["ALPHABET", "b58decode", "b58encode"]

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {char: value for value, char in enumerate(ALPHABET)}
_PAIRS = [high + low for high in ALPHABET for low in ALPHABET]  # the 58**2 digit pairs
_PAIR_VALUE = {pair: value for value, pair in enumerate(_PAIRS)}
_PAIR = 58**2

_LEAF = 10  # digits handled with small-number arithmetic
#: ``_POWERS[k] == 58 ** (_LEAF * 2**k)``: up to 2,560 digits (1.8 KB), made at import so
#: that threads share it read-only
_POWERS: list[int] = [58**_LEAF]
for _ in range(8):
    _POWERS.append(_POWERS[-1] ** 2)


def _power(level: int) -> int:
    if level < len(_POWERS):
        return _POWERS[level]
    power: int = 58 ** (_LEAF << level)  # larger than tokens are: computed each time
    return power


def _render(number: int, level: int, out: list[str]) -> None:
    """Append exactly ``_LEAF * 2**level`` digits of ``number`` (< that power of 58),
    most significant first, zeros included."""
    if level == 0:
        rest, e = divmod(number, _PAIR)
        rest, d = divmod(rest, _PAIR)
        rest, c = divmod(rest, _PAIR)
        a, b = divmod(rest, _PAIR)
        out.append(_PAIRS[a] + _PAIRS[b] + _PAIRS[c] + _PAIRS[d] + _PAIRS[e])
        return
    high, low = divmod(number, _power(level - 1))
    _render(high, level - 1, out)
    _render(low, level - 1, out)


def b58encode(data: bytes) -> str:
    """Encode ``data`` as base58 text."""
    data = bytes(data)
    stripped = data.lstrip(b"\x00")
    zeros = len(data) - len(stripped)
    number = int.from_bytes(stripped, "big")
    level = 0
    while _power(level) <= number:
        level += 1
    digits: list[str] = []
    _render(number, level, digits)
    # the rendering's own leading zero digits go; the zero bytes' "1"s are put back
    return "1" * zeros + "".join(digits).lstrip(ALPHABET[0])


def b58decode(text: str) -> bytes:
    """Decode base58 ``text``; raise ``ValueError`` naming the first invalid character."""
    if not isinstance(text, str):
        raise TypeError(f"base58 input must be str, not {type(text).__name__}")
    number = 0
    head = len(text) % _LEAF  # the first digits, so the rest come in whole leaves
    pair = _PAIR_VALUE
    try:
        for char in text[:head]:
            number = number * 58 + _INDEX[char]
        for i in range(head, len(text), _LEAF):  # a leaf: five pairs
            leaf = pair[text[i : i + 2]] * _PAIR + pair[text[i + 2 : i + 4]]
            leaf = (leaf * _PAIR + pair[text[i + 4 : i + 6]]) * _PAIR + pair[text[i + 6 : i + 8]]
            number = number * _POWERS[0] + leaf * _PAIR + pair[text[i + 8 : i + 10]]
    except KeyError:
        position = next(i for i, char in enumerate(text) if char not in _INDEX)
        raise ValueError(
            f"invalid base58 character {text[position]!r} at position {position}"
        ) from None
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\x00" * zeros + body
