"""Brokered credentials of a session authorization, as plain read-only objects.

``:authorize-session`` returns ``credentials``: each has a ``credential_source``, a
``secret`` (``raw`` base64 JSON, ``decoded``) and, for typed credentials, a decoded
``credential`` map (``username``/``password``, ``username``/``private_key``, ...).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SessionCredential", "parse_credentials"]


@dataclass(frozen=True)
class SessionCredential:
    """One brokered credential. ``fields`` holds the decoded values; secrets are kept
    out of ``repr()``."""

    source_id: str = ""
    store_id: str = ""
    source_name: str = ""
    source_type: str = ""
    credential_type: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict, repr=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    @property
    def username(self) -> str | None:
        return self.fields.get("username")

    @property
    def password(self) -> str | None:
        return self.fields.get("password")

    @property
    def private_key(self) -> str | None:
        return self.fields.get("private_key")

    @property
    def private_key_passphrase(self) -> str | None:
        return self.fields.get("private_key_passphrase")


def _decoded_secret(secret: Mapping[str, Any]) -> dict[str, Any]:
    decoded = secret.get("decoded")
    if isinstance(decoded, dict):
        return dict(decoded)
    raw = secret.get("raw")
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        value = json.loads(base64.b64decode(raw.strip('"'), validate=True))
    except (binascii.Error, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def parse_credentials(items: Iterable[Mapping[str, Any]] | None) -> tuple[SessionCredential, ...]:
    """Turn the ``credentials`` list of an authorization into :class:`SessionCredential`."""
    result = []
    for item in items or ():
        if not isinstance(item, Mapping):
            continue
        source = item.get("credential_source") or {}
        typed = item.get("credential")
        fields = dict(typed) if isinstance(typed, Mapping) and typed else {}
        if not fields:
            fields = _decoded_secret(item.get("secret") or {})
        result.append(
            SessionCredential(
                source_id=str(source.get("id", "")),
                store_id=str(source.get("credential_store_id", "")),
                source_name=str(source.get("name", "")),
                source_type=str(source.get("type", "")),
                credential_type=str(source.get("credential_type", "")),
                fields=fields,
                raw=dict(item),
            )
        )
    return tuple(result)
