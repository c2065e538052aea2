"""``bconnect host-sets``: manage host sets and their hosts."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.options import GlobalOptions, group
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
    set_members_command,
    version_option,
)


def _seconds(value: object) -> str:
    return f"{value} seconds"


HOST_SET_VIEW = output.ResourceView(
    collection="host-sets",
    singular="host set",
    plural="host sets",
    title="Host Set information:",
    empty="No host sets found",
    example_id="hsst_1234567890",
    list_fields=(
        ListField("Version", "version", "int"),
        ListField("Type", "type"),
        ListField("Name", "name"),
        ListField("Description", "description"),
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

host_sets = group(
    "host-sets",
    help=help_text(
        "Manage host sets and the hosts in them.",
        "bconnect host-sets list -host-catalog-id hcst_1234567890",
        "bconnect host-sets add-hosts -id hsst_1234567890 -host hst_1234567890",
    ),
)
host_sets.add_command(list_command(HOST_SET_VIEW, HOST_CATALOG))
host_sets.add_command(read_command(HOST_SET_VIEW))
host_sets.add_command(delete_command(HOST_SET_VIEW))

create = group(
    "create",
    help=help_text(
        "Create a host set of the given type.",
        "bconnect host-sets create static -host-catalog-id hcst_1234567890 -name web",
    ),
)
update = group(
    "update",
    help=help_text(
        "Update a host set of the given type.",
        "bconnect host-sets update static -id hsst_1234567890 -name devops",
    ),
)
host_sets.add_command(create)
host_sets.add_command(update)

_NOUN = "static-type host set"


@command(
    "static",
    help_text(
        "Create a static-type host set.",
        "bconnect host-sets create static -host-catalog-id hcst_1234567890 -name prodops "
        '-description "For ProdOps usage"',
    ),
    [HOST_CATALOG.option(), name_option(_NOUN), description_option(_NOUN)],
)
def create_static(
    opts: GlobalOptions, host_catalog_id: str | None, name: str | None, description: str | None
) -> None:
    body = {
        "host_catalog_id": HOST_CATALOG.require(host_catalog_id),
        "type": "static",
        **fields(name=name, description=description),
    }
    run_create(opts, HOST_SET_VIEW, body, label=_NOUN)


@command(
    "static",
    help_text(
        "Update a static-type host set given its ID.",
        "bconnect host-sets update static -id hsst_1234567890 -name devops",
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
        opts, HOST_SET_VIEW, id_, fields(name=name, description=description), version, label=_NOUN
    )


create.add_command(create_static)
update.add_command(update_static)

for _verb, _summary in (
    ("add", "Add hosts to a host set."),
    ("set", 'Set the full contents of the hosts on a host set ("null" empties it).'),
    ("remove", "Remove hosts from a host set."),
):
    host_sets.add_command(
        set_members_command(
            HOST_SET_VIEW,
            _verb,
            flag="host",
            body_key="host_ids",
            noun="hosts",
            summary=_summary,
            example=f"bconnect host-sets {_verb}-hosts -id hsst_1234567890 -host hst_1234567890",
        )
    )
