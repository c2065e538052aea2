"""Many connections' news from a worker in one transaction (docs/cluster-api.md,
``connection-events``): ``admitted`` (a connection the worker admitted itself),
``connected`` and ``closed``, each decided as its own call would decide it.

Written in bulk: the sessions touched are locked once (in id order, as every writer
locks them), the connections read once, then one insert of the admitted connections and
one update per kind of change; a session that may have ended is looked at once. A
refused event changes nothing and does not stop the others.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from bconnect.clusterwire import ConnectionEvent, RefusalKind
from bconnect.controller import errors
from bconnect.controller.sessionops import (
    Refusal,
    check_admission,
    connection_counts,
    lock_sessions,
    terminate_if_due,
)
from bconnect.controller.sessionstate import Status
from bconnect.controller.storage import schema as t

__all__ = ["EventRefused", "apply_events"]

#: the form of a connection id a worker names itself (``new_id("sc")``)
_CONNECTION_ID = re.compile(r"sc_[0-9A-Za-z]{10}")
_ADDRESSES = ("client_tcp_address", "client_tcp_port", "endpoint_tcp_address", "endpoint_tcp_port")


@dataclass(frozen=True)
class EventRefused:
    """Why one event was not taken: the ``kind`` and ``message`` of its own call's error."""

    kind: str
    message: str


def apply_events(
    conn: Connection,
    events: list[dict[str, Any]],
    worker_id: str | None,
    now: datetime,
    *,
    may_serve: Callable[[Any], bool],
    may_report: Callable[[Any], bool],
) -> list[EventRefused | None]:
    """Apply ``events`` (dicts with ``event``, ``connection_id`` and that event's
    fields) in order; one answer each. ``may_serve(session row)`` and ``may_report
    (connection row)`` say whether the calling worker may act on them."""
    session_ids = {e["session_id"] for e in events if e.get("session_id")}
    reported = [e["connection_id"] for e in events if e["event"] != ConnectionEvent.ADMITTED]
    admitted_ids = [e["connection_id"] for e in events if e["event"] == ConnectionEvent.ADMITTED]
    c = t.session_connections.c
    if reported:
        session_ids |= set(conn.execute(select(c.session_id).where(c.id.in_(reported))).scalars())
    # the sessions first, then their connections as they are now (a cancel or an expiry
    # may have closed one since: read after the lock, as connection_closed does)
    sessions = lock_sessions(conn, session_ids)
    rows = {
        r.id: r
        for r in (
            conn.execute(select(t.session_connections).where(c.id.in_(reported))).all()
            if reported
            else []
        )
    }
    taken = (
        set(conn.execute(select(c.id).where(c.id.in_(admitted_ids))).scalars())
        if admitted_ids
        else set()
    )
    batch = _Batch(conn, worker_id, now, sessions, rows, taken)
    answers: list[EventRefused | None] = []
    for event in events:
        try:
            if event["event"] == ConnectionEvent.ADMITTED:
                batch.admit(event, may_serve)
            else:
                batch.report(event, may_report)
        except Refusal as exc:
            answers.append(EventRefused(exc.kind.value, exc.message))
        except errors.ApiException as exc:
            answers.append(EventRefused(exc.kind, exc.message))
        else:
            answers.append(None)
    batch.write()
    return answers


class _Batch:
    """The events' effects, decided one by one, written together."""

    def __init__(
        self,
        conn: Connection,
        worker_id: str | None,
        now: datetime,
        sessions: dict[str, Any],
        rows: dict[str, Any],
        taken: set[str],
    ) -> None:
        self.conn = conn
        self.worker_id = worker_id
        self.now = now
        self.sessions = sessions
        self.taken = taken
        #: connection id -> (session id, status) as the batch leaves it
        self.state = {r.id: (r.session_id, r.status) for r in rows.values()}
        self.rows = rows
        self.inserts: list[dict[str, Any]] = []
        self.connects: list[dict[str, Any]] = []
        self.closes: dict[str, dict[str, Any]] = {}
        self.added: dict[str, int] = {}  # session id -> connections admitted here
        self.touched: set[str] = set()

    def admit(self, event: dict[str, Any], may_serve: Callable[[Any], bool]) -> None:
        connection_id, session_id = event["connection_id"], event.get("session_id")
        if not session_id or not event.get("tofu_token"):
            raise errors.InvalidArgument("An admitted connection needs its session and token.")
        if not _CONNECTION_ID.fullmatch(connection_id) or connection_id in self.taken:
            raise errors.InvalidArgument("Not a new connection id.")
        session = self.sessions.get(session_id)
        if session is None:
            raise errors.not_found(session_id)
        if not may_serve(session):
            raise errors.PermissionDenied("This session was not offered to this worker.")
        check_admission(session, event["tofu_token"], self.now)
        if session.status != Status.ACTIVE.value:  # only a session the controller began
            raise Refusal(RefusalKind.SESSION_NOT_ACTIVE, f"session is {session.status}")
        limit = session.connection_limit
        if limit >= 0:
            used = connection_counts(self.conn, session_id)[1] + self.added.get(session_id, 0)
            if limit <= used:
                raise Refusal(RefusalKind.CONNECTION_LIMIT_REACHED, "connection limit reached")
        self.added[session_id] = self.added.get(session_id, 0) + 1
        self.taken.add(connection_id)
        self.state[connection_id] = (session_id, "connected")
        self.inserts.append(
            {
                "id": connection_id,
                "session_id": session_id,
                "status": "connected",
                "bytes_up": 0,
                "bytes_down": 0,
                "worker_id": self.worker_id,
                "created_time": self.now,
                "updated_time": self.now,
                **{name: event.get(name) for name in _ADDRESSES},
            }
        )

    def report(self, event: dict[str, Any], may_report: Callable[[Any], bool]) -> None:
        connection_id = event["connection_id"]
        known = self.state.get(connection_id)
        if known is None:
            raise errors.not_found(connection_id)
        row = self.rows.get(connection_id)
        if row is not None and not may_report(row):
            raise errors.PermissionDenied("This connection is another worker's.")
        session_id, status = known
        if event["event"] == ConnectionEvent.CONNECTED:
            if status != "authorized":
                raise errors.not_found(connection_id)
            self.state[connection_id] = (session_id, "connected")
            self.connects.append(
                {"b_id": connection_id, **{name: event.get(name) for name in _ADDRESSES}}
            )
            return
        self.touched.add(session_id)
        if status == "closed":
            return  # a repeated report: taken, nothing changes
        self.state[connection_id] = (session_id, "closed")
        before_up = row.bytes_up if row is not None else 0
        before_down = row.bytes_down if row is not None else 0
        self.closes[connection_id] = {
            "b_id": connection_id,
            "bytes_up": max(int(event.get("bytes_up", 0)), before_up),
            "bytes_down": max(int(event.get("bytes_down", 0)), before_down),
            "closed_reason": event.get("closed_reason", "unknown"),
        }

    def write(self) -> None:
        c = t.session_connections.c
        if self.inserts:
            self.conn.execute(t.session_connections.insert(), self.inserts)
        if self.connects:
            self.conn.execute(
                update(t.session_connections)
                .where(c.id == bindparam("b_id"), c.status == "authorized")
                .values(
                    status="connected",
                    updated_time=self.now,
                    **{name: bindparam(name) for name in _ADDRESSES},
                ),
                self.connects,
            )
        if self.closes:
            self.conn.execute(
                update(t.session_connections)
                .where(c.id == bindparam("b_id"), c.status != "closed")
                .values(
                    status="closed",
                    updated_time=self.now,
                    bytes_up=bindparam("bytes_up"),
                    bytes_down=bindparam("bytes_down"),
                    closed_reason=bindparam("closed_reason"),
                ),
                list(self.closes.values()),
            )
        for session_id in sorted(self.touched):
            session = self.sessions.get(session_id)
            if session is not None:
                terminate_if_due(self.conn, session, self.now)
