"""Boundary's default roles: anonymous callers may no longer list auth tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:00:00

Boundary's login role (``u_anon``) grants ``auth-token`` ``read:self,delete:self``, and
its authenticated users' role (``u_auth``) grants ``list``: an anonymous
``GET /v1/auth-tokens`` is a 401 there. Databases made before this revision gave
``u_anon`` the ``list`` action; this takes it away and gives every authenticated user
``auth-token list`` (so nobody who could list their tokens loses that) and
``list-resolvable-aliases`` on themselves (what Boundary's CLI cache asks for). It
adds nothing else of Boundary's authenticated role to an existing database: widening
what existing users may do is the operator's decision. New databases get both of
Boundary's roles in full (controller/seed.py).
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LOGIN_ROLE = "r_default_global"
AUTHENTICATED_ROLE = "r_default_authn"
OLD_GRANT = "ids=*;type=auth-token;actions=delete:self,list,read:self"
NEW_GRANT = (
    "ids=*;type=auth-token;actions=delete:self,read:self",
    "ids=*;type=auth-token;actions=read:self,delete:self",
)
AUTHN_GRANTS = [
    ("ids=*;type=auth-token;actions=list", "ids=*;type=auth-token;actions=list"),
    (
        "ids={{.User.Id}};type=user;actions=list-resolvable-aliases",
        "ids={{.User.Id}};type=user;actions=list-resolvable-aliases",
    ),
]

roles = sa.table(
    "roles",
    sa.column("id", sa.String),
    sa.column("scope_id", sa.String),
    sa.column("name", sa.String),
    sa.column("description", sa.Text),
    sa.column("created_time", sa.DateTime),
    sa.column("updated_time", sa.DateTime),
    sa.column("version", sa.Integer),
)
role_grants = sa.table(
    "role_grants",
    sa.column("role_id", sa.String),
    sa.column("position", sa.Integer),
    sa.column("canonical_grant", sa.Text),
    sa.column("raw_grant", sa.Text),
)
role_grant_scopes = sa.table(
    "role_grant_scopes", sa.column("role_id", sa.String), sa.column("grant_scope", sa.String)
)
role_principals = sa.table(
    "role_principals", sa.column("role_id", sa.String), sa.column("principal_id", sa.String)
)


def upgrade() -> None:
    conn = op.get_bind()
    login = conn.execute(sa.select(roles.c.id).where(roles.c.id == LOGIN_ROLE)).first()
    if login is None:  # a new database: seed.ensure_global_scope makes both roles
        return
    conn.execute(
        role_grants.update()
        .where(role_grants.c.role_id == LOGIN_ROLE, role_grants.c.canonical_grant == OLD_GRANT)
        .values(canonical_grant=NEW_GRANT[0], raw_grant=NEW_GRANT[1])
    )
    if conn.execute(sa.select(roles.c.id).where(roles.c.id == AUTHENTICATED_ROLE)).first():
        return
    now = datetime.now(UTC)
    if conn.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    conn.execute(
        roles.insert().values(
            id=AUTHENTICATED_ROLE,
            scope_id="global",
            name="Authenticated User Grants",
            description="Added by migration 0004: what Boundary gives every logged-in user "
            "that the login role gave before",
            created_time=now,
            updated_time=now,
            version=1,
        )
    )
    conn.execute(
        role_grant_scopes.insert(),
        [{"role_id": AUTHENTICATED_ROLE, "grant_scope": s} for s in ("this", "descendants")],
    )
    conn.execute(role_principals.insert().values(role_id=AUTHENTICATED_ROLE, principal_id="u_auth"))
    conn.execute(
        role_grants.insert(),
        [
            {"role_id": AUTHENTICATED_ROLE, "position": i, "canonical_grant": c, "raw_grant": r}
            for i, (c, r) in enumerate(AUTHN_GRANTS, 1)
        ],
    )


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(
        role_grants.update()
        .where(role_grants.c.role_id == LOGIN_ROLE, role_grants.c.canonical_grant == NEW_GRANT[0])
        .values(
            canonical_grant=OLD_GRANT,
            raw_grant="ids=*;type=auth-token;actions=list,read:self,delete:self",
        )
    )
    conn.execute(roles.delete().where(roles.c.id == AUTHENTICATED_ROLE))
