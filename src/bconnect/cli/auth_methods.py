"""``bconnect auth-methods``: manage auth methods."""

from __future__ import annotations

from typing import Any

import click

from bconnect.cli import output
from bconnect.cli.output import COMMON_ITEM_FIELDS, ItemField, ListField
from bconnect.cli.resources import (
    SCOPE,
    ResourceType,
    attributes_field,
    fields,
    help_text,
    resource_group,
    type_groups,
)

AUTH_METHOD_VIEW = output.ResourceView(
    collection="auth-methods",
    singular="auth method",
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

auth_methods = resource_group(
    AUTH_METHOD_VIEW,
    SCOPE,
    help_text(
        "Manage auth methods.",
        "bconnect auth-methods list -scope-id global",
        "bconnect auth-methods create password -scope-id o_1234567890 -name corp",
    ),
)

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


def _attributes(values: dict[str, Any]) -> dict[str, Any]:
    return attributes_field(
        fields(
            min_login_name_length=values["min_login_name_length"],
            min_password_length=values["min_password_length"],
        )
    )


type_groups(
    auth_methods,
    AUTH_METHOD_VIEW,
    SCOPE,
    ResourceType(
        "password",
        create_help=help_text(
            "Create a password-type auth method.",
            "bconnect auth-methods create password -scope-id o_1234567890 -name prodops "
            '-description "Password auth method for ProdOps"',
        ),
        update_help=help_text(
            "Update a password-type auth method given its ID.",
            'bconnect auth-methods update password -id ampw_1234567890 -name "devops"',
        ),
        options=_LENGTHS,
        create_body=_attributes,
        update_body=_attributes,
    ),
    create_example="bconnect auth-methods create password -scope-id o_1234567890 -name corp",
    update_example="bconnect auth-methods update password -id ampw_1234567890 "
    "-min-password-length 12",
)
