"""Storage: the migrations build exactly the declared schema, SQLite runs in WAL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from bconnect.controller.storage.db import (
    SchemaTooNewError,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    normalize_url,
)
from bconnect.controller.storage.schema import metadata


@pytest.mark.all_databases
def test_migrations_match_the_schema(request, db_backend: str, tmp_path: Path) -> None:  # noqa: ANN001
    if db_backend == "postgresql":
        engine = make_engine(request.getfixturevalue("pg").new_database(migrated=False))
    else:
        engine = make_engine(str(tmp_path / "m.db"))
    migrate(engine)
    assert current_revision(engine) == head_revision(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], "schema.py changed without a migration: " + repr(diff)[:2000]
    migrate(engine)  # idempotent
    # and back down to nothing, and up again: every step reverses
    from alembic import command

    from bconnect.controller.storage.db import _alembic_config

    command.downgrade(_alembic_config(engine), "base")
    assert current_revision(engine) is None
    migrate(engine)
    assert current_revision(engine) == head_revision(engine)
    engine.dispose()


def test_sqlite_is_wal_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(str(tmp_path / "w.db"))
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    engine = make_engine(str(tmp_path / "n.db"))
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(SchemaTooNewError, match="newer than this bconnect"):
        migrate(engine)
    engine.dispose()


def test_normalize_url() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert normalize_url("/tmp/a.db") == "sqlite:////tmp/a.db"


@pytest.mark.all_databases
def test_migration_0004_gives_old_databases_boundarys_auth_token_grants(
    request,
    db_backend: str,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    """A database made before 0004 (anonymous callers could list auth tokens) keeps its
    roles but loses that grant; authenticated users gain it and list-resolvable-aliases."""
    from alembic import command
    from sqlalchemy import insert, select

    from bconnect.controller.storage import schema as t
    from bconnect.controller.storage.db import _alembic_config

    if db_backend == "postgresql":
        engine = make_engine(request.getfixturevalue("pg").new_database(migrated=False))
    else:
        engine = make_engine(str(tmp_path / "old.db"))
    command.upgrade(_alembic_config(engine), "0003")
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:  # what ensure_global_scope made before 0004
        conn.execute(
            text(
                "INSERT INTO scopes (id, type, name, created_time, updated_time, version) "
                "VALUES ('global', 'global', 'global', :now, :now, 1)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO roles (id, scope_id, name, created_time, updated_time, version) "
                "VALUES ('r_default_global', 'global', 'Login and Default Grants', :now, :now, 1)"
            ),
            {"now": now},
        )
        conn.execute(
            insert(t.role_grants).values(
                role_id="r_default_global",
                position=3,
                canonical_grant="ids=*;type=auth-token;actions=delete:self,list,read:self",
                raw_grant="ids=*;type=auth-token;actions=list,read:self,delete:self",
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        grants = {
            (r.role_id, r.canonical_grant)
            for r in conn.execute(select(t.role_grants.c.role_id, t.role_grants.c.canonical_grant))
        }
        principals = set(conn.execute(select(t.role_principals)).all())
    assert grants == {
        ("r_default_global", "ids=*;type=auth-token;actions=delete:self,read:self"),
        ("r_default_authn", "ids=*;type=auth-token;actions=list"),
        ("r_default_authn", "ids={{.User.Id}};type=user;actions=list-resolvable-aliases"),
    }
    assert ("r_default_authn", "u_auth") in principals
    engine.dispose()
