"""ssh targets: the worker's host key per target, upstream known hosts, recording switches

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 04:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ssh_host_key", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("ssh_host_key_public", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("known_hosts", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("enable_session_recording", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("record_input", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("storage_bucket_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("targets", schema=None) as batch_op:
        for column in (
            "storage_bucket_id",
            "record_input",
            "enable_session_recording",
            "known_hosts",
            "ssh_host_key_public",
            "ssh_host_key",
        ):
            batch_op.drop_column(column)
