"""Session recordings at the controller: the index of what workers wrote to storage
buckets (the recordings themselves are objects in the bucket).

A session on an ssh target with recording on gets its session recording (``sr_``) when
it is authorized. Each shell, exec or sftp channel the worker serves becomes a channel
recording (``chr_``): registered when the channel starts (``started``, with the object
key the worker writes), finished with its size and SHA-256 (``available``), or
``incomplete`` when the worker stopped writing it (a write error, or a worker that died:
a channel still ``started`` once its session has terminated). Connection recordings
(``cr_``) group a connection's channels; their id is the connection's with ``cr_``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from bconnect.controller import errors
from bconnect.controller.kms import Keyring
from bconnect.controller.resources import drop_none, fmt_time
from bconnect.controller.storage import schema as t
from bconnect.ids import new_id

__all__ = [
    "ASCIICAST",
    "bucket_settings",
    "bucket_worker_filter",
    "channel_finished",
    "channel_started",
    "create_session_recording",
    "render_recording",
]

ASCIICAST = "application/x-asciicast"
STARTED, AVAILABLE, INCOMPLETE = "started", "available", "incomplete"


def open_bucket_secrets(keyring: Keyring, row: Any) -> dict[str, Any]:
    if not row.secrets:
        return {}
    text = keyring.decrypt_text(row.secrets, "storage_buckets", "secrets", row.id)
    return dict(json.loads(text))


def seal_bucket_secrets(keyring: Keyring, bucket_id: str, secrets: dict[str, Any]) -> str:
    return keyring.encrypt_text(json.dumps(secrets), "storage_buckets", "secrets", bucket_id)


def bucket_worker_filter(ctx: Any, target: Any) -> str | None:
    """The worker filter of the bucket a recording target writes to: only workers that
    match it (and the target's own filter) may serve its sessions."""
    if target.type != "ssh" or not target.enable_session_recording or not target.storage_bucket_id:
        return None
    return ctx.conn.execute(
        select(t.storage_buckets.c.worker_filter).where(
            t.storage_buckets.c.id == target.storage_bucket_id
        )
    ).scalar()


def create_session_recording(ctx: Any, target: Any, session: Any) -> str | None:
    """The recording of a session being authorized on ``target`` (None: not recorded).
    A target that records without a usable bucket refuses the session."""
    if target.type != "ssh" or not target.enable_session_recording:
        return None
    bucket = None
    if target.storage_bucket_id:
        bucket = ctx.conn.execute(
            select(t.storage_buckets).where(t.storage_buckets.c.id == target.storage_bucket_id)
        ).first()
    if bucket is None:
        raise errors.FailedPrecondition(
            f"Target {target.id} records its sessions but its storage bucket "
            f"{target.storage_bucket_id or '(none)'} does not exist."
        )
    user = ctx.conn.execute(select(t.users.c.name).where(t.users.c.id == ctx.user_id)).first()
    recording_id = new_id("sr")
    ctx.conn.execute(
        insert(t.session_recordings).values(
            id=recording_id,
            scope_id=bucket.scope_id,
            storage_bucket_id=bucket.id,
            session_id=session.id,
            target_id=target.id,
            target_name=target.name,
            project_id=target.scope_id,
            user_id=ctx.user_id,
            user_name=user.name if user is not None else None,
            endpoint=session.endpoint,
            state=STARTED,
            start_time=ctx.now,
            created_time=ctx.now,
            updated_time=ctx.now,
        )
    )
    return recording_id


def bucket_settings(conn: Connection, keyring: Keyring, session_id: str) -> dict[str, Any] | None:
    """What the worker needs to record ``session_id`` (None: not recorded)."""
    row = conn.execute(
        select(t.session_recordings, t.targets.c.record_input)
        .join(t.targets, t.targets.c.id == t.session_recordings.c.target_id, isouter=True)
        .where(t.session_recordings.c.session_id == session_id)
    ).first()
    if row is None:
        return None
    bucket = conn.execute(
        select(t.storage_buckets).where(t.storage_buckets.c.id == row.storage_bucket_id)
    ).one()
    return {
        "session_recording_id": row.id,
        "record_input": bool(row.record_input),
        "bucket": {
            "id": bucket.id,
            "plugin_name": bucket.plugin_name,
            "bucket_name": bucket.bucket_name,
            "bucket_prefix": bucket.bucket_prefix or "",
            "attributes": json.loads(bucket.attributes or "{}"),
            "secrets": open_bucket_secrets(keyring, bucket),
        },
    }


def channel_started(
    conn: Connection,
    recording_id: str,
    connection_id: str,
    channel_type: str,
    command: str | None,
    now: datetime,
) -> dict[str, str]:
    """Register a channel; returns its id and the object key the worker writes."""
    row = conn.execute(
        select(t.session_recordings.c.id, t.session_recordings.c.session_id).where(
            t.session_recordings.c.id == recording_id
        )
    ).first()
    if row is None:
        raise errors.not_found(recording_id)
    channel_id = new_id("chr")
    key = f"{row.session_id}/{recording_id}/{connection_id}/{channel_id}.cast"
    conn.execute(
        insert(t.channel_recordings).values(
            id=channel_id,
            session_recording_id=recording_id,
            connection_id=connection_id,
            type=channel_type,
            command=command,
            object_key=key,
            mime_type=ASCIICAST,
            bytes=0,
            state=STARTED,
            start_time=now,
            created_time=now,
            updated_time=now,
        )
    )
    return {"id": channel_id, "object_key": key}


def channel_finished(
    conn: Connection,
    channel_id: str,
    size: int,
    sha256: str | None,
    error: str | None,
    now: datetime,
) -> bool:
    """The worker finished (or gave up) writing a channel's object."""
    done = conn.execute(
        update(t.channel_recordings)
        .where(t.channel_recordings.c.id == channel_id, t.channel_recordings.c.state == STARTED)
        .values(
            bytes=size,
            sha256=sha256 if not error else None,
            error=error,
            state=INCOMPLETE if error or not sha256 else AVAILABLE,
            end_time=now,
            updated_time=now,
        )
    )
    if done.rowcount:
        recording = select(t.channel_recordings.c.session_recording_id).where(
            t.channel_recordings.c.id == channel_id
        )
        conn.execute(
            update(t.session_recordings)
            .where(t.session_recordings.c.id == recording.scalar_subquery())
            .values(end_time=now, updated_time=now)
        )
    return bool(done.rowcount)


def _duration(start: datetime | None, end: datetime | None) -> str | None:
    if start is None or end is None:
        return None
    return f"{(end - start).total_seconds():.6f}s"


def render_recording(ctx: Any, row: Any, *, details: bool) -> dict[str, Any]:
    """A session recording as the API shows it (with its channels when ``details``)."""
    session = ctx.conn.execute(
        select(t.sessions.c.status).where(t.sessions.c.id == row.session_id)
    ).first()
    ended = session is None or session.status == "terminated"
    channels = ctx.conn.execute(
        select(t.channel_recordings)
        .where(t.channel_recordings.c.session_recording_id == row.id)
        .order_by(t.channel_recordings.c.start_time, t.channel_recordings.c.id)
    ).all()
    states = [_channel_state(c, ended) for c in channels]
    state = STARTED if not ended else (INCOMPLETE if INCOMPLETE in states else AVAILABLE)
    doc: dict[str, Any] = {
        "session_id": row.session_id,
        "storage_bucket_id": row.storage_bucket_id,
        "type": "ssh",
        "state": state,
        "mime_types": [ASCIICAST],
        "bytes_down": sum(c.bytes for c in channels),
        "start_time": fmt_time(row.start_time),
        "end_time": fmt_time(row.end_time) if ended else None,
        "duration": _duration(row.start_time, row.end_time) if ended else None,
        "endpoint": row.endpoint,
        "created_time": fmt_time(row.created_time),
        "updated_time": fmt_time(row.updated_time),
        "create_time_values": {
            "user": drop_none({"id": row.user_id, "name": row.user_name}),
            "target": drop_none(
                {"id": row.target_id, "name": row.target_name, "scope_id": row.project_id}
            ),
        },
    }
    if details:
        by_connection: dict[str, list[dict[str, Any]]] = {}
        for channel, channel_state in zip(channels, states, strict=True):
            by_connection.setdefault(channel.connection_id, []).append(
                _render_channel(channel, channel_state)
            )
        doc["connection_recordings"] = [
            {
                "id": "cr_" + connection_id.split("_", 1)[-1],
                "connection_id": connection_id,
                "bytes_down": sum(c["bytes"] for c in entries),
                "start_time": entries[0]["start_time"],
                "channel_recordings": entries,
            }
            for connection_id, entries in by_connection.items()
        ]
    return drop_none(doc)


def _channel_state(row: Any, session_ended: bool) -> str:
    if row.state == STARTED and session_ended:
        return INCOMPLETE
    return str(row.state)


def _render_channel(row: Any, state: str) -> dict[str, Any]:
    return drop_none(
        {
            "id": row.id,
            "type": row.type,
            "command": row.command,
            "bytes": row.bytes,
            "sha256": row.sha256,
            "state": state,
            "error": row.error,
            "mime_types": [row.mime_type],
            "start_time": fmt_time(row.start_time),
            "end_time": fmt_time(row.end_time),
            "duration": _duration(row.start_time, row.end_time),
        }
    )
