"""Small pure functions the built-in connect helpers share (no imports beyond the
standard library and the plugin contract)."""

from __future__ import annotations

from collections.abc import Sequence

from bconnect.plugins.hookspecs import ConnectContext, Credential

__all__ = [
    "USERNAME_PASSWORD",
    "PASSWORD",
    "SSH_PRIVATE_KEY",
    "first_credential",
    "option",
    "with_passthrough",
]

USERNAME_PASSWORD = "username_password"
SSH_PRIVATE_KEY = "ssh_private_key"
PASSWORD = "password"


def option(context: ConnectContext, key: str) -> str:
    """A string option of the helper, ``""`` when unset (None) or blank."""
    value = context.options.get(key)
    return "" if value is None else str(value).strip()


def first_credential(
    context: ConnectContext, credential_type: str, field: str | None = None
) -> Credential | None:
    """The first brokered credential of ``credential_type`` (with a non-empty ``field``,
    when given), as Boundary takes "the first ... credential brokered"."""
    for credential in context.credentials:
        if credential.credential_type != credential_type:
            continue
        if field is None or credential.fields.get(field):
            return credential
    return None


def with_passthrough(
    program: Sequence[str], args: Sequence[str], passthrough: Sequence[str]
) -> list[str]:
    """``program`` (the executable and any arguments that must stay in front, e.g.
    ``sshpass -e ssh``), then the arguments after ``--``, then the helper's own ones:
    Boundary's ``append(passthroughArgs, args...)`` order, done here so that the core
    leaves the placement alone."""
    return [*program, *passthrough, *args]
