"""Seed a `bconnect dev` database with many sessions, straight through the schema (the
API would take minutes for 100,000), for the list benchmark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

BATCH = 10_000


def seed_sessions(database_url: str, count: int) -> None:
    """Add ``count`` terminated sessions of the dev admin on the dev target."""
    from sqlalchemy import insert

    from bconnect.controller.storage import schema as t
    from bconnect.controller.storage.db import make_engine

    engine = make_engine(database_url)
    start = datetime.now(UTC) - timedelta(days=1)
    try:
        for first in range(0, count, BATCH):
            rows = []
            for i in range(first, min(count, first + BATCH)):
                created = start + timedelta(milliseconds=i)
                rows.append(
                    {
                        "id": f"s_bench{i:09d}",
                        "scope_id": "p_1234567890",
                        "target_id": "ttcp_1234567890",
                        "type": "tcp",
                        "user_id": "u_1234567890",
                        "auth_token_id": "at_bench",
                        "endpoint": "tcp://127.0.0.1:22",
                        "expiration_time": created + timedelta(hours=8),
                        "connection_limit": -1,
                        "certificate": b"-",
                        "private_key": b"-",
                        "status": "terminated",
                        "termination_reason": "closed by end-user",
                        "created_time": created,
                        "updated_time": created,
                        "version": 3,
                    }
                )
            with engine.begin() as conn:
                conn.execute(insert(t.sessions), rows)
    finally:
        engine.dispose()
