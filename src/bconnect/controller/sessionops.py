"""Session state changes against the database (the rules live in sessionstate.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from bconnect.controller.sessionstate import ClosedReason, Status, check_transition, termination_due
from bconnect.controller.storage import schema as t


def set_status(
    conn: Connection,
    session: Any,
    new: Status,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Move a session to ``new``: close the current state, open the next, bump version."""
    check_transition(session.status, new)
    values: dict[str, Any] = {
        "status": new.value,
        "updated_time": now,
        "version": session.version + 1,
    }
    if reason is not None:
        values["termination_reason"] = reason
    conn.execute(update(t.sessions).where(t.sessions.c.id == session.id).values(**values))
    conn.execute(
        update(t.session_states)
        .where(t.session_states.c.session_id == session.id, t.session_states.c.end_time.is_(None))
        .values(end_time=now)
    )
    conn.execute(
        t.session_states.insert().values(session_id=session.id, status=new.value, start_time=now)
    )


def connection_counts(conn: Connection, session_id: str) -> tuple[int, int]:
    """(open connections, connections ever authorized) of one session."""
    rows = conn.execute(
        select(t.session_connections.c.status, func.count())
        .where(t.session_connections.c.session_id == session_id)
        .group_by(t.session_connections.c.status)
    ).all()
    counts = {status: n for status, n in rows}
    used = sum(counts.values())
    return used - counts.get("closed", 0), used


def cancel(conn: Connection, session: Any, now: datetime) -> None:
    """Cancel: ``canceling`` now; the periodic job (or the worker's report) terminates the
    session once none of its connections is open."""
    set_status(conn, session, Status.CANCELING, now)


def close_open_connections(conn: Connection, session_id: str, reason: str, now: datetime) -> None:
    conn.execute(
        update(t.session_connections)
        .where(
            t.session_connections.c.session_id == session_id,
            t.session_connections.c.status != "closed",
        )
        .values(status="closed", closed_reason=reason, updated_time=now)
    )


def terminate_due_sessions(conn: Connection, now: datetime) -> list[str]:
    """The periodic job: terminate expired sessions, canceled ones with nothing open, and
    ones that used up their connections. Returns the ids it terminated."""
    done = []
    candidates = conn.execute(
        select(t.sessions).where(
            t.sessions.c.status != Status.TERMINATED.value,
            (t.sessions.c.expiration_time <= now)
            | (t.sessions.c.status == Status.CANCELING.value)
            | (t.sessions.c.status == Status.ACTIVE.value),
        )
    ).all()
    for session in candidates:
        open_count, used = connection_counts(conn, session.id)
        reason = termination_due(
            session.status,
            session.expiration_time,
            now,
            open_count,
            session.connection_limit,
            used,
        )
        if reason is None:
            continue
        if open_count:
            closed = ClosedReason.TIMED_OUT if reason == "timed out" else ClosedReason.CANCELED
            close_open_connections(conn, session.id, closed.value, now)
        set_status(conn, session, Status.TERMINATED, now, reason=reason.value)
        done.append(session.id)
    return done
