"""/v1/targets (tcp and ssh), host and credential sources, and :authorize-session."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import insert, select
from starlette.convertors import PathConvertor, register_url_convertor

from bconnect.controller import aliasing, errors
from bconnect.controller import resources as res
from bconnect.controller.addresses import parse_address
from bconnect.controller.authorize import authorize_session, credential_source_info
from bconnect.controller.context import Ctx
from bconnect.controller.models import (
    AuthorizeSessionRequest,
    CredentialSourceIds,
    HostSourceIds,
    SessionAuthorization,
    SshAttributes,
    TargetCreate,
    TargetItem,
    TargetResponse,
    TargetUpdate,
)
from bconnect.controller.routes.common import (
    add_standard_routes,
    model_response,
    validate_worker_filter,
)
from bconnect.controller.sshtargets import INJECTABLE_TYPES, new_host_key, validate_known_hosts
from bconnect.controller.storage import schema as t
from bconnect.controller.transaction import transaction
from bconnect.ids import new_id

router = APIRouter(tags=["targets"])

BROKERED = "brokered"
INJECTED = "injected_application"


def _render(ctx: Ctx, row: Any) -> dict[str, Any]:
    host_sets = ctx.conn.execute(
        select(t.host_sets.c.id, t.host_sets.c.host_catalog_id)
        .join(t.target_host_sources, t.target_host_sources.c.host_set_id == t.host_sets.c.id)
        .where(t.target_host_sources.c.target_id == row.id)
        .order_by(t.host_sets.c.id)
    ).all()
    creds = ctx.conn.execute(
        select(t.credentials, t.target_credential_sources.c.purpose)
        .join(
            t.target_credential_sources,
            t.target_credential_sources.c.credential_id == t.credentials.c.id,
        )
        .where(t.target_credential_sources.c.target_id == row.id)
        .order_by(t.credentials.c.id)
    ).all()
    brokered = [c for c in creds if c.purpose == BROKERED]
    injected = [c for c in creds if c.purpose == INJECTED]
    attrs: dict[str, Any] = {
        k: getattr(row, k)
        for k in ("default_port", "default_client_port")
        if getattr(row, k) is not None
    }
    if row.type == "ssh":
        attrs["enable_session_recording"] = bool(row.enable_session_recording)
        attrs["record_input"] = bool(row.record_input)
        if row.storage_bucket_id:
            attrs["storage_bucket_id"] = row.storage_bucket_id
        if row.known_hosts:
            attrs["known_hosts"] = row.known_hosts
        attrs["worker_host_key"] = row.ssh_host_key_public
    return {
        "address": row.address or None,
        "host_source_ids": [h.id for h in host_sets] or None,
        "host_sources": [{"id": h.id, "host_catalog_id": h.host_catalog_id} for h in host_sets]
        or None,
        "session_max_seconds": row.session_max_seconds,
        "session_connection_limit": row.session_connection_limit,
        "worker_filter": row.worker_filter or None,
        "brokered_credential_source_ids": [c.id for c in brokered] or None,
        "brokered_credential_sources": [credential_source_info(c) for c in brokered] or None,
        "injected_application_credential_source_ids": [c.id for c in injected] or None,
        "injected_application_credential_sources": [credential_source_info(c) for c in injected]
        or None,
        "attributes": attrs or None,
    }


TARGETS = res.Kind("target", "targets", t.targets, render=_render, model=TargetItem, aliasable=True)
add_standard_routes(router, TARGETS)


def _validate_address(ctx: Ctx, target_id: str | None, address: str | None) -> str | None:
    """The normalised address (None clears it); a target has an address or host sources."""
    if address is None:
        return None
    try:
        address = parse_address(address)
    except ValueError as exc:
        raise errors.invalid_field("address", str(exc)) from None
    if target_id is not None:
        has_sources = ctx.conn.execute(
            select(t.target_host_sources.c.host_set_id).where(
                t.target_host_sources.c.target_id == target_id
            )
        ).first()
        if has_sources:
            raise errors.invalid_field("address", "A target has an address or host sources.")
    return address


@router.post("/v1/targets", response_model=TargetResponse, response_model_exclude_none=True)
def create_target(request: Request, body: TargetCreate) -> dict[str, Any]:
    with transaction(request) as ctx:
        scope = ctx.scope_row(body.scope_id)
        if scope.type != "project":
            raise errors.invalid_field("scope_id", "Targets live in project scopes.")
        ctx.require(scope.id, "target", "create")
        address = _validate_address(ctx, None, body.address)
        attrs = body.attributes
        target_id = new_id("tssh" if body.type == "ssh" else "ttcp")
        values = {
            "id": target_id,
            "scope_id": scope.id,
            "type": body.type,
            "name": body.name,
            "description": body.description,
            "address": address,
            "default_port": attrs.default_port if attrs else None,
            "default_client_port": attrs.default_client_port if attrs else None,
            "session_max_seconds": body.session_max_seconds or 28800,
            "session_connection_limit": (
                body.session_connection_limit if body.session_connection_limit is not None else -1
            ),
            "worker_filter": validate_worker_filter(body.worker_filter),
        }
        if values["session_connection_limit"] == 0:
            raise errors.invalid_field("session_connection_limit", "Must be -1 or positive.")
        values.update(_type_attributes(ctx, body.type, attrs, create=True))
        if body.type == "ssh":
            values["ssh_host_key"], values["ssh_host_key_public"] = new_host_key(
                ctx.settings.keyring, target_id
            )
        row = res.insert_row(ctx, TARGETS, values)
        _check_recording(ctx, row)
        for purpose, ids in (
            (BROKERED, body.brokered_credential_source_ids),
            (INJECTED, body.injected_application_credential_source_ids),
        ):
            for cred_id in dict.fromkeys(ids or []):
                _validate_credential(ctx, row, purpose, cred_id)
                ctx.conn.execute(
                    insert(t.target_credential_sources).values(
                        target_id=target_id, credential_id=cred_id, purpose=purpose
                    )
                )
        return res.render(ctx, TARGETS, row)


def _type_attributes(
    ctx: Ctx, target_type: str, attrs: SshAttributes | None, *, create: bool
) -> dict[str, Any]:
    """The ssh-only attributes as columns (refused on a tcp target)."""
    given = attrs.model_dump(exclude_unset=True) if attrs is not None else {}
    ssh_only = [k for k in given if k not in ("default_port", "default_client_port")]
    if target_type != "ssh":
        if ssh_only:
            raise errors.invalid_field(
                f"attributes.{ssh_only[0]}", "This attribute is for ssh targets only."
            )
        return {}
    values: dict[str, Any] = {}
    if create and given.get("default_port") is None:
        values["default_port"] = 22
    for flag in ("enable_session_recording", "record_input"):
        if flag in given:
            values[flag] = 1 if given[flag] else 0
    if "known_hosts" in given:
        text = given["known_hosts"] or None
        if text is not None:
            try:
                validate_known_hosts(text)
            except ValueError as exc:
                raise errors.invalid_field("attributes.known_hosts", str(exc)) from None
        values["known_hosts"] = text
    if "storage_bucket_id" in given:
        values["storage_bucket_id"] = given["storage_bucket_id"] or None
    return values


def _check_bucket(ctx: Ctx, target: Any) -> None:
    """A target's storage bucket exists, in global or in the target's org."""
    if not target.storage_bucket_id:
        return
    bucket = ctx.conn.execute(
        select(t.storage_buckets.c.scope_id).where(
            t.storage_buckets.c.id == target.storage_bucket_id
        )
    ).first()
    org = ctx.scope_row(target.scope_id).parent_id
    if bucket is None or bucket.scope_id not in ("global", org):
        raise errors.invalid_field(
            "attributes.storage_bucket_id",
            f"{target.storage_bucket_id} is not a storage bucket in global or this org.",
        )


def _check_recording(ctx: Ctx, row: Any) -> None:
    """Recording needs a storage bucket."""
    _check_bucket(ctx, row)
    if row.enable_session_recording and not row.storage_bucket_id:
        raise errors.invalid_field(
            "attributes.storage_bucket_id",
            "Session recording needs a storage bucket (-storage-bucket-id).",
        )


def _validate_credential(ctx: Ctx, target: Any, purpose: str, cred_id: str) -> None:
    """A credential of the target's project; injected ones only on ssh targets, and of a
    type the worker can log in with."""
    field = f"{purpose}_credential_source_ids"
    cred = ctx.conn.execute(
        select(t.credentials.c.scope_id, t.credentials.c.type).where(t.credentials.c.id == cred_id)
    ).first()
    if cred is None or cred.scope_id != target.scope_id:
        raise errors.invalid_field(field, f"{cred_id} is not a credential in this project.")
    if purpose != INJECTED:
        return
    if target.type != "ssh":
        raise errors.invalid_field(
            field, "Only ssh targets take injected application credential sources."
        )
    if cred.type not in INJECTABLE_TYPES:
        raise errors.invalid_field(
            field,
            f"{cred_id} is a {cred.type} credential; an ssh target injects "
            "username_password or ssh_private_key credentials.",
        )


@router.patch("/v1/targets/{id}", response_model=TargetResponse, response_model_exclude_none=True)
def update_target(request: Request, id: str, body: TargetUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, TARGETS, id, "update")
        values = res.common_updates(
            body,
            (
                "name",
                "description",
                "address",
                "session_max_seconds",
                "session_connection_limit",
                "worker_filter",
            ),
        )
        if "name" in values and not values["name"]:
            raise errors.invalid_field("name", "A target needs a name.")
        if values.get("session_connection_limit") == 0:
            raise errors.invalid_field("session_connection_limit", "Must be -1 or positive.")
        for field, default in (("session_max_seconds", 28800), ("session_connection_limit", -1)):
            if field in values and values[field] is None:
                values[field] = default
        if "address" in values:
            values["address"] = _validate_address(ctx, row.id, values["address"])
        if values.get("worker_filter") is not None:
            values["worker_filter"] = validate_worker_filter(values["worker_filter"])
        if body.attributes is not None:
            given = body.attributes.model_dump(exclude_unset=True)
            values.update(
                {k: v for k, v in given.items() if k in ("default_port", "default_client_port")}
            )
            values.update(_type_attributes(ctx, row.type, body.attributes, create=False))
        row = res.patch_row(ctx, TARGETS, row, body.version, values)
        _check_recording(ctx, row)
        return res.render(ctx, TARGETS, row)


def _host_sources(action: str):  # noqa: ANN202
    def handler(request: Request, id: str, body: HostSourceIds) -> dict[str, Any]:
        with transaction(request) as ctx:
            target = res.get_row(ctx, TARGETS, id)

            def validate(host_set_id: str) -> None:
                if target.address:
                    raise errors.invalid_field(
                        "host_source_ids", "A target has an address or host sources."
                    )
                hs = ctx.conn.execute(
                    select(t.host_sets.c.scope_id).where(t.host_sets.c.id == host_set_id)
                ).first()
                if hs is None or hs.scope_id != target.scope_id:
                    raise errors.invalid_field(
                        "host_source_ids", f"{host_set_id} is not a host set in this project."
                    )

            row = res.change_links(
                ctx,
                TARGETS,
                id,
                action,
                body.version,
                t.target_host_sources,
                "target_id",
                "host_set_id",
                body.host_source_ids,
                validate,
            )
            return res.render(ctx, TARGETS, row)

    return handler


def _credential_sources(action: str):  # noqa: ANN202
    def handler(request: Request, id: str, body: CredentialSourceIds) -> dict[str, Any]:
        with transaction(request) as ctx:
            target = res.get_row(ctx, TARGETS, id)

            if action.startswith("set"):
                changes = [
                    (BROKERED, body.brokered_credential_source_ids),
                    (INJECTED, body.injected_application_credential_source_ids),
                ]
            else:
                changes = [
                    (purpose, ids)
                    for purpose, ids in (
                        (BROKERED, body.brokered_credential_source_ids),
                        (INJECTED, body.injected_application_credential_source_ids),
                    )
                    if ids
                ]
            if not changes:
                raise errors.invalid_field(
                    "brokered_credential_source_ids", "Must contain at least one id."
                )
            for purpose, ids in changes:

                def validate(cred_id: str, purpose: str = purpose) -> None:
                    _validate_credential(ctx, target, purpose, cred_id)

                res.change_links(
                    ctx,
                    TARGETS,
                    id,
                    action,
                    body.version,
                    t.target_credential_sources,
                    "target_id",
                    "credential_id",
                    ids,
                    validate,
                    extra={"purpose": purpose},
                    bump=False,
                )
            row = res.update_row(ctx, TARGETS, target, body.version, {})
            return res.render(ctx, TARGETS, row)

    return handler


for _action, _factory in (
    ("add-host-sources", _host_sources),
    ("set-host-sources", _host_sources),
    ("remove-host-sources", _host_sources),
    ("add-credential-sources", _credential_sources),
    ("set-credential-sources", _credential_sources),
    ("remove-credential-sources", _credential_sources),
):
    router.add_api_route(
        "/v1/targets/{id}:" + _action,
        _factory(_action),
        methods=["POST"],
        name=_action.replace("-", "_") + "_target",
        response_model=TargetResponse,
        response_model_exclude_none=True,
    )


class _AnyPath(PathConvertor):
    """``path``, newlines included (``.*`` stops at one, and a target name or ID with a
    newline then fell through to the ``/v1/targets/{id}`` routes: an undocumented 405)."""

    regex = r"[\s\S]*"


register_url_convertor("anypath", _AnyPath())


@router.post(
    "/v1/targets/{id:anypath}:authorize-session",
    response_model=SessionAuthorization,
    response_model_exclude_none=True,
)
def authorize(request: Request, id: str, body: AuthorizeSessionRequest | None = None) -> Any:
    """Create a session on a target and return its authorization token."""
    body = body or AuthorizeSessionRequest()
    with transaction(request) as ctx:
        target, host_id = _find_target(ctx, id, body)
        ctx.require(target.scope_id, "target", "authorize-session", target.id)
        if ctx.user_id is None:
            raise errors.Unauthenticated("Authorizing a session needs an authenticated user.")
        authorization = authorize_session(ctx, target, host_id)
    # serialized once the transaction (and SQLite's writer lock) is over
    return model_response(request, authorization)


def _find_target(
    ctx: Ctx, id_or_name: str, body: AuthorizeSessionRequest
) -> tuple[Any, str | None]:
    """The target (by id, alias, or name within a scope) and the host to use: the
    request's, else the alias's."""
    if not (body.scope_id or body.scope_name) and aliasing.looks_like_alias(id_or_name):
        alias = aliasing.resolve(ctx.conn, id_or_name)
        if body.host_id and alias.host_id and body.host_id != alias.host_id:
            raise errors.invalid_field(
                "host_id",
                "The host id specified in the request does not match the one provided by "
                "the alias. Consider omitting the host id in the request.",
            )
        return res.get_row(ctx, TARGETS, alias.destination_id), body.host_id or alias.host_id
    return _find_target_by_id_or_name(ctx, id_or_name, body), body.host_id


def _find_target_by_id_or_name(ctx: Ctx, id_or_name: str, body: AuthorizeSessionRequest) -> Any:
    if body.scope_id or body.scope_name:
        scope_id = body.scope_id
        if scope_id is None:
            matches = [
                s.id
                for s in ctx.scopes.values()
                if s.name == body.scope_name and s.type == "project"
            ]
            if len(matches) != 1:
                raise errors.invalid_field(
                    "scope_name", f"No single project named {body.scope_name!r}."
                )
            scope_id = matches[0]
        name = body.name or id_or_name
        row = ctx.conn.execute(
            select(t.targets).where(t.targets.c.scope_id == scope_id, t.targets.c.name == name)
        ).first()
        if row is None:
            raise errors.NotFound(f"Target {name!r} not found in scope {scope_id}.")
        return row
    return res.get_row(ctx, TARGETS, id_or_name)
