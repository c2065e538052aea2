"""``bconnect auth-methods``: manage auth methods."""

from __future__ import annotations

from typing import Any

import click

from bconnect.cli import output
from bconnect.cli.options import GlobalOptions, group
from bconnect.cli.output import COMMON_ITEM_FIELDS, ItemField, ListField
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

AUTH_METHOD_VIEW = output.ResourceView(
    collection="auth-methods",
    singular="auth method",
    plural="auth methods",
    title="Auth Method information:",
    empty="No auth methods found",
    example_id="ampw_1234567890",
    list_value_col=26,
    list_fields=(
        *output.COMMON_LIST_FIELDS,
        ListField("Is Primary For Scope", "is_primary", "true"),
    ),
    item_fields=(
        *COMMON_ITEM_FIELDS,
        ItemField("Is Primary For Scope", "is_primary", "present"),
    ),
    sections=(
        output.scope_section(),
        output.actions_section(),
        output.collection_actions_section("Auth Method"),
        output.attributes_section(),
    ),
    key_subst={
        "min_login_name_length": "Minimum Login Name Length",
        "min_password_length": "Minimum Password Length",
    },
)

auth_methods = group(
    "auth-methods",
    help=help_text(
        "Manage auth methods.",
        "bconnect auth-methods list -scope-id global",
        "bconnect auth-methods create password -scope-id o_1234567890 -name corp",
    ),
)
auth_methods.add_command(list_command(AUTH_METHOD_VIEW, SCOPE))
auth_methods.add_command(read_command(AUTH_METHOD_VIEW))
auth_methods.add_command(delete_command(AUTH_METHOD_VIEW))

create = group(
    "create",
    help=help_text(
        "Create an auth method of the given type.",
        "bconnect auth-methods create password -scope-id o_1234567890 -name corp",
    ),
)
update = group(
    "update",
    help=help_text(
        "Update an auth method of the given type.",
        "bconnect auth-methods update password -id ampw_1234567890 -min-password-length 12",
    ),
)
auth_methods.add_command(create)
auth_methods.add_command(update)

_NOUN = "password-type auth method"
_LENGTHS = [
    click.option(
        "-min-login-name-length",
        "--min-login-name-length",
        "min_login_name_length",
        type=int,
        help="The minimum length of login names.",
    ),
    click.option(
        "-min-password-length",
        "--min-password-length",
        "min_password_length",
        type=int,
        help="The minimum length of passwords.",
    ),
]


def _attributes(min_login_name_length: int | None, min_password_length: int | None) -> dict:
    values: dict[str, Any] = {}
    if min_login_name_length is not None:
        values["min_login_name_length"] = min_login_name_length
    if min_password_length is not None:
        values["min_password_length"] = min_password_length
    return values


@command(
    "password",
    help_text(
        "Create a password-type auth method.",
        "bconnect auth-methods create password -scope-id o_1234567890 -name prodops "
        '-description "Password auth method for ProdOps"',
    ),
    [SCOPE.option(), name_option(_NOUN), description_option(_NOUN), *_LENGTHS],
)
def create_password(
    opts: GlobalOptions,
    scope_id: str | None,
    name: str | None,
    description: str | None,
    min_login_name_length: int | None,
    min_password_length: int | None,
) -> None:
    body: dict[str, Any] = {
        "scope_id": SCOPE.require(scope_id),
        "type": "password",
        **fields(name=name, description=description),
    }
    attributes = _attributes(min_login_name_length, min_password_length)
    if attributes:
        body["attributes"] = attributes
    run_create(opts, AUTH_METHOD_VIEW, body, label=_NOUN)


@command(
    "password",
    help_text(
        "Update a password-type auth method given its ID.",
        'bconnect auth-methods update password -id ampw_1234567890 -name "devops"',
    ),
    [
        id_option(_NOUN),
        name_option(_NOUN),
        description_option(_NOUN),
        *_LENGTHS,
        version_option(_NOUN),
    ],
)
def update_password(
    opts: GlobalOptions,
    id_: str | None,
    name: str | None,
    description: str | None,
    min_login_name_length: int | None,
    min_password_length: int | None,
    version: int,
) -> None:
    body: dict[str, Any] = fields(name=name, description=description)
    attributes = _attributes(min_login_name_length, min_password_length)
    if attributes:
        body["attributes"] = attributes
    run_update(opts, AUTH_METHOD_VIEW, id_, body, version, label=_NOUN)


create.add_command(create_password)
update.add_command(update_password)
