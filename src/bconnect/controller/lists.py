"""Listing a collection: permissions, filters, pages and refreshes (see listing.py for
the token). Boundary's semantics: newest first, ``response_type`` "delta" while more pages
follow, and the last page's token later returns what changed, with ``removed_ids``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, tuple_

from bconnect.controller import errors, listing
from bconnect.controller.context import Ctx
from bconnect.controller.filters import FilterError, Predicate, compile_filter
from bconnect.controller.resources import Kind, parent_scope, render
from bconnect.controller.storage import schema as t


@dataclass
class ListQuery:
    parent_id: str | None = None
    recursive: bool = False
    filter: str | None = None
    page_size: int | None = None
    list_token: str | None = None
    include_terminated: bool = False


@dataclass
class Reach:
    """What part of a collection the caller may list."""

    clause: Any  # SQL condition on the collection's table
    scopes: list[str]  # scopes the listing covers
    everyone: list[str]  # of those, where the caller reads all items, not only their own


def _reach(ctx: Ctx, kind: Kind, q: ListQuery) -> Reach:
    """Which rows the caller may see at all, and the scopes the listing covers."""
    table = kind.table
    if kind.parent == "scope_id":
        root = q.parent_id or "global"
        ctx.scope_row(root)
        candidates = ctx.descendants(root) if q.recursive else [root]
        scopes = [s for s in candidates if ctx.acl.allowed(s, kind.rtype, "list")]
        if not q.recursive and not scopes:
            ctx.require(root, kind.rtype, "list")
        in_scope: ColumnElement[bool] = table.c[kind.scope_col].in_(scopes)
    else:
        scope_id = parent_scope(ctx, kind, q.parent_id)
        ctx.require(scope_id, kind.rtype, "list")
        scopes = [scope_id]
        in_scope = table.c[kind.parent] == q.parent_id
    if kind.owner_col is None:
        return Reach(in_scope, scopes, scopes)
    # Where the caller reads only their own (read:self), count and fetch only theirs.
    everyone = [s for s in scopes if ctx.acl.allowed(s, kind.rtype, "read")]
    own = table.c[kind.owner_col] == ctx.user_id if ctx.user_id else false()
    return Reach(and_(in_scope, or_(table.c[kind.scope_col].in_(everyone), own)), scopes, everyone)


def list_items(
    ctx: Ctx,
    kind: Kind,
    q: ListQuery,
    extra_where: Iterable[Any] = (),
    visible: Callable[[Any], bool] | None = None,
    *,
    reach: Reach | None = None,
    accept: Callable[[Any], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """One page. ``extra_where`` narrows the full listing (e.g. no terminated sessions);
    in a refresh, rows it would hide are judged by ``visible`` and reported removed.

    ``reach`` replaces what the caller's own grants let them list, and ``accept``
    renders a row (None to leave it out) in place of the caller's view of it: for
    listings about someone else's grants (a user's resolvable aliases)."""
    page_size = _page_size(q)
    predicate = _predicate(q)
    table = kind.table
    if reach is None:
        reach = _reach(ctx, kind, q)
    if accept is None:

        def accept(row: Any) -> dict[str, Any] | None:
            return _accept(ctx, kind, row)

    fingerprint = listing.query_fingerprint(
        kind.collection, q.parent_id, q.recursive, q.filter, q.include_terminated, ctx.user_id
    )
    cursor = _cursor(ctx, kind, q, fingerprint)

    where = [reach.clause]
    if cursor.phase == "page":
        sort_col = table.c.created_time
        where.extend(extra_where)
    else:
        sort_col = table.c.updated_time
        where += [sort_col >= cursor.since, sort_col < cursor.started]

    est = ctx.conn.execute(
        select(func.count()).select_from(table).where(reach.clause, *extra_where)
    ).scalar_one()

    hidden = visible if cursor.phase == "refresh" else None
    page = _scan(ctx, kind, where, sort_col, cursor, page_size, accept, predicate, hidden)
    if page.more:
        next_token = listing.ListToken(
            kind.collection,
            fingerprint,
            cursor.phase,
            cursor.started,
            cursor.since,
            getattr(page.last_row, sort_col.name),
            page.last_row.id,
        )
    else:
        if cursor.phase == "refresh":
            page.removed += _deleted_since(ctx, kind, reach, q, cursor.since, cursor.started)
        next_token = listing.ListToken(kind.collection, fingerprint, "done", cursor.started)
    return {
        "items": page.items,
        "response_type": "delta" if page.more else "complete",
        "list_token": listing.encode_list_token(next_token, ctx.settings.keyring.list_token_key),
        "sort_by": sort_col.name,
        "sort_dir": "desc",
        "removed_ids": page.removed,
        "est_item_count": est,
    }


def _page_size(q: ListQuery) -> int:
    try:
        return listing.clamp_page_size(q.page_size)
    except ValueError as exc:
        raise errors.invalid_field("page_size", str(exc)) from None


def _predicate(q: ListQuery) -> Predicate | None:
    """The compiled ``filter``, None without one."""
    if not q.filter:
        return None
    try:
        return compile_filter(q.filter)
    except FilterError as exc:
        raise errors.invalid_field("filter", str(exc)) from None


@dataclass
class _Cursor:
    """Where a listing stands: paging through everything (``page``) or through what
    changed between ``since`` and ``started`` (``refresh``), past ``position`` (the last
    row's sort value and id; None at the start)."""

    phase: listing.Phase  # never "done": a finished listing's token goes on as a refresh
    started: Any
    since: Any = None
    position: tuple[Any, Any] | None = None


def _cursor(ctx: Ctx, kind: Kind, q: ListQuery, fingerprint: str) -> _Cursor:
    """The cursor ``list_token`` carries on; a fresh listing without one, and a refresh
    of what changed since a finished listing's token."""
    if not q.list_token:
        return _Cursor("page", ctx.now)
    try:
        token = listing.decode_list_token(
            q.list_token, kind.collection, fingerprint, ctx.settings.keyring.list_token_key
        )
    except listing.ListTokenError as exc:
        raise errors.invalid_field("list_token", str(exc)) from None
    if token.phase == "done":
        return _Cursor("refresh", ctx.now, token.started)
    return _Cursor(token.phase, token.started, token.since, (token.last_sort, token.last_id))


@dataclass
class _Page:
    items: list[dict[str, Any]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # ids ``visible`` says are gone
    more: bool = False  # another page follows
    last_row: Any = None  # the row of the last item


def _scan(
    ctx: Ctx,
    kind: Kind,
    where: list[Any],
    sort_col: Any,
    cursor: _Cursor,
    page_size: int,
    accept: Callable[[Any], dict[str, Any] | None],
    predicate: Predicate | None,
    visible: Callable[[Any], bool] | None,
) -> _Page:
    """Read rows newest first, past the cursor, in chunks, until a page of items the
    caller may see (and the filter keeps) is full or the rows run out."""
    table = kind.table
    position = cursor.position
    page = _Page()
    chunk = max(page_size + 1, 100)
    while True:
        stmt = select(table).where(*where)
        if position is not None:
            stmt = stmt.where(tuple_(sort_col, table.c.id) < tuple_(*position))
        rows = ctx.conn.execute(
            stmt.order_by(sort_col.desc(), table.c.id.desc()).limit(chunk)
        ).all()
        for row in rows:
            if visible is not None and not visible(row):
                page.removed.append(row.id)
                position = (getattr(row, sort_col.name), row.id)
                continue
            item = accept(row)
            if item is not None and predicate is not None and not predicate({"item": item}):
                item = None
            if item is not None:
                if len(page.items) == page_size:
                    page.more = True
                    break
                page.items.append(item)
                page.last_row = row
            position = (getattr(row, sort_col.name), row.id)
        if page.more or len(rows) < chunk:
            return page


def _accept(ctx: Ctx, kind: Kind, row: Any) -> dict[str, Any] | None:
    """The rendered item if the caller may see it."""
    owner = getattr(row, kind.owner_col) if kind.owner_col else None
    actions = ctx.acl.authorized_actions(kind.scope_of(row), kind.rtype, row.id, owner)
    if not actions:
        return None
    return render(ctx, kind, row, actions)


def _deleted_since(
    ctx: Ctx, kind: Kind, reach: Reach, q: ListQuery, since: Any, until: Any
) -> list[str]:
    d = t.deleted_items
    where = [
        d.c.collection == kind.collection,
        d.c.delete_time >= since,
        d.c.delete_time < until,
        d.c.scope_id.in_(reach.scopes),
    ]
    if kind.parent != "scope_id":
        where.append(d.c.parent_id == q.parent_id)
    if kind.owner_col is not None:
        where.append(or_(d.c.scope_id.in_(reach.everyone), d.c.owner_id == ctx.user_id))
    return [r.id for r in ctx.conn.execute(select(d.c.id).where(*where))]
