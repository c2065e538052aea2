"""List tokens (pure).

A list token is opaque to clients: URL-safe base64 of a small JSON document saying which
collection it lists, a fingerprint of the query (a token is refused for another filter or
scope), and where the listing stands, then ``.`` and an HMAC of it with the controllers'
key (derived from their root key), so a forged or altered token is refused (400) before
any of it is used:

- ``page``: paging through the first, full listing (newest ``created_time`` first);
- ``refresh``: paging through what changed since a complete listing (newest
  ``updated_time`` first, only rows updated in ``[since, started)``);
- ``done``: a pass is complete; the next request starts a refresh from ``started``, the
  moment that pass began, so nothing created or changed while it was paged is missed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 1000

Phase = Literal["page", "refresh", "done"]


class ListTokenError(ValueError):
    """A list token that is malformed or belongs to another query."""


@dataclass(frozen=True)
class ListToken:
    collection: str
    fingerprint: str
    phase: Phase
    started: datetime  # when the pass (or, for "done", the completed pass) began
    since: datetime | None = None  # refresh lower bound
    last_sort: datetime | None = None  # position: the last row returned
    last_id: str | None = None


def query_fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:18])


def encode_list_token(token: ListToken, key: bytes) -> str:
    doc = {
        "c": token.collection,
        "f": token.fingerprint,
        "p": token.phase,
        "s": _ts(token.started),
        "r": _ts(token.since),
        "t": _ts(token.last_sort),
        "i": token.last_id,
    }
    body = _b64(json.dumps(doc, separators=(",", ":")).encode())
    return f"{body}.{_mac(key, body)}"


def decode_list_token(text: str, collection: str, fingerprint: str, key: bytes) -> ListToken:
    body, _, mac = text.partition(".")
    # as bytes: compare_digest refuses str with non-ASCII characters (a made-up token)
    if not mac or not hmac.compare_digest(mac.encode(), _mac(key, body).encode()):
        raise ListTokenError("list_token is malformed or was not issued by this controller")
    try:
        doc = json.loads(_unb64(body))
        started = _parse_ts(doc["s"])
        if started is None:
            raise ValueError("no start")
        token = ListToken(
            collection=doc["c"],
            fingerprint=doc["f"],
            phase=doc["p"],
            started=started,
            since=_parse_ts(doc.get("r")),
            last_sort=_parse_ts(doc.get("t")),
            last_id=doc.get("i"),
        )
        if token.phase not in ("page", "refresh", "done"):
            raise ValueError("bad phase")
        if token.phase == "refresh" and token.since is None:
            raise ValueError("refresh without a start")
        if (token.last_sort is None) != (token.last_id is None):
            raise ValueError("half a position")
        times = (token.started, token.since, token.last_sort)
        if any(t is not None and t.tzinfo is None for t in times):
            raise ValueError("a time without its zone")
        if not all(isinstance(v, str | None) for v in (token.last_id, token.collection)):
            raise ValueError("not text")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ListTokenError("list_token is malformed") from exc
    if token.collection != collection:
        raise ListTokenError(f"list_token is for {token.collection}, not {collection}")
    if token.fingerprint != fingerprint:
        raise ListTokenError("list_token was issued for a different query")
    return token


def clamp_page_size(page_size: int | None) -> int:
    """Boundary's rule: 0 or unset means the default; larger than the maximum is cut."""
    if page_size is None or page_size == 0:
        return DEFAULT_PAGE_SIZE
    if page_size < 0:
        raise ValueError("page_size must be positive")
    return min(page_size, MAX_PAGE_SIZE)
