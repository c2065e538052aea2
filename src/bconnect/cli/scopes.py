"""``bconnect scopes``: manage the global scope, orgs and projects."""

from __future__ import annotations

from typing import Any

from bconnect.cli import output
from bconnect.cli.options import GlobalOptions, bool_option, string_option
from bconnect.cli.output import ItemField, ListField
from bconnect.cli.resources import (
    SCOPE,
    command,
    description_option,
    fields,
    help_text,
    list_command,
    name_option,
    resource_group,
    run_create,
    update_command,
)

SCOPE_VIEW = output.ResourceView(
    collection="scopes",
    singular="scope",
    empty="No child scopes found",
    example_id="o_1234567890",
    list_fields=(
        ListField("Scope ID", "scope.id", recursive_only=True),
        ListField("Version", "version", "int"),
        ListField("Name", "name"),
        ListField("Description", "description"),
        ListField("PrimaryAuthMethodId", "primary_auth_method_id"),
        ListField("StoragePolicyId", "storage_policy_id"),
    ),
    item_fields=(
        *output.UNTYPED_ITEM_FIELDS,
        ItemField("Primary Auth Method ID", "primary_auth_method_id"),
        ItemField("Storage Policy ID", "storage_policy_id"),
    ),
    sections=(
        output.scope_section("Scope (parent)"),
        output.actions_section(trailing_blank=True),
        output.collection_actions_section("Scope", leading_blank=False),
    ),
)

scopes = resource_group(
    SCOPE_VIEW,
    SCOPE,
    help_text(
        "Manage scopes: the global scope, orgs and projects.",
        "bconnect scopes list -scope-id global -recursive",
        "bconnect scopes create -scope-id o_1234567890 -name prod",
    ),
    standard=("read", "delete"),
)
scopes.add_command(
    list_command(
        SCOPE_VIEW,
        SCOPE,
        help=help_text(
            "List the child scopes of a scope.",
            "bconnect scopes list",
            "bconnect scopes list -scope-id o_1234567890",
        ),
    )
)


@command(
    "create",
    help_text(
        "Create a scope (an org under global, a project under an org).",
        'bconnect scopes create -scope-id global -name prodops -description "For ProdOps usage"',
    ),
    [
        SCOPE.option("The parent scope in which to create the scope."),
        name_option("scope"),
        description_option("scope"),
        bool_option(
            "skip-admin-role-creation",
            help="Do not create a role granting the current user access to administer "
            "the new scope.",
        ),
        bool_option(
            "skip-default-role-creation",
            help="Do not create the default role of the new scope.",
        ),
    ],
)
def create(
    opts: GlobalOptions,
    scope_id: str | None,
    name: str | None,
    description: str | None,
    skip_admin_role_creation: bool,
    skip_default_role_creation: bool,
) -> None:
    body: dict[str, Any] = {
        "scope_id": SCOPE.require(scope_id),
        **fields(name=name, description=description),
    }
    params = {
        "skip_admin_role_creation": True if skip_admin_role_creation else None,
        "skip_default_role_creation": True if skip_default_role_creation else None,
    }
    run_create(opts, SCOPE_VIEW, body, params={k: v for k, v in params.items() if v})


scopes.add_command(create)
scopes.add_command(
    update_command(
        SCOPE_VIEW,
        help=help_text(
            "Update a scope given its ID.",
            'bconnect scopes update -id o_1234567890 -name "devops" -description "For DevOps"',
        ),
        options=[
            string_option(
                "primary-auth-method-id",
                help="The primary auth method of the scope (may create users on first login).",
            )
        ],
        body=lambda values: fields(primary_auth_method_id=values["primary_auth_method_id"]),
    )
)
