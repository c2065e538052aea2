"""The periodic jobs' scheduling: with several controllers on one database each job runs
once per interval, a job another controller is running is skipped, a failed run is
retried; and the session clean-up job's retention. On SQLite and PostgreSQL, with two
engines standing for two controllers."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update
from support.constants import GUARD
from support.controller import new_database

from bconnect.controller.context import utcnow
from bconnect.controller.jobs import Job, delete_old_sessions, run_job
from bconnect.controller.seed import ensure_global_scope
from bconnect.controller.storage import schema as t
from bconnect.controller.storage.db import make_engine, migrate

pytestmark = pytest.mark.all_databases


@pytest.fixture
def engines(request, db_backend, tmp_path):  # noqa: ANN001, ANN201
    url = new_database(request, db_backend, tmp_path)
    first, second = make_engine(url), make_engine(url)
    migrate(first)
    with first.begin() as conn:
        ensure_global_scope(conn, utcnow())
    yield first, second
    first.dispose()
    second.dispose()


def job_row(engine, name: str):  # noqa: ANN001, ANN201
    with engine.connect() as conn:
        return conn.execute(select(t.job_runs).where(t.job_runs.c.name == name)).first()


def test_a_job_runs_once_per_interval_across_controllers(engines) -> None:
    a, b = engines
    calls: list[str] = []
    job = Job("count", 3600, lambda conn, now: calls.append("ran") or 1)
    assert run_job(a, job, "controller-a") == 1
    assert run_job(b, job, "controller-b") is None  # not due yet, whoever asks
    assert run_job(a, job, "controller-a") is None
    row = job_row(a, "count")
    assert (row.runs, row.last_controller, calls) == (1, "controller-a", ["ran"])
    with a.begin() as conn:  # its time has come
        conn.execute(update(t.job_runs).values(next_run_time=utcnow() - timedelta(seconds=1)))
    assert run_job(b, job, "controller-b") == 1
    row = job_row(a, "count")
    assert (row.runs, row.last_controller, len(calls)) == (2, "controller-b", 2)


def test_a_job_running_elsewhere_is_not_run_again(engines, db_backend) -> None:
    a, b = engines
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(conn, now):  # noqa: ANN001, ANN202
        calls.append("slow")
        started.set()
        assert release.wait(GUARD)
        return 1

    job = Job("slow", 3600, slow)
    with a.begin() as conn:  # the row exists and the job is due for everyone
        conn.execute(insert(t.job_runs).values(name="slow", next_run_time=utcnow(), runs=0))
    first = threading.Thread(target=run_job, args=(a, job, "controller-a"))
    first.start()
    try:
        assert started.wait(GUARD)
        if db_backend == "postgresql":
            # A holds the row: B skips it at once, while A is still running the job
            assert run_job(b, job, "controller-b") is None
            assert first.is_alive() and calls == ["slow"]
            release.set()
        else:
            # SQLite has one writer: B waits for A's transaction, then finds it not due
            result: list[object] = []
            second = threading.Thread(target=lambda: result.append(run_job(b, job, "b")))
            second.start()
            release.set()
            second.join(GUARD)
            assert result == [None]
    finally:
        release.set()
        first.join(GUARD)
    assert calls == ["slow"]
    assert job_row(a, "slow").runs == 1


def test_a_failed_run_is_rolled_back_and_retried(engines) -> None:
    a, _ = engines
    attempts: list[int] = []

    def flaky(conn, now):  # noqa: ANN001, ANN202
        attempts.append(1)
        conn.execute(
            insert(t.deleted_items).values(
                id="x_1", collection="c", scope_id="global", delete_time=now
            )
        )
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return 1

    job = Job("flaky", 3600, flaky)
    with pytest.raises(RuntimeError):
        run_job(a, job, "controller-a")
    with a.connect() as conn:  # nothing of the failed run stayed
        assert conn.execute(select(t.deleted_items)).all() == []
    assert run_job(a, job, "controller-a") == 1
    assert job_row(a, "flaky").runs == 1


def _session(conn, sid: str, status: str, ended, user: str = "u_1234567890"):  # noqa: ANN001, ANN202
    conn.execute(
        insert(t.sessions).values(
            id=sid,
            scope_id="global",
            target_id="ttcp_1",
            type="tcp",
            user_id=user,
            auth_token_id="at_1",
            endpoint="tcp://127.0.0.1:22",
            expiration_time=ended + timedelta(hours=8),
            connection_limit=-1,
            certificate=b"c",
            private_key=b"k",
            status=status,
            created_time=ended - timedelta(minutes=5),
            updated_time=ended,
            version=3,
        )
    )
    conn.execute(insert(t.session_states).values(session_id=sid, status=status, start_time=ended))
    conn.execute(
        insert(t.session_connections).values(
            id=f"sc_{sid}",
            session_id=sid,
            status="closed",
            closed_reason="closed by end-user",
            created_time=ended,
            updated_time=ended,
        )
    )


def test_cleanup_deletes_only_sessions_terminated_past_the_retention(engines) -> None:
    a, _ = engines
    now = utcnow()
    with a.begin() as conn:
        _session(conn, "s_old", "terminated", now - timedelta(hours=2))
        _session(conn, "s_recent", "terminated", now - timedelta(minutes=10))
        _session(conn, "s_live", "active", now - timedelta(hours=2))
        conn.execute(
            insert(t.deleted_items).values(
                id="h_ancient",
                collection="hosts",
                scope_id="global",
                delete_time=now - timedelta(days=40),
            )
        )
    with a.begin() as conn:
        gone = delete_old_sessions(conn, now, timedelta(hours=1), timedelta(days=30))
    assert gone == 1
    with a.connect() as conn:
        ids = {r.id for r in conn.execute(select(t.sessions.c.id))}
        assert ids == {"s_recent", "s_live"}
        left = {r.session_id for r in conn.execute(select(t.session_connections.c.session_id))}
        assert left == {"s_recent", "s_live"}
        states = {r.session_id for r in conn.execute(select(t.session_states.c.session_id))}
        assert states == {"s_recent", "s_live"}
        noted = conn.execute(select(t.deleted_items)).all()
    # the deleted session is noted for list refreshes (with its owner); old notes go
    assert [(r.id, r.collection, r.owner_id) for r in noted] == [
        ("s_old", "sessions", "u_1234567890")
    ]
