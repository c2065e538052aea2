"""aliases

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:30:00
"""

import sqlalchemy as sa
from alembic import op

from bconnect.controller.storage.schema import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aliases",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("scope_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=253), nullable=False),
        sa.Column("value_key", sa.String(length=253), nullable=False),
        sa.Column("destination_id", sa.String(length=32), nullable=True),
        sa.Column("host_id", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_time", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_time", UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["targets.id"],
            name=op.f("fk_aliases_destination_id_targets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["scope_id"], ["scopes.id"], name=op.f("fk_aliases_scope_id_scopes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aliases")),
        sa.UniqueConstraint("scope_id", "name", name="uq_aliases_scope_name"),
        sa.UniqueConstraint("value_key", name="uq_aliases_value_key"),
    )
    with op.batch_alter_table("aliases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_aliases_destination_id"), ["destination_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_aliases_scope_id"), ["scope_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_aliases_scope_id"))
        batch_op.drop_index(batch_op.f("ix_aliases_destination_id"))
    op.drop_table("aliases")
