"""/v1/cluster: the worker-facing API (docs/cluster-api.md). app.RequestShape serves it
only on the cluster listener and only with the worker auth key, never a user's token.

Its handlers run on threads of their own (``app.state.cluster_executor``), not on the
pool the public API's handlers share: whatever the public API is doing (a flood of
requests), a worker's status report is answered, and its live connections stay up."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from bconnect.controller import errors, sessionops
from bconnect.controller.context import utcnow
from bconnect.controller.kms import open_session_key
from bconnect.controller.resources import fmt_time
from bconnect.controller.sessionstate import ClosedReason
from bconnect.controller.storage import schema as t
from bconnect.ids import new_id

router = APIRouter(prefix="/v1/cluster", tags=["cluster"], include_in_schema=False)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Register(_Body):
    name: str = Field(min_length=1, max_length=128)
    address: str = Field(min_length=3, max_length=255)
    tags: dict[str, list[str]] = Field(default_factory=dict)
    release_version: str = ""


class ConnectionReport(_Body):
    connection_id: str
    bytes_up: int = Field(default=0, ge=0)
    bytes_down: int = Field(default=0, ge=0)


class Status(_Body):
    connections: list[ConnectionReport] = Field(default_factory=list)


class Tofu(_Body):
    tofu_token: str = Field(min_length=1, max_length=256)


class Connected(_Body):
    client_tcp_address: str | None = None
    client_tcp_port: int | None = None
    endpoint_tcp_address: str | None = None
    endpoint_tcp_port: int | None = None


class Closed(_Body):
    bytes_up: int = Field(default=0, ge=0)
    bytes_down: int = Field(default=0, ge=0)
    closed_reason: ClosedReason = ClosedReason.UNKNOWN


class Refused(errors.ApiException):
    status = 409

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _worker_id(request: Request) -> str | None:
    return request.headers.get("x-bconnect-worker-id") or None


def _on_cluster_threads(handler: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
    """Run a (blocking) handler on the cluster API's own threads."""

    @functools.wraps(handler)
    async def run(request: Request, *args: Any, **kwargs: Any) -> dict[str, Any]:
        call = functools.partial(handler, request, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(
            request.app.state.cluster_executor, call
        )

    return run


@contextmanager
def _db(request: Request, *, write: bool) -> Iterator[Any]:
    """One transaction (reads take no write lock); the middleware checked the key."""
    with request.app.state.engine.connect() as conn:
        if not write:
            conn.execution_options(bconnect_read_only=True)
        with conn.begin():
            yield conn


@router.post("/workers:register")
@_on_cluster_threads
def register(request: Request, body: Register) -> dict[str, Any]:
    now = utcnow()
    with _db(request, write=True) as conn:
        row = conn.execute(select(t.workers).where(t.workers.c.name == body.name)).first()
        values = {
            "address": body.address,
            "tags": json.dumps(body.tags, sort_keys=True),
            "release_version": body.release_version or None,
            "last_status_time": now,
            "updated_time": now,
        }
        if row is None:
            worker_id = new_id("w")
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(t.workers).values(
                            id=worker_id,
                            scope_id="global",
                            type="pki",
                            name=body.name,
                            created_time=now,
                            version=1,
                            **values,
                        )
                    )
            except IntegrityError:  # registered through another controller just now
                row = conn.execute(select(t.workers).where(t.workers.c.name == body.name)).one()
        if row is not None:
            worker_id = row.id
            conn.execute(
                update(t.workers)
                .where(t.workers.c.id == worker_id)
                .values(version=row.version + 1, **values)
            )
    return {"worker_id": worker_id}


@router.post("/workers/{worker_id}:status")
@_on_cluster_threads
def status(request: Request, worker_id: str, body: Status) -> dict[str, Any]:
    with _db(request, write=True) as conn:
        if conn.execute(select(t.workers.c.id).where(t.workers.c.id == worker_id)).first() is None:
            raise errors.not_found(worker_id)
        reports = [r.model_dump() for r in body.connections]
        return sessionops.worker_status(conn, worker_id, reports, utcnow())


@router.get("/sessions/{session_id}")
@_on_cluster_threads
def read_session(request: Request, session_id: str) -> dict[str, Any]:
    with _db(request, write=False) as conn:
        row = conn.execute(select(t.sessions).where(t.sessions.c.id == session_id)).first()
    if row is None:
        raise errors.not_found(session_id)
    return {
        "session_id": row.id,
        "status": row.status,
        "endpoint": row.endpoint,
        "expiration": fmt_time(row.expiration_time),
        "connection_limit": row.connection_limit,
        "certificate": base64.b64encode(row.certificate).decode(),
        "private_key": base64.b64encode(
            open_session_key(request.app.state.settings.keyring, row)
        ).decode(),
    }


@router.post("/sessions/{session_id}:authorize-connection")
@_on_cluster_threads
def authorize_connection(request: Request, session_id: str, body: Tofu) -> dict[str, Any]:
    try:
        with _db(request, write=True) as conn:
            result = sessionops.authorize_connection(
                conn, session_id, body.tofu_token, _worker_id(request), utcnow()
            )
    except sessionops.Refusal as exc:
        raise Refused(exc.kind, exc.message) from None
    if result is None:
        raise errors.not_found(session_id)
    return {**result, "expiration": fmt_time(result["expiration"])}


@router.post("/sessions/{session_id}:cancel")
@_on_cluster_threads
def cancel(request: Request, session_id: str, body: Tofu) -> dict[str, Any]:
    try:
        with _db(request, write=True) as conn:
            found = sessionops.cancel_by_client(conn, session_id, body.tofu_token, utcnow())
    except sessionops.Refusal as exc:
        raise Refused(exc.kind, exc.message) from None
    if not found:
        raise errors.not_found(session_id)
    return {}


@router.post("/connections/{connection_id}:connected")
@_on_cluster_threads
def connected(request: Request, connection_id: str, body: Connected) -> dict[str, Any]:
    with _db(request, write=True) as conn:
        if not sessionops.connection_connected(
            conn, connection_id, utcnow(), **body.model_dump(exclude_none=True)
        ):
            raise errors.not_found(connection_id)
    return {}


@router.post("/connections/{connection_id}:closed")
@_on_cluster_threads
def closed(request: Request, connection_id: str, body: Closed) -> dict[str, Any]:
    with _db(request, write=True) as conn:
        if not sessionops.connection_closed(
            conn,
            connection_id,
            utcnow(),
            body.bytes_up,
            body.bytes_down,
            body.closed_reason.value,
        ):
            raise errors.not_found(connection_id)
    return {}
