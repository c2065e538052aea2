"""``bconnect auth-tokens``: list, read and delete auth tokens."""

from __future__ import annotations

import sys

from bconnect.cli import output
from bconnect.cli.options import GlobalOptions, UserError
from bconnect.cli.output import ItemField, ListField
from bconnect.cli.resources import (
    SCOPE,
    IdResolver,
    delete_command,
    help_text,
    read_command,
    resource_group,
)
from bconnect.core.api import token_id

AUTH_TOKEN_VIEW = output.ResourceView(
    collection="auth-tokens",
    singular="auth token",
    example_id="at_1234567890",
    list_value_col=33,
    list_fields=(
        ListField("Scope ID", "scope_id", recursive_only=True),
        ListField("Approximate Last Used Time", "approximate_last_used_time", "time"),
        ListField("Auth Method ID", "auth_method_id"),
        ListField("Created Time", "created_time", "time"),
        ListField("Expiration Time", "expiration_time", "time"),
        ListField("Updated Time", "updated_time", "time"),
        ListField("User ID", "user_id"),
    ),
    item_fields=(
        ItemField("ID", "id", "always"),
        ItemField("Auth Method ID", "auth_method_id", "always"),
        ItemField("User ID", "user_id", "always"),
        ItemField("Created Time", "created_time", "always_time"),
        ItemField("Updated Time", "updated_time", "always_time"),
        ItemField("Expiration Time", "expiration_time", "always_time"),
        ItemField("Approximate Last Used Time", "approximate_last_used_time", "always_time"),
    ),
    sections=(output.scope_section(always=True), output.actions_section()),
)

SELF = "self"

auth_tokens = resource_group(
    AUTH_TOKEN_VIEW,
    SCOPE,
    help_text(
        "List, read and delete auth tokens.",
        "bconnect auth-tokens list -scope-id global -recursive",
        "bconnect auth-tokens read -id self",
    ),
    standard=("list",),
)


def _token_id(op: str) -> IdResolver:
    """The ``-id`` value; ``self`` (or "y" at the prompt) means the token in use."""

    def resolve(opts: GlobalOptions, id_: str | None) -> str:
        if not id_:
            sys.stdout.write(
                f'No ID provided; {op} the stored token? (Pass an ID of "{SELF}" to suppress '
                "this question.) y/n: "
            )
            sys.stdout.flush()
            answer = sys.stdin.readline().strip() if sys.stdin else ""
            if answer not in ("y", "Y"):
                raise UserError('"Y" or "y" not provided, refusing to continue')
            id_ = SELF
        if id_ != SELF:
            return id_
        token = opts.find_token()
        if not token:
            raise UserError("No token found: authenticate first or pass -token")
        try:
            return token_id(token)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    return resolve


auth_tokens.add_command(
    read_command(
        AUTH_TOKEN_VIEW,
        help=help_text(
            'Read an auth token given its ID ("self" for the token in use).',
            "bconnect auth-tokens read -id at_1234567890",
            "bconnect auth-tokens read -id self",
        ),
        resolve_id=_token_id("read"),
    )
)
auth_tokens.add_command(
    delete_command(
        AUTH_TOKEN_VIEW,
        help=help_text(
            'Delete an auth token given its ID ("self" for the token in use).',
            "bconnect auth-tokens delete -id at_1234567890",
        ),
        resolve_id=_token_id("delete"),
    )
)
