"""/v1/users and /v1/roles (grants, principals, grant scopes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import delete, func, insert, select

from bconnect.controller import errors
from bconnect.controller import resources as res
from bconnect.controller.context import Ctx
from bconnect.controller.grants import ANON, AUTHENTICATED, GrantError, parse_grant
from bconnect.controller.models import (
    AccountIds,
    GrantScopeIds,
    GrantStrings,
    PrincipalIds,
    RoleCreate,
    RoleItem,
    RoleResponse,
    RoleUpdate,
    UserCreate,
    UserItem,
    UserResponse,
    UserUpdate,
)
from bconnect.controller.routes.common import add_standard_routes
from bconnect.controller.storage import schema as t
from bconnect.controller.transaction import transaction
from bconnect.ids import new_id, prefix_of

router = APIRouter(tags=["iam"])


def _render_user(ctx: Ctx, row: Any) -> dict[str, Any]:
    accounts = ctx.conn.execute(
        select(t.accounts.c.id, t.accounts.c.scope_id, t.accounts.c.login_name)
        .join(t.user_accounts, t.user_accounts.c.account_id == t.accounts.c.id)
        .where(t.user_accounts.c.user_id == row.id)
        .order_by(t.accounts.c.id)
    ).all()
    return {
        "account_ids": [a.id for a in accounts] or None,
        "accounts": [{"id": a.id, "scope_id": a.scope_id} for a in accounts] or None,
        "login_name": accounts[0].login_name if accounts else None,
        "primary_account_id": accounts[0].id if accounts else None,
    }


def _render_role(ctx: Ctx, row: Any) -> dict[str, Any]:
    scopes = res.linked_ids(ctx, t.role_grant_scopes, "role_id", row.id, "grant_scope")
    principals = res.linked_ids(ctx, t.role_principals, "role_id", row.id, "principal_id")
    grants = ctx.conn.execute(
        select(t.role_grants)
        .where(t.role_grants.c.role_id == row.id)
        .order_by(t.role_grants.c.position)
    ).all()
    return {
        "grant_scope_ids": scopes or None,
        "principal_ids": principals or None,
        "principals": [_principal_info(ctx, p) for p in principals] or None,
        "grant_strings": [g.raw_grant for g in grants] or None,
        "grants": [
            {"raw": g.raw_grant, "canonical": g.canonical_grant, "json": _grant_json(g)}
            for g in grants
        ]
        or None,
    }


def _grant_json(g: Any) -> dict[str, Any]:
    try:
        grant = parse_grant(g.canonical_grant)
    except GrantError:
        return {}
    doc: dict[str, Any] = {"ids": sorted(grant.ids), "actions": sorted(grant.actions)}
    if grant.type:
        doc["type"] = grant.type
    return doc


def _principal_info(ctx: Ctx, principal_id: str) -> dict[str, str]:
    if principal_id in (ANON, AUTHENTICATED):
        return {"id": principal_id, "type": "user", "scope_id": "global"}
    scope = ctx.conn.execute(
        select(t.users.c.scope_id).where(t.users.c.id == principal_id)
    ).scalar()
    return {"id": principal_id, "type": "user", "scope_id": scope or "global"}


USERS = res.Kind("user", "users", t.users, render=_render_user, model=UserItem)
ROLES = res.Kind("role", "roles", t.roles, render=_render_role, model=RoleItem)


for _kind in (USERS, ROLES):
    add_standard_routes(router, _kind)


@router.post("/v1/users", response_model=UserResponse, response_model_exclude_none=True)
def create_user(request: Request, body: UserCreate) -> dict[str, Any]:
    with transaction(request) as ctx:
        scope = ctx.scope_row(body.scope_id)
        if scope.type == "project":
            raise errors.invalid_field("scope_id", "Users live in global or org scopes.")
        ctx.require(scope.id, "user", "create")
        values = {
            "id": new_id("u"),
            "scope_id": scope.id,
            "name": body.name,
            "description": body.description,
        }
        return res.render(ctx, USERS, res.insert_row(ctx, USERS, values))


@router.patch("/v1/users/{id}", response_model=UserResponse, response_model_exclude_none=True)
def update_user(request: Request, id: str, body: UserUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, USERS, id, "update")
        row = res.patch_row(ctx, USERS, row, body.version, res.common_updates(body))
        return res.render(ctx, USERS, row)


def _forget_tokens(ctx: Ctx, user_id: str, account_ids: list[str]) -> None:
    """An account taken from its user stops authenticating that user at once, and the
    sessions its tokens made are canceled."""
    gone = (t.auth_tokens.c.user_id == user_id) & t.auth_tokens.c.account_id.in_(account_ids)
    res.revoke_tokens(ctx, gone)


def _user_accounts(action: str):  # noqa: ANN202
    def handler(request: Request, id: str, body: AccountIds) -> dict[str, Any]:
        with transaction(request) as ctx:
            user = res.get_row(ctx, USERS, id)

            def validate(account_id: str) -> None:
                account = ctx.conn.execute(
                    select(t.accounts.c.scope_id).where(t.accounts.c.id == account_id)
                ).first()
                if account is None:
                    raise errors.invalid_field("account_ids", f"Unknown account {account_id}.")
                if account.scope_id != user.scope_id:
                    raise errors.invalid_field(
                        "account_ids", f"Account {account_id} is not in the user's scope."
                    )
                owner = ctx.conn.execute(
                    select(t.user_accounts.c.user_id).where(
                        t.user_accounts.c.account_id == account_id
                    )
                ).scalar()
                if owner is not None and owner != id:
                    raise errors.invalid_field(
                        "account_ids", f"Account {account_id} belongs to another user."
                    )

            row = res.change_links(
                ctx,
                USERS,
                id,
                action,
                body.version,
                t.user_accounts,
                "user_id",
                "account_id",
                body.account_ids,
                validate,
                on_removed=lambda gone: _forget_tokens(ctx, id, gone),
            )
            return res.render(ctx, USERS, row)

    return handler


for _action in ("add-accounts", "set-accounts", "remove-accounts"):
    router.add_api_route(
        "/v1/users/{id}:" + _action,
        _user_accounts(_action),
        methods=["POST"],
        name=_action.replace("-", "_") + "_user",
        response_model=UserResponse,
        response_model_exclude_none=True,
    )


# ---------------------------------------------------------------- roles


def _check_grant_scope(ctx: Ctx, role_scope: str, value: str) -> None:
    if value in ("this", "children", "descendants"):
        if value != "this" and ctx.scopes[role_scope].type == "project":
            raise errors.invalid_field("grant_scope_ids", f"{value!r} is not valid in a project.")
        if value == "descendants" and ctx.scopes[role_scope].type != "global":
            raise errors.invalid_field("grant_scope_ids", "'descendants' is only for global.")
        return
    if value not in ctx.scopes:
        raise errors.invalid_field("grant_scope_ids", f"Unknown scope {value}.")
    if value != role_scope and role_scope not in _ancestors(ctx, value):
        raise errors.invalid_field(
            "grant_scope_ids", f"Scope {value} is not this scope or below it."
        )


def _ancestors(ctx: Ctx, scope_id: str) -> list[str]:
    out = []
    cur = ctx.scopes[scope_id].parent_id
    while cur:
        out.append(cur)
        cur = ctx.scopes[cur].parent_id
    return out


@router.post("/v1/roles", response_model=RoleResponse, response_model_exclude_none=True)
def create_role(request: Request, body: RoleCreate) -> dict[str, Any]:
    with transaction(request) as ctx:
        scope = ctx.scope_row(body.scope_id)
        ctx.require(scope.id, "role", "create")
        grant_scopes = body.grant_scope_ids if body.grant_scope_ids is not None else ["this"]
        for gs in grant_scopes:
            _check_grant_scope(ctx, scope.id, gs)
        values = {
            "id": new_id("r"),
            "scope_id": scope.id,
            "name": body.name,
            "description": body.description,
        }
        row = res.insert_row(ctx, ROLES, values)
        for gs in dict.fromkeys(grant_scopes):
            ctx.conn.execute(insert(t.role_grant_scopes).values(role_id=row.id, grant_scope=gs))
        return res.render(ctx, ROLES, row)


@router.patch("/v1/roles/{id}", response_model=RoleResponse, response_model_exclude_none=True)
def update_role(request: Request, id: str, body: RoleUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, ROLES, id, "update")
        row = res.patch_row(ctx, ROLES, row, body.version, res.common_updates(body))
        return res.render(ctx, ROLES, row)


def _role_principals(action: str):  # noqa: ANN202
    def handler(request: Request, id: str, body: PrincipalIds) -> dict[str, Any]:
        with transaction(request) as ctx:

            def validate(pid: str) -> None:
                if pid in (ANON, AUTHENTICATED):
                    return
                if (
                    prefix_of(pid) != "u"
                    or ctx.conn.execute(select(t.users.c.id).where(t.users.c.id == pid)).first()
                    is None
                ):
                    raise errors.invalid_field("principal_ids", f"Unknown principal {pid}.")

            row = res.change_links(
                ctx,
                ROLES,
                id,
                action,
                body.version,
                t.role_principals,
                "role_id",
                "principal_id",
                body.principal_ids,
                validate,
            )
            return res.render(ctx, ROLES, row)

    return handler


def _role_grant_scopes(action: str):  # noqa: ANN202
    def handler(request: Request, id: str, body: GrantScopeIds) -> dict[str, Any]:
        with transaction(request) as ctx:
            role = res.get_row(ctx, ROLES, id)
            row = res.change_links(
                ctx,
                ROLES,
                id,
                action,
                body.version,
                t.role_grant_scopes,
                "role_id",
                "grant_scope",
                body.grant_scope_ids,
                lambda gs: _check_grant_scope(ctx, role.scope_id, gs),
            )
            return res.render(ctx, ROLES, row)

    return handler


def _role_grants(action: str):  # noqa: ANN202
    def handler(request: Request, id: str, body: GrantStrings) -> dict[str, Any]:
        with transaction(request) as ctx:
            row = res.read_checked(ctx, ROLES, id, action)
            if row.version != body.version:
                raise errors.version_mismatch()
            parsed = []
            for raw in body.grant_strings:
                try:
                    parsed.append((raw, parse_grant(raw).canonical()))
                except GrantError as exc:
                    raise errors.invalid_field("grant_strings", f"{raw!r}: {exc}") from None
            existing = ctx.conn.execute(
                select(t.role_grants).where(t.role_grants.c.role_id == id)
            ).all()
            have = {g.canonical_grant for g in existing}
            mode = action.split("-", 1)[0]
            if mode == "remove":
                drop = {c for _, c in parsed}
                missing = drop - have
                if missing:
                    raise errors.invalid_field(
                        "grant_strings", "Not present: " + ", ".join(missing)
                    )
                ctx.conn.execute(
                    delete(t.role_grants).where(
                        t.role_grants.c.role_id == id, t.role_grants.c.canonical_grant.in_(drop)
                    )
                )
            else:
                if mode == "set":
                    ctx.conn.execute(delete(t.role_grants).where(t.role_grants.c.role_id == id))
                    have = set()
                elif not parsed:
                    raise errors.invalid_field("grant_strings", "Must contain at least one grant.")
                pos = ctx.conn.execute(
                    select(func.coalesce(func.max(t.role_grants.c.position), 0)).where(
                        t.role_grants.c.role_id == id
                    )
                ).scalar_one()
                for raw, canonical in parsed:
                    if canonical in have:
                        if mode == "add":
                            raise errors.invalid_field("grant_strings", f"Already present: {raw}")
                        continue
                    pos += 1
                    have.add(canonical)
                    ctx.conn.execute(
                        insert(t.role_grants).values(
                            role_id=id, position=pos, canonical_grant=canonical, raw_grant=raw
                        )
                    )
            row = res.update_row(ctx, ROLES, row, body.version, {})
            return res.render(ctx, ROLES, row)

    return handler


for _action, _factory in (
    ("add-principals", _role_principals),
    ("set-principals", _role_principals),
    ("remove-principals", _role_principals),
    ("add-grants", _role_grants),
    ("set-grants", _role_grants),
    ("remove-grants", _role_grants),
    ("add-grant-scopes", _role_grant_scopes),
    ("set-grant-scopes", _role_grant_scopes),
    ("remove-grant-scopes", _role_grant_scopes),
):
    router.add_api_route(
        "/v1/roles/{id}:" + _action,
        _factory(_action),
        methods=["POST"],
        name=_action.replace("-", "_") + "_role",
        response_model=RoleResponse,
        response_model_exclude_none=True,
    )
