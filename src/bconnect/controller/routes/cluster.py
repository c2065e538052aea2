"""/v1/cluster: the worker-facing API (docs/cluster-api.md). app.RequestShape serves it
only on the cluster listener, never with a user's token.

Who is calling: a worker with its own credential (``w_<id>_c1…``, from controller-led
registration) is that worker and nobody else: it reports only its own connections, reads
only the sessions it was offered in, registers only under its own name. A caller with
the shared worker key (``bconnect dev``, and deployments that keep the legacy key) is
trusted as before and says which worker it is in ``X-Bconnect-Worker-Id``; it cannot
take the name of a worker that has a credential of its own.

Its handlers run on threads of their own (``app.state.cluster_executor``), not on the
pool the public API's handlers share: whatever the public API is doing (a flood of
requests), a worker's status report is answered, and its live connections stay up."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.types import Scope

from bconnect import clusterwire
from bconnect.clusterwire import ClosedReason
from bconnect.controller import connevents, errors, recordings, sessionops, sshtargets
from bconnect.controller.context import utcnow
from bconnect.controller.kms import open_session_key
from bconnect.controller.resources import fmt_time
from bconnect.controller.secrets import mint_worker_credential, token_hash, worker_id_of
from bconnect.controller.settings import Settings
from bconnect.controller.sshtargets import open_host_key
from bconnect.controller.storage import schema as t
from bconnect.ids import new_id

router = APIRouter(tags=["cluster"], include_in_schema=False)
log = logging.getLogger(__name__)

#: The ASGI scope key app.RequestShape sets on cluster calls: what :func:`cluster_auth` found.
CLUSTER_AUTH = "bconnect.cluster_auth"


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Register(_Body):
    name: str = Field(min_length=1, max_length=128)
    address: str = Field(min_length=3, max_length=255)
    tags: dict[str, list[str]] = Field(default_factory=dict)
    release_version: str = ""


class Activate(_Body):
    activation_token: str = Field(min_length=1, max_length=256)
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


class ConnectionEventBody(Connected):
    """One entry of ``connection-events``: ``connection_id`` and, by ``event``, the
    addresses (connected, admitted), ``session_id`` and ``tofu_token`` (admitted), or
    the bytes and the reason (closed)."""

    event: clusterwire.ConnectionEvent
    connection_id: str = Field(min_length=1, max_length=32)
    session_id: str | None = Field(default=None, max_length=32)
    tofu_token: str | None = Field(default=None, min_length=1, max_length=256)
    bytes_up: int = Field(default=0, ge=0)
    bytes_down: int = Field(default=0, ge=0)
    closed_reason: ClosedReason = ClosedReason.UNKNOWN


class ConnectionEvents(_Body):
    events: list[ConnectionEventBody] = Field(max_length=1000)


class Refused(errors.ApiException):
    status = 409

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Caller:
    """Who made a cluster call: ``worker_id`` (None: not said), and whether it holds only
    the shared key (trusted with any worker id) or its own credential."""

    worker_id: str | None
    shared_key: bool

    def check_worker(self, worker_id: str | None) -> None:
        """A worker with its own credential acts only as itself."""
        if not self.shared_key and worker_id != self.worker_id:
            raise errors.PermissionDenied("A worker may act only as itself.")

    def may_serve(self, row: Any) -> bool:
        """A worker with its own credential serves only sessions it was offered in."""
        return self.shared_key or self.worker_id in json.loads(row.worker_ids or "[]")

    def may_report(self, row: Any) -> bool:
        """A worker with its own credential reports only connections it serves."""
        return self.shared_key or row.worker_id == self.worker_id

    def check_session(self, row: Any) -> None:
        if row is not None and not self.may_serve(row):
            raise errors.PermissionDenied("This session was not offered to this worker.")


def cluster_auth(settings: Settings, scope: Scope) -> str | None:
    """How a cluster call authenticates: ``"key"`` for the shared worker key (compared in
    constant time), the bearer token when it is shaped like a worker's own credential
    (:func:`_caller` checks it against the database), ``""`` for the activation call
    (its token is in the body), None for nothing usable (401)."""
    if scope["path"] == clusterwire.ACTIVATE_PATH:
        return ""
    headers = dict(scope["headers"])
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    expected = settings.worker_auth_key
    if expected and hmac.compare_digest(
        hashlib.sha256(token.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    ):
        return "key"
    return token if worker_id_of(token) is not None else None


def _caller(request: Request, conn: Connection) -> Caller:
    auth = request.scope.get(CLUSTER_AUTH)
    if auth == "key":
        return Caller(request.headers.get(clusterwire.WORKER_ID_HEADER) or None, shared_key=True)
    token: str = auth or ""
    worker_id = worker_id_of(token)
    row = None
    if worker_id is not None:
        row = conn.execute(select(t.workers.c.key_hash).where(t.workers.c.id == worker_id)).first()
    if row is None or not row.key_hash or not hmac.compare_digest(row.key_hash, token_hash(token)):
        raise errors.Unauthenticated("A valid worker credential or worker auth key is required.")
    return Caller(worker_id, shared_key=False)


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
def _db(request: Request, *, write: bool) -> Iterator[tuple[Connection, Caller]]:
    """One transaction (reads take no write lock), and who is calling."""
    with request.app.state.engine.connect() as conn:
        if not write:
            conn.execution_options(bconnect_read_only=True)
        with conn.begin():
            yield conn, _caller(request, conn)


@router.post(clusterwire.REGISTER_PATH)
@_on_cluster_threads
def register(request: Request, body: Register) -> dict[str, Any]:
    """A worker says where it listens. With the shared key it is known by its name (made
    on first sight); with its own credential it is that worker, whatever name it gives."""
    now = utcnow()
    values = {
        "address": body.address,
        "tags": json.dumps(body.tags, sort_keys=True),
        "release_version": body.release_version or None,
        "last_status_time": now,
        "updated_time": now,
    }
    with _db(request, write=True) as (conn, caller):
        row: Row[*tuple[Any, ...]] | None
        if not caller.shared_key:
            row = conn.execute(select(t.workers).where(t.workers.c.id == caller.worker_id)).one()
        else:
            row = conn.execute(select(t.workers).where(t.workers.c.name == body.name)).first()
            if row is not None and row.key_hash:
                raise errors.PermissionDenied(
                    f"Worker name {body.name!r} belongs to a worker with its own credential."
                )
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


@router.post(clusterwire.ACTIVATE_PATH)
@_on_cluster_threads
def activate(request: Request, body: Activate) -> dict[str, Any]:
    """Controller-led registration: the one-time activation token of a worker made with
    ``workers create controller-led`` buys that worker its own credential (shown once;
    only its hash is kept). The token is spent in the same transaction."""
    now = utcnow()
    with request.app.state.engine.begin() as conn:
        row = conn.execute(
            select(t.workers).where(
                t.workers.c.activation_token_hash == token_hash(body.activation_token)
            )
        ).first()
        if row is None:
            raise errors.Unauthenticated("Unknown or already used activation token.")
        credential = mint_worker_credential(row.id)
        spent = conn.execute(
            update(t.workers)
            .where(t.workers.c.id == row.id, t.workers.c.activation_token_hash.is_not(None))
            .values(
                activation_token_hash=None,
                key_hash=token_hash(credential),
                address=body.address,
                tags=json.dumps(body.tags, sort_keys=True),
                release_version=body.release_version or None,
                last_status_time=now,
                updated_time=now,
                version=row.version + 1,
            )
        )
        if spent.rowcount != 1:  # used by a concurrent activation
            raise errors.Unauthenticated("Unknown or already used activation token.")
    return {"worker_id": row.id, "name": row.name, "credential": credential}


@router.post(clusterwire.STATUS_PATH)
@_on_cluster_threads
def status(request: Request, worker_id: str, body: Status) -> dict[str, Any]:
    with _db(request, write=True) as (conn, caller):
        caller.check_worker(worker_id)
        if conn.execute(select(t.workers.c.id).where(t.workers.c.id == worker_id)).first() is None:
            raise errors.not_found(worker_id)
        reports = [r.model_dump() for r in body.connections]
        return sessionops.worker_status(conn, worker_id, reports, utcnow())


@router.get(clusterwire.SESSION_PATH)
@_on_cluster_threads
def read_session(request: Request, session_id: str) -> dict[str, Any]:
    with _db(request, write=False) as (conn, caller):
        row = conn.execute(select(t.sessions).where(t.sessions.c.id == session_id)).first()
        caller.check_session(row)
        target, creds, recording = None, [], None
        if row is not None and row.type == "ssh":
            target = conn.execute(select(t.targets).where(t.targets.c.id == row.target_id)).first()
            keyring = request.app.state.settings.keyring
            creds = sshtargets.injected_credentials(conn, keyring, row.target_id)
            recording = recordings.bucket_settings(conn, keyring, row.id)
    if row is None:
        raise errors.not_found(session_id)
    keyring = request.app.state.settings.keyring
    answer = {
        "session_id": row.id,
        "type": row.type,
        "target_id": row.target_id,
        "status": row.status,
        "endpoint": row.endpoint,
        "expiration": fmt_time(row.expiration_time),
        "connection_limit": row.connection_limit,
        "certificate": base64.b64encode(row.certificate).decode(),
        "private_key": base64.b64encode(open_session_key(keyring, row)).decode(),
    }
    if row.type == "ssh" and target is not None:
        answer["ssh"] = {
            "host_key": base64.b64encode(open_host_key(keyring, target)).decode(),
            "known_hosts": target.known_hosts or "",
            "credentials": creds,
            "recording": recording,
        }
    return answer


class ChannelStarted(_Body):
    connection_id: str = Field(max_length=32)
    type: str = Field(pattern="^(session|sftp|direct-tcpip)$")
    command: str | None = Field(default=None, max_length=65536)


class ChannelFinished(_Body):
    bytes: int = Field(ge=0)
    sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    error: str | None = Field(default=None, max_length=4096)


def _recording_session(conn: Connection, caller: Caller, recording_id: str) -> None:
    row = conn.execute(
        select(t.sessions.c.id, t.sessions.c.worker_ids)
        .join(t.session_recordings, t.session_recordings.c.session_id == t.sessions.c.id)
        .where(t.session_recordings.c.id == recording_id)
    ).first()
    if row is None:
        raise errors.not_found(recording_id)
    caller.check_session(row)


@router.post(clusterwire.CHANNEL_STARTED_PATH)
@_on_cluster_threads
def channel_started(request: Request, recording_id: str, body: ChannelStarted) -> dict[str, Any]:
    with _db(request, write=True) as (conn, caller):
        _recording_session(conn, caller, recording_id)
        return recordings.channel_started(
            conn, recording_id, body.connection_id, body.type, body.command, utcnow()
        )


@router.post(clusterwire.CHANNEL_FINISHED_PATH)
@_on_cluster_threads
def channel_finished(request: Request, channel_id: str, body: ChannelFinished) -> dict[str, Any]:
    with _db(request, write=True) as (conn, caller):
        owner = conn.execute(
            select(t.channel_recordings.c.session_recording_id).where(
                t.channel_recordings.c.id == channel_id
            )
        ).first()
        if owner is None:
            raise errors.not_found(channel_id)
        _recording_session(conn, caller, owner.session_recording_id)
        recordings.channel_finished(conn, channel_id, body.bytes, body.sha256, body.error, utcnow())
    return {}


class PinHostKey(_Body):
    host: str = Field(max_length=255)
    port: int = Field(ge=1, le=65535)
    key: str = Field(max_length=16384)


@router.post(clusterwire.PIN_HOST_KEY_PATH)
@_on_cluster_threads
def pin_host_key(request: Request, session_id: str, body: PinHostKey) -> dict[str, Any]:
    """The key a host of the session's target presented: recorded when none is known for
    that host, else it must match (409 HostKeyMismatch)."""
    with _db(request, write=True) as (conn, caller):
        row = conn.execute(
            select(t.sessions.c.id, t.sessions.c.worker_ids, t.sessions.c.target_id).where(
                t.sessions.c.id == session_id
            )
        ).first()
        caller.check_session(row)
        if row is None:
            raise errors.not_found(session_id)
        try:
            added = sshtargets.pin_host_key(conn, row.target_id, body.host, body.port, body.key)
        except sshtargets.PinRefused as exc:
            raise Refused(clusterwire.RefusalKind.HOST_KEY_MISMATCH, str(exc)) from None
    if added:
        log.warning(
            "target %s: pinned the host key of %s:%d at first use (session %s)",
            row.target_id,
            body.host,
            body.port,
            session_id,
        )
    return {"pinned": added}


@router.post(clusterwire.AUTHORIZE_CONNECTION_PATH)
@_on_cluster_threads
def authorize_connection(request: Request, session_id: str, body: Tofu) -> dict[str, Any]:
    try:
        with _db(request, write=True) as (conn, caller):
            caller.check_session(_session_row(conn, session_id))
            result = sessionops.authorize_connection(
                conn, session_id, body.tofu_token, caller.worker_id, utcnow()
            )
    except sessionops.Refusal as exc:
        raise Refused(exc.kind, exc.message) from None
    if result is None:
        raise errors.not_found(session_id)
    return {**result, "expiration": fmt_time(result["expiration"])}


@router.post(clusterwire.CANCEL_SESSION_PATH)
@_on_cluster_threads
def cancel(request: Request, session_id: str, body: Tofu) -> dict[str, Any]:
    try:
        with _db(request, write=True) as (conn, caller):
            caller.check_session(_session_row(conn, session_id))
            found = sessionops.cancel_by_client(conn, session_id, body.tofu_token, utcnow())
    except sessionops.Refusal as exc:
        raise Refused(exc.kind, exc.message) from None
    if not found:
        raise errors.not_found(session_id)
    return {}


@router.post(clusterwire.CONNECTED_PATH)
@_on_cluster_threads
def connected(request: Request, connection_id: str, body: Connected) -> dict[str, Any]:
    with _db(request, write=True) as (conn, caller):
        _check_connection(conn, caller, connection_id)
        if not sessionops.connection_connected(
            conn, connection_id, utcnow(), **body.model_dump(exclude_none=True)
        ):
            raise errors.not_found(connection_id)
    return {}


@router.post(clusterwire.CLOSED_PATH)
@_on_cluster_threads
def closed(request: Request, connection_id: str, body: Closed) -> dict[str, Any]:
    with _db(request, write=True) as (conn, caller):
        _check_connection(conn, caller, connection_id)
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


@router.post(clusterwire.CONNECTION_EVENTS_PATH)
@_on_cluster_threads
def connection_events(request: Request, body: ConnectionEvents) -> dict[str, Any]:
    """Each event as its own call would take it, in order, written together in one
    transaction (controller/connevents.py); ``results`` answers each in turn: ``{}``, or
    the ``kind`` and ``message`` its own call would have refused it with."""
    events = [e.model_dump(mode="json") for e in body.events]
    with _db(request, write=True) as (conn, caller):
        answers = connevents.apply_events(
            conn,
            events,
            caller.worker_id,
            utcnow(),
            may_serve=caller.may_serve,
            may_report=caller.may_report,
        )
    results = [{} if a is None else {"kind": a.kind, "message": a.message} for a in answers]
    return {"results": results}


def _session_row(conn: Connection, session_id: str) -> Any:
    return conn.execute(
        select(t.sessions.c.id, t.sessions.c.worker_ids).where(t.sessions.c.id == session_id)
    ).first()


def _check_connection(conn: Connection, caller: Caller, connection_id: str) -> None:
    """A worker with its own credential reports only connections it serves."""
    if caller.shared_key:
        return
    row = conn.execute(
        select(t.session_connections.c.worker_id).where(t.session_connections.c.id == connection_id)
    ).first()
    if row is not None and not caller.may_report(row):
        raise errors.PermissionDenied("This connection is another worker's.")
