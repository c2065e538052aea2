"""Generic resource operations shared by every collection: render, read, list, update,
delete and membership actions (add/set/remove of linked ids)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bconnect.controller import aliasing, errors, sessionops
from bconnect.controller.context import Ctx
from bconnect.controller.storage import schema as t

Renderer = Callable[[Ctx, Any], dict[str, Any]]


@dataclass(frozen=True)
class Kind:
    """How one collection maps onto its table and Boundary's JSON."""

    rtype: str  # the grant type, e.g. "host-set"
    collection: str  # the URL collection, e.g. "host-sets"
    table: Table
    parent: str = "scope_id"  # the list/create parent field
    parent_table: Table | None = None  # for parents other than scopes
    owner_col: str | None = None  # sessions and auth tokens belong to a user
    render: Renderer | None = None
    has_common: bool = True  # name/description/version columns
    show_scope_id: bool = True
    scope_col: str = "scope_id"  # scopes keep their parent in parent_id
    model: Any = None  # the pydantic item model (for the OpenAPI document)
    aliasable: bool = False  # an alias value may stand for an id (targets)

    def scope_of(self, row: Any) -> str:
        return getattr(row, self.scope_col) or "global"


def fmt_time(value: datetime | None) -> str | None:
    """RFC 3339 in UTC the way protobuf-JSON writes it: 0, 3 or 6 fraction digits."""
    if value is None:
        return None
    base = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    micro = value.microsecond
    if micro == 0:
        return base + "Z"
    if micro % 1000 == 0:
        return f"{base}.{micro // 1000:03d}Z"
    return f"{base}.{micro:06d}Z"


def drop_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def render(ctx: Ctx, kind: Kind, row: Any, actions: list[str] | None = None) -> dict[str, Any]:
    """The JSON item for one row, with scope info and the caller's authorized actions."""
    owner = getattr(row, kind.owner_col) if kind.owner_col else None
    if actions is None:
        actions = ctx.acl.authorized_actions(kind.scope_of(row), kind.rtype, row.id, owner)
    item: dict[str, Any] = {"id": row.id}
    if kind.show_scope_id:
        item["scope_id"] = kind.scope_of(row)
    if kind.parent != "scope_id":
        item[kind.parent] = getattr(row, kind.parent)
    item["scope"] = ctx.scope_info(kind.scope_of(row))
    if kind.has_common:
        item["name"] = row.name or None
        item["description"] = row.description or None
        item["created_time"] = fmt_time(row.created_time)
        item["updated_time"] = fmt_time(row.updated_time)
        item["version"] = row.version
    if "type" in row._fields:
        item["type"] = row.type
    if kind.render is not None:
        item.update(kind.render(ctx, row))
    item["authorized_actions"] = actions
    return drop_none(item)


@cache
def _by_id(table: Table) -> Any:
    """``SELECT * FROM table WHERE id = :resource_id``, built once per table."""
    return select(table).where(table.c.id == bindparam("resource_id"))


def get_row(ctx: Ctx, kind: Kind, resource_id: str) -> Any:
    """The row of ``resource_id`` (for targets also an alias value standing for one)."""
    if kind.aliasable and aliasing.looks_like_alias(resource_id):
        resource_id = aliasing.resolve(ctx.conn, resource_id).destination_id
    row = ctx.conn.execute(_by_id(kind.table), {"resource_id": resource_id}).first()
    if row is None:
        raise errors.not_found(resource_id)
    return row


def read_checked(ctx: Ctx, kind: Kind, resource_id: str, action: str = "read") -> Any:
    """Load a row and check the caller may do ``action`` on it."""
    row = get_row(ctx, kind, resource_id)
    owner = getattr(row, kind.owner_col) if kind.owner_col else None
    ctx.require(kind.scope_of(row), kind.rtype, action, row.id, owner)
    return row


def parent_scope(ctx: Ctx, kind: Kind, parent_id: str | None) -> str:
    """The scope a create/list on ``kind`` under ``parent_id`` happens in."""
    if kind.parent == "scope_id":
        scope_id = parent_id or "global"
        ctx.scope_row(scope_id)
        return scope_id
    if not parent_id:
        raise errors.invalid_field(kind.parent, "This field is required.")
    assert kind.parent_table is not None
    parent = ctx.conn.execute(
        select(kind.parent_table.c.scope_id).where(kind.parent_table.c.id == parent_id)
    ).first()
    if parent is None:
        raise errors.not_found(parent_id)
    return parent.scope_id


def insert_row(ctx: Ctx, kind: Kind, values: dict[str, Any]) -> Any:
    values = dict(values)
    if kind.has_common:
        values.setdefault("created_time", ctx.now)
        values.setdefault("updated_time", ctx.now)
        values.setdefault("version", 1)
    try:
        with ctx.conn.begin_nested():
            ctx.conn.execute(insert(kind.table).values(**values))
    except IntegrityError:
        raise errors.invalid_field(
            "name", "A resource with this name already exists in this scope."
        ) from None
    return get_row(ctx, kind, values["id"])


def update_row(
    ctx: Ctx, kind: Kind, row: Any, version: int, values: dict[str, Any], bump: bool = True
) -> Any:
    """Apply ``values`` if ``version`` is current (optimistic locking)."""
    if row.version != version:
        raise errors.version_mismatch()
    values = dict(values)
    if bump:
        values["version"] = row.version + 1
        values["updated_time"] = ctx.now
    stmt = (
        update(kind.table)
        .where(kind.table.c.id == row.id, kind.table.c.version == version)
        .values(**values)
    )
    try:
        with ctx.conn.begin_nested():
            result = ctx.conn.execute(stmt)
    except IntegrityError:
        raise errors.invalid_field(
            "name", "A resource with this name already exists in this scope."
        ) from None
    if result.rowcount != 1:
        raise errors.version_mismatch()
    return get_row(ctx, kind, row.id)


def patch_row(ctx: Ctx, kind: Kind, row: Any, version: int, values: dict[str, Any]) -> Any:
    """A PATCH: like update_row, but an update that sets nothing is an error (Boundary
    reports an empty update mask)."""
    if not values:
        raise errors.invalid_field("update_mask", "No fields included in the update.")
    return update_row(ctx, kind, row, version, values)


def common_updates(body: Any, fields: Iterable[str] = ("name", "description")) -> dict[str, Any]:
    """The fields a PATCH body sets (an explicit null clears a field)."""
    return {f: getattr(body, f) for f in fields if f in body.model_fields_set}


# What a delete takes with it through foreign-key cascades: collection -> children.
CASCADES: dict[str, list[tuple[str, Table, str]]] = {
    "host-catalogs": [
        ("hosts", t.hosts, "host_catalog_id"),
        ("host-sets", t.host_sets, "host_catalog_id"),
    ],
    "credential-stores": [("credentials", t.credentials, "credential_store_id")],
    "storage-buckets": [("session-recordings", t.session_recordings, "storage_bucket_id")],
    "auth-methods": [
        ("accounts", t.accounts, "auth_method_id"),
        ("auth-tokens", t.auth_tokens, "auth_method_id"),
    ],
    "accounts": [("auth-tokens", t.auth_tokens, "account_id")],
    "users": [("auth-tokens", t.auth_tokens, "user_id")],
}
PARENT_COL = {
    "hosts": "host_catalog_id",
    "host-sets": "host_catalog_id",
    "credentials": "credential_store_id",
    "accounts": "auth_method_id",
}
OWNER_COL = {"auth-tokens": "user_id", "sessions": "user_id"}


def record_deleted(ctx: Ctx, collection: str, table: Table, where: Any) -> dict[str, set[str]]:
    """Note rows about to be deleted (and what cascades with them) so list refreshes can
    report them in ``removed_ids``; returns their ids by collection."""
    return note_deleted(ctx.conn, ctx.now, collection, table, where)


def note_deleted(
    conn: Connection, now: datetime, collection: str, table: Table, where: Any
) -> dict[str, set[str]]:
    """:func:`record_deleted` outside a request (the periodic jobs)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(coll: str, tbl: Table, clause: Any) -> None:
        rows = conn.execute(select(tbl).where(clause)).all()
        for row in rows:
            parent = PARENT_COL.get(coll)
            owner = OWNER_COL.get(coll)
            found.setdefault(
                row.id,
                {
                    "id": row.id,
                    "collection": coll,
                    "scope_id": getattr(row, "scope_id", None)
                    or getattr(row, "parent_id", None)
                    or "global",
                    "parent_id": getattr(row, parent) if parent else None,
                    "owner_id": getattr(row, owner) if owner else None,
                    "delete_time": now,
                },
            )
        ids = [r.id for r in rows]
        for child, child_table, fk in CASCADES.get(coll, ()):
            if ids:
                walk(child, child_table, child_table.c[fk].in_(ids))

    walk(collection, table, where)
    if found:
        conn.execute(insert(t.deleted_items), list(found.values()))
    by_collection: dict[str, set[str]] = {}
    for item in found.values():
        by_collection.setdefault(item["collection"], set()).add(item["id"])
    return by_collection


# The session column that names each kind of resource a session hangs on.
SESSION_LINKS = {
    "auth-tokens": "auth_token_id",
    "users": "user_id",
    "targets": "target_id",
    "hosts": "host_id",
    "host-sets": "host_set_id",
}


def before_delete(ctx: Ctx, collection: str, table: Table, where: Any) -> None:
    """What deleting the rows of ``table`` matching ``where`` does besides the
    foreign-key cascades, in the same transaction: targets' aliases lose their
    destination; deleted items are noted for list refreshes; and, as Boundary's
    ``cancel_session_with_null_fk`` trigger does, every session that hangs on a deleted
    user, auth token, target, host or host set (directly or through a cascade, e.g. a
    user's tokens) is canceled: removing access removes it."""
    if collection == "targets":
        aliasing.detach_from_targets(ctx.conn, where, ctx.now)
    deleted = record_deleted(ctx, collection, table, where)
    for name, column in SESSION_LINKS.items():
        if deleted.get(name):
            sessionops.cancel_sessions_where(
                ctx.conn, t.sessions.c[column].in_(sorted(deleted[name])), ctx.now
            )


def revoke_tokens(ctx: Ctx, where: Any) -> None:
    """Delete the auth tokens matching ``where`` (they stop working at once) and cancel
    the sessions they made."""
    before_delete(ctx, "auth-tokens", t.auth_tokens, where)
    ctx.conn.execute(delete(t.auth_tokens).where(where))


def delete_row(ctx: Ctx, kind: Kind, resource_id: str) -> None:
    row = read_checked(ctx, kind, resource_id, "delete")
    before_delete(ctx, kind.collection, kind.table, kind.table.c.id == row.id)
    ctx.conn.execute(delete(kind.table).where(kind.table.c.id == row.id))


def linked_ids(ctx: Ctx, link: Table, key_col: str, key: str, value_col: str) -> list[str]:
    rows = ctx.conn.execute(
        select(link.c[value_col]).where(link.c[key_col] == key).order_by(link.c[value_col])
    )
    return [r[0] for r in rows]


def change_links(
    ctx: Ctx,
    kind: Kind,
    resource_id: str,
    action: str,
    version: int,
    link: Table,
    key_col: str,
    value_col: str,
    values: list[str],
    validate: Callable[[str], None],
    extra: dict[str, Any] | None = None,
    on_removed: Callable[[list[str]], None] | None = None,
    bump: bool = True,
) -> Any:
    """add-*/set-*/remove-* membership actions; bumps the owner's version (unless the
    caller makes several changes and bumps once itself). ``on_removed`` hears which
    values were taken out."""
    row = read_checked(ctx, kind, resource_id, action)
    resource_id = row.id  # an alias value may have named it
    if row.version != version:
        raise errors.version_mismatch()
    mode = action.split("-", 1)[0]
    where = [link.c[key_col] == resource_id]
    for col, val in (extra or {}).items():
        where.append(link.c[col] == val)
    current = {r[0] for r in ctx.conn.execute(select(link.c[value_col]).where(*where))}
    wanted = list(dict.fromkeys(values))
    if mode in ("add", "set"):
        for value in wanted:
            validate(value)
    if mode == "add":
        dup = [v for v in wanted if v in current]
        if dup:
            raise errors.invalid_field(value_col, f"Already present: {', '.join(dup)}.")
        to_add, to_remove = wanted, []
    elif mode == "remove":
        missing = [v for v in wanted if v not in current]
        if missing:
            raise errors.invalid_field(value_col, f"Not present: {', '.join(missing)}.")
        to_add, to_remove = [], wanted
    else:
        to_add = [v for v in wanted if v not in current]
        to_remove = [v for v in current if v not in wanted]
    if mode != "set" and not wanted:
        raise errors.invalid_field(value_col, "Must contain at least one id.")
    for value in to_add:
        ctx.conn.execute(
            insert(link).values({key_col: resource_id, value_col: value, **(extra or {})})
        )
    if to_remove:
        ctx.conn.execute(delete(link).where(*where, link.c[value_col].in_(to_remove)))
        if on_removed is not None:
            on_removed(list(to_remove))
    return update_row(ctx, kind, row, version, {}) if bump else row
