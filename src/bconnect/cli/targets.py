"""``bconnect targets``: manage targets and authorize sessions on them."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import click

from bconnect.cli import output
from bconnect.cli.options import (
    FlagError,
    GlobalOptions,
    UserError,
    bool_option,
    controller_call,
    multi_option,
    nullable,
    string_option,
)
from bconnect.cli.output import COMMON_ITEM_FIELDS, ItemField, ListField, RenderContext, Section
from bconnect.cli.resources import (
    SCOPE,
    Decorator,
    ResourceType,
    command,
    fields,
    help_text,
    id_option,
    membership_commands,
    require_id,
    resource_group,
    run_action,
    type_groups,
    version_option,
)
from bconnect.core.api import ApiResponse
from bconnect.core.secrets import SecretRefError, resolve_secret_ref
from bconnect.durations import parse_duration

# -- table layout ------------------------------------------------------------------------------


def _target_sources(ctx: RenderContext) -> list[str]:
    """Aliases, host sources, credential sources and attributes, laid out as Boundary does."""
    lines = [""]
    groups = (
        ("Aliases", "aliases", (("ID", "id"), ("Value", "value"))),
        ("Host Sources", "host_sources", (("ID", "id"), ("Host Catalog ID", "host_catalog_id"))),
        (
            "Brokered Credential Sources",
            "brokered_credential_sources",
            (("ID", "id"), ("Credential Store ID", "credential_store_id")),
        ),
        (
            "Injected Application Credential Sources",
            "injected_application_credential_sources",
            (("ID", "id"), ("Credential Store ID", "credential_store_id")),
        ),
    )
    for title, key, pairs in groups:
        entries = ctx.item.get(key) or []
        if not entries:
            continue
        lines.append(f"  {title}:")
        for entry in entries:
            values = {label: entry.get(sub, "") for label, sub in pairs}
            lines += [output.wrap_map(4, ctx.max_len, values), ""]
    if ctx.attributes:
        lines += ["  Attributes:", output.wrap_map(4, ctx.max_len, ctx.attributes)]
    return lines


def _target_width(item: Mapping[str, Any]) -> int:
    width = 0
    if item.get("host_sources"):
        width = len("Host Catalog ID")
    if item.get("brokered_credential_sources") or item.get(
        "injected_application_credential_sources"
    ):
        width = max(width, len("Credential Store ID"))
    if item.get("aliases"):
        width = max(width, len("Value"))
    return width


TARGET_VIEW = output.ResourceView(
    collection="targets",
    singular="target",
    example_id="ttcp_1234567890",
    list_fields=(*output.COMMON_LIST_FIELDS, ListField("Address", "address")),
    item_fields=(
        *COMMON_ITEM_FIELDS,
        ItemField("Address", "address"),
        ItemField("Worker Filter", "worker_filter"),
        ItemField("Egress Worker Filter", "egress_worker_filter"),
        ItemField("Ingress Worker Filter", "ingress_worker_filter"),
        ItemField("Session Connection Limit", "session_connection_limit", "present"),
        ItemField("Session Max Seconds", "session_max_seconds", "present"),
    ),
    sections=(
        output.scope_section(),
        output.actions_section(),
        Section(_target_sources, _target_width),
    ),
    key_subst={
        "default_port": "Default Port",
        "default_client_port": "Default Client Port",
        "enable_session_recording": "Enable Session Recording",
        "storage_bucket_id": "Storage Bucket ID",
        "record_input": "Record Input",
        "known_hosts": "Known Hosts",
        "worker_host_key": "Worker Host Key",
    },
)


def authorization_table(item: Mapping[str, Any], width: int | None = None) -> str:
    """The table ``targets authorize-session`` prints (credentials included)."""
    values = {
        "Session ID": item.get("session_id", ""),
        "Target ID": item.get("target_id", ""),
        "Scope ID": (item.get("scope") or {}).get("id", ""),
        "User ID": item.get("user_id", ""),
        "Host ID": item.get("host_id", ""),
        "Endpoint": item.get("endpoint", ""),
        "Created Time": output.format_time(item.get("created_time")),
        "Type": item.get("type", ""),
        "Authorization Token": item.get("authorization_token", ""),
    }
    max_len = max(len(k) for k in values)
    lines = ["", "Target information:", output.wrap_map(2, max_len + 2, values), ""]
    credentials = item.get("credentials") or []
    if credentials:
        lines.append("  Credentials:")
    for cred in credentials:
        secret = cred.get("secret") or {}
        if not secret.get("raw"):
            continue
        source = cred.get("credential_source") or {}
        show = output.go_value
        lines += [
            f"    Credential Store ID:           {show(source.get('credential_store_id', ''))}",
            f"    Credential Source ID:          {show(source.get('id', ''))}",
            f"    Credential Source Type:        {show(source.get('type', ''))}",
        ]
        if source.get("name"):
            lines.append(f"    Credential Source Name:        {show(source['name'])}")
        if source.get("description"):
            lines.append(f"    Credential Source Description: {show(source['description'])}")
        if source.get("credential_type"):
            lines.append(f"    Credential Type:               {show(source['credential_type'])}")
        lines.append("    Secret:")
        lines += _secret_lines(source.get("type", ""), cred.get("credential"), secret)
        lines.append("")
    return output.wrap_for_help_text(lines, width)


def _secret_lines(source_type: str, credential: Any, secret: Mapping[str, Any]) -> list[str]:
    if source_type in ("vault", "vault-generic", "static") and isinstance(credential, dict):
        key_len = max((len(k) for k in credential), default=0)
        return ["    " + output.wrap_map(2, key_len + 2, credential)]
    raw = str(secret.get("raw", "")).strip('"')
    try:
        decoded = json.loads(base64.b64decode(raw))
    except ValueError:
        return [f"      {output.go_value(raw)}"]
    pretty = json.dumps(decoded, indent=2, ensure_ascii=False).split("\n")
    return ["      " + pretty[0], *("      " + line for line in pretty[1:])]


# -- option parsing ----------------------------------------------------------------------------


def parse_seconds(value: str) -> int:
    """An integer number of seconds or a Go duration string (``8h``, ``1h30m``)."""
    if value.isdigit():
        return int(value)
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise UserError(f'Error parsing "{value}": {exc}') from None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise UserError(f'Error parsing "{value}": time: invalid duration "{value}"')
    return int(seconds)


def _parse_int(value: str, *, unsigned: bool) -> int:
    func = "ParseUint" if unsigned else "ParseInt"
    try:
        number = int(value, 10)
    except ValueError:
        number = -1
        if not unsigned:
            raise UserError(
                f'Error parsing "{value}": strconv.{func}: parsing "{value}": invalid syntax'
            ) from None
    if unsigned and number < 0:
        raise UserError(
            f'Error parsing "{value}": strconv.{func}: parsing "{value}": invalid syntax'
        )
    return number


def tcp_body(kw: dict[str, Any]) -> dict[str, Any]:
    """The request body fields of a tcp target from the tcp-specific flags."""
    body = fields(
        address=kw.get("address"),
        worker_filter=kw.get("worker_filter"),
        egress_worker_filter=kw.get("egress_worker_filter"),
        ingress_worker_filter=kw.get("ingress_worker_filter"),
    )
    if kw.get("session_max_seconds"):
        raw = kw["session_max_seconds"]
        body["session_max_seconds"] = None if raw == "null" else parse_seconds(raw)
    if kw.get("session_connection_limit"):
        raw = kw["session_connection_limit"]
        body["session_connection_limit"] = (
            None if raw == "null" else _parse_int(raw, unsigned=False)
        )
    attributes: dict[str, Any] = {}
    for flag in ("default_port", "default_client_port"):
        raw = kw.get(flag)
        if raw:
            attributes[flag] = None if raw == "null" else _parse_int(raw, unsigned=True)
    if attributes:
        body["attributes"] = attributes
    return body


_TCP_OPTIONS = [
    string_option(
        "address",
        help="A network address to connect to for this target. "
        "Cannot be used alongside host sources.",
    ),
    string_option("default-port", help="The default port to set on the target."),
    string_option("default-client-port", help="The default client port to set on the target."),
    string_option(
        "session-max-seconds",
        help="The maximum lifetime of the session, including all connections: "
        "seconds or a duration string such as 8h.",
    ),
    string_option(
        "session-connection-limit",
        help="The maximum number of connections allowed for a session. -1 means unlimited.",
    ),
    string_option("worker-filter", help="Deprecated: use egress or ingress filters instead."),
    string_option(
        "egress-worker-filter",
        help="A boolean expression selecting the egress workers for sessions.",
    ),
    string_option(
        "ingress-worker-filter",
        help="A boolean expression selecting the ingress workers for sessions.",
    ),
]


def _tcp_update_body(kw: dict[str, Any]) -> dict[str, Any]:
    require_id(kw["id_"])  # a missing -id is reported before a malformed value
    return tcp_body(kw)


def ssh_body(kw: dict[str, Any]) -> dict[str, Any]:
    """An ssh target's body: the tcp fields, recording, and the host keys the worker
    accepts from the target's hosts."""
    body = tcp_body(kw)
    attributes: dict[str, Any] = body.get("attributes", {})
    for flag in ("enable_session_recording", "record_input"):
        if kw.get(flag) is not None:
            attributes[flag] = kw[flag]
    if kw.get("storage_bucket_id"):
        attributes["storage_bucket_id"] = nullable(kw["storage_bucket_id"])
    if kw.get("known_hosts"):
        raw = kw["known_hosts"]
        attributes["known_hosts"] = None if raw == "null" else _known_hosts_text(raw)
    if attributes:
        body["attributes"] = attributes
    for flag, key in (
        ("injected", "injected_application_credential_source_ids"),
        ("brokered", "brokered_credential_source_ids"),
    ):
        if kw.get(flag):
            body[key] = list(kw[flag])
    return body


def _known_hosts_text(value: str) -> str:
    """``-known-hosts``: known_hosts lines, or ``file://PATH`` / ``env://VAR`` holding them."""
    try:
        return resolve_secret_ref(value, must=False)
    except SecretRefError as exc:
        raise UserError(f"Error parsing known hosts flag: {exc}") from None


def _ssh_update_body(kw: dict[str, Any]) -> dict[str, Any]:
    require_id(kw["id_"])
    return ssh_body(kw)


_SSH_OPTIONS = [
    *_TCP_OPTIONS,
    bool_option(
        "enable-session-recording",
        default=None,
        help="Record the target's sessions (needs -storage-bucket-id): true or false.",
    ),
    string_option("storage-bucket-id", help="The storage bucket the worker writes recordings to."),
    bool_option(
        "record-input",
        default=None,
        help="Also record what users type (off by default: keystrokes carry secrets).",
    ),
    string_option(
        "known-hosts",
        help="The host keys the worker accepts from the target's hosts, as OpenSSH "
        "known_hosts lines or file://PATH. A host with no line is pinned at first use. "
        '"null" clears it.',
    ),
]

_SSH_CREATE_OPTIONS = [
    multi_option(
        "injected-application-credential-source",
        "injected",
        help="A credential (username/password or SSH private key) the worker logs in with. "
        "May be specified multiple times.",
    ),
    multi_option(
        "brokered-credential-source",
        "brokered",
        help="A credential returned to the user when connecting. May be specified multiple times.",
    ),
]


# -- commands ----------------------------------------------------------------------------------

targets = resource_group(
    TARGET_VIEW,
    SCOPE,
    help_text(
        "Manage targets and authorize sessions on them.",
        "bconnect targets list -scope-id p_1234567890",
        "bconnect targets read -id ttcp_1234567890",
        "bconnect targets authorize-session -id ttcp_1234567890",
    ),
)
type_groups(
    targets,
    TARGET_VIEW,
    SCOPE,
    ResourceType(
        "tcp",
        create_help=help_text(
            "Create a tcp-type target.",
            "bconnect targets create tcp -scope-id p_1234567890 -name ssh-box -address 10.0.0.5 "
            "-default-port 22",
        ),
        update_help=help_text(
            "Update a tcp-type target given its ID.",
            "bconnect targets update tcp -id ttcp_1234567890 -name devops -default-port 2222",
        ),
        options=_TCP_OPTIONS,
        create_body=tcp_body,
        update_body=_tcp_update_body,
    ),
    ResourceType(
        "ssh",
        create_help=help_text(
            "Create an ssh-type target: the worker terminates SSH and logs in to the host "
            "with an injected credential, which never reaches the user.",
            "bconnect targets create ssh -scope-id p_1234567890 -name web-ssh -address "
            "10.0.0.5 -injected-application-credential-source credup_1234567890",
        ),
        update_help=help_text(
            "Update an ssh-type target given its ID.",
            "bconnect targets update ssh -id tssh_1234567890 -known-hosts file://known_hosts",
        ),
        options=_SSH_OPTIONS,
        create_options=_SSH_CREATE_OPTIONS,
        create_body=ssh_body,
        update_body=_ssh_update_body,
    ),
    create_example="bconnect targets create tcp -scope-id p_1234567890 -name prodops "
    "-address 10.0.0.5 -default-port 22",
    update_example="bconnect targets update tcp -id ttcp_1234567890 -name devops "
    '-description "For DevOps"',
)
for _command in membership_commands(
    TARGET_VIEW,
    flag="host-source",
    body_key="host_source_ids",
    noun="host-sources",
    missing="No host sources supplied via -host-source",
    summaries=(
        "Add host sources (host sets) to a target.",
        'Set the full list of host sources on a target ("null" empties it).',
        "Remove host sources from a target.",
    ),
    example_value="hsst_1234567890",
):
    targets.add_command(_command)


def _credential_sources_command(verb: str, summary: str) -> click.Command:
    action = f"{verb}-credential-sources"

    def callback(
        opts: GlobalOptions,
        id_: str | None,
        brokered: tuple[str, ...],
        injected: tuple[str, ...],
        version: int,
    ) -> None:
        require_id(id_)
        if not brokered and not injected:
            raise UserError(
                "No credential sources supplied via -brokered-credential-source or "
                "-injected-application-credential-source"
            )
        body: dict[str, Any] = {}
        for key, values in (
            ("brokered_credential_source_ids", list(brokered)),
            ("injected_application_credential_source_ids", list(injected)),
        ):
            if values:
                body[key] = [] if verb == "set" and values == ["null"] else values
        run_action(opts, TARGET_VIEW, id_, action, body, version)

    options: list[Decorator] = [
        id_option("target"),
        multi_option(
            "brokered-credential-source",
            "brokered",
            help="A credential source whose credentials are returned to the user when "
            "connecting. May be specified multiple times.",
        ),
        multi_option(
            "injected-application-credential-source",
            "injected",
            help="A credential source whose credentials are injected by the worker. "
            "May be specified multiple times.",
        ),
        version_option("target"),
    ]
    examples = (
        f"bconnect targets {action} -id ttcp_1234567890 "
        "-brokered-credential-source credup_1234567890",
        f"bconnect targets {action} -id tssh_1234567890 "
        "-injected-application-credential-source credspk_1234567890",
    )
    return command(action, help_text(summary, *examples), options)(callback)


targets.add_command(_credential_sources_command("add", "Add credential sources to a target."))
targets.add_command(
    _credential_sources_command(
        "set", 'Set the full list of credential sources on a target ("null" empties it).'
    )
)
targets.add_command(
    _credential_sources_command("remove", "Remove credential sources from a target.")
)


@command(
    "authorize-session",
    help_text(
        "Request session authorization against a target, by ID or by name and scope.",
        "bconnect targets authorize-session -id ttcp_1234567890",
        "bconnect targets authorize-session -name prod-ssh -scope-id p_1234567890",
    ),
    [
        id_option("target"),
        string_option(
            "name", help="Target name, if authorizing the session via scope and target name."
        ),
        string_option(
            "scope-id",
            envvar=["BCONNECT_SCOPE_ID", "BOUNDARY_SCOPE_ID"],
            help="Target scope ID, when using -name. Mutually exclusive with -scope-name.",
        ),
        string_option(
            "scope-name",
            envvar=["BCONNECT_SCOPE_NAME", "BOUNDARY_SCOPE_NAME"],
            help="Target scope name, when using -name. Mutually exclusive with -scope-id.",
        ),
        string_option(
            "host-id",
            help="The ID of a specific host to connect to out of the target's host sources. "
            "If not specified, one is chosen at random.",
        ),
    ],
)
def authorize_session(
    opts: GlobalOptions,
    id_: str | None,
    name: str | None,
    scope_id: str | None,
    scope_name: str | None,
    host_id: str | None,
) -> None:
    ctx = click.get_current_context()
    if id_:
        # A scope from the environment does not conflict with an explicit -id.
        for param in ("scope_id", "scope_name"):
            if ctx.get_parameter_source(param) == click.core.ParameterSource.ENVIRONMENT:
                if param == "scope_id":
                    scope_id = None
                else:
                    scope_name = None
        if name or scope_id or scope_name:
            raise FlagError("Cannot specify a target ID and also other lookup parameters")
    elif not name or not (scope_id or scope_name):
        raise FlagError(
            "ID was not passed in, but no combination of name and scope ID/name was passed "
            "in either"
        )
    elif scope_id and scope_name:
        raise FlagError("Both scope ID and scope name cannot be provided")
    client = opts.client()
    with controller_call("authorize-session", "a session against target"):
        item = client.authorize_session(
            id_, target_name=name, scope_id=scope_id, scope_name=scope_name, host_id=host_id
        )
    emit_authorization(opts, item)


def emit_authorization(opts: GlobalOptions, item: ApiResponse) -> None:
    """Print a session authorization as a table or as Boundary's JSON envelope."""
    if opts.json:
        opts.echo(output.json_item(item.status_code, dict(item)))
    else:
        opts.echo(authorization_table(item))


targets.add_command(authorize_session)
