"""``bconnect hosts``: manage hosts in host catalogs."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.options import FlagError, GlobalOptions, group, string_option
from bconnect.cli.output import COMMON_ITEM_FIELDS, ItemField, ListField
from bconnect.cli.resources import (
    HOST_CATALOG,
    command,
    delete_command,
    description_option,
    fields,
    help_text,
    id_option,
    list_command,
    name_option,
    read_command,
    run_create,
    run_update,
    version_option,
)

HOST_VIEW = output.ResourceView(
    collection="hosts",
    singular="host",
    plural="hosts",
    title="Host information:",
    empty="No hosts found",
    example_id="hst_1234567890",
    list_fields=(
        ListField("External ID", "external_id"),
        ListField("External Name", "external_name"),
        ListField("Version", "version", "int"),
        ListField("Type", "type"),
        ListField("Name", "name"),
        ListField("Description", "description"),
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

hosts = group(
    "hosts",
    help=help_text(
        "Manage hosts.",
        "bconnect hosts list -host-catalog-id hcst_1234567890",
        "bconnect hosts create static -host-catalog-id hcst_1234567890 -address 10.0.0.5",
    ),
)
hosts.add_command(list_command(HOST_VIEW, HOST_CATALOG))
hosts.add_command(read_command(HOST_VIEW))
hosts.add_command(delete_command(HOST_VIEW))

create = group(
    "create",
    help=help_text(
        "Create a host of the given type.",
        "bconnect hosts create static -host-catalog-id hcst_1234567890 -name web -address 10.0.0.5",
    ),
)
update = group(
    "update",
    help=help_text(
        "Update a host of the given type.",
        "bconnect hosts update static -id hst_1234567890 -address 10.20.30.40",
    ),
)
hosts.add_command(create)
hosts.add_command(update)

_ADDRESS = string_option("address", help="The address of the host.")


@command(
    "static",
    help_text(
        "Create a static-type host.",
        "bconnect hosts create static -host-catalog-id hcst_1234567890 -name prodops "
        '-description "Static host for ProdOps" -address 127.0.0.1',
    ),
    [
        HOST_CATALOG.option(),
        name_option("static-type host"),
        description_option("static-type host"),
        _ADDRESS,
    ],
)
def create_static(
    opts: GlobalOptions,
    host_catalog_id: str | None,
    name: str | None,
    description: str | None,
    address: str | None,
) -> None:
    catalog = HOST_CATALOG.require(host_catalog_id)
    if not address:
        raise FlagError("Address must be provided via -address")
    body = {
        "host_catalog_id": catalog,
        "type": "static",
        **fields(name=name, description=description),
        "attributes": fields(address=address),
    }
    run_create(opts, HOST_VIEW, body, label="static-type host")


@command(
    "static",
    help_text(
        "Update a static-type host given its ID.",
        "bconnect hosts update static -id hst_1234567890 -name devops -address 10.20.30.40",
    ),
    [
        id_option("static-type host"),
        name_option("static-type host"),
        description_option("static-type host"),
        _ADDRESS,
        version_option("static-type host"),
    ],
)
def update_static(
    opts: GlobalOptions,
    id_: str | None,
    name: str | None,
    description: str | None,
    address: str | None,
    version: int,
) -> None:
    body = fields(name=name, description=description)
    if address:
        body["attributes"] = fields(address=address)
    run_update(opts, HOST_VIEW, id_, body, version, label="static-type host")


create.add_command(create_static)
update.add_command(update_static)
