"""``bconnect accounts``: manage accounts of auth methods."""

from __future__ import annotations

from typing import Any

from bconnect.cli import output
from bconnect.cli.options import (
    FlagError,
    GlobalOptions,
    UserError,
    prompt_hidden,
    secret_value,
    string_option,
)
from bconnect.cli.output import COMMON_ITEM_FIELDS, ItemField
from bconnect.cli.resources import (
    AUTH_METHOD,
    ResourceType,
    attributes_field,
    command,
    fields,
    help_text,
    id_option,
    require_id,
    resource_group,
    run_action,
    type_groups,
    version_option,
)

ACCOUNT_VIEW = output.ResourceView(
    collection="accounts",
    singular="account",
    example_id="acctpw_1234567890",
    list_fields=output.COMMON_LIST_FIELDS[1:],
    item_fields=(*COMMON_ITEM_FIELDS, ItemField("Auth Method ID", "auth_method_id")),
    sections=(
        output.scope_section(),
        output.slice_section("Managed Group IDs", "managed_group_ids"),
        output.actions_section(),
        output.attributes_section(),
    ),
    key_subst={"login_name": "Login Name"},
)

accounts = resource_group(
    ACCOUNT_VIEW,
    AUTH_METHOD,
    help_text(
        "Manage accounts.",
        "bconnect accounts list -auth-method-id ampw_1234567890",
        "bconnect accounts create password -auth-method-id ampw_1234567890 -login-name alice "
        "-password env://ALICE_PASSWORD",
    ),
)


def read_new_password(flag_value: str | None) -> str:
    """The password from ``-password`` (env:// or file://) or typed twice at a prompt."""
    if flag_value:
        return secret_value(flag_value, "password")
    value = prompt_hidden("Please enter the password (it will be hidden):", "password")
    confirmation = prompt_hidden("Please enter it one more time for confirmation:", "password")
    if value != confirmation:
        raise UserError("Entered password and confirmation value did not match.")
    return value


_LOGIN_NAME = string_option("login-name", help="The login name for the account.")
_PASSWORD = string_option(
    "password",
    help="The password for the account: env://VAR or file://PATH. "
    "If not given, it is prompted for (hidden).",
)


def _create_attributes(values: dict[str, Any]) -> dict[str, Any]:
    login_name = values["login_name"]
    if not login_name:
        raise FlagError("Login Name must be passed in via -login-name")
    password = read_new_password(values["password"])
    return {"attributes": {"login_name": login_name, "password": password}}


type_groups(
    accounts,
    ACCOUNT_VIEW,
    AUTH_METHOD,
    ResourceType(
        "password",
        create_help=help_text(
            "Create a password-type account.",
            "bconnect accounts create password -auth-method-id ampw_1234567890 -login-name alice "
            "-password env://ALICE_PASSWORD",
        ),
        update_help=help_text(
            "Update a password-type account given its ID.",
            'bconnect accounts update password -id acctpw_1234567890 -name "devops"',
        ),
        options=[_LOGIN_NAME],
        create_options=[_PASSWORD],
        create_body=_create_attributes,
        update_body=lambda values: attributes_field(fields(login_name=values["login_name"])),
    ),
    create_example="bconnect accounts create password -auth-method-id ampw_1234567890 "
    "-login-name alice",
    update_example="bconnect accounts update password -id acctpw_1234567890 -login-name alice2",
)


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
