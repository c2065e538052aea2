"""worker identities: activation tokens, and the workers a session was offered

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("activation_token_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worker_ids", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("worker_ids")
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("activation_token_hash")
