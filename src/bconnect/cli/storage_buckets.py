"""``bconnect storage-buckets``: where workers write session recordings."""

from __future__ import annotations

import json
from typing import Any

from bconnect.cli import output
from bconnect.cli.options import UserError, secret_value, string_option
from bconnect.cli.output import ItemField, ListField
from bconnect.cli.resources import (
    SCOPE,
    ResourceType,
    fields,
    help_text,
    require_id,
    resource_group,
    type_groups,
)

STORAGE_BUCKET_VIEW = output.ResourceView(
    collection="storage-buckets",
    singular="storage bucket",
    example_id="sb_1234567890",
    list_fields=(
        *output.COMMON_LIST_FIELDS,
        ListField("Plugin", "plugin.name"),
        ListField("Bucket Name", "bucket_name"),
    ),
    item_fields=(
        *output.COMMON_ITEM_FIELDS,
        ItemField("Plugin", "plugin", fmt=lambda v: (v or {}).get("name", "")),
        ItemField("Bucket Name", "bucket_name"),
        ItemField("Bucket Prefix", "bucket_prefix"),
        ItemField("Worker Filter", "worker_filter"),
        ItemField("Secrets HMAC", "secrets_hmac"),
    ),
    sections=(output.scope_section(), output.actions_section(), output.attributes_section()),
    key_subst={"endpoint_url": "Endpoint URL", "region": "Region"},
)

storage_buckets = resource_group(
    STORAGE_BUCKET_VIEW,
    SCOPE,
    help_text(
        "Manage storage buckets: where workers write session recordings.",
        "bconnect storage-buckets create plugin -scope-id global -name recordings "
        "-plugin-name local -bucket-name /var/lib/bconnect/recordings",
        "bconnect storage-buckets list -scope-id global",
    ),
)


def _json_map(value: str | None, flag: str, *, secret: bool) -> dict[str, Any] | None:
    """``-attributes``/``-secrets``: a JSON object (secrets as env:// or file://)."""
    if not value:
        return None
    text = secret_value(value, flag, allow_prompt=False) if secret else value
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise UserError(f"Error parsing {flag} flag as JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise UserError(f"Error parsing {flag} flag: a JSON object is expected")
    return parsed


def _body(values: dict[str, Any]) -> dict[str, Any]:
    body = fields(
        bucket_name=values.get("bucket_name"),
        bucket_prefix=values.get("bucket_prefix"),
        worker_filter=values.get("worker_filter"),
        plugin_name=values.get("plugin_name"),
    )
    attributes = _json_map(values.get("attributes"), "attributes", secret=False)
    if attributes is not None:
        body["attributes"] = attributes
    secrets = _json_map(values.get("secrets"), "secrets", secret=True)
    if secrets is not None:
        body["secrets"] = secrets
    return body


def _create_body(values: dict[str, Any]) -> dict[str, Any]:
    if not values.get("plugin_name"):
        raise UserError("A plugin is required: -plugin-name local or -plugin-name s3")
    if not values.get("bucket_name"):
        raise UserError("A bucket is required: -bucket-name")
    return _body(values)


def _update_body(values: dict[str, Any]) -> dict[str, Any]:
    require_id(values["id_"])
    return _body(values)


_COMMON = [
    string_option(
        "worker-filter", help="A boolean expression selecting the workers that may write."
    ),
    string_option(
        "attributes",
        help="The plugin's attributes as a JSON object, e.g. '{\"endpoint_url\": "
        '"https://s3.example", "region": "eu-west-1"}\' (s3).',
    ),
    string_option(
        "secrets",
        help="The plugin's secrets as a JSON object in env://VAR or file://PATH, e.g. "
        '{"access_key_id": "…", "secret_access_key": "…"} (s3).',
    ),
]

type_groups(
    storage_buckets,
    STORAGE_BUCKET_VIEW,
    SCOPE,
    ResourceType(
        "plugin",
        create_help=help_text(
            "Create a storage bucket: plugin local (an absolute directory on the worker: "
            "bconnect dev and single-host use) or s3 (any S3-compatible store).",
            "bconnect storage-buckets create plugin -scope-id global -name recordings "
            "-plugin-name local -bucket-name /var/lib/bconnect/recordings",
            "bconnect storage-buckets create plugin -scope-id global -name s3 -plugin-name s3 "
            '-bucket-name recordings -attributes \'{"region": "eu-west-1"}\' '
            "-secrets file:///run/secrets/s3.json",
        ),
        update_help=help_text(
            "Update a storage bucket given its ID.",
            "bconnect storage-buckets update plugin -id sb_1234567890 -secrets env://S3_KEYS",
        ),
        options=_COMMON,
        create_options=[
            string_option("plugin-name", help="The plugin: local or s3."),
            string_option(
                "bucket-name",
                help="The bucket: a directory (local) or an S3 bucket name (s3).",
            ),
            string_option("bucket-prefix", help="A prefix for the objects in the bucket."),
        ],
        create_body=_create_body,
        update_body=_update_body,
    ),
    create_example="bconnect storage-buckets create plugin -scope-id global -plugin-name local "
    "-bucket-name /var/lib/bconnect/recordings",
    update_example="bconnect storage-buckets update plugin -id sb_1234567890 -name archive",
)
