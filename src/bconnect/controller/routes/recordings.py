"""/v1/storage-buckets and /v1/session-recordings (list, read, :download, delete)."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from bconnect import objectstore
from bconnect.controller import errors
from bconnect.controller import recordings as rec
from bconnect.controller import resources as res
from bconnect.controller.context import Ctx
from bconnect.controller.models import (
    SessionRecordingItem,
    StorageBucketCreate,
    StorageBucketItem,
    StorageBucketResponse,
    StorageBucketUpdate,
)
from bconnect.controller.routes.common import add_standard_routes, validate_worker_filter
from bconnect.controller.secrets import hmac_secret
from bconnect.controller.storage import schema as t
from bconnect.controller.transaction import transaction
from bconnect.ids import new_id

router = APIRouter(tags=["session recordings"])

#: the attributes and secrets each plugin takes
_ATTRIBUTES = {"local": (), "s3": ("endpoint_url", "region")}
_SECRETS = {"local": (), "s3": ("access_key_id", "secret_access_key")}


def _render_bucket(ctx: Ctx, row: Any) -> dict[str, Any]:
    return {
        "plugin": {"name": row.plugin_name},
        "bucket_name": row.bucket_name,
        "bucket_prefix": row.bucket_prefix or None,
        "worker_filter": row.worker_filter or None,
        "attributes": json.loads(row.attributes or "{}") or None,
        "secrets_hmac": row.secrets_hmac or None,
    }


BUCKETS = res.Kind(
    "storage-bucket",
    "storage-buckets",
    t.storage_buckets,
    render=_render_bucket,
    model=StorageBucketItem,
)


def _render_recording(ctx: Ctx, row: Any) -> dict[str, Any]:
    return rec.render_recording(ctx, row, details=False)


RECORDINGS = res.Kind(
    "session-recording",
    "session-recordings",
    t.session_recordings,
    render=_render_recording,
    has_common=False,
    show_scope_id=False,
    model=SessionRecordingItem,
)


def _check_plugin_fields(
    plugin: str, attributes: dict[str, Any] | None, secrets: dict[str, Any] | None
) -> None:
    for field, given, known in (
        ("attributes", attributes, _ATTRIBUTES[plugin]),
        ("secrets", secrets, _SECRETS[plugin]),
    ):
        for key, value in (given or {}).items():
            if key not in known:
                allowed = ", ".join(known) or "none"
                raise errors.invalid_field(
                    f"{field}.{key}", f"Unknown for the {plugin} plugin (it takes: {allowed})."
                )
            if value is not None and not isinstance(value, str):
                raise errors.invalid_field(f"{field}.{key}", "Must be a string.")


def _secrets_values(ctx: Ctx, bucket_id: str, secrets: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in secrets.items() if v}
    if not clean:
        return {"secrets": None, "secrets_hmac": None}
    text = json.dumps(clean, sort_keys=True)
    key = ctx.settings.keyring.list_token_key
    return {
        "secrets": rec.seal_bucket_secrets(ctx.settings.keyring, bucket_id, clean),
        "secrets_hmac": hmac_secret(key, text),
    }


@router.post(
    "/v1/storage-buckets", response_model=StorageBucketResponse, response_model_exclude_none=True
)
def create_bucket(
    request: Request,
    body: StorageBucketCreate,
    plugin_name: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    plugin = plugin_name or body.plugin_name
    if plugin not in objectstore.PLUGINS:
        raise errors.invalid_field(
            "plugin_name", "Storage buckets use the plugin local or s3 (plugin_name)."
        )
    with transaction(request) as ctx:
        scope = ctx.scope_row(body.scope_id)
        if scope.type == "project":
            raise errors.invalid_field("scope_id", "Storage buckets live in global or an org.")
        ctx.require(scope.id, "storage-bucket", "create")
        if plugin == "local" and not body.bucket_name.startswith("/"):
            raise errors.invalid_field(
                "bucket_name", "A local bucket is an absolute directory path on the worker."
            )
        _check_plugin_fields(plugin, body.attributes, body.secrets)
        bucket_id = new_id("sb")
        values = {
            "id": bucket_id,
            "scope_id": scope.id,
            "name": body.name,
            "description": body.description,
            "plugin_name": plugin,
            "bucket_name": body.bucket_name,
            "bucket_prefix": body.bucket_prefix or None,
            "worker_filter": validate_worker_filter(body.worker_filter),
            "attributes": json.dumps({k: v for k, v in (body.attributes or {}).items() if v}),
            **_secrets_values(ctx, bucket_id, body.secrets or {}),
        }
        return res.render(ctx, BUCKETS, res.insert_row(ctx, BUCKETS, values))


@router.patch(
    "/v1/storage-buckets/{id}",
    response_model=StorageBucketResponse,
    response_model_exclude_none=True,
)
def update_bucket(request: Request, id: str, body: StorageBucketUpdate) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, BUCKETS, id, "update")
        values = res.common_updates(body, ("name", "description", "worker_filter"))
        if values.get("worker_filter"):
            values["worker_filter"] = validate_worker_filter(values["worker_filter"])
        _check_plugin_fields(row.plugin_name, body.attributes, body.secrets)
        if body.attributes is not None:
            merged = {**json.loads(row.attributes or "{}"), **body.attributes}
            values["attributes"] = json.dumps({k: v for k, v in merged.items() if v})
        if body.secrets is not None:
            values.update(_secrets_values(ctx, row.id, body.secrets))
        row = res.patch_row(ctx, BUCKETS, row, body.version, values)
        return res.render(ctx, BUCKETS, row)


add_standard_routes(router, BUCKETS)


@router.get("/v1/session-recordings/{id}:download")
def download(request: Request, id: str) -> Response:
    """A channel recording's object, checked against the SHA-256 the worker reported."""
    with transaction(request) as ctx:
        channel = ctx.conn.execute(
            select(t.channel_recordings).where(t.channel_recordings.c.id == id)
        ).first()
        if channel is None:
            raise errors.not_found(id)
        recording = res.read_checked(ctx, RECORDINGS, channel.session_recording_id, "download")
        bucket = ctx.conn.execute(
            select(t.storage_buckets).where(t.storage_buckets.c.id == recording.storage_bucket_id)
        ).one()
        secrets = rec.open_bucket_secrets(ctx.settings.keyring, bucket)
    store = objectstore.open_bucket(
        bucket.plugin_name,
        bucket.bucket_name,
        bucket.bucket_prefix,
        json.loads(bucket.attributes or "{}"),
        secrets,
    )
    try:
        body = store.read(channel.object_key)
    except objectstore.BucketError as exc:
        raise errors.FailedPrecondition(f"Recording {id}: {exc}") from None
    digest = hashlib.sha256(body).hexdigest()
    headers = {"X-Bconnect-Sha256": digest}
    if channel.sha256 is None:
        headers["X-Bconnect-Recording-State"] = rec.INCOMPLETE
    elif digest != channel.sha256:
        raise errors.FailedPrecondition(
            f"Recording {id} does not match the SHA-256 recorded when the worker finished it "
            "(the object was changed or replaced in the storage bucket): refusing it."
        )
    return Response(body, media_type=rec.ASCIICAST, headers=headers)


@router.get(
    "/v1/session-recordings/{id}",
    response_model=SessionRecordingItem,
    response_model_exclude_none=True,
)
def read_recording(request: Request, id: str) -> dict[str, Any]:
    with transaction(request) as ctx:
        row = res.read_checked(ctx, RECORDINGS, id)
        item = res.render(ctx, RECORDINGS, row)
        item.update(rec.render_recording(ctx, row, details=True))
        return item


add_standard_routes(router, RECORDINGS, read=False)
