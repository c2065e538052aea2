"""``bconnect sessions``: list, read and cancel sessions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bconnect.cli import output
from bconnect.cli.options import GlobalOptions, bool_option, controller_call
from bconnect.cli.output import ItemField, ListField, RenderContext, Section
from bconnect.cli.resources import (
    SCOPE,
    command,
    emit_item,
    help_text,
    id_option,
    list_command,
    require_id,
    resource_group,
)
from bconnect.hostport import join_host_port


def _host_port(host: Any, port: Any) -> str:
    return join_host_port(str(host or ""), port or 0)


def _int64(value: Any) -> Any:
    """int64 fields arrive as JSON strings; print them as numbers."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return value


def _states(ctx: RenderContext) -> list[str]:
    states = ctx.item.get("states") or []
    if not states:
        return []
    lines = ["", "  States:"]
    for state in states:
        values = {
            "Status": state.get("status", ""),
            "Start Time": output.format_time(state.get("start_time")),
        }
        if state.get("end_time"):
            values["End Time"] = output.format_time(state["end_time"])
        lines += [output.wrap_map(4, ctx.max_len, values), ""]
    return lines


def _connections(ctx: RenderContext) -> list[str]:
    connections = ctx.item.get("connections") or []
    if not connections:
        return []
    lines = ["", "  Connections:"]
    for conn in connections:
        values: dict[str, Any] = {
            "Client Address": _host_port(
                conn.get("client_tcp_address"), conn.get("client_tcp_port")
            ),
            "Endpoint Address": _host_port(
                conn.get("endpoint_tcp_address"), conn.get("endpoint_tcp_port")
            ),
            "Bytes Up": _int64(conn.get("bytes_up")),
            "Bytes Down": _int64(conn.get("bytes_down")),
        }
        if conn.get("closed_reason"):
            values["Closed Reason"] = conn["closed_reason"]
        lines += [output.wrap_map(4, ctx.max_len, values), ""]
    return lines


def _states_width(item: Mapping[str, Any]) -> int:
    return len("Start Time") if item.get("states") else 0


SESSION_VIEW = output.ResourceView(
    collection="sessions",
    singular="session",
    example_id="s_1234567890",
    list_fields=(
        ListField("Scope ID", "scope_id", recursive_only=True),
        ListField("Status", "status"),
        ListField("Created Time", "created_time", "time"),
        ListField("Expiration Time", "expiration_time", "time"),
        ListField("Updated Time", "updated_time", "time"),
        ListField("User ID", "user_id"),
        ListField("Target ID", "target_id"),
    ),
    item_fields=(
        ItemField("ID", "id"),
        ItemField("Version", "version", "nonzero"),
        ItemField("Type", "type"),
        ItemField("Created Time", "created_time", "time"),
        ItemField("Updated Time", "updated_time", "time"),
        ItemField("Expiration Time", "expiration_time", "time"),
        ItemField("Target ID", "target_id"),
        ItemField("Auth Token ID", "auth_token_id"),
        ItemField("User ID", "user_id"),
        ItemField("Host Set ID", "host_set_id"),
        ItemField("Host ID", "host_id"),
        ItemField("Endpoint", "endpoint"),
        ItemField("Status", "status"),
        ItemField("Termination Reason", "termination_reason", fmt=lambda v: str(v).strip()),
    ),
    sections=(
        output.scope_section(),
        output.actions_section(),
        Section(_states, _states_width),
        Section(_connections),
    ),
)

sessions = resource_group(
    SESSION_VIEW,
    SCOPE,
    help_text(
        "List, read and cancel sessions.",
        "bconnect sessions list -scope-id p_1234567890",
        "bconnect sessions read -id s_1234567890",
        "bconnect sessions cancel -id s_1234567890",
    ),
    standard=("read",),
)

sessions.add_command(
    list_command(
        SESSION_VIEW,
        SCOPE,
        options=[
            bool_option(
                "include-terminated",
                help="If set, terminated sessions will be included in the results.",
            )
        ],
        query=lambda kw: {"include_terminated": True} if kw.get("include_terminated") else {},
        help=help_text(
            "List sessions within a scope. Terminated sessions are hidden unless "
            "-include-terminated is given.",
            "bconnect sessions list -scope-id p_1234567890",
            "bconnect sessions list -scope-id global -recursive -include-terminated",
        ),
    )
)


@command(
    "cancel",
    help_text(
        "Cancel the session specified by ID. If the session is already canceled, this "
        "command succeeds with no effect.",
        "bconnect sessions cancel -id s_1234567890",
    ),
    [id_option("session")],
)
def cancel(opts: GlobalOptions, id_: str | None) -> None:
    sid = require_id(id_)
    client = opts.client()
    with controller_call("cancel", "session"):
        item = client.cancel_session(sid)
    emit_item(opts, SESSION_VIEW, item)


sessions.add_command(cancel)
