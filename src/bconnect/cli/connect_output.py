"""What ``bconnect connect`` prints, in Boundary's shapes
(``internal/cmd/commands/connect/funcs.go`` and ``connect.go``):

* "Proxy listening information:" (Address, Connection Limit, Expiration, Port,
  Protocol, Session ID, then any brokered credentials), or with ``-format json`` one
  object ``{"address", "port", "protocol", "expiration", "connection_limit",
  "session_id", "credentials"?}``;
* "Connection information: Connections Left: N" / ``{"connections_left": N}``;
* "Termination information: Reason: ..." / ``{"termination_reason": "..."}``.

Pure functions: values in, text out.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bconnect.cli import output
from bconnect.core import events
from bconnect.core.events import go_json_time

if TYPE_CHECKING:  # the runner pulls in the proxy stack: not needed to print, nor for --help
    from bconnect.core.runner import ListenInfo

__all__ = [
    "connection_info",
    "credentials_lines",
    "go_json_time",
    "session_info",
    "termination_info",
]

# Boundary's MaxAttributesLength starts from the width of "Parent Scope ID" + 2.
_MIN_KEY_WIDTH = len("Parent Scope ID") + 2


def _secret_lines(indent: int, credential: Mapping[str, Any]) -> list[str]:
    """Boundary's ``fmtSecretForTable``: the decoded credential as a key/value block,
    else the fields of the base64 JSON secret, else the raw secret."""
    prefix = " " * indent
    secret = credential.get("secret") or {}
    raw = str(secret.get("raw", ""))
    typed = credential.get("credential")
    if isinstance(typed, Mapping) and typed:
        width = max(len(k) for k in typed)
        return [f"{prefix}    " + output.wrap_map(2, width + 2, typed)]
    try:
        decoded = json.loads(base64.b64decode(raw.strip('"'), validate=True))
    except (binascii.Error, ValueError):
        return [f"{prefix}    {output.go_value(raw)}"]
    if not isinstance(decoded, dict):
        return [f"{prefix}    {output.go_value(raw)}"]
    lines = []
    for key in sorted(decoded):
        value = decoded[key]
        lines.append(f"{prefix}    {output.go_value(key)}:")
        if isinstance(value, dict):
            for sub in sorted(value):
                lines += [f"{prefix}      {output.go_value(sub)}:", output.go_value(value[sub])]
        elif value is not None:
            lines.append(output.go_value(value))
    return lines


def credentials_lines(indent: int, credentials: Sequence[Mapping[str, Any]]) -> list[str]:
    """Boundary's ``generateCredentialTableOutputSlice``."""
    if not credentials:
        return []
    prefix = " " * indent
    lines = [f"{prefix}Credentials:"]
    for credential in credentials:
        source = credential.get("credential_source") or {}
        values: dict[str, Any] = {
            "Credential Store ID": source.get("credential_store_id", ""),
            "Credential Source ID": source.get("id", ""),
            "Credential Store Type": source.get("type", ""),
        }
        if source.get("name"):
            values["Credential Source Name"] = source["name"]
        if source.get("description"):
            values["Credential Source Description"] = source["description"]
        if source.get("credential_type"):
            values["Credential Type"] = source["credential_type"]
        width = max([_MIN_KEY_WIDTH, *(len(k) for k in values)])
        lines += [output.wrap_map(2 + indent, width, values), f"{prefix}  Secret:"]
        lines += _secret_lines(2 + indent, credential)
        lines.append("")
    return lines


def session_info(
    info: ListenInfo,
    credentials: Sequence[Mapping[str, Any]] = (),
    *,
    json_format: bool = False,
    width: int | None = None,
) -> str:
    """The "Proxy listening information" block, or its JSON object."""
    if json_format:
        return output.dumps_compact(events.listening_event(info, credentials))
    values = {
        "Session ID": info.session_id,
        "Protocol": info.protocol,
        "Address": info.host,
        "Port": info.port,
        "Expiration": output.format_time(go_json_time(info.expiration)),
        "Connection Limit": info.connection_limit,
    }
    width_keys = max([_MIN_KEY_WIDTH, *(len(k) for k in values)])
    lines = ["", "Proxy listening information:", output.wrap_map(2, width_keys + 2, values)]
    if credentials:
        lines += ["", *credentials_lines(2, credentials)]
    return output.wrap_for_help_text(lines, width)


def connection_info(connections_left: int, *, json_format: bool = False) -> str:
    """The "Connection information" block printed each time the count changes."""
    if json_format:
        return output.dumps_compact(events.connections_event(connections_left))
    key = "Connections Left"
    block = output.wrap_map(2, len(key) + 2, {key: connections_left})
    return output.wrap_for_help_text(["", "Connection information:", block])


def termination_info(reason: str, *, json_format: bool = False) -> str:
    """The "Termination information" block printed at the end."""
    if json_format:
        return output.dumps_compact(events.termination_event(reason))
    block = output.wrap_map(2, len("Reason") + 2, {"Reason": reason})
    return output.wrap_for_help_text(["", "Termination information:", block])
