"""``bconnect authenticate`` and ``bconnect logout``: get, store and drop an auth token."""

from __future__ import annotations

from typing import Any

from bconnect.cli import output
from bconnect.cli.options import (
    ControllerError,
    GlobalOptions,
    UserError,
    controller_call,
    group,
    prompt_hidden,
    secret_value,
    string_option,
)
from bconnect.cli.resources import SCOPE, command, help_text
from bconnect.core.api import ApiError, Client, ControllerUnreachable, token_id
from bconnect.core.tokenstore import TokenStoreError

authenticate = group(
    "authenticate",
    help=help_text(
        "Authenticate the CLI with an auth method; the token is kept in the token store.",
        "bconnect authenticate password -auth-method-id ampw_1234567890 -login-name admin",
    ),
)


def primary_auth_method(client: Client, scope_id: str, prefix: str) -> str:
    """The ID of the primary auth method of *scope_id*, which must have *prefix*."""
    with controller_call("list", "auth methods"):
        methods = client.list("auth-methods", scope_id=scope_id).get("items") or []
    for method in methods:
        if method.get("is_primary"):
            if not str(method.get("id", "")).startswith(prefix):
                raise UserError(
                    f"Error looking up primary auth method in scope '{scope_id}': got "
                    f"'{method.get('id')}' but the command requires an auth method prefix of "
                    f"'{prefix}'."
                )
            return str(method["id"])
    raise UserError(
        f"Primary auth method not found for scope ID: '{scope_id}'. Please set a primary auth "
        "method on this scope or pass one explicitly with -auth-method-id."
    )


def authentication_table(token: dict[str, Any]) -> str:
    """Boundary's ``Authentication information:`` block."""
    return output.wrap_for_help_text(
        [
            "",
            "Authentication information:",
            f"  Account ID:      {token.get('account_id', '')}",
            f"  Auth Method ID:  {token.get('auth_method_id', '')}",
            f"  Expiration Time: {output.format_time(token.get('expiration_time'))}",
            f"  User ID:         {token.get('user_id', '')}",
        ]
    )


def save_token(opts: GlobalOptions, token: str) -> None:
    """Store the token (or print it for ``-keyring-type none``), with Boundary's messages."""
    if opts.keyring_type == "none":
        opts.echo("\nStoring the token in a keyring was disabled. The token is:", err=True)
        opts.echo(token)
        opts.echo("Please be sure to store it safely!", err=True)
        return
    try:
        store = opts.store()
    except TokenStoreError as exc:
        opts.echo(f"Error fetching keyring information: {exc}", err=True)
    else:
        try:
            store.set(opts.addr, token)
        except TokenStoreError as exc:
            opts.echo(f"Error saving auth token to {store.kind!r} keyring: {exc}", err=True)
        else:
            opts.echo(
                "\nThe token was successfully stored in the chosen keyring and is not "
                "displayed here."
            )
            return
    opts.echo(
        f"The token was not successfully saved to a system keyring. The token is:\n\n{token}\n\n"
        "It must be manually passed in via the BOUNDARY_TOKEN env var or -token flag. "
        "Storing the token can also be disabled via -keyring-type=none.",
        err=True,
    )


@command(
    "password",
    help_text(
        "Invoke the password auth method to authenticate the CLI. The password is prompted "
        "for (hidden) unless -password names an env var or a file.",
        "bconnect authenticate password -auth-method-id ampw_1234567890 -login-name admin",
        "bconnect authenticate password -auth-method-id ampw_1234567890 -login-name admin "
        "-password env://BOUNDARY_PASSWORD",
    ),
    [
        string_option(
            "auth-method-id",
            envvar=["BCONNECT_AUTH_METHOD_ID", "BOUNDARY_AUTH_METHOD_ID"],
            help="The auth method to use. Default: the primary auth method of -scope-id.",
        ),
        string_option(
            "login-name",
            envvar=["BOUNDARY_AUTHENTICATE_PASSWORD_LOGIN_NAME"],
            help="The login name of an account within the auth method.",
        ),
        string_option(
            "password",
            envvar=["BOUNDARY_AUTHENTICATE_PASSWORD_PASSWORD"],
            help="Where to read the password: env://VAR or file://PATH. "
            "If not given, it is prompted for without echo.",
        ),
        string_option(
            "scope-id",
            envvar=list(SCOPE.envvar),
            help="Scope whose primary auth method is used when -auth-method-id is not given "
            "(default: global).",
        ),
    ],
)
def password(
    opts: GlobalOptions,
    auth_method_id: str | None,
    login_name: str | None,
    password: str | None,
    scope_id: str | None,
) -> None:
    client = opts.client(authenticated=False)
    if not auth_method_id:
        auth_method_id = primary_auth_method(client, scope_id or "global", "ampw")
    if not login_name:
        login_name = prompt_hidden("Please enter the login name (it will be hidden):", "login name")
    if password:
        secret = secret_value(password, "password")
    else:
        secret = prompt_hidden("Please enter the password (it will be hidden):", "password")
    try:
        body = client.authenticate_password_raw(auth_method_id, login_name, secret)
    except ControllerUnreachable:
        raise
    except ApiError as err:
        raise ControllerError(
            err, "Error from controller when performing authentication", login=True
        ) from None
    attributes = body.get("attributes")
    if not isinstance(attributes, dict) or not attributes.get("token"):
        raise UserError("Error trying to decode response as an auth token")
    if opts.json:
        opts.echo(output.json_item(body.status_code, dict(body)))
        return
    opts.echo(authentication_table(attributes))
    save_token(opts, attributes["token"])


authenticate.add_command(password)


@command(
    "logout",
    help_text(
        "Delete the current token within the controller and forget it locally.",
        "bconnect logout",
    ),
)
def logout(opts: GlobalOptions) -> None:
    token = opts.find_token()
    if not token:
        raise UserError("Empty or no token found in store. It might have already been deleted.")
    try:
        tid = token_id(token)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    client = opts.client()
    client.token = token
    try:
        client.delete_resource("auth-tokens", tid)
    except ControllerUnreachable:
        raise
    except ApiError as err:
        if err.status == 401:  # expired or revoked: the controller took it for anonymous
            opts.echo(
                "The token is no longer valid on the Boundary controller; proceeding to "
                "delete it from the local store."
            )
        elif err.status != 404:
            raise ControllerError(
                err, "Error from controller when performing delete on token"
            ) from None
        else:
            opts.echo(
                "The token was not found on the Boundary controller; proceeding to delete "
                "from the local store."
            )
    else:
        opts.echo("The token was successfully deleted within the Boundary controller.")
    if opts.keyring_type == "none":
        opts.echo("Keyring type set to none or empty; not deleting local stored token.")
        return
    try:
        opts.store().delete(opts.addr)
    except TokenStoreError as exc:
        raise UserError(f"Error deleting auth token from the local store: {exc}") from None
    opts.echo("The token was successfully removed from the local credential store.")
