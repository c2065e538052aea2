"""Client ↔ worker handshake codecs (docs/protocol.md §3): pure bytes in, values out.

* ``ClientHandshake`` / ``HandshakeResult``: the first WebSocket message each way
  (``worker.proxy.v1`` protobuf messages, §3.4 and §3.5).
* ``CloseCode``: the WebSocket close codes a worker uses (§3.6).
* ``parse_client_hello``: the SNI and ALPN of a raw TLS ClientHello, so the worker can
  find the session (an SNI or ALPN entry starting with ``s_``) before starting TLS.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from types import ModuleType

__all__ = [
    "ClientHandshake",
    "ClientHelloInfo",
    "CloseCode",
    "HandshakeCommand",
    "HandshakeError",
    "HandshakeResult",
    "IncompleteClientHello",
    "CANCELED_CLOSE_REASON",
    "NO_CONNECTIONS_CLOSE_REASON",
    "TOFU_TOKEN_LENGTH",
    "decode_client_handshake",
    "decode_handshake_result",
    "encode_client_handshake",
    "encode_handshake_result",
    "is_valid_tofu_token",
    "new_tofu_token",
    "parse_client_hello",
    "session_id_from_hello",
]

#: Close-frame texts the client reads (§3.6): the worker refusing one more connection
#: (Boundary's words: the session is used up, expired or canceled), and bconnect's worker
#: closing the connections of a session canceled (Boundary's says nothing then).
NO_CONNECTIONS_CLOSE_REASON = "unable to authorize connection"
CANCELED_CLOSE_REASON = "session canceled"
#: Boundary's worker closes with ``UNSUPPORTED_DATA`` unless the token is this long.
TOFU_TOKEN_LENGTH = 20
SESSION_ID_PREFIX = "s_"

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class HandshakeError(ValueError):
    """A handshake message or ClientHello that cannot be parsed."""


class IncompleteClientHello(HandshakeError):
    """The bytes end before the ClientHello does: read more and try again."""


class HandshakeCommand(IntEnum):
    """``worker.proxy.v1.HANDSHAKECOMMAND``."""

    UNSPECIFIED = 0  # a normal connection
    SESSION_CANCEL = 1  # ask the worker to cancel the session


class CloseCode(IntEnum):
    """WebSocket close codes of the TCP proxy (what Boundary's worker sends).

    * ``NORMAL_CLOSURE`` 1000: done (session canceled on request, connection finished).
    * ``PROTOCOL_ERROR`` 1002: the worker could not send the handshake result.
    * ``UNSUPPORTED_DATA`` 1003: "invalid tofu token" (not 20 characters).
    * ``POLICY_VIOLATION`` 1008: "invalid handshake received" (unparseable), or
      "tofu token not allowed" (differs from the one pinned at activation).
    * ``INTERNAL_ERROR`` 1011: "unable to authorize connection" (limit reached, expired,
      canceled), "refusing to activate session", "unable to cancel session".
    * ``PROTOCOL_SETUP_ERROR`` 3000: could not set up the proxy / dial the endpoint.
    """

    NORMAL_CLOSURE = 1000
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    INTERNAL_ERROR = 1011
    PROTOCOL_SETUP_ERROR = 3000


@dataclass(frozen=True)
class ClientHandshake:
    """``worker.proxy.v1.ClientHandshake``.

    ``command`` is a ``HandshakeCommand``, or the raw ``int`` for a value this version
    does not know (protobuf enums are open; Boundary treats those as a normal connection).
    """

    tofu_token: str
    command: HandshakeCommand | int = HandshakeCommand.UNSPECIFIED

    @property
    def cancel(self) -> bool:
        """Whether the client asks the worker to cancel the session."""
        return self.command == HandshakeCommand.SESSION_CANCEL


@dataclass(frozen=True)
class HandshakeResult:
    """``worker.proxy.v1.HandshakeResult``; ``-1`` means unlimited."""

    expiration: datetime
    connection_limit: int
    connections_left: int


def _pb() -> ModuleType:
    from bconnect.core.proto import proxy_pb2

    module: ModuleType = proxy_pb2  # generated: no types of its own
    return module


def new_tofu_token() -> str:
    """A fresh trust-on-first-use token: 20 random base62 characters."""
    return "".join(secrets.choice(_BASE62) for _ in range(TOFU_TOKEN_LENGTH))


def is_valid_tofu_token(token: str) -> bool:
    """Boundary's worker check: exactly 20 characters (anything else closes with 1003)."""
    return len(token) == TOFU_TOKEN_LENGTH


def encode_client_handshake(tofu_token: str, cancel: bool = False) -> bytes:
    """Serialize the client's first WebSocket message."""
    command = HandshakeCommand.SESSION_CANCEL if cancel else HandshakeCommand.UNSPECIFIED
    msg = _pb().ClientHandshake(tofu_token=tofu_token, command=int(command))
    data: bytes = msg.SerializeToString()
    return data


def decode_client_handshake(data: bytes) -> ClientHandshake:
    """Parse the client's first WebSocket message; ``HandshakeError`` if it is not one.

    The tofu token's length is not checked here: see ``is_valid_tofu_token``.
    """
    try:
        msg = _pb().ClientHandshake.FromString(bytes(data))
    except Exception:  # DecodeError, TypeError, RecursionError on hostile input
        raise HandshakeError("invalid handshake received") from None
    try:
        command: HandshakeCommand | int = HandshakeCommand(msg.command)
    except ValueError:
        command = int(msg.command)
    return ClientHandshake(tofu_token=msg.tofu_token, command=command)


def encode_handshake_result(
    expiration: datetime, connection_limit: int, connections_left: int
) -> bytes:
    """Serialize the worker's reply to a ``ClientHandshake``."""
    if not isinstance(expiration, datetime) or expiration.tzinfo is None:
        raise ValueError("expiration must be a timezone-aware datetime")
    delta = expiration - _EPOCH
    msg = _pb().HandshakeResult(
        connection_limit=connection_limit, connections_left=connections_left
    )
    msg.expiration.seconds = delta.days * 86400 + delta.seconds
    msg.expiration.nanos = delta.microseconds * 1000
    data: bytes = msg.SerializeToString()
    return data


def decode_handshake_result(data: bytes) -> HandshakeResult:
    """Parse the worker's reply; ``HandshakeError`` if it is not a ``HandshakeResult``."""
    try:
        msg = _pb().HandshakeResult.FromString(bytes(data))
    except Exception:
        raise HandshakeError("invalid handshake result received") from None
    seconds, nanos = msg.expiration.seconds, msg.expiration.nanos
    if not 0 <= nanos <= 999_999_999:
        raise HandshakeError("invalid handshake result: bad expiration timestamp")
    try:
        expiration = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except (OverflowError, ValueError):
        raise HandshakeError("invalid handshake result: expiration out of range") from None
    return HandshakeResult(
        expiration=expiration,
        connection_limit=msg.connection_limit,
        connections_left=msg.connections_left,
    )


# --- TLS ClientHello -------------------------------------------------------------------

_RECORD_HANDSHAKE = 22
_HANDSHAKE_CLIENT_HELLO = 1
_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_SNI_HOST_NAME = 0
_MAX_RECORD = 2**14 + 2048  # TLSCiphertext limit; plaintext hellos are smaller
_MAX_HELLO = 2**17  # far above any real ClientHello; stops a peer making us buffer 16 MiB


@dataclass(frozen=True)
class ClientHelloInfo:
    """What the worker needs from a ClientHello: server name and offered ALPN protocols."""

    sni: str | None
    alpn: tuple[str, ...]


class _Reader:
    """Bounds-checked big-endian reader over a ``bytes`` slice."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n > self.remaining():
            raise HandshakeError(f"malformed ClientHello: truncated {self.what}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, len_size: int, what: str) -> _Reader:
        length = self.uint(len_size)
        return _Reader(self.take(length), what)


def _handshake_bytes(data: bytes) -> bytes:
    """Join the handshake-record fragments at the start of ``data`` into one ClientHello.

    Raises ``IncompleteClientHello`` if ``data`` ends before the ClientHello does.
    """
    data = bytes(data)
    payload = bytearray()
    pos = 0
    needed: int | None = None
    while needed is None or len(payload) < needed:
        if len(data) - pos < 5:
            raise IncompleteClientHello("incomplete ClientHello: truncated TLS record header")
        content_type = data[pos]
        major = data[pos + 1]
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if content_type != _RECORD_HANDSHAKE:
            raise HandshakeError(
                f"not a TLS ClientHello: record content type {content_type}, expected 22"
            )
        if major != 3:
            raise HandshakeError(f"not a TLS ClientHello: record version {major}.x")
        if length == 0 or length > _MAX_RECORD:
            raise HandshakeError(f"malformed ClientHello: bad record length {length}")
        pos += 5
        fragment = data[pos : pos + length]
        if len(fragment) < length:
            raise IncompleteClientHello("incomplete ClientHello: truncated TLS record")
        pos += length
        payload += fragment
        if needed is None and len(payload) >= 4:
            if payload[0] != _HANDSHAKE_CLIENT_HELLO:
                raise HandshakeError(
                    f"not a TLS ClientHello: handshake type {payload[0]}, expected 1"
                )
            needed = 4 + int.from_bytes(payload[1:4], "big")
            if needed > _MAX_HELLO:
                raise HandshakeError(f"malformed ClientHello: length {needed - 4} too large")
    return bytes(payload[:needed])


def parse_client_hello(record: bytes) -> ClientHelloInfo:
    """Extract SNI and ALPN from the raw bytes a TLS client sends first.

    ``record`` starts with the TLS record header (content type 22); a ClientHello split
    over several records is reassembled, and bytes after it are ignored. Raises
    ``IncompleteClientHello`` (a ``HandshakeError``) when the data is a valid prefix that
    ends too early, ``HandshakeError`` when it is not a well-formed ClientHello.
    """
    message = _handshake_bytes(record)
    body = _Reader(message[4:], "ClientHello")
    body.take(2 + 32)  # legacy_version, random
    body.vector(1, "session id")
    suites = body.vector(2, "cipher suites")
    if suites.remaining() == 0 or suites.remaining() % 2:
        raise HandshakeError("malformed ClientHello: bad cipher suite list")
    if body.vector(1, "compression methods").remaining() == 0:
        raise HandshakeError("malformed ClientHello: empty compression method list")
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    if body.remaining():
        extensions = body.vector(2, "extensions")
        if body.remaining():
            raise HandshakeError("malformed ClientHello: trailing bytes after extensions")
        seen: set[int] = set()
        while extensions.remaining():
            ext_type = extensions.uint(2)
            ext = extensions.vector(2, "extension")
            if ext_type in seen:
                raise HandshakeError(f"malformed ClientHello: duplicate extension {ext_type}")
            seen.add(ext_type)
            if ext_type == _EXT_SERVER_NAME:
                sni = _parse_sni(ext)
            elif ext_type == _EXT_ALPN:
                alpn = _parse_alpn(ext)
    return ClientHelloInfo(sni=sni, alpn=alpn)


def _parse_sni(ext: _Reader) -> str | None:
    names = ext.vector(2, "server name list")
    if ext.remaining():
        raise HandshakeError("malformed ClientHello: trailing bytes in server_name")
    host: str | None = None
    while names.remaining():
        name_type = names.uint(1)
        name = names.vector(2, "server name").data
        if name_type == _SNI_HOST_NAME and host is None:
            if not name:
                raise HandshakeError("malformed ClientHello: empty server name")
            try:
                host = name.decode("ascii")
            except UnicodeDecodeError:
                raise HandshakeError("malformed ClientHello: non-ASCII server name") from None
    return host


def _parse_alpn(ext: _Reader) -> tuple[str, ...]:
    protocols = ext.vector(2, "ALPN protocol list")
    if ext.remaining():
        raise HandshakeError("malformed ClientHello: trailing bytes in ALPN extension")
    result: list[str] = []
    while protocols.remaining():
        name = protocols.vector(1, "ALPN protocol").data
        if not name:
            raise HandshakeError("malformed ClientHello: empty ALPN protocol name")
        result.append(name.decode("latin-1"))
    if not result:
        raise HandshakeError("malformed ClientHello: empty ALPN protocol list")
    return tuple(result)


def session_id_from_hello(info: ClientHelloInfo) -> str | None:
    """The session id a client names: its SNI, else the first ALPN entry, starting ``s_``."""
    candidates = ([info.sni] if info.sni else []) + list(info.alpn)
    for name in candidates:
        if name.startswith(SESSION_ID_PREFIX):
            return name
    return None
