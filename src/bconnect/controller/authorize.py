"""Authorizing a session on a target: choose the endpoint, mint the session certificate,
record the session, broker credentials and encode the authorization token."""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select

from bconnect.controller import errors
from bconnect.controller.addresses import endpoint as make_endpoint
from bconnect.controller.context import Ctx
from bconnect.controller.filters import compile_filter
from bconnect.controller.kms import open_credential, seal_session_key
from bconnect.controller.recordings import bucket_worker_filter, create_session_recording
from bconnect.controller.resources import drop_none, fmt_time
from bconnect.controller.sessionstate import Status
from bconnect.controller.storage import schema as t
from bconnect.core.certs import mint_session_certificate
from bconnect.core.token import AuthzData, ScopeInfo, encode_authz_token
from bconnect.ids import new_id

# Statements run on every authorization, built once (SQLAlchemy finds their compiled
# form by a memoized cache key instead of rebuilding and re-keying them each time).
_TARGET_HOSTS = (
    select(t.hosts.c.id, t.hosts.c.address, t.host_set_members.c.host_set_id)
    .join(t.host_set_members, t.host_set_members.c.host_id == t.hosts.c.id)
    .join(
        t.target_host_sources,
        t.target_host_sources.c.host_set_id == t.host_set_members.c.host_set_id,
    )
    .where(t.target_host_sources.c.target_id == bindparam("target_id"))
    .order_by(t.hosts.c.id)
)
_FRESH_WORKERS = select(
    t.workers.c.id, t.workers.c.name, t.workers.c.address, t.workers.c.tags
).where(
    t.workers.c.last_status_time >= bindparam("since"),
    t.workers.c.address.is_not(None),
)
_BROKERED_CREDENTIALS = (
    select(t.credentials)
    .join(
        t.target_credential_sources,
        t.target_credential_sources.c.credential_id == t.credentials.c.id,
    )
    .where(
        t.target_credential_sources.c.target_id == bindparam("target_id"),
        t.target_credential_sources.c.purpose == "brokered",
    )
    .order_by(t.credentials.c.id)
)
_INSERT_SESSION = insert(t.sessions)
_INSERT_SESSION_STATE = insert(t.session_states)


def choose_endpoint(
    ctx: Ctx, target: Any, host_id: str | None
) -> tuple[str, int, str | None, str | None]:
    """Return (host address, port, host_set_id, host_id) for a new session."""
    port = target.default_port
    if target.address:
        if host_id:
            raise errors.invalid_field("host_id", "This target has an address, not hosts.")
        address, host_set_id = target.address, None
    else:
        candidates = ctx.conn.execute(_TARGET_HOSTS, {"target_id": target.id}).all()
        if host_id:
            candidates = [c for c in candidates if c.id == host_id]
            if not candidates:
                raise errors.invalid_field("host_id", f"{host_id} is not a host of this target.")
        if not candidates:
            raise errors.invalid_field(
                "id", "The target has no address and no hosts in its host sources."
            )
        chosen = random.choice(candidates)
        address, host_id, host_set_id = chosen.address, chosen.id, chosen.host_set_id
    if not port:
        raise errors.invalid_field("attributes.default_port", "The target has no default port.")
    return address, port, host_set_id, host_id


def offered_workers(
    ctx: Ctx, worker_filter: str | None = None, *more_filters: str | None
) -> tuple[list[str], list[str]]:
    """(proxy addresses, worker ids) of the healthy workers (reported within the worker
    grace period) that match the target's ``worker_filter`` and each of ``more_filters``
    (a recording target's storage bucket's) — go-bexpr over ``{"name", "tags"}``, as in
    Boundary: ``"prod" in "/tags/type"``. With no filter and no healthy worker, the
    configured addresses (`bconnect dev`'s own worker before it registers) and no id. A
    worker with its own credential serves only sessions it was offered in."""
    grace = timedelta(seconds=ctx.settings.worker_grace)
    fresh = ctx.conn.execute(_FRESH_WORKERS, {"since": ctx.now - grace}).all()
    filters = [f for f in (worker_filter, *more_filters) if f]
    for predicate in [compile_filter(f) for f in filters]:
        fresh = [w for w in fresh if predicate({"name": w.name or "", "tags": worker_tags(w.tags)})]
    found = sorted({w.address for w in fresh})
    ids = sorted({w.id for w in fresh})
    if not found and not filters:
        found = list(ctx.settings.worker_addresses)
    if not found:
        raise errors.FailedPrecondition(
            "No workers are available to handle this session, or all have been filtered."
        )
    return found, ids


def worker_tags(text: str | None) -> dict[str, list[str]]:
    """A worker row's ``tags`` column (JSON) as ``{key: [values]}``."""
    try:
        tags = json.loads(text or "{}")
    except ValueError:
        return {}
    return tags if isinstance(tags, dict) else {}


def credential_source_info(row: Any) -> dict[str, Any]:
    """How a target lists a credential it brokers."""
    return drop_none(
        {
            "id": row.id,
            "credential_store_id": row.credential_store_id,
            "name": row.name or None,
            "description": row.description or None,
            "type": "static",
            "credential_type": row.type,
        }
    )


def brokered_credentials(ctx: Ctx, target_id: str) -> list[dict[str, Any]]:
    rows = ctx.conn.execute(_BROKERED_CREDENTIALS, {"target_id": target_id}).all()
    out = []
    for row in rows:
        secret = open_credential(ctx.settings.keyring, row)
        decoded = dict(secret.get("object") or {}) if row.type == "json" else dict(secret)
        if row.username:
            decoded["username"] = row.username
        out.append(
            {
                "credential_source": credential_source_info(row),
                "secret": {
                    "raw": base64.b64encode(json.dumps(decoded).encode()).decode(),
                    "decoded": decoded,
                },
                "credential": decoded,
            }
        )
    return out


_INJECTED_COUNT = (
    select(func.count())
    .select_from(t.target_credential_sources)
    .where(
        t.target_credential_sources.c.target_id == bindparam("target_id"),
        t.target_credential_sources.c.purpose == "injected_application",
    )
)


def check_injectable(ctx: Ctx, target: Any) -> None:
    """An ssh target's worker logs in with an injected credential: without one there is
    nothing to log in with."""
    if not ctx.conn.execute(_INJECTED_COUNT, {"target_id": target.id}).scalar_one():
        raise errors.FailedPrecondition(
            f"Target {target.id} is an ssh target without an injected application credential "
            "source: add one (bconnect targets add-credential-sources -id "
            f"{target.id} -injected-application-credential-source credup_…)."
        )


_PENDING_OF_USER = (
    select(func.count())
    .select_from(t.sessions)
    .where(
        t.sessions.c.user_id == bindparam("user_id"),
        t.sessions.c.status == Status.PENDING.value,
        t.sessions.c.expiration_time > bindparam("now"),
    )
)


def check_pending_limit(ctx: Ctx) -> None:
    """A user may hold at most ``max_pending_sessions_per_user`` sessions authorized and
    never connected (each holds a key pair and a database row until it expires)."""
    limit = ctx.settings.max_pending_sessions_per_user
    if not limit or ctx.user_id is None:
        return
    pending = ctx.conn.execute(_PENDING_OF_USER, {"user_id": ctx.user_id, "now": ctx.now})
    if pending.scalar_one() >= limit:
        raise errors.FailedPrecondition(
            f"You have {limit} sessions authorized and never connected: connect with one or "
            "cancel some (bconnect sessions list, bconnect sessions cancel) first."
        )


@dataclass(frozen=True)
class _NewSession:
    """A session being authorized: where it goes, until when, and its key pair."""

    id: str
    target: Any
    host_set_id: str | None
    host_id: str | None
    endpoint: str
    port: int
    expiration: datetime
    certificate: bytes
    private_key: bytes
    workers: list[str]  # the proxy addresses offered
    worker_ids: list[str]


def authorize_session(ctx: Ctx, target: Any, host_id: str | None) -> dict[str, Any]:
    """Authorize a session on ``target`` (at ``host_id``, else a host chosen at random):
    record it pending and answer with its authorization token and brokered credentials."""
    check_pending_limit(ctx)
    if target.type == "ssh":
        check_injectable(ctx, target)
    address, port, host_set_id, host_id = choose_endpoint(ctx, target, host_id)
    session_id = new_id("s")
    expiration = _session_expiration(ctx, target)
    bucket_filter = bucket_worker_filter(ctx, target)
    workers, worker_ids = offered_workers(ctx, target.worker_filter, bucket_filter)
    cert, key = mint_session_certificate(session_id, workers, expiration)
    session = _NewSession(
        id=session_id,
        target=target,
        host_set_id=host_set_id,
        host_id=host_id,
        endpoint=make_endpoint(address, port),
        port=port,
        expiration=expiration,
        certificate=cert,
        private_key=key,
        workers=workers,
        worker_ids=worker_ids,
    )
    _insert_session(ctx, session)
    create_session_recording(ctx, target, session)
    scope = ctx.scope_info(target.scope_id)
    return drop_none(
        {
            "session_id": session_id,
            "target_id": target.id,
            "scope": scope,
            "created_time": fmt_time(ctx.now),
            "user_id": ctx.user_id,
            "host_set_id": host_set_id,
            "host_id": host_id,
            "type": target.type,
            "authorization_token": _authorization_token(ctx, session, scope),
            "connection_limit": target.session_connection_limit,
            "endpoint": session.endpoint,
            "endpoint_port": port,
            "expiration": fmt_time(expiration),
            "credentials": brokered_credentials(ctx, target.id) or None,
        }
    )


def _session_expiration(ctx: Ctx, target: Any) -> datetime:
    """The target's session_max_seconds from now, with its fraction of a second, as
    Boundary keeps it (the certificate's NotAfter drops the fraction); a session never
    outlives the auth token that created it."""
    expiration = ctx.now + timedelta(seconds=target.session_max_seconds)
    if ctx.auth_token is not None and ctx.auth_token.expiration_time < expiration:
        expiration = ctx.auth_token.expiration_time
    return expiration


def _insert_session(ctx: Ctx, session: _NewSession) -> None:
    """The session row (its private key sealed) and its first state, pending."""
    target = session.target
    ctx.conn.execute(
        _INSERT_SESSION,
        {
            "id": session.id,
            "scope_id": target.scope_id,
            "target_id": target.id,
            "type": target.type,
            "user_id": ctx.user_id,
            "auth_token_id": ctx.auth_token.id,
            "host_set_id": session.host_set_id,
            "host_id": session.host_id,
            "endpoint": session.endpoint,
            "expiration_time": session.expiration,
            "connection_limit": target.session_connection_limit,
            "certificate": session.certificate,
            "private_key": seal_session_key(ctx.settings.keyring, session.id, session.private_key),
            "worker_filter": target.worker_filter,
            "worker_ids": json.dumps(session.worker_ids),
            "status": Status.PENDING.value,
            "created_time": ctx.now,
            "updated_time": ctx.now,
            "version": 1,
        },
    )
    ctx.conn.execute(
        _INSERT_SESSION_STATE,
        {"session_id": session.id, "status": Status.PENDING.value, "start_time": ctx.now},
    )


def _authorization_token(ctx: Ctx, session: _NewSession, scope: dict[str, Any]) -> str:
    """The authorization token the client connects with (docs/protocol.md §2)."""
    target = session.target
    return encode_authz_token(
        AuthzData(
            session_id=session.id,
            target_id=target.id,
            scope=ScopeInfo(
                id=scope["id"],
                type=scope["type"],
                name=scope.get("name", ""),
                description=scope.get("description", ""),
                parent_scope_id=scope.get("parent_scope_id", ""),
            ),
            created_time=ctx.now,
            type=target.type,
            connection_limit=target.session_connection_limit,
            endpoint_port=session.port,
            expiration=session.expiration,
            certificate=session.certificate,
            private_key=session.private_key,
            host_id=session.host_id or "",
            endpoint=session.endpoint,
            worker_addresses=tuple(session.workers),
            default_client_port=target.default_client_port or 0,
        )
    )
