"""``bconnect users``: manage users and the accounts associated with them."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.output import ItemField, ListField
from bconnect.cli.resources import (
    SCOPE,
    create_command,
    help_text,
    membership_commands,
    resource_group,
    update_command,
)

USER_VIEW = output.ResourceView(
    collection="users",
    singular="user",
    example_id="u_1234567890",
    list_fields=(
        *output.UNTYPED_LIST_FIELDS,
        ListField("Primary Account ID", "primary_account_id"),
        ListField("Login Name", "login_name"),
        ListField("Full Name", "full_name"),
        ListField("Email", "email"),
    ),
    item_fields=(
        *output.UNTYPED_ITEM_FIELDS,
        ItemField("Primary Account Id", "primary_account_id"),
        ItemField("Login Name", "login_name"),
        ItemField("Full Name", "full_name"),
        ItemField("Email", "email"),
    ),
    sections=(
        output.scope_section(),
        output.actions_section(),
        output.maps_section("Accounts", "accounts", (("ID", "id"), ("Scope ID", "scope_id"))),
    ),
)

users = resource_group(
    USER_VIEW,
    SCOPE,
    help_text(
        "Manage users.",
        "bconnect users list -scope-id global",
        "bconnect users add-accounts -id u_1234567890 -account acctpw_1234567890",
    ),
)
users.add_command(
    create_command(
        USER_VIEW,
        SCOPE,
        help=help_text(
            "Create a user.",
            'bconnect users create -scope-id o_1234567890 -name alice -description "Alice"',
        ),
    )
)
users.add_command(
    update_command(
        USER_VIEW,
        help=help_text(
            "Update a user given its ID.",
            'bconnect users update -id u_1234567890 -name "devops" -description "For DevOps"',
        ),
    )
)
for _command in membership_commands(
    USER_VIEW,
    flag="account",
    body_key="account_ids",
    noun="accounts",
    summaries=(
        "Associate accounts with a user.",
        'Set the complete set of accounts of a user ("null" empties it).',
        "Disassociate accounts from a user.",
    ),
    example_value="acctpw_1234567890",
):
    users.add_command(_command)
