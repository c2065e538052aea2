"""``bconnect hosts``: manage hosts in host catalogs."""

from __future__ import annotations

from typing import Any

from bconnect.cli import output
from bconnect.cli.options import FlagError, string_option
from bconnect.cli.output import COMMON_ITEM_FIELDS, ItemField, ListField
from bconnect.cli.resources import (
    HOST_CATALOG,
    ResourceType,
    attributes_field,
    fields,
    help_text,
    resource_group,
    type_groups,
)

HOST_VIEW = output.ResourceView(
    collection="hosts",
    singular="host",
    example_id="hst_1234567890",
    list_fields=(
        ListField("External ID", "external_id"),
        ListField("External Name", "external_name"),
        *output.COMMON_LIST_FIELDS[1:],
    ),
    item_fields=(
        *COMMON_ITEM_FIELDS,
        ItemField("Host Catalog ID", "host_catalog_id"),
        ItemField("External ID", "external_id"),
        ItemField("External Name", "external_name"),
    ),
    sections=(
        output.scope_section(),
        output.actions_section(),
        output.slice_section("Host Set IDs", "host_set_ids"),
        output.slice_section("IP Addresses", "ip_addresses"),
        output.slice_section("DNS Names", "dns_names"),
        output.attributes_section(),
    ),
)

hosts = resource_group(
    HOST_VIEW,
    HOST_CATALOG,
    help_text(
        "Manage hosts.",
        "bconnect hosts list -host-catalog-id hcst_1234567890",
        "bconnect hosts create static -host-catalog-id hcst_1234567890 -address 10.0.0.5",
    ),
)

_ADDRESS = string_option("address", help="The address of the host.")


def _attributes(values: dict[str, Any]) -> dict[str, Any]:
    return attributes_field(fields(address=values["address"]))


def _create_attributes(values: dict[str, Any]) -> dict[str, Any]:
    if not values["address"]:
        raise FlagError("Address must be provided via -address")
    return _attributes(values)


type_groups(
    hosts,
    HOST_VIEW,
    HOST_CATALOG,
    ResourceType(
        "static",
        create_help=help_text(
            "Create a static-type host.",
            "bconnect hosts create static -host-catalog-id hcst_1234567890 -name prodops "
            '-description "Static host for ProdOps" -address 127.0.0.1',
        ),
        update_help=help_text(
            "Update a static-type host given its ID.",
            "bconnect hosts update static -id hst_1234567890 -name devops -address 10.20.30.40",
        ),
        options=[_ADDRESS],
        create_body=_create_attributes,
        update_body=_attributes,
    ),
    create_example="bconnect hosts create static -host-catalog-id hcst_1234567890 -name web "
    "-address 10.0.0.5",
    update_example="bconnect hosts update static -id hst_1234567890 -address 10.20.30.40",
)
