"""``bconnect credential-stores``: manage credential stores."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.options import GlobalOptions, group
from bconnect.cli.output import ItemField
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

CREDENTIAL_STORE_VIEW = output.ResourceView(
    collection="credential-stores",
    singular="credential store",
    plural="credential stores",
    title="Credential Store information:",
    empty="No credential store found",
    example_id="csst_1234567890",
    list_fields=output.COMMON_LIST_FIELDS,
    item_fields=(
        ItemField("ID", "id"),
        ItemField("Version", "version", "nonzero"),
        ItemField("Created Time", "created_time", "time"),
        ItemField("Updated Time", "updated_time", "time"),
        ItemField("Name", "name"),
        ItemField("Description", "description"),
        ItemField("Type", "type"),
    ),
    sections=(
        output.scope_section(),
        output.actions_section(),
        output.collection_actions_section("Credential Store"),
        output.attributes_section(),
    ),
    key_subst={
        "address": "Address",
        "namespace": "Namespace",
        "ca_cert": "CA Cert",
        "tls_server_name": "TLS Server Name",
        "tls_skip_verify": "Skip TLS Verification",
        "token_hmac": "Token HMAC",
        "token_status": "Token Status",
        "client_certificate": "Client Certificate",
        "client_certificate_key_hmac": "Client Certificate Key HMAC",
        "worker_filter": "Worker Filter",
    },
)

credential_stores = group(
    "credential-stores",
    help=help_text(
        "Manage credential stores.",
        "bconnect credential-stores list -scope-id p_1234567890",
        "bconnect credential-stores create static -scope-id p_1234567890 -name static",
    ),
)
credential_stores.add_command(list_command(CREDENTIAL_STORE_VIEW, SCOPE))
credential_stores.add_command(read_command(CREDENTIAL_STORE_VIEW))
credential_stores.add_command(delete_command(CREDENTIAL_STORE_VIEW))

create = group(
    "create",
    help=help_text(
        "Create a credential store of the given type.",
        "bconnect credential-stores create static -scope-id p_1234567890",
    ),
)
update = group(
    "update",
    help=help_text(
        "Update a credential store of the given type.",
        "bconnect credential-stores update static -id csst_1234567890 -name devops",
    ),
)
credential_stores.add_command(create)
credential_stores.add_command(update)

_NOUN = "static-type credential store"


@command(
    "static",
    help_text(
        "Create a static-type credential store.",
        "bconnect credential-stores create static -scope-id p_1234567890 -name static",
    ),
    [SCOPE.option(), name_option(_NOUN), description_option(_NOUN)],
)
def create_static(
    opts: GlobalOptions, scope_id: str | None, name: str | None, description: str | None
) -> None:
    body = {
        "scope_id": SCOPE.require(scope_id),
        "type": "static",
        **fields(name=name, description=description),
    }
    run_create(opts, CREDENTIAL_STORE_VIEW, body, label=_NOUN)


@command(
    "static",
    help_text(
        "Update a static-type credential store given its ID.",
        "bconnect credential-stores update static -id csst_1234567890 -name devops",
    ),
    [id_option(_NOUN), name_option(_NOUN), description_option(_NOUN), version_option(_NOUN)],
)
def update_static(
    opts: GlobalOptions,
    id_: str | None,
    name: str | None,
    description: str | None,
    version: int,
) -> None:
    run_update(
        opts,
        CREDENTIAL_STORE_VIEW,
        id_,
        fields(name=name, description=description),
        version,
        label=_NOUN,
    )


create.add_command(create_static)
update.add_command(update_static)
