"""List tokens and pagination positions (pure).

A list token is opaque to clients: URL-safe base64 of a small JSON document saying
which collection it lists, a fingerprint of the query (so a token is not reused for a
different filter or scope) and where the next page starts, or, once a listing is
complete, the time it finished (a later request with it returns what changed since).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 1000


class ListTokenError(ValueError):
    """A list token that is malformed or belongs to another query."""


@dataclass(frozen=True)
class ListToken:
    collection: str
    fingerprint: str
    # paging: the last item returned, in sort order (created_time desc, id desc)
    last_created: datetime | None = None
    last_id: str | None = None
    # refresh: when the complete listing was taken
    refresh_from: datetime | None = None


def query_fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def encode_list_token(token: ListToken) -> str:
    doc = {
        "c": token.collection,
        "f": token.fingerprint,
        "t": _ts(token.last_created),
        "i": token.last_id,
        "r": _ts(token.refresh_from),
    }
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_list_token(text: str, collection: str, fingerprint: str) -> ListToken:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        doc = json.loads(raw)
        token = ListToken(
            collection=doc["c"],
            fingerprint=doc["f"],
            last_created=_parse_ts(doc.get("t")),
            last_id=doc.get("i"),
            refresh_from=_parse_ts(doc.get("r")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ListTokenError("list_token is malformed") from exc
    if token.collection != collection:
        raise ListTokenError(f"list_token is for {token.collection}, not {collection}")
    if token.fingerprint != fingerprint:
        raise ListTokenError("list_token was issued for a different query")
    return token


def clamp_page_size(page_size: int | None) -> int:
    if page_size is None or page_size == 0:
        return DEFAULT_PAGE_SIZE
    if page_size < 0:
        raise ValueError("page_size must be positive")
    return min(page_size, MAX_PAGE_SIZE)
