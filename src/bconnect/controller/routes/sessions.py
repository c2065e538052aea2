"""/v1/sessions: list, read and :cancel."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from bconnect.controller import errors, sessionops
from bconnect.controller import resources as res
from bconnect.controller.context import Ctx
from bconnect.controller.lists import list_items
from bconnect.controller.models import SessionItem, SessionResponse, VersionOnly, list_response
from bconnect.controller.routes.common import (
    Filter,
    ListToken,
    PageSize,
    Recursive,
    list_query,
)
from bconnect.controller.sessionstate import InvalidTransition, Status
from bconnect.controller.storage import schema as t
from bconnect.controller.transaction import transaction

router = APIRouter(tags=["sessions"])


def _render(ctx: Ctx, row: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "target_id": row.target_id,
        "created_time": res.fmt_time(row.created_time),
        "updated_time": res.fmt_time(row.updated_time),
        "version": row.version,
        "expiration_time": res.fmt_time(row.expiration_time),
        "auth_token_id": row.auth_token_id,
        "user_id": row.user_id,
        "host_set_id": row.host_set_id,
        "host_id": row.host_id,
        "endpoint": row.endpoint,
        "status": row.status,
        "termination_reason": row.termination_reason,
    }
    return doc


def _details(ctx: Ctx, row: Any) -> dict[str, Any]:
    """What only a read shows: state history, certificate and connections."""
    doc: dict[str, Any] = {}
    states = ctx.conn.execute(
        select(t.session_states)
        .where(t.session_states.c.session_id == row.id)
        .order_by(t.session_states.c.start_time.desc())
    ).all()
    # newest first, by the lifecycle (pending → active → canceling → terminated): a
    # state's time comes from the request that set it, and two racing requests (an API
    # cancel, the worker's last close report) may stamp them out of order
    order = {s.value: i for i, s in enumerate(Status)}
    states = sorted(states, key=lambda s: (order[s.status], s.start_time), reverse=True)
    doc["states"] = [
        res.drop_none(
            {
                "status": s.status,
                "start_time": res.fmt_time(s.start_time),
                "end_time": res.fmt_time(s.end_time),
            }
        )
        for s in states
    ]
    doc["certificate"] = base64.b64encode(row.certificate).decode()
    conns = ctx.conn.execute(
        select(t.session_connections)
        .where(t.session_connections.c.session_id == row.id)
        .order_by(t.session_connections.c.created_time)
    ).all()
    doc["connections"] = [
        res.drop_none(
            {
                "client_tcp_address": c.client_tcp_address,
                "client_tcp_port": c.client_tcp_port,
                "endpoint_tcp_address": c.endpoint_tcp_address,
                "endpoint_tcp_port": c.endpoint_tcp_port,
                "bytes_up": str(c.bytes_up),
                "bytes_down": str(c.bytes_down),
                "closed_reason": c.closed_reason,
            }
        )
        for c in conns
    ] or None
    return doc


SESSIONS = res.Kind(
    "session",
    "sessions",
    t.sessions,
    owner_col="user_id",
    render=_render,
    has_common=False,
    model=SessionItem,
)


@router.get(
    "/v1/sessions", response_model=list_response(SessionItem), response_model_exclude_none=True
)
def list_sessions(
    request: Request,
    scope_id: str = "global",
    recursive: Recursive = False,
    filter: Filter = None,
    page_size: PageSize = None,
    list_token: ListToken = None,
    include_terminated: bool = False,
) -> dict[str, Any]:
    """Sessions, newest first; terminated ones only with ``include_terminated=true``."""
    with transaction(request) as ctx:
        q = list_query(scope_id, recursive, filter, page_size, list_token, include_terminated)
        where = [] if include_terminated else [t.sessions.c.status != Status.TERMINATED.value]
        visible = None if include_terminated else (lambda r: r.status != "terminated")
        return list_items(ctx, SESSIONS, q, where, visible)


@router.get("/v1/sessions/{id}", response_model=SessionResponse, response_model_exclude_none=True)
def read_session(request: Request, id: str) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, SESSIONS, id)
        return {**res.render(ctx, SESSIONS, row), **_details(ctx, row)}


@router.post(
    "/v1/sessions/{id}:cancel", response_model=SessionResponse, response_model_exclude_none=True
)
def cancel_session(request: Request, id: str, body: VersionOnly) -> dict[str, Any]:
    """Cancel a session: ``canceling`` until its worker reports nothing open."""
    with transaction(request) as ctx:
        res.read_checked(ctx, SESSIONS, id, "cancel")
        # locked, then read again: a job or a worker's report may be changing it right now
        row = sessionops.lock_session(ctx.conn, id)
        if row.version != body.version:
            raise errors.version_mismatch()
        if row.status not in (Status.CANCELING.value, Status.TERMINATED.value):
            try:
                sessionops.cancel(ctx.conn, row, ctx.now)
            except InvalidTransition as exc:
                raise errors.invalid_field("id", str(exc)) from None
        row = res.get_row(ctx, SESSIONS, id)
        return {**res.render(ctx, SESSIONS, row), **_details(ctx, row)}
