"""``bconnect credential-stores``: manage credential stores."""

from __future__ import annotations

from bconnect.cli import output
from bconnect.cli.resources import SCOPE, ResourceType, help_text, resource_group, type_groups

CREDENTIAL_STORE_VIEW = output.ResourceView(
    collection="credential-stores",
    singular="credential store",
    empty="No credential store found",
    example_id="csst_1234567890",
    list_fields=output.COMMON_LIST_FIELDS,
    item_fields=output.COMMON_ITEM_FIELDS,
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

credential_stores = resource_group(
    CREDENTIAL_STORE_VIEW,
    SCOPE,
    help_text(
        "Manage credential stores.",
        "bconnect credential-stores list -scope-id p_1234567890",
        "bconnect credential-stores create static -scope-id p_1234567890 -name static",
    ),
)
type_groups(
    credential_stores,
    CREDENTIAL_STORE_VIEW,
    SCOPE,
    ResourceType(
        "static",
        create_help=help_text(
            "Create a static-type credential store.",
            "bconnect credential-stores create static -scope-id p_1234567890 -name static",
        ),
        update_help=help_text(
            "Update a static-type credential store given its ID.",
            "bconnect credential-stores update static -id csst_1234567890 -name devops",
        ),
    ),
    create_example="bconnect credential-stores create static -scope-id p_1234567890",
    update_example="bconnect credential-stores update static -id csst_1234567890 -name devops",
)
