"""Generic resource operations shared by every collection: render, read, list, update,
delete and membership actions (add/set/remove of linked ids)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from bconnect.controller import errors, listing
from bconnect.controller.context import Ctx
from bconnect.controller.filters import FilterError, compile_filter
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


def get_row(ctx: Ctx, kind: Kind, resource_id: str) -> Any:
    row = ctx.conn.execute(select(kind.table).where(kind.table.c.id == resource_id)).first()
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


def common_updates(body: Any, fields: Iterable[str] = ("name", "description")) -> dict[str, Any]:
    """The fields a PATCH body sets (an explicit null clears a field)."""
    return {f: getattr(body, f) for f in fields if f in body.model_fields_set}


def delete_row(ctx: Ctx, kind: Kind, resource_id: str) -> None:
    row = read_checked(ctx, kind, resource_id, "delete")
    ctx.conn.execute(delete(kind.table).where(kind.table.c.id == row.id))
    ctx.conn.execute(
        insert(t.deleted_items).values(
            id=row.id,
            collection=kind.collection,
            scope_id=kind.scope_of(row),
            delete_time=ctx.now,
        )
    )


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
) -> Any:
    """add-*/set-*/remove-* membership actions; bumps the owner's version."""
    row = read_checked(ctx, kind, resource_id, action)
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
    return update_row(ctx, kind, row, version, {})


# ---------------------------------------------------------------- listing


@dataclass
class ListQuery:
    parent_id: str | None = None
    recursive: bool = False
    filter: str | None = None
    page_size: int | None = None
    list_token: str | None = None
    include_terminated: bool = False


def list_items(
    ctx: Ctx,
    kind: Kind,
    q: ListQuery,
    extra_where: Iterable[Any] = (),
    visible: Callable[[Any], bool] | None = None,
) -> dict[str, Any]:
    """One page of a collection, newest first, with Boundary's list-token paging."""
    try:
        page_size = listing.clamp_page_size(q.page_size)
    except ValueError as exc:
        raise errors.invalid_field("page_size", str(exc)) from None
    predicate = None
    if q.filter:
        try:
            predicate = compile_filter(q.filter)
        except FilterError as exc:
            raise errors.invalid_field("filter", str(exc)) from None

    table = kind.table
    where: list[Any] = list(extra_where)
    if kind.parent == "scope_id":
        root = q.parent_id or "global"
        ctx.scope_row(root)
        candidates = ctx.descendants(root) if q.recursive else [root]
        allowed = [s for s in candidates if ctx.acl.allowed(s, kind.rtype, "list")]
        if not q.recursive and not allowed:
            ctx.require(root, kind.rtype, "list")
        where.append(table.c[kind.scope_col].in_(allowed))
    else:
        scope_id = parent_scope(ctx, kind, q.parent_id)
        ctx.require(scope_id, kind.rtype, "list")
        where.append(table.c[kind.parent] == q.parent_id)

    fingerprint = listing.query_fingerprint(
        kind.collection, q.parent_id, q.recursive, q.filter, q.include_terminated, ctx.user_id
    )
    token = None
    if q.list_token:
        try:
            token = listing.decode_list_token(q.list_token, kind.collection, fingerprint)
        except listing.ListTokenError as exc:
            raise errors.invalid_field("list_token", str(exc)) from None

    est = ctx.conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()

    def accept(row: Any) -> dict[str, Any] | None:
        if visible is not None and not visible(row):
            return None
        owner = getattr(row, kind.owner_col) if kind.owner_col else None
        actions = ctx.acl.authorized_actions(kind.scope_of(row), kind.rtype, row.id, owner)
        if not actions:
            return None
        item = render(ctx, kind, row, actions)
        if predicate is not None and not predicate({"item": item}):
            return None
        return item

    if token is not None and token.refresh_from is not None:
        return _refresh(ctx, kind, where, token, fingerprint, accept, visible, est)

    items: list[dict[str, Any]] = []
    order = (table.c.created_time.desc(), table.c.id.desc())
    position = (token.last_created, token.last_id) if token else None
    more = False
    chunk = max(page_size + 1, 100)
    last_row = None
    while True:
        stmt = select(table).where(*where)
        if position is not None:
            stmt = stmt.where(tuple_(table.c.created_time, table.c.id) < tuple_(*position))
        rows = ctx.conn.execute(stmt.order_by(*order).limit(chunk)).all()
        for row in rows:
            item = accept(row)
            if item is None:
                position = (row.created_time, row.id)
                continue
            if len(items) == page_size:
                more = True
                break
            items.append(item)
            last_row = row
            position = (row.created_time, row.id)
        if more or len(rows) < chunk:
            break

    if more:
        next_token = listing.ListToken(
            kind.collection, fingerprint, last_row.created_time, last_row.id
        )
    else:
        next_token = listing.ListToken(kind.collection, fingerprint, refresh_from=ctx.now)
    return {
        "items": items,
        "response_type": "delta" if more else "complete",
        "list_token": listing.encode_list_token(next_token),
        "sort_by": "created_time",
        "sort_dir": "desc",
        "removed_ids": [],
        "est_item_count": est,
    }


def _refresh(
    ctx: Ctx,
    kind: Kind,
    where: list[Any],
    token: listing.ListToken,
    fingerprint: str,
    accept: Callable[[Any], dict[str, Any] | None],
    visible: Callable[[Any], bool] | None,
    est: int,
) -> dict[str, Any]:
    """What changed since a complete listing: updated items and removed ids."""
    table = kind.table
    since = token.refresh_from
    base_where = [w for w in where]
    rows = ctx.conn.execute(
        select(table)
        .where(*base_where, table.c.updated_time >= since)
        .order_by(table.c.updated_time.desc(), table.c.id.desc())
        .limit(listing.MAX_PAGE_SIZE)
    ).all()
    items: list[dict[str, Any]] = []
    removed: list[str] = []
    for row in rows:
        item = accept(row)
        if item is None:
            if visible is not None and not visible(row):
                removed.append(row.id)
            continue
        items.append(item)
    removed.extend(
        r.id
        for r in ctx.conn.execute(
            select(t.deleted_items.c.id).where(
                t.deleted_items.c.collection == kind.collection,
                t.deleted_items.c.delete_time >= since,
            )
        )
    )
    next_token = listing.ListToken(kind.collection, fingerprint, refresh_from=ctx.now)
    return {
        "items": items,
        "response_type": "complete",
        "list_token": listing.encode_list_token(next_token),
        "sort_by": "updated_time",
        "sort_dir": "desc",
        "removed_ids": removed,
        "est_item_count": est,
    }
