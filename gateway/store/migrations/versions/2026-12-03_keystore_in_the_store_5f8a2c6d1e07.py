"""The database keystore (GATEWAY_KEYSTORE=database): signing keys and their one state row.

``signing_keys`` holds each key's manifest entry and its private key sealed under a key derived
from GATEWAY_KEYS_PASSPHRASE; ``keystore_state`` is one row (``id`` 1) with the version every
change bumps, the derivation's salt and the MAC of the manifest and version. The row is made here, empty, so the first ``gateway keys
init`` of two hosts at once lock the same row instead of racing to insert it.

Revision ID: 5f8a2c6d1e07
Revises: e3b9d1a7c640
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5f8a2c6d1e07"
down_revision: str | Sequence[str] | None = "e3b9d1a7c640"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "keystore_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("kdf", sa.String(length=64), nullable=True),
        sa.Column("kek_salt", sa.LargeBinary(), nullable=True),
        sa.Column("kek_check", sa.LargeBinary(), nullable=True),
        sa.Column("manifest_mac", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_keystore_state_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keystore_state")),
    )
    op.execute("INSERT INTO keystore_state (id, version) VALUES (1, 0)")
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "state IN ('next', 'current', 'retiring')", name=op.f("ck_signing_keys_state")
        ),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_table("keystore_state")
