"""``bconnect aliases``: memorable names for targets (``bconnect connect web.prod``)."""

from __future__ import annotations

from typing import Any

from bconnect.cli import output
from bconnect.cli.options import nullable, string_option
from bconnect.cli.output import ItemField, ListField
from bconnect.cli.resources import SCOPE, ResourceType, help_text, resource_group, type_groups

ALIAS_VIEW = output.ResourceView(
    collection="aliases",
    singular="alias",
    plural="aliases",
    example_id="alt_1234567890",
    list_value_col=20,
    attributes_in_width=False,
    list_fields=(
        *output.COMMON_LIST_FIELDS,
        ListField("Value", "value"),
        ListField("Destination ID", "destination_id"),
    ),
    item_fields=(
        *output.COMMON_ITEM_FIELDS,
        ItemField("Value", "value"),
        ItemField("Destination ID", "destination_id"),
    ),
    sections=(
        output.scope_section(),
        output.actions_section(),
        output.attributes_section(),
    ),
)

_TARGET_OPTIONS = [
    string_option("value", help="The value of the alias, e.g. web.prod (a DNS-like name)."),
    string_option(
        "destination-id", help='The target id that the alias points to ("null" to clear).'
    ),
    string_option(
        "authorize-session-host-id",
        help='The host id to pass in when authorizing a session with this alias ("null" to clear).',
    ),
]


def _target_body(values: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for flag, key in (("value", "value"), ("destination_id", "destination_id")):
        if values.get(flag) not in (None, ""):
            body[key] = nullable(values[flag])
    host = values.get("authorize_session_host_id")
    if host not in (None, ""):
        body["attributes"] = {"authorize_session_arguments": {"host_id": nullable(host)}}
    return body


aliases = resource_group(
    ALIAS_VIEW,
    SCOPE,
    help_text(
        "Manage aliases: names for targets that users can remember and connect by.",
        "bconnect aliases create target -value web.prod -destination-id ttcp_1234567890",
        "bconnect aliases list",
        "bconnect connect web.prod",
    ),
)
type_groups(
    aliases,
    ALIAS_VIEW,
    SCOPE,
    ResourceType(
        "target",
        create_help=help_text(
            "Create a target-type alias (aliases live in the global scope).",
            "bconnect aliases create target -value web.prod -destination-id ttcp_1234567890",
            "bconnect aliases create target -value db.prod -destination-id ttcp_0987654321 "
            "-authorize-session-host-id hst_1234567890",
        ),
        update_help=help_text(
            "Update a target-type alias given its ID.",
            "bconnect aliases update target -id alt_1234567890 -value web.staging",
            "bconnect aliases update target -id alt_1234567890 -destination-id null",
        ),
        options=_TARGET_OPTIONS,
        create_body=_target_body,
        update_body=_target_body,
    ),
    create_example="bconnect aliases create target -value web.prod -destination-id ttcp_1234567890",
    update_example="bconnect aliases update target -id alt_1234567890 -value web.staging",
)
