"""/v1/host-catalogs, /v1/host-sets and /v1/hosts (static)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from bconnect.controller import errors
from bconnect.controller import resources as res
from bconnect.controller.addresses import parse_address
from bconnect.controller.context import Ctx
from bconnect.controller.models import (
    HostCatalogCreate,
    HostCatalogItem,
    HostCatalogResponse,
    HostCatalogUpdate,
    HostCreate,
    HostIds,
    HostItem,
    HostResponse,
    HostSetCreate,
    HostSetItem,
    HostSetResponse,
    HostSetUpdate,
    HostUpdate,
)
from bconnect.controller.routes.common import add_standard_routes
from bconnect.controller.storage import schema as t
from bconnect.controller.transaction import transaction
from bconnect.ids import new_id

router = APIRouter(tags=["hosts"])


def _render_catalog(ctx: Ctx, row: Any) -> dict[str, Any]:
    actions = {}
    for rtype, plural in (("host", "hosts"), ("host-set", "host-sets")):
        allowed = ctx.acl.authorized_collection_actions(row.scope_id, rtype)
        if allowed:
            actions[plural] = allowed
    return {"authorized_collection_actions": actions or None}


def _render_host(ctx: Ctx, row: Any) -> dict[str, Any]:
    sets = res.linked_ids(ctx, t.host_set_members, "host_id", row.id, "host_set_id")
    return {"host_set_ids": sets or None, "attributes": {"address": row.address}}


def _render_set(ctx: Ctx, row: Any) -> dict[str, Any]:
    ids = res.linked_ids(ctx, t.host_set_members, "host_set_id", row.id, "host_id")
    return {"host_ids": ids or None}


CATALOGS = res.Kind(
    "host-catalog", "host-catalogs", t.host_catalogs, render=_render_catalog, model=HostCatalogItem
)
HOSTS = res.Kind(
    "host",
    "hosts",
    t.hosts,
    parent="host_catalog_id",
    parent_table=t.host_catalogs,
    render=_render_host,
    show_scope_id=False,
    model=HostItem,
)
HOST_SETS = res.Kind(
    "host-set",
    "host-sets",
    t.host_sets,
    parent="host_catalog_id",
    parent_table=t.host_catalogs,
    render=_render_set,
    show_scope_id=False,
    model=HostSetItem,
)
for _kind in (CATALOGS, HOSTS, HOST_SETS):
    add_standard_routes(router, _kind)


def _address(text: str) -> str:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise errors.invalid_field("attributes.address", str(exc)) from None


def _project(ctx: Ctx, scope_id: str) -> Any:
    scope = ctx.scope_row(scope_id)
    if scope.type != "project":
        raise errors.invalid_field("scope_id", "This resource lives in a project scope.")
    return scope


@router.post(
    "/v1/host-catalogs", response_model=HostCatalogResponse, response_model_exclude_none=True
)
def create_host_catalog(request: Request, body: HostCatalogCreate) -> dict[str, Any]:
    with transaction(request) as ctx:
        scope = _project(ctx, body.scope_id)
        ctx.require(scope.id, "host-catalog", "create")
        values = {
            "id": new_id("hcst"),
            "scope_id": scope.id,
            "type": "static",
            "name": body.name,
            "description": body.description,
        }
        return res.render(ctx, CATALOGS, res.insert_row(ctx, CATALOGS, values))


@router.patch(
    "/v1/host-catalogs/{id}", response_model=HostCatalogResponse, response_model_exclude_none=True
)
def update_host_catalog(request: Request, id: str, body: HostCatalogUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, CATALOGS, id, "update")
        row = res.patch_row(ctx, CATALOGS, row, body.version, res.common_updates(body))
        return res.render(ctx, CATALOGS, row)


def _catalog_child(ctx: Ctx, kind: res.Kind, catalog_id: str, prefix: str, extra: dict) -> Any:
    scope_id = res.parent_scope(ctx, kind, catalog_id)
    ctx.require(scope_id, kind.rtype, "create")
    return {
        "id": new_id(prefix),
        "scope_id": scope_id,
        "host_catalog_id": catalog_id,
        "type": "static",
        **extra,
    }


@router.post("/v1/hosts", response_model=HostResponse, response_model_exclude_none=True)
def create_host(request: Request, body: HostCreate) -> dict[str, Any]:
    with transaction(request) as ctx:
        values = _catalog_child(
            ctx,
            HOSTS,
            body.host_catalog_id,
            "hst",
            {
                "name": body.name,
                "description": body.description,
                "address": _address(body.attributes.address),
            },
        )
        return res.render(ctx, HOSTS, res.insert_row(ctx, HOSTS, values))


@router.patch("/v1/hosts/{id}", response_model=HostResponse, response_model_exclude_none=True)
def update_host(request: Request, id: str, body: HostUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, HOSTS, id, "update")
        values = res.common_updates(body)
        if body.attributes is not None:
            values["address"] = _address(body.attributes.address)
        row = res.patch_row(ctx, HOSTS, row, body.version, values)
        return res.render(ctx, HOSTS, row)


@router.post("/v1/host-sets", response_model=HostSetResponse, response_model_exclude_none=True)
def create_host_set(request: Request, body: HostSetCreate) -> dict[str, Any]:
    with transaction(request) as ctx:
        values = _catalog_child(
            ctx,
            HOST_SETS,
            body.host_catalog_id,
            "hsst",
            {"name": body.name, "description": body.description},
        )
        return res.render(ctx, HOST_SETS, res.insert_row(ctx, HOST_SETS, values))


@router.patch(
    "/v1/host-sets/{id}", response_model=HostSetResponse, response_model_exclude_none=True
)
def update_host_set(request: Request, id: str, body: HostSetUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, HOST_SETS, id, "update")
        row = res.patch_row(ctx, HOST_SETS, row, body.version, res.common_updates(body))
        return res.render(ctx, HOST_SETS, row)


def _host_set_hosts(action: str):  # noqa: ANN202
    def handler(request: Request, id: str, body: HostIds) -> dict[str, Any]:
        with transaction(request) as ctx:
            hset = res.get_row(ctx, HOST_SETS, id)

            def validate(host_id: str) -> None:
                host = ctx.conn.execute(
                    select(t.hosts.c.host_catalog_id).where(t.hosts.c.id == host_id)
                ).first()
                if host is None or host.host_catalog_id != hset.host_catalog_id:
                    raise errors.invalid_field(
                        "host_ids", f"{host_id} is not a host in this set's catalog."
                    )

            row = res.change_links(
                ctx,
                HOST_SETS,
                id,
                action,
                body.version,
                t.host_set_members,
                "host_set_id",
                "host_id",
                body.host_ids,
                validate,
            )
            return res.render(ctx, HOST_SETS, row)

    return handler


for _action in ("add-hosts", "set-hosts", "remove-hosts"):
    router.add_api_route(
        "/v1/host-sets/{id}:" + _action,
        _host_set_hosts(_action),
        methods=["POST"],
        name=_action.replace("-", "_") + "_host_set",
        response_model=HostSetResponse,
        response_model_exclude_none=True,
    )
