"""Boundary-style resource identifiers: ``<prefix>_<10 base62 characters>``."""

from __future__ import annotations

import secrets
import string

BASE62 = string.digits + string.ascii_letters


def random_base62(length: int) -> str:
    """Return ``length`` random base62 characters from a CSPRNG."""
    return "".join(secrets.choice(BASE62) for _ in range(length))


def new_id(prefix: str) -> str:
    """A fresh id such as ``ttcp_3kT9sPq0aZ``."""
    return f"{prefix}_{random_base62(10)}"


def prefix_of(resource_id: str) -> str:
    """The prefix of an id (``"ttcp"`` for ``ttcp_1234567890``); ``""`` when there is none."""
    head, sep, _ = resource_id.partition("_")
    return head if sep else ""
