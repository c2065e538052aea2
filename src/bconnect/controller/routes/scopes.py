"""/v1/scopes: global, org and project scopes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import delete, select

from bconnect.controller import errors
from bconnect.controller import resources as res
from bconnect.controller.context import Ctx
from bconnect.controller.lists import list_items
from bconnect.controller.models import (
    ScopeCreate,
    ScopeItem,
    ScopeResponse,
    ScopeUpdate,
    list_response,
)
from bconnect.controller.routes.common import (
    Filter,
    ListToken,
    PageSize,
    Recursive,
    list_query,
    no_content,
)
from bconnect.controller.storage import schema as t
from bconnect.controller.transaction import transaction
from bconnect.ids import new_id

router = APIRouter(tags=["scopes"])

CHILD_TYPE = {"global": "org", "org": "project"}
PREFIX = {"org": "o", "project": "p"}
# What may be created inside a scope, for authorized_collection_actions.
COLLECTIONS = {
    "global": (
        "alias",
        "scope",
        "auth-method",
        "user",
        "role",
        "worker",
        "storage-bucket",
        "session-recording",
    ),
    "org": ("scope", "auth-method", "user", "role", "storage-bucket", "session-recording"),
    "project": ("host-catalog", "target", "credential-store", "role", "session"),
}
PLURAL = {
    "alias": "aliases",
    "scope": "scopes",
    "auth-method": "auth-methods",
    "user": "users",
    "role": "roles",
    "worker": "workers",
    "host-catalog": "host-catalogs",
    "target": "targets",
    "credential-store": "credential-stores",
    "session": "sessions",
    "storage-bucket": "storage-buckets",
    "session-recording": "session-recordings",
}
# What lives in a scope, in the order it can be deleted: (collection, table).
CONTENTS = (
    ("session-recordings", t.session_recordings),
    ("storage-buckets", t.storage_buckets),
    ("aliases", t.aliases),
    ("sessions", t.sessions),
    ("targets", t.targets),
    ("credentials", t.credentials),
    ("credential-stores", t.credential_stores),
    ("host-sets", t.host_sets),
    ("hosts", t.hosts),
    ("host-catalogs", t.host_catalogs),
    ("roles", t.roles),
    ("auth-tokens", t.auth_tokens),
    ("accounts", t.accounts),
    ("users", t.users),
    ("auth-methods", t.auth_methods),
)


def _render(ctx: Ctx, row: Any) -> dict[str, Any]:
    collections = {}
    for rtype in COLLECTIONS.get(row.type, ()):
        actions = ctx.acl.authorized_collection_actions(row.id, rtype)
        if actions:
            collections[PLURAL[rtype]] = actions
    return {
        "primary_auth_method_id": row.primary_auth_method_id,
        "authorized_collection_actions": collections or None,
    }


KIND = res.Kind("scope", "scopes", t.scopes, scope_col="parent_id", render=_render, model=ScopeItem)


@router.get("/v1/scopes", response_model=list_response(ScopeItem), response_model_exclude_none=True)
def list_scopes(
    request: Request,
    scope_id: str = "global",
    recursive: Recursive = False,
    filter: Filter = None,
    page_size: PageSize = None,
    list_token: ListToken = None,
) -> dict[str, Any]:
    with transaction(request) as ctx:
        q = list_query(scope_id, recursive, filter, page_size, list_token)
        return list_items(ctx, KIND, q)


@router.get("/v1/scopes/{id}", response_model=ScopeResponse, response_model_exclude_none=True)
def read_scope(request: Request, id: str) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = ctx.scope_row(id)
        ctx.require(KIND.scope_of(row), "scope", "read", row.id)
        return res.render(ctx, KIND, row)


@router.post("/v1/scopes", response_model=ScopeResponse, response_model_exclude_none=True)
def create_scope(request: Request, body: ScopeCreate) -> dict[str, Any]:
    with transaction(request) as ctx:
        parent = ctx.scope_row(body.scope_id)
        ctx.require(parent.id, "scope", "create")
        child = CHILD_TYPE.get(parent.type)
        if child is None:
            raise errors.invalid_field("scope_id", "Projects cannot contain scopes.")
        values = {
            "id": new_id(PREFIX[child]),
            "type": child,
            "parent_id": parent.id,
            "name": body.name,
            "description": body.description,
        }
        row = res.insert_row(ctx, KIND, values)
        ctx.scopes[row.id] = row
        return res.render(ctx, KIND, row)


@router.patch("/v1/scopes/{id}", response_model=ScopeResponse, response_model_exclude_none=True)
def update_scope(request: Request, id: str, body: ScopeUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, KIND, id, "update")
        values = res.common_updates(body, ("name", "description", "primary_auth_method_id"))
        primary = values.get("primary_auth_method_id")
        if primary is not None:
            method = ctx.conn.execute(
                select(t.auth_methods.c.scope_id).where(t.auth_methods.c.id == primary)
            ).first()
            if method is None or method.scope_id != row.id:
                raise errors.invalid_field(
                    "primary_auth_method_id", "Must be an auth method in this scope."
                )
        row = res.patch_row(ctx, KIND, row, body.version, values)
        ctx.scopes[row.id] = row
        return res.render(ctx, KIND, row)


@router.delete("/v1/scopes/{id}", status_code=204)
def delete_scope(request: Request, id: str):  # noqa: ANN201
    """Delete a scope with everything in it, its child scopes included (as Boundary)."""
    with transaction(request) as ctx:
        if id == "global":
            raise errors.invalid_field("id", "The global scope cannot be deleted.")
        res.read_checked(ctx, KIND, id, "delete")
        # deepest scopes first, and in each the contents before the containers
        for scope_id in reversed(ctx.descendants(id)):
            for collection, table in CONTENTS:
                in_scope = table.c.scope_id == scope_id
                res.before_delete(ctx, collection, table, in_scope)
                ctx.conn.execute(delete(table).where(in_scope))
            ctx.conn.execute(
                delete(t.role_grant_scopes).where(t.role_grant_scopes.c.grant_scope == scope_id)
            )
            if scope_id != id:
                res.record_deleted(ctx, "scopes", t.scopes, t.scopes.c.id == scope_id)
                ctx.conn.execute(delete(t.scopes).where(t.scopes.c.id == scope_id))
        res.delete_row(ctx, KIND, id)
    return no_content()
