"""Revocations carry a mark the database assigns, so the feed can read them in commit order.

On PostgreSQL a trigger stamps every revocation (``sessions.revoked_at`` set, by the gateway or
by anyone writing to the table) with the id of the writing transaction and NOTIFYs the gateways
on commit. The revocation feed (gateway/revocation/feed.py) reads every row whose mark is at
least the oldest transaction that was still running at its previous read, so a transaction that
commits late is read then, whatever its ``revoked_at`` says. SQLite needs no mark: the feed
re-reads every live revocation on each poll there.

Revision ID: 9d2c4b6e8f10
Revises: b51e0d7c2a94
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9d2c4b6e8f10"
down_revision: str | Sequence[str] | None = "b51e0d7c2a94"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Kept in step with gateway.revocation.feed.CHANNEL (a migration must not import app code
# that may change after it).
_CHANNEL = "gateway_revocations"

# pg_current_xact_id() is the 64-bit, epoch-extended transaction id (PostgreSQL 13+): it never
# wraps, so it fits and compares as a bigint.
_MARK_FUNCTION = f"""
CREATE OR REPLACE FUNCTION mark_session_revocation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.revoked_at IS NOT NULL
     AND (TG_OP = 'INSERT' OR OLD.revoked_at IS DISTINCT FROM NEW.revoked_at) THEN
    NEW.revocation_mark := pg_current_xact_id()::text::bigint;
    PERFORM pg_notify('{_CHANNEL}', '');
  END IF;
  RETURN NEW;
END
$$
"""

_MARK_TRIGGER = """
CREATE TRIGGER sessions_revocation_mark
BEFORE INSERT OR UPDATE OF revoked_at ON sessions
FOR EACH ROW EXECUTE FUNCTION mark_session_revocation()
"""


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(sa.Column("revocation_mark", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_sessions_revocation_mark", ["revocation_mark"])
        batch_op.create_index("ix_sessions_revoked_at", ["revoked_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_MARK_FUNCTION)
        op.execute(_MARK_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS sessions_revocation_mark ON sessions")
        op.execute("DROP FUNCTION IF EXISTS mark_session_revocation()")
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_index("ix_sessions_revoked_at")
        batch_op.drop_index("ix_sessions_revocation_mark")
        batch_op.drop_column("revocation_mark")
