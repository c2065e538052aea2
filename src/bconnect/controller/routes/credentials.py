"""/v1/credential-stores (static) and /v1/credentials.

Secrets are stored for brokering and never returned by reads: Boundary shows an HMAC
of the password / private key instead (``password_hmac``, ``private_key_hmac``).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi import APIRouter, Request

from bconnect.controller import errors
from bconnect.controller import resources as res
from bconnect.controller.context import Ctx
from bconnect.controller.kms import open_credential, seal_credential
from bconnect.controller.models import (
    CredentialCreate,
    CredentialItem,
    CredentialResponse,
    CredentialStoreCreate,
    CredentialStoreItem,
    CredentialStoreResponse,
    CredentialStoreUpdate,
    CredentialUpdate,
)
from bconnect.controller.routes.common import add_standard_routes
from bconnect.controller.secrets import hmac_secret
from bconnect.controller.storage import schema as t
from bconnect.controller.transaction import transaction
from bconnect.ids import new_id

router = APIRouter(tags=["credentials"])

PREFIX = {
    "username_password": "credup",
    "ssh_private_key": "credspk",
    "json": "credjson",
    "password": "credp",
}


def _render_store(ctx: Ctx, row: Any) -> dict[str, Any]:
    allowed = ctx.acl.authorized_collection_actions(row.scope_id, "credential")
    return {"authorized_collection_actions": {"credentials": allowed} if allowed else None}


def _render_credential(ctx: Ctx, row: Any) -> dict[str, Any]:
    # exactly one: the credential's store is a non-null foreign key (ON DELETE CASCADE)
    key = (
        ctx.conn.execute(
            t.credential_stores.select().where(t.credential_stores.c.id == row.credential_store_id)
        )
        .one()
        .hmac_key
    )
    secret = open_credential(ctx.settings.keyring, row)
    attrs: dict[str, Any] = {}
    if row.username:
        attrs["username"] = row.username
    for field in ("password", "private_key", "private_key_passphrase"):
        if secret.get(field):
            attrs[f"{field}_hmac"] = hmac_secret(key, secret[field])
    if "object" in secret:
        attrs["object_hmac"] = hmac_secret(key, json.dumps(secret["object"], sort_keys=True))
    return {"attributes": attrs}


STORES = res.Kind(
    "credential-store",
    "credential-stores",
    t.credential_stores,
    render=_render_store,
    model=CredentialStoreItem,
)
CREDENTIALS = res.Kind(
    "credential",
    "credentials",
    t.credentials,
    parent="credential_store_id",
    parent_table=t.credential_stores,
    render=_render_credential,
    show_scope_id=False,
    model=CredentialItem,
)
for _kind in (STORES, CREDENTIALS):
    add_standard_routes(router, _kind)


@router.post(
    "/v1/credential-stores",
    response_model=CredentialStoreResponse,
    response_model_exclude_none=True,
)
def create_credential_store(request: Request, body: CredentialStoreCreate) -> dict[str, Any]:
    with transaction(request) as ctx:
        scope = ctx.scope_row(body.scope_id)
        if scope.type != "project":
            raise errors.invalid_field("scope_id", "Credential stores live in project scopes.")
        ctx.require(scope.id, "credential-store", "create")
        values = {
            "id": new_id("csst"),
            "scope_id": scope.id,
            "type": "static",
            "hmac_key": secrets.token_bytes(32),
            "name": body.name,
            "description": body.description,
        }
        return res.render(ctx, STORES, res.insert_row(ctx, STORES, values))


@router.patch(
    "/v1/credential-stores/{id}",
    response_model=CredentialStoreResponse,
    response_model_exclude_none=True,
)
def update_credential_store(
    request: Request, id: str, body: CredentialStoreUpdate
) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, STORES, id, "update")
        row = res.patch_row(ctx, STORES, row, body.version, res.common_updates(body))
        return res.render(ctx, STORES, row)


def _secret_fields(ctype: str, attrs: Any) -> tuple[str | None, dict[str, Any]]:
    """Validate a credential's attributes for its type; return (username, secret)."""
    given = {k for k, v in attrs.model_dump().items() if v is not None}
    need = {
        "username_password": {"username", "password"},
        "ssh_private_key": {"username", "private_key"},
        "password": {"password"},
        "json": {"object"},
    }[ctype]
    allowed = need | ({"private_key_passphrase"} if ctype == "ssh_private_key" else set())
    for missing in sorted(need - given):
        raise errors.invalid_field(f"attributes.{missing}", "This field is required.")
    for extra in sorted(given - allowed):
        raise errors.invalid_field(f"attributes.{extra}", f"Not valid for {ctype} credentials.")
    if ctype == "ssh_private_key" and "PRIVATE KEY" not in attrs.private_key:
        raise errors.invalid_field("attributes.private_key", "Not a PEM private key.")
    secret = {k: getattr(attrs, k) for k in allowed - {"username"} if getattr(attrs, k) is not None}
    return attrs.username, secret


@router.post("/v1/credentials", response_model=CredentialResponse, response_model_exclude_none=True)
def create_credential(request: Request, body: CredentialCreate) -> dict[str, Any]:
    with transaction(request) as ctx:
        scope_id = res.parent_scope(ctx, CREDENTIALS, body.credential_store_id)
        ctx.require(scope_id, "credential", "create")
        username, secret = _secret_fields(body.type, body.attributes)
        credential_id = new_id(PREFIX[body.type])
        values = {
            "id": credential_id,
            "scope_id": scope_id,
            "credential_store_id": body.credential_store_id,
            "type": body.type,
            "username": username,
            "secret": seal_credential(ctx.settings.keyring, credential_id, secret),
            "name": body.name,
            "description": body.description,
        }
        return res.render(ctx, CREDENTIALS, res.insert_row(ctx, CREDENTIALS, values))


@router.patch(
    "/v1/credentials/{id}", response_model=CredentialResponse, response_model_exclude_none=True
)
def update_credential(request: Request, id: str, body: CredentialUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, CREDENTIALS, id, "update")
        values = res.common_updates(body)
        if body.attributes is not None:
            current = open_credential(ctx.settings.keyring, row)
            patch = body.attributes.model_dump(exclude_unset=True)
            if "username" in patch:
                values["username"] = patch.pop("username")
            current.update({k: v for k, v in patch.items() if v is not None})
            values["secret"] = seal_credential(ctx.settings.keyring, row.id, current)
        row = res.patch_row(ctx, CREDENTIALS, row, body.version, values)
        return res.render(ctx, CREDENTIALS, row)
