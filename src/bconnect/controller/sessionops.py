"""Session state changes against the database (the rules live in sessionstate.py)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from bconnect.clusterwire import ClosedReason, RefusalKind
from bconnect.controller.sessionstate import (
    Status,
    TerminationReason,
    check_transition,
    termination_due,
    termination_possible,
)
from bconnect.controller.storage import schema as t
from bconnect.ids import new_id


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


def cancel_sessions_where(conn: Connection, where: Any, now: datetime) -> list[str]:
    """Cancel the pending and active sessions matching ``where`` (locked in id order):
    ``canceling``, and ``terminated`` (``canceled``) at once when nothing of theirs is
    open. Workers learn of it from their next status report and close what is open;
    new connections are refused. Returns the ids canceled."""
    s = t.sessions.c
    ids = [
        r.id
        for r in conn.execute(
            select(s.id).where(where, s.status.in_((Status.PENDING.value, Status.ACTIVE.value)))
        )
    ]
    for session in lock_sessions(conn, set(ids)).values():
        if session.status in (Status.PENDING.value, Status.ACTIVE.value):
            set_status(conn, session, Status.CANCELING, now)
            terminate_if_due(conn, lock_session(conn, session.id), now)
    return ids


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
    ones that used up their connections. Returns the ids it terminated.

    Sessions another transaction holds right now are skipped (PostgreSQL's SKIP LOCKED):
    the next run takes them."""
    s = t.sessions.c
    stmt = (
        select(t.sessions)
        .where(
            s.status != Status.TERMINATED.value,
            (s.expiration_time <= now)
            | (s.status == Status.CANCELING.value)
            # only a limited session can run out of connections
            | ((s.status == Status.ACTIVE.value) & (s.connection_limit >= 0)),
        )
        .order_by(s.id)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    candidates = conn.execute(stmt).all()
    return [row.id for row in candidates if terminate_if_due(conn, row, now)]


def close_dead_worker_connections(conn: Connection, grace: timedelta, now: datetime) -> int:
    """The periodic job: connections still open on a worker that has not reported for
    ``grace`` are closed with ``system error`` (the worker died or lost every controller,
    and closes them itself after the same grace); their sessions end when due. Returns
    how many connections it closed."""
    c = t.session_connections.c
    w = t.workers.c
    lost = conn.execute(
        select(c.id, c.session_id)
        .select_from(t.session_connections.outerjoin(t.workers, w.id == c.worker_id))
        .where(
            c.status != "closed",
            c.updated_time < now - grace,
            (w.id.is_(None)) | (w.last_status_time.is_(None)) | (w.last_status_time < now - grace),
        )
    ).all()
    return _close_lost(conn, lost, now)


def lock_sessions(conn: Connection, session_ids: set[str]) -> dict[str, Any]:
    """Several session rows, locked in id order (so lockers never deadlock each other)."""
    if not session_ids:
        return {}
    stmt = select(t.sessions).where(t.sessions.c.id.in_(sorted(session_ids)))
    if conn.dialect.name == "postgresql":
        stmt = stmt.order_by(t.sessions.c.id).with_for_update()
    return {row.id: row for row in conn.execute(stmt).all()}


def _close_lost(
    conn: Connection,
    lost: Sequence[Row[Any, Any]],
    now: datetime,
    locked: dict[str, Any] | None = None,
) -> int:
    """Close connections (rows of id, session_id) with ``system error``: their sessions
    are locked first, the order every writer uses (``locked``: the caller has locked
    them already, and these are the rows it read); then end the sessions that are due."""
    if not lost:
        return 0
    ids = {r.session_id for r in lost}
    if locked is None:
        sessions = lock_sessions(conn, ids)
    else:
        sessions = {sid: row for sid, row in locked.items() if sid in ids}
    c = t.session_connections.c
    closed = conn.execute(
        update(t.session_connections)
        .where(c.id.in_([r.id for r in lost]), c.status != "closed")
        .values(status="closed", closed_reason=ClosedReason.SYSTEM_ERROR.value, updated_time=now)
    ).rowcount
    for session in sessions.values():
        terminate_if_due(conn, session, now)
    return closed


# ---------------------------------------------------------------- worker-driven changes


class Refusal(Exception):
    """The worker may not proceed; ``kind`` says why (the 409 answer's ``kind``)."""

    def __init__(self, kind: RefusalKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def tofu_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def lock_session(conn: Connection, session_id: str) -> Any:
    """The session row, locked for the rest of the transaction where the database can."""
    stmt = select(t.sessions).where(t.sessions.c.id == session_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first()


def check_admission(session: Any, tofu_token: str, now: datetime) -> None:
    """Raise :class:`Refusal` unless ``session`` (its locked row) may take one more
    connection from a client with ``tofu_token``: not canceling or terminated, not
    expired, and the token the session pinned (a pending one pins it); the connection
    limit is the caller's to count."""
    if session.status in (Status.CANCELING.value, Status.TERMINATED.value):
        raise Refusal(RefusalKind.SESSION_NOT_ACTIVE, f"session is {session.status}")
    if session.expiration_time <= now:
        raise Refusal(RefusalKind.SESSION_EXPIRED, "session has expired")
    if session.status != Status.PENDING.value and not hmac.compare_digest(
        session.tofu_token_hash or "", tofu_hash(tofu_token)
    ):
        raise Refusal(RefusalKind.TOFU_MISMATCH, "tofu token not allowed")


def authorize_connection(
    conn: Connection, session_id: str, tofu_token: str, worker_id: str | None, now: datetime
) -> dict[str, Any] | None:
    """Admit one more connection (None: no such session). Activates a pending session
    and pins its tofu token; checks state, expiry, token and the connection limit in one
    transaction, so concurrent connects cannot exceed the limit."""
    session = lock_session(conn, session_id)
    if session is None:
        return None
    check_admission(session, tofu_token, now)
    if session.status == Status.PENDING.value:
        conn.execute(
            update(t.sessions)
            .where(t.sessions.c.id == session.id)
            .values(tofu_token_hash=tofu_hash(tofu_token), worker_id=worker_id)
        )
        set_status(conn, session, Status.ACTIVE, now)
    limit = session.connection_limit
    # only a limited session needs its count (a session's connections pile up: counting
    # them on every connect would make each connect slower than the last)
    used = connection_counts(conn, session.id)[1] if limit >= 0 else 0
    if 0 <= limit <= used:
        raise Refusal(RefusalKind.CONNECTION_LIMIT_REACHED, "connection limit reached")
    connection_id = new_id("sc")
    conn.execute(
        t.session_connections.insert().values(
            id=connection_id,
            session_id=session.id,
            status="authorized",
            bytes_up=0,
            bytes_down=0,
            worker_id=worker_id,
            created_time=now,
            updated_time=now,
        )
    )
    return {
        "connection_id": connection_id,
        "connections_left": -1 if limit < 0 else limit - used - 1,
        "connection_limit": limit,
        "expiration": session.expiration_time,
        "endpoint": session.endpoint,
    }


def connection_connected(
    conn: Connection, connection_id: str, now: datetime, **addresses: Any
) -> bool:
    result = conn.execute(
        update(t.session_connections)
        .where(
            t.session_connections.c.id == connection_id,
            t.session_connections.c.status == "authorized",
        )
        .values(status="connected", updated_time=now, **addresses)
    )
    return result.rowcount == 1


def connection_closed(
    conn: Connection,
    connection_id: str,
    now: datetime,
    bytes_up: int,
    bytes_down: int,
    closed_reason: str,
) -> bool:
    """Record a closed connection, then end its session if that was what it waited for.

    The session row is locked before the connection row is written, the order every
    writer uses, so concurrent reports and cancels queue instead of deadlocking."""
    found = conn.execute(
        select(t.session_connections.c.session_id).where(
            t.session_connections.c.id == connection_id
        )
    ).first()
    if found is None:
        return False
    session = lock_session(conn, found.session_id)
    row = conn.execute(
        select(t.session_connections).where(t.session_connections.c.id == connection_id)
    ).first()
    if row is None:
        # deleted with its session (session cleanup) since it was found: as if unknown
        return False
    if row.status != "closed":
        conn.execute(
            update(t.session_connections)
            .where(t.session_connections.c.id == connection_id)
            .values(
                status="closed",
                bytes_up=max(bytes_up, row.bytes_up),
                bytes_down=max(bytes_down, row.bytes_down),
                closed_reason=closed_reason,
                updated_time=now,
            )
        )
    if session is not None:
        terminate_if_due(conn, session, now)
    return True


def cancel_by_client(conn: Connection, session_id: str, tofu_token: str, now: datetime) -> bool:
    """The client proxy's SESSION_CANCEL: the end user is done with the session.

    As in Boundary the session goes ``canceling`` and, once nothing of it is open,
    ``terminated`` with reason ``canceled``; an active session whose connection limit is
    used up stays active and ends for that limit once its last connection is closed (in
    Boundary the worker's last close usually gets there first and ends it so)."""
    session = lock_session(conn, session_id)
    if session is None:
        return False
    if session.tofu_token_hash and not hmac.compare_digest(
        session.tofu_token_hash, tofu_hash(tofu_token)
    ):
        raise Refusal(RefusalKind.TOFU_MISMATCH, "tofu token not allowed")
    if session.status in (Status.PENDING.value, Status.ACTIVE.value):
        _, used = connection_counts(conn, session_id)
        if session.status == Status.ACTIVE.value and 0 <= session.connection_limit <= used:
            # A client that used up the connection limit cancels because nothing is left:
            # the session ends for its limit when its last connection closes, whichever
            # report reaches the database first, and never passes through canceling.
            terminate_if_due(conn, session, now)
            return True
        set_status(conn, session, Status.CANCELING, now)
        terminate_if_due(conn, lock_session(conn, session_id), now)
    return True


def terminate_if_due(conn: Connection, session: Any, now: datetime) -> bool:
    """Terminate ``session`` if its time has come (see sessionstate.termination_due).
    Open connections are waited for, except past expiry, when they are closed."""
    if not termination_possible(
        session.status, session.expiration_time, now, session.connection_limit
    ):
        return False  # nothing can be due, whatever the counts: spare counting them
    open_count, used = connection_counts(conn, session.id)
    reason = termination_due(
        session.status, session.expiration_time, now, open_count, session.connection_limit, used
    )
    if reason is not None and (open_count == 0 or reason is TerminationReason.TIMED_OUT):
        if open_count:
            close_open_connections(conn, session.id, ClosedReason.TIMED_OUT.value, now)
        set_status(conn, session, Status.TERMINATED, now, session.termination_reason or reason)
        return True
    return False


# A connection the worker admitted gets this long to show up in its status reports.
UNREPORTED_GRACE = timedelta(seconds=10)


def worker_status(
    conn: Connection, worker_id: str, reports: list[dict[str, Any]], now: datetime
) -> dict[str, list[str]]:
    """Take a worker's status report; answer which sessions and connections to close.

    Open connections of this worker that it no longer reports (it restarted, or never
    got the controller's answer) are closed with ``system error``, so their sessions
    can end. Every session touched is locked first, in one batch in id order."""
    conn.execute(update(t.workers).where(t.workers.c.id == worker_id).values(last_status_time=now))
    c = t.session_connections.c
    ids = [r["connection_id"] for r in reports]
    lost = conn.execute(
        select(c.id, c.session_id).where(
            c.worker_id == worker_id,
            c.status != "closed",
            c.id.not_in(ids),
            c.updated_time < now - UNREPORTED_GRACE,
        )
    ).all()
    # only this worker's connections (a report of another's is treated as unknown)
    mine = (c.worker_id == worker_id) | c.worker_id.is_(None)
    rows = (
        conn.execute(
            select(c.id, c.session_id, c.status, c.bytes_up, c.bytes_down).where(
                c.id.in_(ids), mine
            )
        ).all()
        if ids
        else []
    )
    sessions = lock_sessions(conn, {r.session_id for r in lost} | {r.session_id for r in rows})
    _close_lost(conn, lost, now, sessions)
    known = {r.id: r for r in rows}
    cancel_sessions: set[str] = set()
    cancel_connections: list[str] = []
    for report in reports:
        row = known.get(report["connection_id"])
        if row is None:
            cancel_connections.append(report["connection_id"])
            continue
        if row.status != "closed":
            conn.execute(
                update(t.session_connections)
                .where(c.id == row.id, c.status != "closed")
                .values(
                    bytes_up=max(int(report.get("bytes_up", 0)), row.bytes_up),
                    bytes_down=max(int(report.get("bytes_down", 0)), row.bytes_down),
                    updated_time=now,
                )
            )
        else:
            cancel_connections.append(row.id)
        session = sessions.get(row.session_id)
        if (
            session is None
            or session.status in ("canceling", "terminated")
            or session.expiration_time <= now
        ):
            cancel_sessions.add(row.session_id)
    return {"cancel_sessions": sorted(cancel_sessions), "cancel_connections": cancel_connections}
