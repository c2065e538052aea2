"""``bconnect host-catalogs``: manage host catalogs."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.options import GlobalOptions, group
from bconnect.cli.output import ItemField, ListField
from bconnect.cli.resources import (
    SCOPE,
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

HOST_CATALOG_VIEW = output.ResourceView(
    collection="host-catalogs",
    singular="host catalog",
    plural="host catalogs",
    title="Host Catalog information:",
    empty="No host catalogs found",
    example_id="hcst_1234567890",
    list_fields=(
        ListField("Scope ID", "scope_id", recursive_only=True),
        ListField("Plugin ID", "plugin_id"),
        ListField("Version", "version", "int"),
        ListField("Type", "type"),
        ListField("Name", "name"),
        ListField("Description", "description"),
        ListField("Worker Filter", "worker_filter"),
    ),
    item_fields=(
        ItemField("ID", "id"),
        ItemField("Version", "version", "nonzero"),
        ItemField("Created Time", "created_time", "time"),
        ItemField("Updated Time", "updated_time", "time"),
        ItemField("Name", "name"),
        ItemField("Description", "description"),
        ItemField("Plugin ID", "plugin_id"),
        ItemField("Type", "type"),
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

host_catalogs = group(
    "host-catalogs",
    help=help_text(
        "Manage host catalogs.",
        "bconnect host-catalogs list -scope-id p_1234567890",
        "bconnect host-catalogs create static -scope-id p_1234567890 -name servers",
    ),
)
host_catalogs.add_command(list_command(HOST_CATALOG_VIEW, SCOPE))
host_catalogs.add_command(read_command(HOST_CATALOG_VIEW))
host_catalogs.add_command(delete_command(HOST_CATALOG_VIEW))

create = group(
    "create",
    help=help_text(
        "Create a host catalog of the given type.",
        "bconnect host-catalogs create static -scope-id p_1234567890 -name servers",
    ),
)
update = group(
    "update",
    help=help_text(
        "Update a host catalog of the given type.",
        "bconnect host-catalogs update static -id hcst_1234567890 -name devops",
    ),
)
host_catalogs.add_command(create)
host_catalogs.add_command(update)

_NOUN = "static-type host catalog"


@command(
    "static",
    help_text(
        "Create a static-type host catalog.",
        "bconnect host-catalogs create static -scope-id p_1234567890 -name prodops "
        '-description "For ProdOps usage"',
    ),
    [SCOPE.option(), name_option(_NOUN), description_option(_NOUN)],
)
def create_static(
    opts: GlobalOptions, scope_id: str | None, name: str | None, description: str | None
) -> None:
    body = {
        "scope_id": SCOPE.require(scope_id),
        "type": "static",
        **fields(name=name, description=description),
    }
    run_create(opts, HOST_CATALOG_VIEW, body, label=_NOUN)


@command(
    "static",
    help_text(
        "Update a static-type host catalog given its ID.",
        "bconnect host-catalogs update static -id hcst_1234567890 -name devops",
    ),
    [id_option(_NOUN), name_option(_NOUN), description_option(_NOUN), version_option(_NOUN)],
)
def update_static(
    opts: GlobalOptions,
    id_: str | None,
    name: str | None,
    description: str | None,
    version: int,
) -> None:
    run_update(
        opts,
        HOST_CATALOG_VIEW,
        id_,
        fields(name=name, description=description),
        version,
        label=_NOUN,
    )


create.add_command(create_static)
update.add_command(update_static)
