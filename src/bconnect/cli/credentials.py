"""``bconnect credentials``: manage static credentials (username/password, SSH keys).

Secrets are never taken literally on the command line: ``-password`` and
``-private-key`` must be ``env://VAR`` or ``file://PATH``.
"""

from __future__ import annotations

from typing import Any

from bconnect.cli import output
from bconnect.cli.options import (
    GlobalOptions,
    UserError,
    group,
    prompt_hidden,
    secret_value,
    string_option,
)
from bconnect.cli.output import ItemField
from bconnect.cli.resources import (
    CREDENTIAL_STORE,
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

CREDENTIAL_VIEW = output.ResourceView(
    collection="credentials",
    singular="credential",
    plural="credentials",
    title="Credential information:",
    empty="No credentials found",
    example_id="credup_1234567890",
    list_fields=output.COMMON_LIST_FIELDS[1:],
    item_fields=(
        ItemField("ID", "id"),
        ItemField("Version", "version", "nonzero"),
        ItemField("Created Time", "created_time", "time"),
        ItemField("Updated Time", "updated_time", "time"),
        ItemField("Credential Store ID", "credential_store_id"),
        ItemField("Name", "name"),
        ItemField("Description", "description"),
        ItemField("Type", "type"),
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

credentials = group(
    "credentials",
    help=help_text(
        "Manage credentials in static credential stores.",
        "bconnect credentials list -credential-store-id csst_1234567890",
        "bconnect credentials create username-password -credential-store-id csst_1234567890 "
        "-username admin -password env://DB_PASSWORD",
    ),
)
credentials.add_command(list_command(CREDENTIAL_VIEW, CREDENTIAL_STORE))
credentials.add_command(read_command(CREDENTIAL_VIEW))
credentials.add_command(delete_command(CREDENTIAL_VIEW))

create = group(
    "create",
    help=help_text(
        "Create a credential of the given type.",
        "bconnect credentials create username-password -credential-store-id csst_1234567890 "
        "-username user -password env://PASSWORD",
    ),
)
update = group(
    "update",
    help=help_text(
        "Update a credential of the given type.",
        "bconnect credentials update username-password -id credup_1234567890 -name devops",
    ),
)
credentials.add_command(create)
credentials.add_command(update)

_UP = "username-password-type credential"
_SPK = "ssh-private-key-type credential"


def _password_option() -> Any:
    return string_option(
        "password",
        help="The password of the credential: env://VAR or file://PATH.",
    )


def _up_attributes(username: str | None, password: str | None) -> dict[str, Any]:
    attributes = fields(username=username)
    if password:
        attributes["password"] = secret_value(password, "password", allow_prompt=False)
    return attributes


@command(
    "username-password",
    help_text(
        "Create a username/password credential.",
        "bconnect credentials create username-password -credential-store-id csst_1234567890 "
        "-username user -password env://PASSWORD",
    ),
    [
        CREDENTIAL_STORE.option(),
        name_option(_UP),
        description_option(_UP),
        string_option("username", help="The username of the credential."),
        _password_option(),
    ],
)
def create_username_password(
    opts: GlobalOptions,
    credential_store_id: str | None,
    name: str | None,
    description: str | None,
    username: str | None,
    password: str | None,
) -> None:
    body = {
        "credential_store_id": CREDENTIAL_STORE.require(credential_store_id),
        "type": "username_password",
        **fields(name=name, description=description),
        "attributes": _up_attributes(username, password),
    }
    run_create(opts, CREDENTIAL_VIEW, body, label=_UP)


@command(
    "username-password",
    help_text(
        "Update a username/password credential given its ID.",
        "bconnect credentials update username-password -id credup_1234567890 "
        "-password file:///run/secrets/db",
    ),
    [
        id_option(_UP),
        name_option(_UP),
        description_option(_UP),
        string_option("username", help="The username of the credential."),
        _password_option(),
        version_option(_UP),
    ],
)
def update_username_password(
    opts: GlobalOptions,
    id_: str | None,
    name: str | None,
    description: str | None,
    username: str | None,
    password: str | None,
    version: int,
) -> None:
    body = fields(name=name, description=description)
    attributes = _up_attributes(username, password)
    if attributes:
        body["attributes"] = attributes
    run_update(opts, CREDENTIAL_VIEW, id_, body, version, label=_UP)


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


def _spk_attributes(
    username: str | None, private_key: str | None, passphrase: str | None
) -> dict[str, Any]:
    attributes = fields(username=username)
    if private_key:
        key = secret_value(private_key, "private-key", allow_prompt=False)
        attributes["private_key"] = key
        secret = check_private_key(key, passphrase)
        if secret:
            attributes["private_key_passphrase"] = secret
    return attributes


def _spk_options() -> list[Any]:
    return [
        string_option("username", help="The username of the credential."),
        string_option("private-key", help="The SSH private key: file://PATH or env://VAR."),
        string_option(
            "private-key-passphrase",
            help="The passphrase of an encrypted private key: env://VAR or file://PATH. "
            "Prompted for when needed and not given.",
        ),
    ]


@command(
    "ssh-private-key",
    help_text(
        "Create an SSH private key credential.",
        "bconnect credentials create ssh-private-key -credential-store-id csst_1234567890 "
        "-username user -private-key file://$HOME/.ssh/id_ed25519",
    ),
    [CREDENTIAL_STORE.option(), name_option(_SPK), description_option(_SPK), *_spk_options()],
)
def create_ssh_private_key(
    opts: GlobalOptions,
    credential_store_id: str | None,
    name: str | None,
    description: str | None,
    username: str | None,
    private_key: str | None,
    private_key_passphrase: str | None,
) -> None:
    store = CREDENTIAL_STORE.require(credential_store_id)
    body = {
        "credential_store_id": store,
        "type": "ssh_private_key",
        **fields(name=name, description=description),
        "attributes": _spk_attributes(username, private_key, private_key_passphrase),
    }
    run_create(opts, CREDENTIAL_VIEW, body, label=_SPK)


@command(
    "ssh-private-key",
    help_text(
        "Update an SSH private key credential given its ID.",
        "bconnect credentials update ssh-private-key -id credspk_1234567890 -name devops",
    ),
    [
        id_option(_SPK),
        name_option(_SPK),
        description_option(_SPK),
        *_spk_options(),
        version_option(_SPK),
    ],
)
def update_ssh_private_key(
    opts: GlobalOptions,
    id_: str | None,
    name: str | None,
    description: str | None,
    username: str | None,
    private_key: str | None,
    private_key_passphrase: str | None,
    version: int,
) -> None:
    body = fields(name=name, description=description)
    attributes = _spk_attributes(username, private_key, private_key_passphrase)
    if attributes:
        body["attributes"] = attributes
    run_update(opts, CREDENTIAL_VIEW, id_, body, version, label=_SPK)


create.add_command(create_username_password)
create.add_command(create_ssh_private_key)
update.add_command(update_username_password)
update.add_command(update_ssh_private_key)
