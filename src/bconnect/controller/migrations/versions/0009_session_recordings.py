"""storage buckets, session recordings and their channel recordings

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 05:00:00
"""

import sqlalchemy as sa
from alembic import op

from bconnect.controller.storage.schema import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _common() -> list[sa.Column]:
    return [
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_time", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_time", UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "storage_buckets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("scope_id", sa.String(length=32), nullable=False),
        sa.Column("plugin_name", sa.String(length=32), nullable=False),
        sa.Column("bucket_name", sa.String(length=1024), nullable=False),
        sa.Column("bucket_prefix", sa.String(length=1024), nullable=True),
        sa.Column("worker_filter", sa.Text(), nullable=True),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("secrets_hmac", sa.String(length=64), nullable=True),
        *_common(),
        sa.ForeignKeyConstraint(
            ["scope_id"], ["scopes.id"], name="fk_storage_buckets_scope_id_scopes"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_storage_buckets"),
        sa.UniqueConstraint("scope_id", "name", name="uq_storage_buckets_scope_name"),
    )
    op.create_index("ix_storage_buckets_scope_id", "storage_buckets", ["scope_id"])
    op.create_table(
        "session_recordings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("scope_id", sa.String(length=32), nullable=False),
        sa.Column("storage_bucket_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=32), nullable=False),
        sa.Column("target_name", sa.String(length=128), nullable=True),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("user_name", sa.String(length=128), nullable=True),
        sa.Column("endpoint", sa.String(length=512), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("start_time", UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_time", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_time", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_time", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scope_id"], ["scopes.id"], name="fk_session_recordings_scope_id_scopes"
        ),
        sa.ForeignKeyConstraint(
            ["storage_bucket_id"],
            ["storage_buckets.id"],
            name="fk_session_recordings_storage_bucket_id_storage_buckets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_session_recordings"),
    )
    op.create_index("ix_session_recordings_scope_id", "session_recordings", ["scope_id"])
    op.create_index(
        "ix_session_recordings_storage_bucket_id", "session_recordings", ["storage_bucket_id"]
    )
    op.create_index("ix_session_recordings_session_id", "session_recordings", ["session_id"])
    op.create_index("ix_session_recordings_listing", "session_recordings", ["created_time", "id"])
    op.create_table(
        "channel_recordings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_recording_id", sa.String(length=32), nullable=False),
        sa.Column("connection_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("object_key", sa.Text(), nullable=False),
        sa.Column("mime_type", sa.String(length=64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("start_time", UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_time", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_time", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_time", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_recording_id"],
            ["session_recordings.id"],
            name="fk_channel_recordings_session_recording_id_session_recordings",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_channel_recordings"),
    )
    op.create_index(
        "ix_channel_recordings_session_recording_id",
        "channel_recordings",
        ["session_recording_id"],
    )


def downgrade() -> None:
    op.drop_table("channel_recordings")
    op.drop_table("session_recordings")
    op.drop_table("storage_buckets")
