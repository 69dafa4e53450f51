"""Link tokens (verify email, reset password, invitation), and when a user's email was verified.

Every user existing before this revision was created by an operator with ``gateway users
create`` (the only way there was), who vouched for the address: they are marked verified as of
their creation, so turning on GATEWAY_REQUIRE_VERIFIED_EMAIL locks none of them out. The CLI
keeps doing so for the users it creates; sign-up through the API leaves it NULL until the link
in the verification mail is followed.

Revision ID: c7e4a1f3d582
Revises: 9d2c4b6e8f10
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c7e4a1f3d582"
down_revision: str | Sequence[str] | None = "9d2c4b6e8f10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases: a batch (copy and rename) of ``users`` on SQLite
    # would drop the table, and with foreign keys on that cascades into every membership.
    op.add_column("users", sa.Column("email_verified_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE users SET email_verified_at = created_at")
    op.create_table(
        "link_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "purpose IN ('verify_email', 'password_reset', 'invitation')",
            name=op.f("ck_link_tokens_purpose"),
        ),
        sa.CheckConstraint(
            "role IN ('org_admin', 'org_client') OR role IS NULL",
            name=op.f("ck_link_tokens_role"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_link_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_link_tokens_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_link_tokens_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_link_tokens")),
    )
    op.create_index("ix_link_tokens_user_id", "link_tokens", ["user_id"])
    op.create_index("ix_link_tokens_email", "link_tokens", ["email"])
    op.create_index("ix_link_tokens_expires_at", "link_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_link_tokens_expires_at", table_name="link_tokens")
    op.drop_index("ix_link_tokens_email", table_name="link_tokens")
    op.drop_index("ix_link_tokens_user_id", table_name="link_tokens")
    op.drop_table("link_tokens")
    # SQLite has ALTER TABLE ... DROP COLUMN since 3.35 (see upgrade for why no batch).
    op.execute("ALTER TABLE users DROP COLUMN email_verified_at")
