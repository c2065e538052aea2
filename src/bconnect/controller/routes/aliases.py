"""/v1/aliases (type ``target``) and ``/v1/users/{id}:list-resolvable-aliases``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from bconnect.controller import aliasing, errors
from bconnect.controller import resources as res
from bconnect.controller.context import Ctx, build_acl
from bconnect.controller.lists import Reach, list_items
from bconnect.controller.models import (
    AliasCreate,
    AliasItem,
    AliasResponse,
    AliasUpdate,
    ResolvableAliasItem,
    list_response,
)
from bconnect.controller.routes.common import ListToken, PageSize, add_standard_routes, list_query
from bconnect.controller.storage import schema as t
from bconnect.controller.transaction import transaction
from bconnect.ids import new_id

router = APIRouter(tags=["aliases"])

HOST_ID = "attributes.authorize_session_arguments.host_id"


def _render(ctx: Ctx, row: Any) -> dict[str, Any]:
    attrs = {"authorize_session_arguments": {"host_id": row.host_id}} if row.host_id else None
    return {"value": row.value, "destination_id": row.destination_id, "attributes": attrs}


ALIASES = res.Kind("alias", "aliases", t.aliases, render=_render, model=AliasItem)
add_standard_routes(router, ALIASES)


def _check_value(ctx: Ctx, value: str | None, alias_id: str = "") -> dict[str, str]:
    if value is None:
        raise errors.invalid_field("value", "This field is required.")
    problem = aliasing.value_problem(value)
    if problem:
        raise errors.invalid_field("value", problem)
    taken = aliasing.find_alias(ctx.conn, value)
    if taken is not None and taken.id != alias_id:
        raise errors.invalid_field("value", "An alias with this value already exists.")
    return {"value": value, "value_key": aliasing.value_key(value)}


def _check_type(value: str | None) -> None:
    if value is not None and value.lower() != "target":
        raise errors.invalid_field(
            "type", "This field is required. Current supported values are 'target'."
        )


def _check_destination(ctx: Ctx, destination_id: str | None) -> str | None:
    if destination_id is None:
        return None
    if not destination_id.startswith(aliasing.DESTINATION_PREFIXES):
        raise errors.invalid_field("destination_id", "Incorrectly formatted identifier.")
    found = ctx.conn.execute(select(t.targets.c.id).where(t.targets.c.id == destination_id)).first()
    if found is None:
        raise errors.NotFound(
            f'target with specified destination id "{destination_id}" was not found'
        )
    return destination_id


def _check_host(host_id: str | None, destination_id: str | None) -> str | None:
    if host_id is None:
        return None
    if not host_id.startswith(aliasing.HOST_PREFIXES):
        raise errors.invalid_field(HOST_ID, "Incorrectly formatted identifier.")
    if destination_id is None:
        raise errors.invalid_field(
            "destination_id", f"This field is required when '{HOST_ID}' is specified."
        )
    return host_id


def _host_of(body: AliasCreate | AliasUpdate) -> tuple[bool, str | None]:
    """(whether the body sets the host, the host it sets)."""
    attrs = body.attributes
    if attrs is None or "authorize_session_arguments" not in attrs.model_fields_set:
        return False, None
    args = attrs.authorize_session_arguments
    return True, args.host_id if args is not None else None


@router.post("/v1/aliases", response_model=AliasResponse, response_model_exclude_none=True)
def create_alias(request: Request, body: AliasCreate) -> dict[str, Any]:
    """Create an alias for a target (aliases live in the global scope)."""
    with transaction(request) as ctx:
        if body.scope_id != "global":
            raise errors.invalid_field("scope_id", "Aliases live in the global scope.")
        ctx.scope_row("global")
        ctx.require("global", "alias", "create")
        _check_type(body.type)
        values: dict[str, Any] = _check_value(ctx, body.value)  # and the other columns
        destination = _check_destination(ctx, body.destination_id)
        values.update(
            id=new_id("alt"),
            scope_id="global",
            type="target",
            destination_id=destination,
            host_id=_check_host(_host_of(body)[1], destination),
            name=body.name,
            description=body.description,
        )
        return res.render(ctx, ALIASES, res.insert_row(ctx, ALIASES, values))


@router.patch("/v1/aliases/{id}", response_model=AliasResponse, response_model_exclude_none=True)
def update_alias(request: Request, id: str, body: AliasUpdate) -> dict[str, Any]:
    """Change an alias's name, description, value, destination or host; ``null``
    clears a field (a destination cleared clears the host too)."""
    with transaction(request) as ctx:
        row = res.read_checked(ctx, ALIASES, id, "update")
        _check_type(body.type)
        values = res.common_updates(body)
        if "value" in body.model_fields_set:
            values.update(_check_value(ctx, body.value, row.id))
        destination = row.destination_id
        if "destination_id" in body.model_fields_set:
            destination = values["destination_id"] = _check_destination(ctx, body.destination_id)
        sets_host, host = _host_of(body)
        if sets_host:
            values["host_id"] = _check_host(host, destination)
        elif destination is None and row.host_id is not None:
            values["host_id"] = None
        row = res.patch_row(ctx, ALIASES, row, body.version, values)
        return res.render(ctx, ALIASES, row)


def _resolvable_item(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_time": res.fmt_time(row.created_time),
        "updated_time": res.fmt_time(row.updated_time),
        "value": row.value,
        "destination_id": row.destination_id,
        "type": row.type,
    }


@router.get(
    "/v1/users/{id}:list-resolvable-aliases",
    response_model=list_response(ResolvableAliasItem),
    response_model_exclude_none=True,
)
def list_resolvable_aliases(
    request: Request, id: str, page_size: PageSize = None, list_token: ListToken = None
) -> dict[str, Any]:
    """The aliases a user can use: those whose target the user may act on (Boundary's
    CLI cache asks this for the logged-in user on every refresh)."""
    with transaction(request) as ctx:
        user = ctx.conn.execute(select(t.users).where(t.users.c.id == id)).first()
        if user is None:
            raise errors.not_found(id)
        ctx.require(user.scope_id, "user", "list-resolvable-aliases", user.id)
        acl = build_acl(ctx.conn, user.id, ctx.scopes)
        targets = ctx.conn.execute(select(t.targets.c.id, t.targets.c.scope_id)).all()
        usable = {r.id for r in targets if acl.authorized_actions(r.scope_id, "target", r.id)}

        def visible(row: Any) -> bool:
            return row.destination_id in usable

        aliases = t.aliases.c
        q = list_query(id, page_size=page_size, list_token=list_token)
        return list_items(
            ctx,
            ALIASES,
            q,
            [aliases.destination_id.in_(sorted(usable))],
            visible,
            reach=Reach(aliases.scope_id == "global", ["global"], ["global"]),
            accept=lambda row: _resolvable_item(row) if visible(row) else None,
        )
