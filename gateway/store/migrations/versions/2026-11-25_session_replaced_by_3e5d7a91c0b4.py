"""Sessions remember the session that replaced them (switch-organization).

Revision ID: 3e5d7a91c0b4
Revises: 7c1f0e2a9b3d
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3e5d7a91c0b4"
down_revision: str | Sequence[str] | None = "7c1f0e2a9b3d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(sa.Column("replaced_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_column("replaced_by")
