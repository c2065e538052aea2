"""``bconnect roles``: manage roles, their principals, grants and grant scopes."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.options import GlobalOptions, UserError, group
from bconnect.cli.output import ItemField, RenderContext, Section
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


def _members(ctx: RenderContext) -> list[str]:
    item = ctx.item
    lines: list[str] = []
    principals = item.get("principals") or []
    if principals:
        lines += ["", "  Principals:"]
    for principal in principals:
        lines += [
            f"    ID:             {principal.get('id', '')}",
            f"      Type:         {principal.get('type', '')}",
            f"      Scope ID:     {principal.get('scope_id', '')}",
        ]
    grants = item.get("grants") or []
    if grants:
        lines += ["", "  Canonical Grants:"]
    for grant in grants:
        lines.append(f"    {grant.get('canonical', '') if isinstance(grant, dict) else grant}")
    grant_scopes = item.get("grant_scope_ids") or []
    if grant_scopes:
        lines += ["", "  Grant Scope IDs:"]
    for scope_id in grant_scopes:
        lines.append(f"    ID:             {scope_id}")
    return lines


ROLE_VIEW = output.ResourceView(
    collection="roles",
    singular="role",
    plural="roles",
    title="Role information:",
    empty="No roles found",
    example_id="r_1234567890",
    list_fields=(
        output.COMMON_LIST_FIELDS[0],
        output.COMMON_LIST_FIELDS[1],
        *output.COMMON_LIST_FIELDS[3:],
    ),
    item_fields=(
        ItemField("ID", "id"),
        ItemField("Version", "version", "nonzero"),
        ItemField("Created Time", "created_time", "time"),
        ItemField("Updated Time", "updated_time", "time"),
        ItemField("Name", "name"),
        ItemField("Description", "description"),
    ),
    sections=(output.scope_section(), output.actions_section(), Section(_members)),
)

roles = group(
    "roles",
    help=help_text(
        "Manage roles: their principals, grants and grant scopes.",
        "bconnect roles list -scope-id global",
        'bconnect roles add-grants -id r_1234567890 -grant "ids=*;type=*;actions=read"',
    ),
)
roles.add_command(list_command(ROLE_VIEW, SCOPE))
roles.add_command(read_command(ROLE_VIEW))
roles.add_command(delete_command(ROLE_VIEW))


@command(
    "create",
    help_text(
        "Create a role.",
        'bconnect roles create -scope-id o_1234567890 -name readers -description "Read only"',
    ),
    [SCOPE.option(), name_option("role"), description_option("role")],
)
def create(
    opts: GlobalOptions, scope_id: str | None, name: str | None, description: str | None
) -> None:
    body = {"scope_id": SCOPE.require(scope_id), **fields(name=name, description=description)}
    run_create(opts, ROLE_VIEW, body)


@command(
    "update",
    help_text(
        "Update a role given its ID.",
        'bconnect roles update -id r_1234567890 -name "devops" -description "For DevOps"',
    ),
    [id_option("role"), name_option("role"), description_option("role"), version_option("role")],
)
def update(
    opts: GlobalOptions,
    id_: str | None,
    name: str | None,
    description: str | None,
    version: int,
) -> None:
    run_update(opts, ROLE_VIEW, id_, fields(name=name, description=description), version)


roles.add_command(create)
roles.add_command(update)


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


_SETS = (
    (
        "principal",
        "principal_ids",
        "principals",
        "principals (users, groups)",
        None,
        "u_1234567890",
    ),
    ("grant", "grant_strings", "grants", "grants", None, '"ids=*;type=*;actions=read"'),
    (
        "grant-scope-id",
        "grant_scope_ids",
        "grant-scopes",
        "grant scopes",
        "No grant scope IDs supplied via -grant-scope-id",
        "this",
    ),
)

for _flag, _key, _noun, _label, _missing, _value in _SETS:
    for _verb, _summary in (
        ("add", f"Add {_label} to a role."),
        ("set", f'Set the full contents of the {_label} on a role ("null" empties it).'),
        ("remove", f"Remove {_label} from a role."),
    ):
        roles.add_command(
            set_members_command(
                ROLE_VIEW,
                _verb,
                flag=_flag,
                body_key=_key,
                noun=_noun,
                summary=_summary,
                missing=_missing,
                validate=check_grant if _flag == "grant" else None,
                example=f"bconnect roles {_verb}-{_noun} -id r_1234567890 -{_flag} {_value}",
            )
        )
