"""``bconnect workers``: list, read and delete the workers registered with the controller."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.output import ItemField, ListField
from bconnect.cli.resources import SCOPE, help_text, resource_group

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
    ),
    sections=(output.scope_section(always=True), output.actions_section()),
)

workers = resource_group(
    WORKER_VIEW,
    SCOPE,
    help_text(
        "List, read and delete workers.",
        "bconnect workers list",
        "bconnect workers read -id w_1234567890",
    ),
)
