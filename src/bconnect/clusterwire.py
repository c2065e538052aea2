"""The cluster API's wire vocabulary (docs/cluster-api.md), pure: the paths, the header
and the values that the worker and the controller both write. They share no other code
(each may run on a machine of its own), so this module is where the two sides agree.

Paths are templates in the router's syntax (``{session_id}``): the controller serves
them as they are, the worker fills them in with ``str.format``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVATE_PATH",
    "AUTHORIZE_CONNECTION_PATH",
    "CANCEL_SESSION_PATH",
    "CHANNEL_FINISHED_PATH",
    "CHANNEL_STARTED_PATH",
    "CLOSED_PATH",
    "CONNECTED_PATH",
    "CONNECTION_EVENTS_PATH",
    "ConnectionEvent",
    "PIN_HOST_KEY_PATH",
    "PREFIX",
    "REGISTER_PATH",
    "SESSION_PATH",
    "STATUS_PATH",
    "WORKER_ID_HEADER",
    "ClosedReason",
    "RefusalKind",
]

#: Every cluster call's path starts with this (and no public API path does).
PREFIX = "/v1/cluster"
#: The only call without a credential: it brings a one-time activation token.
ACTIVATE_PATH = f"{PREFIX}/workers:activate"
REGISTER_PATH = f"{PREFIX}/workers:register"
STATUS_PATH = f"{PREFIX}/workers/{{worker_id}}:status"
SESSION_PATH = f"{PREFIX}/sessions/{{session_id}}"
AUTHORIZE_CONNECTION_PATH = f"{SESSION_PATH}:authorize-connection"
CANCEL_SESSION_PATH = f"{SESSION_PATH}:cancel"
#: ssh sessions: the worker reports the key a target's host presented, to be pinned
PIN_HOST_KEY_PATH = f"{SESSION_PATH}:pin-host-key"
CONNECTED_PATH = f"{PREFIX}/connections/{{connection_id}}:connected"
CLOSED_PATH = f"{PREFIX}/connections/{{connection_id}}:closed"
#: many connections' news in one call, in order: ``connected`` and ``closed`` as the two
#: calls above say them, and ``admitted``: a connection the worker admitted itself (a
#: session it served before, with no connection limit), which the controller checks as
#: ``authorize-connection`` would and records as connected, or refuses
CONNECTION_EVENTS_PATH = f"{PREFIX}/connection-events"

#: recorded ssh sessions: a channel's recording begins (the controller names its object)
#: and ends (its size and SHA-256, or why it could not be finished)
CHANNEL_STARTED_PATH = f"{PREFIX}/session-recordings/{{recording_id}}:channels"
CHANNEL_FINISHED_PATH = f"{PREFIX}/channel-recordings/{{channel_id}}:finished"

#: A worker calling with the shared worker key says which worker it is in this header.
WORKER_ID_HEADER = "X-Bconnect-Worker-Id"


class ConnectionEvent(StrEnum):
    """The ``event`` of an entry in a ``connection-events`` call."""

    CONNECTED = "connected"
    ADMITTED = "admitted"
    CLOSED = "closed"


class ClosedReason(StrEnum):
    """Why a connection closed (docs/protocol.md §1): the worker reports it in ``:closed``,
    the controller stores it."""

    UNKNOWN = "unknown"
    TIMED_OUT = "timed out"
    CLOSED_BY_END_USER = "closed by end-user"
    CANCELED = "canceled"
    NETWORK_ERROR = "network error"
    SYSTEM_ERROR = "system error"


class RefusalKind(StrEnum):
    """The ``kind`` of a 409 answer: why the controller refused a session operation."""

    SESSION_NOT_ACTIVE = "SessionNotActive"
    SESSION_EXPIRED = "SessionExpired"
    TOFU_MISMATCH = "TofuMismatch"
    CONNECTION_LIMIT_REACHED = "ConnectionLimitReached"
    HOST_KEY_MISMATCH = "HostKeyMismatch"
