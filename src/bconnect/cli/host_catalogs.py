"""``bconnect host-catalogs``: manage host catalogs."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.output import ItemField, ListField
from bconnect.cli.resources import SCOPE, ResourceType, help_text, resource_group, type_groups

HOST_CATALOG_VIEW = output.ResourceView(
    collection="host-catalogs",
    singular="host catalog",
    example_id="hcst_1234567890",
    list_fields=(
        *output.COMMON_LIST_FIELDS[:1],
        ListField("Plugin ID", "plugin_id"),
        *output.COMMON_LIST_FIELDS[1:],
        ListField("Worker Filter", "worker_filter"),
    ),
    item_fields=(
        *output.COMMON_ITEM_FIELDS,
        ItemField("Plugin ID", "plugin_id"),
        ItemField("Secrets HMAC", "secrets_hmac"),
        ItemField("Worker Filter", "worker_filter"),
    ),
    sections=(
        output.scope_section(),
        output.attributes_section(),
        output.actions_section(),
        output.collection_actions_section("Host Catalog"),
    ),
    key_subst={"address": "Address"},
)

host_catalogs = resource_group(
    HOST_CATALOG_VIEW,
    SCOPE,
    help_text(
        "Manage host catalogs.",
        "bconnect host-catalogs list -scope-id p_1234567890",
        "bconnect host-catalogs create static -scope-id p_1234567890 -name servers",
    ),
)
type_groups(
    host_catalogs,
    HOST_CATALOG_VIEW,
    SCOPE,
    ResourceType(
        "static",
        create_help=help_text(
            "Create a static-type host catalog.",
            "bconnect host-catalogs create static -scope-id p_1234567890 -name prodops "
            '-description "For ProdOps usage"',
        ),
        update_help=help_text(
            "Update a static-type host catalog given its ID.",
            "bconnect host-catalogs update static -id hcst_1234567890 -name devops",
        ),
    ),
    create_example="bconnect host-catalogs create static -scope-id p_1234567890 -name servers",
    update_example="bconnect host-catalogs update static -id hcst_1234567890 -name devops",
)
