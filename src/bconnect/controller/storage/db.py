"""Engine creation and schema migration (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, text

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory
    from sqlalchemy.pool import PoolProxiedConnection

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def database_unreachable(exc: BaseException) -> bool:
    """Did this error come from not reaching the database (down, restarting, connection
    lost) rather than from the statement? The API answers those 503, the jobs wait."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def error_line(exc: BaseException) -> str:
    """An error in one line for a log or a message: the first non-blank line of the
    driver's own error when SQLAlchemy wraps one (no SQL, no parameters), else of the
    error itself; its type's name when it says nothing."""
    reason = getattr(exc, "orig", None) or exc
    first = next((line for line in str(reason).splitlines() if line.strip()), "")
    return first.strip() or type(exc).__name__


class SchemaError(RuntimeError):
    """The database schema cannot be used by this bconnect as it is."""


class SchemaTooNewError(SchemaError):
    """The database was migrated by a newer bconnect than this one."""


class SchemaMissingError(SchemaError):
    """The database has no bconnect schema yet (`bconnect database init`)."""


class SchemaOutdatedError(SchemaError):
    """The schema is older than this bconnect (`bconnect database migrate`)."""


# pg_advisory_lock key: one migration at a time across every process on the database
_MIGRATION_LOCK = 0x62636F6E6E656374  # "bconnect"


_USERINFO_WITH_AT = re.compile(
    r"^(?P<scheme>[\w+.-]+://)(?P<userinfo>[^/?#]*@[^/?#]*)@(?P<rest>.*)$"
)


def normalize_url(url: str) -> str:
    """Accept a bare path, ``sqlite:///…`` or ``postgresql://…`` and return an SQLAlchemy
    URL. A password holding an unencoded "@" is percent-encoded (the last "@" before the
    host ends it), so it neither breaks the host name nor shows in its errors."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    match = _USERINFO_WITH_AT.match(url)
    if match:
        user, sep, password = match["userinfo"].partition(":")
        if sep:
            url = f"{match['scheme']}{user}:{quote(password, safe='')}@{match['rest']}"
    return url


# SQLite's busy handler sleeps with a growing back-off (up to 100 ms a try) while another
# connection holds the write lock, which makes tail latencies of concurrent writers huge.
# Writers of one process therefore queue on a lock of their own, taken just before
# BEGIN IMMEDIATE and released once COMMIT/ROLLBACK has run, so that within a process
# only one connection ever asks SQLite for the write lock; other processes on the same
# file still wait on busy_timeout. One lock per database file (engines on the same file
# share it); never held longer than busy_timeout is waited for (then BEGIN IMMEDIATE
# falls back to SQLite's own waiting, as without the lock).
_BUSY_TIMEOUT_S = 30
_writer_locks: dict[str, threading.Lock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(database: str | None) -> threading.Lock:
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return threading.Lock()  # a private database: a lock of its own
    key = os.path.realpath(database)
    with _writer_locks_guard:
        return _writer_locks.setdefault(key, threading.Lock())


class _SQLiteConnection(sqlite3.Connection):
    """pysqlite connection that remembers whether it holds the process's writer lock."""

    bconnect_writer_lock: threading.Lock | None = None


def _release_writer_lock(dbapi_conn: object) -> None:
    # a pool proxy or the raw one; either way an _SQLiteConnection underneath
    raw: Any = getattr(dbapi_conn, "dbapi_connection", dbapi_conn)
    lock = getattr(raw, "bconnect_writer_lock", None)
    if lock is not None:
        raw.bconnect_writer_lock = None
        lock.release()


def _private_file(path: str | None) -> None:
    """A new database file is made readable by its owner only (it holds secrets; SQLite
    gives its -wal and -shm files the same mode); an existing one that others may read
    is reported."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        mode = os.stat(path).st_mode
        if mode & 0o077:
            log.warning(
                "%s can be read by other users (mode %o): chmod 600 it; it holds secrets",
                path,
                mode & 0o777,
            )
    except OSError:
        pass  # a directory that does not exist: SQLite says so, better


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={
            "check_same_thread": False,
            "timeout": _BUSY_TIMEOUT_S,
            "factory": _SQLiteConnection,
        },
    )
    _private_file(engine.url.database)
    writer_lock = _writer_lock(engine.url.database)
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's own
        # transaction handling would start deferred transactions behind our back).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "foreign_keys=ON",
            "synchronous=NORMAL",
            f"busy_timeout={_BUSY_TIMEOUT_S * 1000}",
        ):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn) -> None:  # noqa: ANN001
        # Writers take the lock at BEGIN so concurrent writers queue (on the process's
        # writer lock, then on busy_timeout) instead of failing on a read-to-write lock
        # upgrade; readers (marked by the caller) start a plain snapshot that blocks
        # nobody under WAL.
        if conn.get_execution_options().get("bconnect_read_only"):
            conn.exec_driver_sql("BEGIN")
            return
        raw = conn.connection.dbapi_connection
        if raw.bconnect_writer_lock is None and writer_lock.acquire(timeout=_BUSY_TIMEOUT_S):
            raw.bconnect_writer_lock = writer_lock
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release_writer_lock(raw)
            raise

    # The lock is released only after COMMIT/ROLLBACK has run (SQLAlchemy's commit and
    # rollback events fire before), so the next writer's BEGIN IMMEDIATE never finds
    # the database still locked and never sleeps in the busy handler.
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def _do_commit(dbapi_connection: PoolProxiedConnection) -> None:
        try:
            do_commit(dbapi_connection)
        finally:
            _release_writer_lock(dbapi_connection)

    def _do_rollback(dbapi_connection: PoolProxiedConnection) -> None:
        try:
            do_rollback(dbapi_connection)
        finally:
            _release_writer_lock(dbapi_connection)

    dialect.do_commit = _do_commit  # type: ignore[method-assign]
    dialect.do_rollback = _do_rollback  # type: ignore[method-assign]

    # safety nets: a connection closed or invalidated mid-transaction lets go of it too
    for name in ("checkin", "close", "invalidate", "soft_invalidate"):
        event.listen(engine, name, lambda dbapi_conn, *_args: _release_writer_lock(dbapi_conn))
    return engine


_SECRET_QUERY = re.compile(r"([?&][^=&]*password[^=&]*=)[^&]*", re.IGNORECASE)


def display_database_url(url: str | object) -> str:
    """The database URL as it may be shown: normalized, its password hidden, in the
    user part (which may hold an unencoded "@") and in query parameters (``password``,
    ``sslpassword``)."""
    text = normalize_url(str(url) if not isinstance(url, str) else url)
    if not isinstance(url, str):  # an engine's URL object
        text = url.render_as_string(hide_password=True)  # type: ignore[attr-defined]
    # up to the last "@" before the path: a password may hold an unencoded "@"
    masked = re.sub(r"(://[^:/@]*:)[^/]*@", r"\1***@", text)
    masked = _SECRET_QUERY.sub(r"\1***", masked)
    try:
        from sqlalchemy.engine import make_url

        return _SECRET_QUERY.sub(r"\1***", make_url(masked).render_as_string(hide_password=True))
    except Exception:  # noqa: BLE001 - unparseable: show it masked as it is
        return masked


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        # an unreachable database fails fast (the API answers 503) instead of hanging
        connect_args={"connect_timeout": 5},
        # errors never carry the statement's parameters (they can hold secrets)
        hide_parameters=True,
    )


def _alembic_config(engine: Engine):  # noqa: ANN202
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()


def _known(script, revision: str) -> bool:  # noqa: ANN001
    from alembic.util import CommandError

    try:
        return script.get_revision(revision) is not None
    except (CommandError, KeyError):
        return False


def _refuse_newer(script: ScriptDirectory, current: str) -> None:
    """Raise SchemaTooNewError when this code does not know revision ``current``."""
    if not _known(script, current):
        raise SchemaTooNewError(
            f"database schema revision {current} is newer than this bconnect "
            f"(knows up to {script.get_current_head()}); upgrade bconnect"
        )


def check_schema(engine: Engine) -> None:
    """Raise unless the schema is exactly this bconnect's (for `bconnect server`, which
    leaves migrations to `bconnect database init|migrate`, as Boundary's server does)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(engine))
    current, head = current_revision(engine), script.get_current_head()
    if current is None:
        raise SchemaMissingError(
            "the database is not initialized: run `bconnect database init` first"
        )
    _refuse_newer(script, current)
    if current != head:
        raise SchemaOutdatedError(
            f"database schema revision {current} is older than this bconnect ({head}): "
            "run `bconnect database migrate`"
        )


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; refuse a schema newer than this code.
    On PostgreSQL an advisory lock makes concurrent migrations wait for each other."""
    if engine.dialect.name != "postgresql":
        _migrate(engine)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
        try:
            _migrate(engine)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
            conn.commit()


def _migrate(engine: Engine) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(engine)
    script = ScriptDirectory.from_config(cfg)
    current = current_revision(engine)
    if current is not None:
        _refuse_newer(script, current)
    if current != script.get_current_head():
        log.info("migrating database schema %s -> %s", current, script.get_current_head())
        command.upgrade(cfg, "head")
