"""Admin API keys (stored as SHA-256), and when a user was deleted.

A deleted user's row stays, emptied of personal data: its sessions (revoked at deletion) must
outlive the access tokens issued for them, or the proxy would forget the revocation, and the
audit trail keeps pointing at an id that names no one.

Revision ID: e3b9d1a7c640
Revises: c7e4a1f3d582
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e3b9d1a7c640"
down_revision: str | Sequence[str] | None = "c7e4a1f3d582"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy of ``users`` on SQLite: it would cascade into memberships).
    op.add_column("users", sa.Column("deleted_at", sa.DateTime(timezone=True)))
    # After a downgrade and this upgrade again, the rows deleted in between are tombstones still.
    op.execute(
        "UPDATE users SET deleted_at = updated_at WHERE email_normalized LIKE 'deleted-%@deleted.invalid'"
    )
    op.create_table(
        "admin_keys",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_admin_keys_key_hash")),
    )


def downgrade() -> None:
    op.drop_table("admin_keys")
    op.execute("ALTER TABLE users DROP COLUMN deleted_at")
