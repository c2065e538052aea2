"""``bconnect roles``: manage roles, their principals, grants and grant scopes."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.options import UserError
from bconnect.cli.output import RenderContext, Section
from bconnect.cli.resources import (
    SCOPE,
    create_command,
    help_text,
    membership_commands,
    resource_group,
    update_command,
)


def _members(ctx: RenderContext) -> list[str]:
    item, show = ctx.item, output.go_value
    lines: list[str] = []
    principals = item.get("principals") or []
    if principals:
        lines += ["", "  Principals:"]
    for principal in principals:
        lines += [
            f"    ID:             {show(principal.get('id', ''))}",
            f"      Type:         {show(principal.get('type', ''))}",
            f"      Scope ID:     {show(principal.get('scope_id', ''))}",
        ]
    grants = item.get("grants") or []
    if grants:
        lines += ["", "  Canonical Grants:"]
    for grant in grants:
        lines.append(
            f"    {show(grant.get('canonical', '') if isinstance(grant, dict) else grant)}"
        )
    grant_scopes = item.get("grant_scope_ids") or []
    if grant_scopes:
        lines += ["", "  Grant Scope IDs:"]
    for scope_id in grant_scopes:
        lines.append(f"    ID:             {show(scope_id)}")
    return lines


ROLE_VIEW = output.ResourceView(
    collection="roles",
    singular="role",
    example_id="r_1234567890",
    list_fields=output.UNTYPED_LIST_FIELDS,
    item_fields=output.UNTYPED_ITEM_FIELDS,
    sections=(output.scope_section(), output.actions_section(), Section(_members)),
)

roles = resource_group(
    ROLE_VIEW,
    SCOPE,
    help_text(
        "Manage roles: their principals, grants and grant scopes.",
        "bconnect roles list -scope-id global",
        'bconnect roles add-grants -id r_1234567890 -grant "ids=*;type=*;actions=read"',
    ),
)
roles.add_command(
    create_command(
        ROLE_VIEW,
        SCOPE,
        help=help_text(
            "Create a role.",
            'bconnect roles create -scope-id o_1234567890 -name readers -description "Read only"',
        ),
    )
)
roles.add_command(
    update_command(
        ROLE_VIEW,
        help=help_text(
            "Update a role given its ID.",
            'bconnect roles update -id r_1234567890 -name "devops" -description "For DevOps"',
        ),
    )
)


def check_grant(grant: str) -> None:
    """Refuse grants using the removed ``id=`` field, as Boundary's CLI does."""
    if grant.strip().startswith("{"):
        return
    for segment in grant.split(";"):
        if segment.split("=", 1)[0].strip() == "id":
            raise UserError(
                f'Grant "{grant}" uses the "id" field which is no longer supported. '
                'Please use "ids" instead.'
            )


for _command in (
    *membership_commands(
        ROLE_VIEW,
        flag="principal",
        body_key="principal_ids",
        noun="principals",
        label="principals (users, groups)",
        example_value="u_1234567890",
    ),
    *membership_commands(
        ROLE_VIEW,
        flag="grant",
        body_key="grant_strings",
        noun="grants",
        validate=check_grant,
        example_value='"ids=*;type=*;actions=read"',
    ),
    *membership_commands(
        ROLE_VIEW,
        flag="grant-scope-id",
        body_key="grant_scope_ids",
        noun="grant-scopes",
        missing="No grant scope IDs supplied via -grant-scope-id",
        example_value="this",
    ),
):
    roles.add_command(_command)
