"""Periodic controller jobs, run once per interval across every controller.

Every controller runs the same loop; each job has a row in ``job_runs``. A tick takes
that row's lock (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so a controller finding it taken
moves on; SQLite: the single writer lock) and runs the job only if its ``next_run_time``
has come, setting the next one in the same transaction. So with several controllers
sharing a database each job still runs once per interval, and a controller that dies
mid-run leaves nothing half done (its transaction rolls back, the next tick redoes it).

The jobs:

- ``session-termination``: terminate expired sessions, canceled ones with nothing open,
  and ones that used up their connection limit;
- ``dead-workers``: close (``system error``) connections still open on workers that have
  not reported for the worker grace period, and end their sessions when due;
- ``session-cleanup``: delete sessions terminated longer ago than the retention (with
  their connections and states; noted for list refreshes), and forget deleted-resource
  notes older than their retention.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bconnect.controller.context import utcnow
from bconnect.controller.resources import note_deleted
from bconnect.controller.sessionops import close_dead_worker_connections, terminate_due_sessions
from bconnect.controller.settings import Settings
from bconnect.controller.storage import schema as t
from bconnect.controller.storage.db import database_unreachable, error_line

log = logging.getLogger(__name__)

CLEANUP_BATCH = 1000  # sessions deleted per run at most, to keep transactions short


@dataclass(frozen=True)
class Job:
    name: str
    interval: float  # seconds between runs, cluster-wide
    run: Callable[[Connection, datetime], Any]  # the work, in the job's transaction
    #: seconds of working database access this controller needs before the job runs
    settle: float = 0.0


def jobs_for(settings: Settings) -> list[Job]:
    """The controller's jobs, with their intervals from ``settings``."""
    grace = timedelta(seconds=settings.worker_grace)
    retention = timedelta(seconds=settings.session_retention)
    deleted_retention = timedelta(seconds=settings.deleted_retention)
    interval = settings.job_interval
    return [
        Job("session-termination", interval, terminate_due_sessions),
        Job(
            "dead-workers",
            interval,
            lambda conn, now: close_dead_worker_connections(conn, grace, now),
            # after an outage or a start-up every worker's last report is old: the
            # workers get a whole grace period to report again before any is judged dead
            settle=settings.worker_grace,
        ),
        Job(
            "session-cleanup",
            max(interval, min(60.0, settings.session_retention / 4)),
            lambda conn, now: delete_old_sessions(conn, now, retention, deleted_retention),
        ),
    ]


def delete_old_sessions(
    conn: Connection, now: datetime, retention: timedelta, deleted_retention: timedelta
) -> int:
    """Delete up to CLEANUP_BATCH sessions terminated before ``now - retention``, and
    deleted-item notes older than ``deleted_retention``. Returns the sessions deleted."""
    s = t.sessions.c
    old = [
        row.id
        for row in conn.execute(
            select(s.id)
            .where(s.status == "terminated", s.updated_time < now - retention)
            .order_by(s.updated_time)
            .limit(CLEANUP_BATCH)
        )
    ]
    if old:
        note_deleted(conn, now, "sessions", t.sessions, s.id.in_(old))
        # their connections and states go with them (ON DELETE CASCADE)
        conn.execute(delete(t.sessions).where(s.id.in_(old)))
    conn.execute(
        delete(t.deleted_items).where(t.deleted_items.c.delete_time < now - deleted_retention)
    )
    return len(old)


def _claim(conn: Connection, job: Job, now: datetime) -> bool:
    """Lock the job's row; True if this controller should run it now."""
    stmt = select(t.job_runs).where(t.job_runs.c.name == job.name)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    row = conn.execute(stmt).first()
    if row is None:  # first run anywhere, or another controller holds the row right now
        exists = conn.execute(
            select(t.job_runs.c.name).where(t.job_runs.c.name == job.name)
        ).first()
        if exists is not None:
            return False
        try:
            with conn.begin_nested():
                conn.execute(insert(t.job_runs).values(name=job.name, next_run_time=now, runs=0))
        except IntegrityError:  # another controller inserted it first
            return False
        return _claim(conn, job, now)
    return row.next_run_time <= now


def run_job(engine: Engine, job: Job, controller: str) -> Any:
    """One tick of ``job``: run it in one transaction if it is due and not running
    elsewhere. Returns the job's result, or None when it did not run."""
    with engine.begin() as conn:
        now = utcnow()
        if not _claim(conn, job, now):
            return None
        result = job.run(conn, now)
        conn.execute(
            update(t.job_runs)
            .where(t.job_runs.c.name == job.name)
            .values(
                next_run_time=now + timedelta(seconds=job.interval),
                last_run_time=now,
                last_controller=controller,
                runs=t.job_runs.c.runs + 1,
            )
        )
    if result:
        log.info("job %s: %s", job.name, result if isinstance(result, int) else len(result))
    return result


async def job_loop(engine: Engine, settings: Settings) -> None:
    """Tick every job every ``job_interval`` seconds until cancelled. A failing job (the
    database restarting, say) is logged once per outage and never stops the others.

    A job with a ``settle`` time (dead-workers: a worker grace period) waits until this
    controller has reached the database without a failure for that long."""
    loop = asyncio.get_running_loop()
    failing: set[str] = set()
    reachable_since = loop.time()
    jobs = jobs_for(settings)
    while True:
        for job in jobs:
            if loop.time() - reachable_since < job.settle:
                continue
            try:
                await asyncio.to_thread(run_job, engine, job, settings.name)
            except Exception as exc:  # noqa: BLE001 - a failed run must not stop later ones
                if database_unreachable(exc):
                    reachable_since = loop.time()
                if job.name not in failing:
                    log.warning("job %s failed, will retry: %s", job.name, error_line(exc))
                    failing.add(job.name)
                else:
                    log.debug("job %s failed again", job.name, exc_info=True)
            else:
                if job.name in failing:
                    log.info("job %s running again", job.name)
                    failing.discard(job.name)
        await asyncio.sleep(settings.job_interval)
