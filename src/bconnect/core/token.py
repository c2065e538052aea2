"""The session authorization token (docs/protocol.md §2).

``authorization_token`` is the base58 (Bitcoin alphabet) text of a serialized
``controller.api.resources.targets.v1.SessionAuthorizationData`` message. The controller
mints it in ``:authorize-session``; ``connect -authz-token`` and the client proxy read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from bconnect.core.base58 import b58decode, b58encode

__all__ = [
    "AuthzData",
    "AuthzTokenError",
    "ScopeInfo",
    "decode_authz_token",
    "encode_authz_token",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRIVATE_KEY_SIZE = 64


class AuthzTokenError(ValueError):
    """An authorization token that cannot be used; ``str()`` is a one-line message."""


@dataclass(frozen=True)
class ScopeInfo:
    """``controller.api.resources.scopes.v1.ScopeInfo``."""

    id: str
    type: str
    name: str = ""
    description: str = ""
    parent_scope_id: str = ""


@dataclass(frozen=True)
class AuthzData:
    """The decoded contents of an authorization token.

    Times are timezone-aware UTC ``datetime`` objects (microsecond precision).
    ``private_key`` is the 64-byte Ed25519 key (32-byte seed, then the 32-byte public
    key); it and the certificate are left out of ``repr()`` so they never reach logs.
    """

    session_id: str
    target_id: str
    scope: ScopeInfo
    created_time: datetime
    type: str
    connection_limit: int
    endpoint_port: int
    expiration: datetime
    certificate: bytes = field(repr=False)
    private_key: bytes = field(repr=False)
    host_id: str
    endpoint: str
    worker_addresses: tuple[str, ...]
    default_client_port: int = 0

    @property
    def worker_address(self) -> str:
        """The worker to try first (``worker_addresses[0]``)."""
        return self.worker_addresses[0]


def _pb() -> ModuleType:
    """Import the generated protobuf module lazily (keeps ``--help`` fast)."""
    from bconnect.core.proto import target_pb2

    module: ModuleType = target_pb2  # generated: no types of its own
    return module


def _to_timestamp(value: datetime, name: str) -> tuple[int, int]:
    """Split an aware datetime into protobuf ``(seconds, nanos)``."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    delta = value - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    return seconds, delta.microseconds * 1000


def _from_timestamp(seconds: int, nanos: int, name: str) -> datetime:
    """Build an aware UTC datetime from protobuf ``(seconds, nanos)``, truncating to µs."""
    if not 0 <= nanos <= 999_999_999:
        raise AuthzTokenError(f"malformed authorization token: invalid {name} timestamp")
    try:
        return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except (OverflowError, ValueError):
        raise AuthzTokenError(
            f"malformed authorization token: {name} timestamp out of range"
        ) from None


def encode_authz_token(data: AuthzData) -> str:
    """Serialize ``data`` to the base58 authorization-token text Boundary uses."""
    pb = _pb()
    msg = pb.SessionAuthorizationData(
        session_id=data.session_id,
        target_id=data.target_id,
        type=data.type,
        connection_limit=data.connection_limit,
        endpoint_port=data.endpoint_port,
        certificate=bytes(data.certificate),
        private_key=bytes(data.private_key),
        host_id=data.host_id,
        endpoint=data.endpoint,
        default_client_port=data.default_client_port,
    )
    scope = data.scope
    msg.scope.id = scope.id
    msg.scope.type = scope.type
    msg.scope.name = scope.name
    msg.scope.description = scope.description
    msg.scope.parent_scope_id = scope.parent_scope_id
    msg.created_time.seconds, msg.created_time.nanos = _to_timestamp(
        data.created_time, "created_time"
    )
    msg.expiration.seconds, msg.expiration.nanos = _to_timestamp(data.expiration, "expiration")
    for address in data.worker_addresses:
        msg.worker_info.add(address=address)
    return b58encode(msg.SerializeToString())


def decode_authz_token(token: str) -> AuthzData:
    """Parse an authorization token (surrounding whitespace is ignored).

    Raises ``AuthzTokenError`` (and nothing else) when the text is not base58, not a
    ``SessionAuthorizationData`` message, or lacks what a client needs to connect: a
    session id, certificate, 64-byte private key, expiration and at least one worker.
    """
    if not isinstance(token, str):
        raise AuthzTokenError("malformed authorization token: expected text")
    text = token.strip()
    if not text:
        raise AuthzTokenError("malformed authorization token: empty")
    try:
        raw = b58decode(text)
    except ValueError as exc:
        raise AuthzTokenError(f"malformed authorization token: not base58 ({exc})") from None
    if not raw:
        raise AuthzTokenError("malformed authorization token: no data after decoding")
    try:
        msg = _pb().SessionAuthorizationData.FromString(raw)
    except Exception:  # DecodeError, or RuntimeError/RecursionError on hostile input
        raise AuthzTokenError("malformed authorization token: not a protobuf message") from None
    return _from_message(msg)


def _from_message(msg: Any) -> AuthzData:
    """Validate a parsed ``SessionAuthorizationData`` and convert it."""
    problem = None
    if not msg.session_id:
        problem = "missing session_id"
    elif not msg.certificate:
        problem = "missing certificate"
    elif len(msg.private_key) != _PRIVATE_KEY_SIZE:
        problem = (
            f"private key is {len(msg.private_key)} bytes, expected {_PRIVATE_KEY_SIZE}"
            if msg.private_key
            else "missing private key"
        )
    elif not msg.HasField("expiration"):
        problem = "missing expiration"
    elif not msg.worker_info or not msg.worker_info[0].address:
        problem = "no worker address"
    if problem:
        raise AuthzTokenError(f"malformed authorization token: {problem}")
    scope = msg.scope
    return AuthzData(
        session_id=msg.session_id,
        target_id=msg.target_id,
        scope=ScopeInfo(
            id=scope.id,
            type=scope.type,
            name=scope.name,
            description=scope.description,
            parent_scope_id=scope.parent_scope_id,
        ),
        created_time=_from_timestamp(
            msg.created_time.seconds, msg.created_time.nanos, "created_time"
        ),
        type=msg.type,
        connection_limit=msg.connection_limit,
        endpoint_port=msg.endpoint_port,
        expiration=_from_timestamp(msg.expiration.seconds, msg.expiration.nanos, "expiration"),
        certificate=bytes(msg.certificate),
        private_key=bytes(msg.private_key),
        host_id=msg.host_id,
        endpoint=msg.endpoint,
        worker_addresses=tuple(w.address for w in msg.worker_info if w.address),
        default_client_port=msg.default_client_port,
    )
