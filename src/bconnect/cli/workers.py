"""``bconnect workers``: list, read and delete the workers registered with the controller,
and create one ahead of its process (controller-led registration)."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.options import (
    GlobalOptions,
    controller_call,
    group,
)
from bconnect.cli.output import ItemField, ListField
from bconnect.cli.resources import (
    SCOPE,
    command,
    description_option,
    emit_item,
    fields,
    help_text,
    name_option,
    resource_group,
)

WORKER_VIEW = output.ResourceView(
    collection="workers",
    singular="worker",
    example_id="w_1234567890",
    list_fields=(
        ListField("Scope ID", "scope_id", recursive_only=True),
        ListField("Version", "version"),
        ListField("Type", "type"),
        ListField("Name", "name"),
        ListField("Address", "address"),
        ListField("Last Status Time", "last_status_time", "time"),
    ),
    item_fields=(
        ItemField("ID", "id", "always"),
        ItemField("Version", "version", "always"),
        ItemField("Type", "type"),
        ItemField("Name", "name"),
        ItemField("Description", "description"),
        ItemField("Address", "address"),
        ItemField("Release Version", "release_version"),
        ItemField("Active Connection Count", "active_connection_count"),
        ItemField("Created Time", "created_time", "always_time"),
        ItemField("Updated Time", "updated_time", "always_time"),
        ItemField("Last Status Time", "last_status_time", "time"),
        ItemField("Controller-Generated Activation Token", "controller_generated_activation_token"),
    ),
    sections=(output.scope_section(always=True), output.actions_section()),
)

workers = resource_group(
    WORKER_VIEW,
    SCOPE,
    help_text(
        "List, read and delete workers; create one ahead of its process (controller-led "
        "registration), for it to get a credential of its own.",
        "bconnect workers list",
        "bconnect workers read -id w_1234567890",
        "bconnect workers create controller-led -name worker1",
    ),
)
_create = group(
    "create",
    help=help_text(
        "Create a worker resource.", "bconnect workers create controller-led -name worker1"
    ),
)


def _create_controller_led(
    opts: GlobalOptions, scope_id: str, name: str | None, description: str | None
) -> None:
    body = {"scope_id": SCOPE.require(scope_id), **fields(name=name, description=description)}
    client = opts.client()
    with controller_call("create", "controller-led worker"):
        created = client.request("POST", "workers:create:controller-led", json=body)
    emit_item(opts, WORKER_VIEW, created)


_create.add_command(
    command(
        "controller-led",
        help_text(
            "Create a worker ahead of its process. The answer holds a one-time activation "
            "token (shown only now): give it to the worker ([worker] controller_generated_"
            "activation_token with auth_storage_path, or bconnect worker -activation-token "
            "with -auth-storage-path); on its first start the worker trades it for a "
            "credential of its own, kept in its auth storage.",
            "bconnect workers create controller-led -name worker1 -description eu-west",
        ),
        [SCOPE.option(), name_option("worker"), description_option("worker")],
    )(_create_controller_led)
)
workers.add_command(_create)
