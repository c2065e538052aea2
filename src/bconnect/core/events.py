"""A connect session's events as the JSON objects ``bconnect connect -format json``
prints (Boundary's shapes), for programs that follow a session (pure).

- :func:`listening_event`: ``{"address", "port", "protocol", "expiration",
  "connection_limit", "session_id", "credentials"?}`` once the proxy listens;
- :func:`connections_event`: ``{"connections_left": N}`` each time the count changes;
- :func:`termination_event`: ``{"termination_reason": "..."}`` at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bconnect.core.runner import ListenInfo

__all__ = ["connections_event", "go_json_time", "listening_event", "termination_event"]


def go_json_time(value: datetime) -> str:
    """A time as Go's ``encoding/json`` writes a UTC ``time.Time`` (RFC 3339, trailing
    zeros of the fraction dropped)."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += "." + f"{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def listening_event(
    info: ListenInfo, credentials: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Where the proxy listens, with the brokered credentials (as the controller
    returned them) when there are any."""
    data: dict[str, Any] = {
        "address": info.host,
        "port": info.port,
        "protocol": info.protocol,
        "expiration": go_json_time(info.expiration),
        "connection_limit": info.connection_limit,
        "session_id": info.session_id,
    }
    if credentials:
        data["credentials"] = list(credentials)
    return data


def connections_event(connections_left: int) -> dict[str, Any]:
    return {"connections_left": connections_left}


def termination_event(reason: str) -> dict[str, Any]:
    return {"termination_reason": reason}
