"""kms_keys: data keys that encrypt secrets at rest

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00

Existing secrets stay as they are (plaintext, which the controller still reads) until
`bconnect database rotate-keys` encrypts them: a migration has no root key.
"""

import sqlalchemy as sa
from alembic import op

from bconnect.controller.storage.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kms_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("root_key_id", sa.String(length=128), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_time", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kms_keys")),
    )


def downgrade() -> None:
    op.drop_table("kms_keys")
