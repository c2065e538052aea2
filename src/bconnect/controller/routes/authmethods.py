"""/v1/auth-methods (password), :authenticate, /v1/accounts and /v1/auth-tokens."""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import insert, select
from starlette.concurrency import run_in_threadpool

from bconnect.controller import errors
from bconnect.controller import resources as res
from bconnect.controller.context import TOKEN_LIFETIME, Ctx
from bconnect.controller.models import (
    AccountCreate,
    AccountItem,
    AccountResponse,
    AccountUpdate,
    AuthenticateRequest,
    AuthenticateResponse,
    AuthMethodCreate,
    AuthMethodItem,
    AuthMethodResponse,
    AuthMethodUpdate,
    AuthTokenItem,
    ChangePassword,
    SetPassword,
)
from bconnect.controller.passwords import PasswordChecker
from bconnect.controller.routes.common import add_standard_routes
from bconnect.controller.secrets import hash_password, mint_auth_token, token_hash, verify_password
from bconnect.controller.storage import schema as t
from bconnect.controller.throttle import LoginThrottle
from bconnect.controller.transaction import transaction
from bconnect.ids import new_id

router = APIRouter(tags=["auth"])


def _render_method(ctx: Ctx, row: Any) -> dict[str, Any]:
    primary = ctx.scopes[row.scope_id].primary_auth_method_id == row.id
    return {
        "is_primary": primary or None,
        "attributes": {
            "min_login_name_length": row.min_login_name_length,
            "min_password_length": row.min_password_length,
        },
    }


def _render_account(ctx: Ctx, row: Any) -> dict[str, Any]:
    return {"attributes": {"login_name": row.login_name}}


def _render_token(ctx: Ctx, row: Any) -> dict[str, Any]:
    return {
        "user_id": row.user_id,
        "auth_method_id": row.auth_method_id,
        "account_id": row.account_id,
        "created_time": res.fmt_time(row.created_time),
        "updated_time": res.fmt_time(row.updated_time),
        "approximate_last_used_time": res.fmt_time(row.approximate_last_used_time),
        "expiration_time": res.fmt_time(row.expiration_time),
    }


METHODS = res.Kind(
    "auth-method", "auth-methods", t.auth_methods, render=_render_method, model=AuthMethodItem
)
ACCOUNTS = res.Kind(
    "account",
    "accounts",
    t.accounts,
    parent="auth_method_id",
    parent_table=t.auth_methods,
    render=_render_account,
    show_scope_id=False,
    model=AccountItem,
)
TOKENS = res.Kind(
    "auth-token",
    "auth-tokens",
    t.auth_tokens,
    owner_col="user_id",
    render=_render_token,
    has_common=False,
    model=AuthTokenItem,
)

for _kind in (METHODS, ACCOUNTS, TOKENS):
    add_standard_routes(router, _kind)

# ---------------------------------------------------------------- auth methods


@router.post(
    "/v1/auth-methods", response_model=AuthMethodResponse, response_model_exclude_none=True
)
def create_auth_method(request: Request, body: AuthMethodCreate) -> dict[str, Any]:
    with transaction(request) as ctx:
        scope = ctx.scope_row(body.scope_id)
        if scope.type == "project":
            raise errors.invalid_field("scope_id", "Auth methods live in global or org scopes.")
        ctx.require(scope.id, "auth-method", "create")
        attrs = body.attributes
        values = {
            "id": new_id("ampw"),
            "scope_id": scope.id,
            "type": "password",
            "name": body.name,
            "description": body.description,
            "min_login_name_length": (attrs.min_login_name_length if attrs else None) or 3,
            "min_password_length": (attrs.min_password_length if attrs else None) or 8,
        }
        return res.render(ctx, METHODS, res.insert_row(ctx, METHODS, values))


@router.patch(
    "/v1/auth-methods/{id}", response_model=AuthMethodResponse, response_model_exclude_none=True
)
def update_auth_method(request: Request, id: str, body: AuthMethodUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, METHODS, id, "update")
        values = res.common_updates(body)
        if body.attributes is not None:
            values.update(
                {
                    k: v
                    for k, v in body.attributes.model_dump().items()
                    if k in body.attributes.model_fields_set and v is not None
                }
            )
        row = res.patch_row(ctx, METHODS, row, body.version, values)
        return res.render(ctx, METHODS, row)


@router.post(
    "/v1/auth-methods/{id}:authenticate",
    response_model=AuthenticateResponse,
    response_model_exclude_none=True,
)
async def authenticate(request: Request, id: str, body: AuthenticateRequest) -> dict[str, Any]:
    """Exchange a login name and password for an auth token (7 days).

    The client address's limits are checked before anything else (429 with
    Retry-After); the password hash runs on the controller's bounded password threads
    (503 with Retry-After when they are full), outside any database transaction, so
    slow argon2 work never holds the database nor the threads other requests use."""
    login = body.attributes.login_name
    throttle: LoginThrottle = request.app.state.login_throttle
    client = request.client.host if request.client else ""
    wait = throttle.refused_for(id, login, client, time.monotonic())
    if wait:
        raise errors.TooManyRequests(
            f"Too many failed logins from this address; retry in {wait} s.", wait
        )
    method, account = await run_in_threadpool(_find_account, request, id, login)
    checker: PasswordChecker = request.app.state.password_checker
    if not await checker.verify(
        account.password_hash if account else None, body.attributes.password
    ):
        throttle.failed(id, login, client, time.monotonic())
        raise errors.Unauthenticated("Unable to authenticate: invalid login name or password.")
    throttle.succeeded(id, login, client)
    return await run_in_threadpool(_login_transaction, request, method, account)


def _find_account(request: Request, method_id: str, login: str) -> tuple[Any, Any]:
    """The auth method (if the caller may authenticate with it) and the account."""
    with transaction(request, write=False) as ctx:
        method = res.get_row(ctx, METHODS, method_id)
        ctx.require(method.scope_id, "auth-method", "authenticate", method.id)
        account = ctx.conn.execute(
            select(t.accounts).where(
                t.accounts.c.auth_method_id == method_id, t.accounts.c.login_name == login
            )
        ).first()
    return method, account


def _login_transaction(request: Request, method: Any, account: Any) -> dict[str, Any]:
    with transaction(request, write=True) as ctx:
        return _login(ctx, method, account)


def _login(ctx: Ctx, method: Any, account: Any) -> dict[str, Any]:
    """Mint an auth token for a verified account (if it still has its user)."""
    current = ctx.conn.execute(
        select(t.accounts.c.password_hash).where(t.accounts.c.id == account.id)
    ).scalar()
    user_id = ctx.conn.execute(
        select(t.user_accounts.c.user_id).where(t.user_accounts.c.account_id == account.id)
    ).scalar()
    if current != account.password_hash or user_id is None:
        # deleted, unlinked or its password changed while we were checking
        raise errors.Unauthenticated("Unable to authenticate: invalid login name or password.")
    token_id, token = mint_auth_token()
    ctx.conn.execute(
        insert(t.auth_tokens).values(
            id=token_id,
            scope_id=method.scope_id,
            token_hash=token_hash(token),
            user_id=user_id,
            account_id=account.id,
            auth_method_id=method.id,
            created_time=ctx.now,
            updated_time=ctx.now,
            approximate_last_used_time=ctx.now,
            expiration_time=ctx.now + TOKEN_LIFETIME,
        )
    )
    row = res.get_row(ctx, TOKENS, token_id)
    ctx.user_id = user_id
    attrs = res.render(ctx, TOKENS, row, ["read:self", "delete:self"])
    attrs["token"] = token
    return {"command": "login", "attributes": attrs}


# ---------------------------------------------------------------- accounts


LOGIN_NAME = re.compile(r"[a-z0-9._@+-]+")


def _check_login_name(ctx: Ctx, method: Any, login: str, account_id: str = "") -> str:
    """Boundary's rules: lower case, no spaces, long enough, unique in the auth method."""
    if len(login) < method.min_login_name_length or not LOGIN_NAME.fullmatch(login):
        raise errors.invalid_field(
            "attributes.login_name",
            f"Must be at least {method.min_login_name_length} lower-case letters, digits "
            "or ._@+- characters.",
        )
    taken = ctx.conn.execute(
        select(t.accounts.c.id).where(
            t.accounts.c.auth_method_id == method.id,
            t.accounts.c.login_name == login,
            t.accounts.c.id != account_id,
        )
    ).first()
    if taken:
        raise errors.invalid_field("attributes.login_name", "Login name already in use.")
    return login


def _check_password(method: Any, password: str) -> None:
    if len(password) < method.min_password_length:
        raise errors.invalid_field(
            "attributes.password",
            f"Length must be at least {method.min_password_length}.",
        )


@router.post("/v1/accounts", response_model=AccountResponse, response_model_exclude_none=True)
def create_account(request: Request, body: AccountCreate) -> dict[str, Any]:
    with transaction(request) as ctx:
        method = res.get_row(ctx, METHODS, body.auth_method_id)
        ctx.require(method.scope_id, "account", "create")
        login = _check_login_name(ctx, method, body.attributes.login_name)
        if body.attributes.password is None:
            raise errors.invalid_field("attributes.password", "This field is required.")
        _check_password(method, body.attributes.password)
        values = {
            "id": new_id("acctpw"),
            "scope_id": method.scope_id,
            "auth_method_id": method.id,
            "type": "password",
            "login_name": login,
            "password_hash": hash_password(body.attributes.password),
            "name": body.name,
            "description": body.description,
        }
        return res.render(ctx, ACCOUNTS, res.insert_row(ctx, ACCOUNTS, values))


@router.patch("/v1/accounts/{id}", response_model=AccountResponse, response_model_exclude_none=True)
def update_account(request: Request, id: str, body: AccountUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, ACCOUNTS, id, "update")
        values = res.common_updates(body)
        if body.attributes is not None and body.attributes.login_name is not None:
            method = res.get_row(ctx, METHODS, row.auth_method_id)
            values["login_name"] = _check_login_name(
                ctx, method, body.attributes.login_name, account_id=row.id
            )
        row = res.patch_row(ctx, ACCOUNTS, row, body.version, values)
        return res.render(ctx, ACCOUNTS, row)


@router.post(
    "/v1/accounts/{id}:set-password",
    response_model=AccountResponse,
    response_model_exclude_none=True,
)
def set_password(request: Request, id: str, body: SetPassword) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, ACCOUNTS, id, "set-password")
        _check_password(res.get_row(ctx, METHODS, row.auth_method_id), body.password)
        values = {"password_hash": hash_password(body.password)}
        row = res.update_row(ctx, ACCOUNTS, row, body.version, values)
        # an administrator resetting a password shuts out whoever had the old one
        res.revoke_tokens(ctx, t.auth_tokens.c.account_id == row.id)
        return res.render(ctx, ACCOUNTS, row)


@router.post(
    "/v1/accounts/{id}:change-password",
    response_model=AccountResponse,
    response_model_exclude_none=True,
)
def change_password(request: Request, id: str, body: ChangePassword) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, ACCOUNTS, id, "change-password")
        if not verify_password(row.password_hash, body.current_password):
            raise errors.invalid_field("current_password", "Incorrect password.")
        _check_password(res.get_row(ctx, METHODS, row.auth_method_id), body.new_password)
        values = {"password_hash": hash_password(body.new_password)}
        return res.render(ctx, ACCOUNTS, res.update_row(ctx, ACCOUNTS, row, body.version, values))


# ---------------------------------------------------------------- auth tokens
