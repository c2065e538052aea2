"""Per-request context: the database transaction, the caller and their ACL."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from bconnect.controller import errors
from bconnect.controller.grants import ANON, AUTHENTICATED, Acl, RoleGrants, parse_grant
from bconnect.controller.secrets import token_hash, token_id_of
from bconnect.controller.storage import schema as t

log = logging.getLogger(__name__)

TOKEN_LIFETIME = timedelta(days=7)
# approximate_last_used_time is refreshed at most this often (saves a write per request)
LAST_USED_GRANULARITY = timedelta(minutes=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Ctx:
    conn: Connection
    now: datetime
    scopes: dict[str, Any]
    acl: Acl
    user_id: str | None = None
    auth_token: Any = None
    settings: Any = None
    # set when the token's approximate_last_used_time is due for a refresh
    touch_token: bool = False

    # ---------------------------------------------------------------- scopes
    def scope_row(self, scope_id: str) -> Any:
        row = self.scopes.get(scope_id)
        if row is None:
            raise errors.not_found(scope_id)
        return row

    def scope_info(self, scope_id: str) -> dict[str, Any]:
        row = self.scope_row(scope_id)
        info: dict[str, Any] = {"id": row.id, "type": row.type}
        if row.name:
            info["name"] = row.name
        if row.description:
            info["description"] = row.description
        if row.parent_id:
            info["parent_scope_id"] = row.parent_id
        return info

    def descendants(self, scope_id: str, include_self: bool = True) -> list[str]:
        out = [scope_id] if include_self else []
        frontier = [scope_id]
        while frontier:
            nxt = [s.id for s in self.scopes.values() if s.parent_id in frontier]
            out.extend(nxt)
            frontier = nxt
        return out

    # ---------------------------------------------------------------- permissions
    def require(
        self,
        scope_id: str,
        rtype: str,
        action: str,
        resource_id: str | None = None,
        owner_id: str | None = None,
    ) -> None:
        if not self.acl.allowed(scope_id, rtype, action, resource_id, owner_id):
            if self.user_id is None:
                raise errors.Unauthenticated("Unauthenticated, or invalid token.")
            raise errors.denied()


# Statements run on every request, built once: SQLAlchemy then finds their compiled
# form by a memoized cache key instead of rebuilding and re-keying them each time.
_ALL_SCOPES = select(t.scopes)
_PRINCIPAL_ROLES = select(t.role_principals.c.role_id).where(
    t.role_principals.c.principal_id.in_(bindparam("principals", expanding=True))
)
_ROLE_SCOPES = select(t.roles.c.id, t.roles.c.scope_id).where(
    t.roles.c.id.in_(bindparam("role_ids", expanding=True))
)
_ROLE_GRANT_SCOPES = select(t.role_grant_scopes).where(
    t.role_grant_scopes.c.role_id.in_(bindparam("role_ids", expanding=True))
)
_ROLE_GRANTS = (
    select(t.role_grants)
    .where(t.role_grants.c.role_id.in_(bindparam("role_ids", expanding=True)))
    .order_by(t.role_grants.c.position)
)
_TOKEN_BY_ID = select(t.auth_tokens).where(t.auth_tokens.c.id == bindparam("token_id"))
_TOUCH_TOKEN = (
    update(t.auth_tokens)
    .where(t.auth_tokens.c.id == bindparam("token_id"))
    .values(approximate_last_used_time=bindparam("used_time"))
)


def load_scopes(conn: Connection) -> dict[str, Any]:
    return {row.id: row for row in conn.execute(_ALL_SCOPES)}


def build_acl(
    conn: Connection, user_id: str | None, scopes: dict[str, Any], account_id: str | None = None
) -> Acl:
    """The grants reaching ``user_id`` (None: the anonymous user), with Boundary's
    templates ``{{.User.Id}}`` and ``{{.Account.Id}}`` (the account that logged in)
    filled in."""
    principals = [ANON] + ([AUTHENTICATED, user_id] if user_id else [])
    role_ids = [r.role_id for r in conn.execute(_PRINCIPAL_ROLES, {"principals": principals})]
    if not role_ids:
        return Acl(user_id)
    by_roles = {"role_ids": role_ids}
    role_scope = {r.id: r.scope_id for r in conn.execute(_ROLE_SCOPES, by_roles)}
    grant_scopes: dict[str, set[str]] = {rid: set() for rid in role_ids}
    for r in conn.execute(_ROLE_GRANT_SCOPES, by_roles):
        grant_scopes[r.role_id].add(r.grant_scope)
    grants: dict[str, list] = {rid: [] for rid in role_ids}
    for r in conn.execute(_ROLE_GRANTS, by_roles):
        text = r.canonical_grant
        if user_id:
            text = text.replace("{{.User.Id}}", user_id).replace("{{user.id}}", user_id)
        if account_id:
            text = text.replace("{{.Account.Id}}", account_id)
            text = text.replace("{{account.id}}", account_id)
        try:
            grants[r.role_id].append(parse_grant(text))
        except ValueError:
            log.warning("ignoring unparsable grant on role %s", r.role_id)
    parents = {sid: row.parent_id for sid, row in scopes.items()}
    roles = [
        RoleGrants(role_scope[rid], frozenset(grant_scopes[rid]), tuple(grants[rid]))
        for rid in role_ids
        if rid in role_scope
    ]
    return Acl.build(user_id, roles, parents)


def authenticate_bearer(conn: Connection, authorization: str | None, now: datetime) -> Any:
    """Return the auth-token row for a Bearer header; None for the anonymous user.

    As in Boundary, a Bearer token that cannot be verified (empty, malformed, unknown,
    expired or revoked) is the anonymous user ``u_anon``, not an error: Boundary's Go
    client sends ``Authorization: Bearer `` with an empty token when it has none, and
    a stale token still does what ``u_anon`` may do. What ``u_anon`` may not do gets
    401 (see :meth:`Ctx.require`). Only a header that is not ``Bearer …`` at all is
    refused outright.

    Deleting an account, unlinking it from its user or deleting its auth method deletes
    its tokens (foreign-key cascades and the users' account actions), so a row found here
    belongs to a live account."""
    if not authorization or not authorization.strip():
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise errors.Unauthenticated("Unsupported Authorization header: expected 'Bearer <token>'.")
    token = token.strip()
    if not token:
        return None
    token_id = token_id_of(token)
    row = None if token_id is None else conn.execute(_TOKEN_BY_ID, {"token_id": token_id}).first()
    if row is None or not hmac.compare_digest(row.token_hash, token_hash(token)):
        log.debug("unknown or malformed token; continuing as the anonymous user")
        return None
    if row.expiration_time <= now:
        log.debug("expired token %s; continuing as the anonymous user", row.id)
        return None
    return row


def touch_token(conn: Connection, token_id: str, now: datetime) -> None:
    """Record that a token was used (at most once per LAST_USED_GRANULARITY)."""
    conn.execute(_TOUCH_TOKEN, {"token_id": token_id, "used_time": now})


def make_ctx(conn: Connection, authorization: str | None, settings: Any = None) -> Ctx:
    now = utcnow()
    token_row = authenticate_bearer(conn, authorization, now)
    user_id = token_row.user_id if token_row is not None else None
    scopes = load_scopes(conn)
    account_id = token_row.account_id if token_row is not None else None
    acl = build_acl(conn, user_id, scopes, account_id)
    return Ctx(
        conn=conn,
        now=now,
        scopes=scopes,
        acl=acl,
        user_id=user_id,
        auth_token=token_row,
        settings=settings,
        touch_token=token_row is not None
        and now - token_row.approximate_last_used_time > LAST_USED_GRANULARITY,
    )
