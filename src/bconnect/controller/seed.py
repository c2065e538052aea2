"""Seed data: Boundary's dev-mode fixtures with fixed ids (docs/protocol.md §5) for
`bconnect dev`, and the initial admin of `bconnect database init`."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from bconnect.controller.grants import ANON, AUTHENTICATED, parse_grant
from bconnect.controller.secrets import hash_password
from bconnect.controller.storage import schema as t
from bconnect.ids import new_id

SUFFIX = "1234567890"
DEV = {
    "org": f"o_{SUFFIX}",
    "project": f"p_{SUFFIX}",
    "auth_method": f"ampw_{SUFFIX}",
    "admin_user": f"u_{SUFFIX}",
    "user": "u_0987654321",
    "admin_account": f"acctpw_{SUFFIX}",
    "user_account": "acctpw_0987654321",
    "host_catalog": f"hcst_{SUFFIX}",
    "host_set": f"hsst_{SUFFIX}",
    "host": f"hst_{SUFFIX}",
    "target": f"ttcp_{SUFFIX}",
    "host_target": "ttcp_0987654321",
}
LOGIN_ROLE = ("r_default_global", "Login and Default Grants")
AUTHENTICATED_ROLE = ("r_default_authn", "Authenticated User Grants")
#: Boundary's initial roles (its ``CreateInitialLoginRole`` and
#: ``CreateInitialAuthenticatedUserRole``): what anyone may do, and what any logged-in
#: user may do, in global and every scope below it.
LOGIN_GRANTS = [
    "ids=*;type=scope;actions=list,no-op",
    "ids=*;type=auth-method;actions=list,authenticate",
    "ids=*;type=auth-token;actions=read:self,delete:self",
]
AUTHENTICATED_GRANTS = [
    "ids=*;type=scope;actions=read",
    "ids=*;type=auth-token;actions=list",
    "ids={{.Account.Id}};actions=read,change-password",
    "ids=*;type=session;actions=list,read:self,cancel:self",
    "ids={{.User.Id}};type=user;actions=list-resolvable-aliases",
    "ids=*;type=target;actions=list,read",
]
AUTH_METHOD_NAME = "Generated global scope initial password auth method"
ADMIN_ROLE_NAME = "Administration"
ADMIN_GRANTS = ["ids=*;type=*;actions=*"]


def _common(now: datetime, name: str | None, description: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "created_time": now,
        "updated_time": now,
        "version": 1,
    }


def ensure_global_scope(conn: Connection, now: datetime) -> None:
    """Every database has the global scope, the anonymous login role and the
    authenticated users' role."""
    if conn.execute(select(t.scopes.c.id).where(t.scopes.c.id == "global")).first():
        return
    conn.execute(
        insert(t.scopes).values(
            id="global",
            type="global",
            parent_id=None,
            **_common(now, "global", "Global Scope"),
        )
    )
    for (role_id, name), principal, grants in (
        (LOGIN_ROLE, ANON, LOGIN_GRANTS),
        (AUTHENTICATED_ROLE, AUTHENTICATED, AUTHENTICATED_GRANTS),
    ):
        _role(conn, now, role_id, name, "global", ["this", "descendants"], [principal], grants)


def _role(
    conn: Connection,
    now: datetime,
    role_id: str,
    name: str,
    scope_id: str,
    grant_scopes: list[str],
    principals: list[str],
    grants: list[str],
) -> None:
    conn.execute(insert(t.roles).values(id=role_id, scope_id=scope_id, **_common(now, name)))
    for gs in grant_scopes:
        conn.execute(insert(t.role_grant_scopes).values(role_id=role_id, grant_scope=gs))
    for p in principals:
        conn.execute(insert(t.role_principals).values(role_id=role_id, principal_id=p))
    for pos, raw in enumerate(grants, 1):
        conn.execute(
            insert(t.role_grants).values(
                role_id=role_id,
                position=pos,
                canonical_grant=parse_grant(raw).canonical(),
                raw_grant=raw,
            )
        )


def seed_dev(
    conn: Connection,
    now: datetime,
    *,
    admin_password: str = "password",
    user_password: str = "password",
    target_port: int = 22,
) -> bool:
    """Create the dev fixtures unless they exist. Returns True when it created them."""
    ensure_global_scope(conn, now)
    if conn.execute(select(t.scopes.c.id).where(t.scopes.c.id == DEV["org"])).first():
        return False
    _dev_scopes(conn, now)
    _dev_users(conn, now, admin_password, user_password)
    _dev_hosts(conn, now)
    _dev_targets(conn, now, target_port)
    return True


def _dev_scopes(conn: Connection, now: datetime) -> None:
    """The org and, in it, the project."""
    conn.execute(
        insert(t.scopes).values(
            id=DEV["org"],
            type="org",
            parent_id="global",
            **_common(now, "Generated org scope", "Provides an initial org scope in Boundary"),
        )
    )
    conn.execute(
        insert(t.scopes).values(
            id=DEV["project"],
            type="project",
            parent_id=DEV["org"],
            **_common(
                now, "Generated project scope", "Provides an initial project scope in Boundary"
            ),
        )
    )


def _dev_users(conn: Connection, now: datetime, admin_password: str, user_password: str) -> None:
    """The global password auth method with users admin (an administrator) and user, and
    the project's default grants for every logged-in user."""
    d = DEV
    _global_auth_method(conn, now, d["auth_method"])
    for user, account, login, password in (
        (d["admin_user"], d["admin_account"], "admin", admin_password),
        (d["user"], d["user_account"], "user", user_password),
    ):
        _password_user(conn, now, d["auth_method"], user, account, login, password)
    _admin_role(conn, now, f"r_admin_{SUFFIX}"[:16], d["admin_user"])
    _role(
        conn,
        now,
        f"r_prdef_{SUFFIX}"[:16],
        "Default Grants",
        d["project"],
        ["this"],
        [AUTHENTICATED],
        [
            "ids=*;type=target;actions=list,read,authorize-session",
            "ids=*;type=session;actions=list,read:self,cancel:self",
        ],
    )


def _dev_hosts(conn: Connection, now: datetime) -> None:
    """A static host catalog with the host ``localhost`` in a host set."""
    d = DEV
    conn.execute(
        insert(t.host_catalogs).values(
            id=d["host_catalog"],
            scope_id=d["project"],
            type="static",
            **_common(now, "Generated host catalog", "Provides an initial host catalog"),
        )
    )
    conn.execute(
        insert(t.hosts).values(
            id=d["host"],
            scope_id=d["project"],
            host_catalog_id=d["host_catalog"],
            type="static",
            address="localhost",
            **_common(now, "Generated host", "Provides an initial host"),
        )
    )
    conn.execute(
        insert(t.host_sets).values(
            id=d["host_set"],
            scope_id=d["project"],
            host_catalog_id=d["host_catalog"],
            type="static",
            **_common(now, "Generated host set", "Provides an initial host set"),
        )
    )
    conn.execute(insert(t.host_set_members).values(host_set_id=d["host_set"], host_id=d["host"]))


def _dev_targets(conn: Connection, now: datetime, target_port: int) -> None:
    """A target with the address 127.0.0.1, and one reaching the host set."""
    d = DEV
    for target, name, address in (
        (d["target"], "Generated target with a direct address", "127.0.0.1"),
        (d["host_target"], "Generated target using host sources", None),
    ):
        conn.execute(
            insert(t.targets).values(
                id=target,
                scope_id=d["project"],
                type="tcp",
                address=address,
                default_port=target_port,
                session_max_seconds=28800,
                session_connection_limit=-1,
                **_common(now, name, "Provides an initial target"),
            )
        )
    conn.execute(
        insert(t.target_host_sources).values(target_id=d["host_target"], host_set_id=d["host_set"])
    )


def random_password() -> str:
    return secrets.token_urlsafe(12)


def _global_auth_method(conn: Connection, now: datetime, method_id: str) -> None:
    """The password auth method of the global scope, made its primary auth method."""
    conn.execute(
        insert(t.auth_methods).values(
            id=method_id,
            scope_id="global",
            type="password",
            min_login_name_length=3,
            min_password_length=8,
            **_common(now, AUTH_METHOD_NAME),
        )
    )
    conn.execute(
        update(t.scopes).where(t.scopes.c.id == "global").values(primary_auth_method_id=method_id)
    )


def _password_user(
    conn: Connection,
    now: datetime,
    method_id: str,
    user_id: str,
    account_id: str,
    login: str,
    password: str,
) -> None:
    """A global user named *login* with a password account."""
    conn.execute(insert(t.users).values(id=user_id, scope_id="global", **_common(now, login)))
    conn.execute(
        insert(t.accounts).values(
            id=account_id,
            scope_id="global",
            auth_method_id=method_id,
            type="password",
            login_name=login,
            password_hash=hash_password(password),
            **_common(now, None),
        )
    )
    conn.execute(insert(t.user_accounts).values(user_id=user_id, account_id=account_id))


def _admin_role(conn: Connection, now: datetime, role_id: str, user_id: str) -> None:
    _role(
        conn,
        now,
        role_id,
        ADMIN_ROLE_NAME,
        "global",
        ["this", "descendants"],
        [user_id],
        ADMIN_GRANTS,
    )


def seed_initial(
    conn: Connection,
    now: datetime,
    *,
    login_name: str = "admin",
    create_auth_method: bool = True,
) -> dict[str, Any]:
    """What `bconnect database init` creates in a freshly migrated database: the global
    scope with its login role and, unless ``create_auth_method`` is false, a password auth
    method with an admin user, account (generated password) and an administration role.

    Returns Boundary's `database init` JSON shape; it holds the password (shown once).
    """
    ensure_global_scope(conn, now)
    result: dict[str, Any] = {
        "login_role": {"role_id": LOGIN_ROLE[0], "name": LOGIN_ROLE[1]},
        "authenticated_user_role": {
            "role_id": AUTHENTICATED_ROLE[0],
            "name": AUTHENTICATED_ROLE[1],
        },
    }
    if not create_auth_method:
        return result
    method_id, user_id, account_id = new_id("ampw"), new_id("u"), new_id("acctpw")
    role_id, password = new_id("r"), random_password()
    _global_auth_method(conn, now, method_id)
    _password_user(conn, now, method_id, user_id, account_id, login_name, password)
    _admin_role(conn, now, role_id, user_id)
    result["auth_method"] = {
        "auth_method_id": method_id,
        "auth_method_name": AUTH_METHOD_NAME,
        "login_name": login_name,
        "password": password,
        "scope_id": "global",
        "user_id": user_id,
        "user_name": login_name,
    }
    result["admin_role"] = {"role_id": role_id, "name": ADMIN_ROLE_NAME}
    return result
