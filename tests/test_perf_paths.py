"""The SQLite writer lock (storage/db.py): concurrent writers of one process queue on
it instead of sleeping in SQLite's busy handler, and it is always let go of."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from bconnect.controller.storage import db


def _engine(tmp_path: Path):  # noqa: ANN202
    engine = db.make_engine(str(tmp_path / "w.db"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER NOT NULL)"))
    return engine


def _lock(engine) -> threading.Lock:  # noqa: ANN001
    return db._writer_lock(engine.url.database)


def test_concurrent_writers_are_serialized_without_busy_waits(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    inside = 0
    overlap = False
    guard = threading.Lock()
    failures: list[BaseException] = []

    def writer() -> None:
        nonlocal inside, overlap
        try:
            for _ in range(40):
                with engine.begin() as conn:
                    with guard:
                        inside += 1
                        overlap = overlap or inside > 1
                    conn.execute(text("INSERT INTO t (n) VALUES (1)"))
                    with guard:
                        inside -= 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    assert not overlap  # one writer at a time inside the process
    # 320 tiny transactions: with busy-handler sleeps (up to 100 ms each) this takes
    # seconds; queued on the lock it takes well under one (a hang guard, loosely)
    assert time.monotonic() - started < 30
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 320
    assert not _lock(engine).locked()
    engine.dispose()


def test_lock_released_on_rollback_error_and_close(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    lock = _lock(engine)
    with pytest.raises(ZeroDivisionError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t (n) VALUES (1)"))
        assert lock.locked()
        raise ZeroDivisionError
    assert not lock.locked()
    # a statement error inside the transaction
    with pytest.raises(Exception, match="no such table"), engine.begin() as conn:
        conn.execute(text("INSERT INTO missing VALUES (1)"))
    assert not lock.locked()
    # autobegin, then the connection is closed without commit or rollback
    conn = engine.connect()
    conn.execute(text("INSERT INTO t (n) VALUES (2)"))
    assert lock.locked()
    conn.close()
    assert not lock.locked()
    # invalidated mid-transaction
    conn = engine.connect()
    conn.execute(text("INSERT INTO t (n) VALUES (3)"))
    conn.invalidate()
    assert not lock.locked()
    conn.close()
    with engine.connect() as check:
        assert check.execute(text("SELECT count(*) FROM t")).scalar() == 0
    engine.dispose()


def test_readers_take_no_lock_and_engines_on_one_file_share_it(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    other = db.make_engine(str(tmp_path / "w.db"))
    lock = _lock(engine)
    assert _lock(other) is lock
    with engine.connect() as reader:
        reader.execution_options(bconnect_read_only=True)
        reader.execute(text("SELECT count(*) FROM t"))
        assert not lock.locked()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (n) VALUES (1)"))
        done = threading.Event()

        def second_engine_writer() -> None:
            with other.begin() as conn2:
                conn2.execute(text("INSERT INTO t (n) VALUES (2)"))
            done.set()

        thread = threading.Thread(target=second_engine_writer)
        thread.start()
        assert not done.wait(0.3)  # queued on the shared lock, not on SQLite
    thread.join(30)
    assert done.is_set()
    assert not lock.locked()
    engine.dispose()
    other.dispose()
