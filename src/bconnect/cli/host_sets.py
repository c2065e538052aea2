"""``bconnect host-sets``: manage host sets and their hosts."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.output import COMMON_ITEM_FIELDS, ItemField, ListField
from bconnect.cli.resources import (
    HOST_CATALOG,
    ResourceType,
    help_text,
    membership_commands,
    resource_group,
    type_groups,
)


def _seconds(value: object) -> str:
    return f"{value} seconds"


HOST_SET_VIEW = output.ResourceView(
    collection="host-sets",
    singular="host set",
    example_id="hsst_1234567890",
    list_fields=(
        *output.COMMON_LIST_FIELDS[1:],
        ListField("Sync Interval", "sync_interval_seconds", "int", fmt=_seconds),
    ),
    item_fields=(
        *COMMON_ITEM_FIELDS,
        ItemField("Host Catalog ID", "host_catalog_id"),
        ItemField("Preferred Endpoints", "preferred_endpoints", "present"),
        ItemField("Sync Interval", "sync_interval_seconds", fmt=_seconds),
    ),
    sections=(
        output.scope_section(),
        output.attributes_section(),
        output.actions_section(),
        output.slice_section("Host IDs", "host_ids"),
    ),
)

host_sets = resource_group(
    HOST_SET_VIEW,
    HOST_CATALOG,
    help_text(
        "Manage host sets and the hosts in them.",
        "bconnect host-sets list -host-catalog-id hcst_1234567890",
        "bconnect host-sets add-hosts -id hsst_1234567890 -host hst_1234567890",
    ),
)
type_groups(
    host_sets,
    HOST_SET_VIEW,
    HOST_CATALOG,
    ResourceType(
        "static",
        create_help=help_text(
            "Create a static-type host set.",
            "bconnect host-sets create static -host-catalog-id hcst_1234567890 -name prodops "
            '-description "For ProdOps usage"',
        ),
        update_help=help_text(
            "Update a static-type host set given its ID.",
            "bconnect host-sets update static -id hsst_1234567890 -name devops",
        ),
    ),
    create_example="bconnect host-sets create static -host-catalog-id hcst_1234567890 -name web",
    update_example="bconnect host-sets update static -id hsst_1234567890 -name devops",
)
for _command in membership_commands(
    HOST_SET_VIEW, flag="host", body_key="host_ids", noun="hosts", example_value="hst_1234567890"
):
    host_sets.add_command(_command)
