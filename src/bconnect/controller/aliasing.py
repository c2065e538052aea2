"""Aliases (Boundary ≥ 0.16): the rules for an alias value, and resolving one.

An alias is a DNS-like name (``web.prod``) that stands for a target wherever a target
id is taken (``POST /v1/targets/web.prod:authorize-session``, reads, updates, deletes
and the source actions), optionally with the host to connect to. A value never has an
underscore, so it can never be mistaken for an id (``ttcp_…``); that is also how a
path segment is told to be an alias.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from bconnect.controller import errors
from bconnect.controller.storage import schema as t

MAX_VALUE = 253
_LABEL = r"(?!-)[a-z0-9-]{0,62}[a-z0-9]"
_VALUE = re.compile(rf"{_LABEL}(\.{_LABEL})*", re.IGNORECASE)
#: what an alias's destination may be (Boundary: tcp, ssh and rdp targets)
DESTINATION_PREFIXES = ("ttcp_", "tssh_", "trdp_")
HOST_PREFIXES = ("hst_", "hplg_")

_BY_KEY = select(t.aliases).where(t.aliases.c.value_key == bindparam("key"))


def value_problem(value: str) -> str:
    """Why ``value`` cannot be an alias ("" when it can): Boundary's rules, a DNS-like
    name of labels ``[a-z0-9-]`` (any case) joined by dots, at most 253 characters,
    no label starting or ending with a dash, the last one not all digits."""
    if not value or value != value.strip():
        return "Must not be empty or start or end with a space."
    if len(value) > MAX_VALUE:
        return f"Must be at most {MAX_VALUE} characters."
    if not _VALUE.fullmatch(value):
        return (
            "Must be a DNS-like name: letters, digits and dashes in dot-separated labels "
            "of at most 63 characters, no label starting or ending with a dash."
        )
    if value.rsplit(".", 1)[-1].isdigit():
        return "The last label must not be all digits."
    return ""


def value_key(value: str) -> str:
    """The form uniqueness is judged in (Boundary compares values case-insensitively)."""
    return value.lower()


def looks_like_alias(text: str) -> bool:
    """Whether a path segment where an id is expected is an alias value instead."""
    return bool(text) and "_" not in text


def find_alias(conn: Connection, value: str) -> Any:
    """The alias row for ``value`` (any case), or None."""
    return conn.execute(_BY_KEY, {"key": value_key(value)}).first()


def resolve(conn: Connection, value: str) -> Any:
    """The alias row standing for a target; 404 (as Boundary) when there is none or it
    has no destination."""
    row = find_alias(conn, value)
    if row is None:
        raise errors.NotFound(f"Resource not found: no alias {value!r}.")
    if row.destination_id is None:
        raise errors.NotFound(f"Resource not found: alias {value!r} has no destination.")
    return row


def detach_from_targets(conn: Connection, where: Any, now: datetime) -> None:
    """Before targets are deleted: their aliases stay, without destination or host
    (Boundary's ``on delete set null`` and its trigger clearing the host)."""
    target_ids = select(t.targets.c.id).where(where).scalar_subquery()
    conn.execute(
        update(t.aliases)
        .where(t.aliases.c.destination_id.in_(target_ids))
        .values(
            destination_id=None,
            host_id=None,
            version=t.aliases.c.version + 1,
            updated_time=now,
        )
    )
