"""Login throttling per email, and the server secret that derives refresh token successors.

Revision ID: 7c1f0e2a9b3d
Revises: 4a3b8b28572c
Create Date: 2026-11-25
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "7c1f0e2a9b3d"
down_revision: str | Sequence[str] | None = "4a3b8b28572c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("last_lockout_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("email_key", name=op.f("pk_login_throttles")),
    )
    secrets_table = op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )
    # Made here, once per store, so that every replica shares it without any coordination.
    op.bulk_insert(
        secrets_table,
        [
            {
                "name": "refresh_successor_key",
                "value": secrets.token_hex(32),
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.drop_table("login_throttles")
