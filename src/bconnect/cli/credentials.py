"""``bconnect credentials``: manage static credentials (username/password, SSH keys).

Secrets are never taken literally on the command line: ``-password`` and
``-private-key`` must be ``env://VAR`` or ``file://PATH``.
"""

from __future__ import annotations

from typing import Any

from bconnect.cli import output
from bconnect.cli.options import UserError, prompt_hidden, secret_value, string_option
from bconnect.cli.output import ItemField
from bconnect.cli.resources import (
    CREDENTIAL_STORE,
    ResourceType,
    attributes_field,
    fields,
    help_text,
    resource_group,
    type_groups,
)

CREDENTIAL_VIEW = output.ResourceView(
    collection="credentials",
    singular="credential",
    example_id="credup_1234567890",
    list_fields=output.COMMON_LIST_FIELDS[1:],
    item_fields=(
        *output.COMMON_ITEM_FIELDS,
        ItemField("Credential Store ID", "credential_store_id"),
    ),
    sections=(output.scope_section(), output.actions_section(), output.attributes_section()),
    key_subst={
        "username": "Username",
        "password_hmac": "Password HMAC",
        "domain": "Domain",
        "private_key_hmac": "Private Key HMAC",
        "private_key_passphrase_hmac": "Private Key Passphrase HMAC",
    },
)

credentials = resource_group(
    CREDENTIAL_VIEW,
    CREDENTIAL_STORE,
    help_text(
        "Manage credentials in static credential stores.",
        "bconnect credentials list -credential-store-id csst_1234567890",
        "bconnect credentials create username-password -credential-store-id csst_1234567890 "
        "-username admin -password env://DB_PASSWORD",
    ),
)

_USERNAME = string_option("username", help="The username of the credential.")


def _up_attributes(values: dict[str, Any]) -> dict[str, Any]:
    attributes = fields(username=values["username"])
    if values["password"]:
        attributes["password"] = secret_value(values["password"], "password", allow_prompt=False)
    return attributes


def check_private_key(private_key: str, passphrase_flag: str | None) -> str | None:
    """Validate an SSH private key; return its passphrase (None if not encrypted).

    An encrypted key needs ``-private-key-passphrase`` (env:// or file://) or a
    passphrase typed at the prompt.
    """
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:  # pragma: no cover - cryptography is a dependency
        return secret_value(passphrase_flag, "private-key-passphrase") if passphrase_flag else None
    data = private_key.encode()
    loader = (
        serialization.load_ssh_private_key
        if b"OPENSSH PRIVATE KEY" in data
        else serialization.load_pem_private_key
    )
    try:
        loader(data, password=None)
    except TypeError:
        pass  # encrypted: a passphrase is needed
    except Exception as exc:  # noqa: BLE001 - ValueError, UnsupportedAlgorithm
        raise UserError(f"Error parsing private key: {exc}") from None
    else:
        if passphrase_flag:
            import click

            click.echo("Ignoring private key passphrase as private key is not encrypted.", err=True)
        return None
    if passphrase_flag:
        passphrase = secret_value(passphrase_flag, "private-key-passphrase")
    else:
        passphrase = prompt_hidden(
            "Please enter the passphrase for the private key (it will be hidden):",
            "private key passphrase",
        )
    try:
        loader(data, password=passphrase.encode())
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"Error parsing private key passphrase: {exc}") from None
    return passphrase


def _spk_attributes(values: dict[str, Any]) -> dict[str, Any]:
    attributes = fields(username=values["username"])
    if values["private_key"]:
        key = secret_value(values["private_key"], "private-key", allow_prompt=False)
        attributes["private_key"] = key
        secret = check_private_key(key, values["private_key_passphrase"])
        if secret:
            attributes["private_key_passphrase"] = secret
    return attributes


# ``create`` always sends ``attributes`` (even empty); ``update`` only when a flag sets one.
USERNAME_PASSWORD = ResourceType(
    "username-password",
    create_help=help_text(
        "Create a username/password credential.",
        "bconnect credentials create username-password -credential-store-id csst_1234567890 "
        "-username user -password env://PASSWORD",
    ),
    update_help=help_text(
        "Update a username/password credential given its ID.",
        "bconnect credentials update username-password -id credup_1234567890 "
        "-password file:///run/secrets/db",
    ),
    options=[
        _USERNAME,
        string_option("password", help="The password of the credential: env://VAR or file://PATH."),
    ],
    create_body=lambda values: {"attributes": _up_attributes(values)},
    update_body=lambda values: attributes_field(_up_attributes(values)),
)
SSH_PRIVATE_KEY = ResourceType(
    "ssh-private-key",
    create_help=help_text(
        "Create an SSH private key credential.",
        "bconnect credentials create ssh-private-key -credential-store-id csst_1234567890 "
        "-username user -private-key file://$HOME/.ssh/id_ed25519",
    ),
    update_help=help_text(
        "Update an SSH private key credential given its ID.",
        "bconnect credentials update ssh-private-key -id credspk_1234567890 -name devops",
    ),
    options=[
        _USERNAME,
        string_option("private-key", help="The SSH private key: file://PATH or env://VAR."),
        string_option(
            "private-key-passphrase",
            help="The passphrase of an encrypted private key: env://VAR or file://PATH. "
            "Prompted for when needed and not given.",
        ),
    ],
    create_body=lambda values: {"attributes": _spk_attributes(values)},
    update_body=lambda values: attributes_field(_spk_attributes(values)),
)
type_groups(
    credentials,
    CREDENTIAL_VIEW,
    CREDENTIAL_STORE,
    USERNAME_PASSWORD,
    SSH_PRIVATE_KEY,
    create_example="bconnect credentials create username-password "
    "-credential-store-id csst_1234567890 -username user -password env://PASSWORD",
    update_example="bconnect credentials update username-password -id credup_1234567890 "
    "-name devops",
)
