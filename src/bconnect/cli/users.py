"""``bconnect users``: manage users and the accounts associated with them."""

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
    set_members_command,
    version_option,
)

USER_VIEW = output.ResourceView(
    collection="users",
    singular="user",
    plural="users",
    title="User information:",
    empty="No users found",
    example_id="u_1234567890",
    list_fields=(
        ListField("Scope ID", "scope_id", recursive_only=True),
        ListField("Version", "version", "int"),
        ListField("Name", "name"),
        ListField("Description", "description"),
        ListField("Primary Account ID", "primary_account_id"),
        ListField("Login Name", "login_name"),
        ListField("Full Name", "full_name"),
        ListField("Email", "email"),
    ),
    item_fields=(
        ItemField("ID", "id"),
        ItemField("Version", "version", "nonzero"),
        ItemField("Created Time", "created_time", "time"),
        ItemField("Updated Time", "updated_time", "time"),
        ItemField("Name", "name"),
        ItemField("Description", "description"),
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

users = group(
    "users",
    help=help_text(
        "Manage users.",
        "bconnect users list -scope-id global",
        "bconnect users add-accounts -id u_1234567890 -account acctpw_1234567890",
    ),
)
users.add_command(list_command(USER_VIEW, SCOPE))
users.add_command(read_command(USER_VIEW))
users.add_command(delete_command(USER_VIEW))


@command(
    "create",
    help_text(
        "Create a user.",
        'bconnect users create -scope-id o_1234567890 -name alice -description "Alice"',
    ),
    [SCOPE.option(), name_option("user"), description_option("user")],
)
def create(
    opts: GlobalOptions, scope_id: str | None, name: str | None, description: str | None
) -> None:
    body = {"scope_id": SCOPE.require(scope_id), **fields(name=name, description=description)}
    run_create(opts, USER_VIEW, body)


@command(
    "update",
    help_text(
        "Update a user given its ID.",
        'bconnect users update -id u_1234567890 -name "devops" -description "For DevOps"',
    ),
    [id_option("user"), name_option("user"), description_option("user"), version_option("user")],
)
def update(
    opts: GlobalOptions,
    id_: str | None,
    name: str | None,
    description: str | None,
    version: int,
) -> None:
    run_update(opts, USER_VIEW, id_, fields(name=name, description=description), version)


users.add_command(create)
users.add_command(update)

for _verb, _summary in (
    ("add", "Associate accounts with a user."),
    ("set", 'Set the complete set of accounts of a user ("null" empties it).'),
    ("remove", "Disassociate accounts from a user."),
):
    users.add_command(
        set_members_command(
            USER_VIEW,
            _verb,
            flag="account",
            body_key="account_ids",
            noun="accounts",
            summary=_summary,
            example=f"bconnect users {_verb}-accounts -id u_1234567890 -account acctpw_1234567890",
        )
    )
