"""The session state machine (pure): pending → active → canceling → terminated."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    CANCELING = "canceling"
    TERMINATED = "terminated"


class TerminationReason(StrEnum):
    TIMED_OUT = "timed out"
    CANCELED = "canceled"
    CONNECTION_LIMIT = "connection limit"
    CLOSED_BY_END_USER = "closed by end-user"
    NETWORK_ERROR = "network error"
    SYSTEM_ERROR = "system error"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.ACTIVE, Status.CANCELING, Status.TERMINATED}),
    Status.ACTIVE: frozenset({Status.CANCELING, Status.TERMINATED}),
    Status.CANCELING: frozenset({Status.TERMINATED}),
    Status.TERMINATED: frozenset(),
}


class InvalidTransition(ValueError):
    """A state change the machine does not allow (e.g. canceling a terminated session)."""


def check_transition(current: str, new: str) -> Status:
    """Return ``new`` as a Status if ``current → new`` is allowed, else raise."""
    cur, nxt = Status(current), Status(new)
    if nxt not in TRANSITIONS[cur]:
        raise InvalidTransition(f"session cannot go from {cur} to {nxt}")
    return nxt


def termination_due(
    status: str,
    expiration: datetime,
    now: datetime,
    open_connections: int,
    connection_limit: int,
    connections_used: int,
) -> TerminationReason | None:
    """Why a session should be terminated now, or None to leave it.

    - past its expiration: ``timed out`` (the worker closes what is still open);
    - canceling with nothing open: ``canceled``;
    - every allowed connection used and closed: ``connection limit``.
    """
    st = Status(status)
    if st is Status.TERMINATED:
        return None
    if now >= expiration:
        return TerminationReason.TIMED_OUT
    if st is Status.CANCELING and open_connections == 0:
        return TerminationReason.CANCELED
    if (
        connection_limit >= 0
        and connections_used >= connection_limit
        and open_connections == 0
        and st is Status.ACTIVE
    ):
        return TerminationReason.CONNECTION_LIMIT
    return None


def termination_possible(
    status: str, expiration: datetime, now: datetime, connection_limit: int
) -> bool:
    """Whether :func:`termination_due` can answer anything but None for this session, for
    some connection counts (when it cannot, the counts need not be read): the counts
    most favourable to an ending, nothing open and every allowed connection used."""
    used = max(connection_limit, 0)
    return termination_due(status, expiration, now, 0, connection_limit, used) is not None
