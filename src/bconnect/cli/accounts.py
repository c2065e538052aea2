"""``bconnect accounts``: manage accounts of auth methods."""

from __future__ import annotations

from typing import Any

from bconnect.cli import output
from bconnect.cli.options import (
    FlagError,
    GlobalOptions,
    UserError,
    group,
    prompt_hidden,
    secret_value,
    string_option,
)
from bconnect.cli.output import COMMON_ITEM_FIELDS, ItemField, ListField
from bconnect.cli.resources import (
    AUTH_METHOD,
    command,
    delete_command,
    description_option,
    fields,
    help_text,
    id_option,
    list_command,
    name_option,
    read_command,
    require_id,
    run_action,
    run_create,
    run_update,
    version_option,
)

ACCOUNT_VIEW = output.ResourceView(
    collection="accounts",
    singular="account",
    plural="accounts",
    title="Account information:",
    empty="No accounts found",
    example_id="acctpw_1234567890",
    list_fields=(
        ListField("Version", "version", "int"),
        ListField("Type", "type"),
        ListField("Name", "name"),
        ListField("Description", "description"),
    ),
    item_fields=(*COMMON_ITEM_FIELDS, ItemField("Auth Method ID", "auth_method_id")),
    sections=(
        output.scope_section(),
        output.slice_section("Managed Group IDs", "managed_group_ids"),
        output.actions_section(),
        output.attributes_section(),
    ),
    key_subst={"login_name": "Login Name"},
)

accounts = group(
    "accounts",
    help=help_text(
        "Manage accounts.",
        "bconnect accounts list -auth-method-id ampw_1234567890",
        "bconnect accounts create password -auth-method-id ampw_1234567890 -login-name alice "
        "-password env://ALICE_PASSWORD",
    ),
)
accounts.add_command(list_command(ACCOUNT_VIEW, AUTH_METHOD))
accounts.add_command(read_command(ACCOUNT_VIEW))
accounts.add_command(delete_command(ACCOUNT_VIEW))

create = group(
    "create",
    help=help_text(
        "Create an account of the given type.",
        "bconnect accounts create password -auth-method-id ampw_1234567890 -login-name alice",
    ),
)
update = group(
    "update",
    help=help_text(
        "Update an account of the given type.",
        "bconnect accounts update password -id acctpw_1234567890 -login-name alice2",
    ),
)
accounts.add_command(create)
accounts.add_command(update)

_NOUN = "password-type account"


def read_new_password(flag_value: str | None) -> str:
    """The password from ``-password`` (env:// or file://) or typed twice at a prompt."""
    if flag_value:
        return secret_value(flag_value, "password")
    value = prompt_hidden("Please enter the password (it will be hidden):", "password")
    confirmation = prompt_hidden("Please enter it one more time for confirmation:", "password")
    if value != confirmation:
        raise UserError("Entered password and confirmation value did not match.")
    return value


_PASSWORD = string_option(
    "password",
    help="The password for the account: env://VAR or file://PATH. "
    "If not given, it is prompted for (hidden).",
)


@command(
    "password",
    help_text(
        "Create a password-type account.",
        "bconnect accounts create password -auth-method-id ampw_1234567890 -login-name alice "
        "-password env://ALICE_PASSWORD",
    ),
    [
        AUTH_METHOD.option(),
        name_option(_NOUN),
        description_option(_NOUN),
        string_option("login-name", help="The login name for the account."),
        _PASSWORD,
    ],
)
def create_password(
    opts: GlobalOptions,
    auth_method_id: str | None,
    name: str | None,
    description: str | None,
    login_name: str | None,
    password: str | None,
) -> None:
    method = AUTH_METHOD.require(auth_method_id)
    if not login_name:
        raise FlagError("Login Name must be passed in via -login-name")
    attributes: dict[str, Any] = {"login_name": login_name, "password": read_new_password(password)}
    body = {
        "auth_method_id": method,
        "type": "password",
        **fields(name=name, description=description),
        "attributes": attributes,
    }
    run_create(opts, ACCOUNT_VIEW, body, label=_NOUN)


@command(
    "password",
    help_text(
        "Update a password-type account given its ID.",
        'bconnect accounts update password -id acctpw_1234567890 -name "devops"',
    ),
    [
        id_option(_NOUN),
        name_option(_NOUN),
        description_option(_NOUN),
        string_option("login-name", help="The login name for the account."),
        version_option(_NOUN),
    ],
)
def update_password(
    opts: GlobalOptions,
    id_: str | None,
    name: str | None,
    description: str | None,
    login_name: str | None,
    version: int,
) -> None:
    body = fields(name=name, description=description)
    if login_name:
        body["attributes"] = fields(login_name=login_name)
    run_update(opts, ACCOUNT_VIEW, id_, body, version, label=_NOUN)


create.add_command(create_password)
update.add_command(update_password)


@command(
    "set-password",
    help_text(
        "Directly set the password on an account.",
        "bconnect accounts set-password -id acctpw_1234567890 -password env://NEW_PASSWORD",
    ),
    [id_option("account"), _PASSWORD, version_option("account")],
)
def set_password(opts: GlobalOptions, id_: str | None, password: str | None, version: int) -> None:
    require_id(id_)
    run_action(
        opts, ACCOUNT_VIEW, id_, "set-password", {"password": read_new_password(password)}, version
    )


accounts.add_command(set_password)
