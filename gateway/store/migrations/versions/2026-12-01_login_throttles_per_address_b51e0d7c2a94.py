"""Sign-in throttling per (email, client address), and the addresses that signed in to an email.

The old rows counted an email's failures from every address; they are carried over as the
email's ceiling rows (client key ``*``), so a lock in force at the upgrade stays in force for
every address that has not signed in to that email before (none has been recorded yet).

Revision ID: b51e0d7c2a94
Revises: 3e5d7a91c0b4
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b51e0d7c2a94"
down_revision: str | Sequence[str] | None = "3e5d7a91c0b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTERS = ("failures", "window_started_at", "locked_until", "lockouts", "last_lockout_at")


def _throttles(*, with_client_key: bool) -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = [sa.Column("email_key", sa.String(length=320))]
    if with_client_key:
        columns.append(sa.Column("client_key", sa.String(length=64)))
    return [
        *columns,
        sa.Column("failures", sa.Integer()),
        sa.Column("window_started_at", sa.DateTime(timezone=True)),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
        sa.Column("lockouts", sa.Integer()),
        sa.Column("last_lockout_at", sa.DateTime(timezone=True)),
    ]


def _create_throttles(*, per_address: bool) -> sa.Table:
    key = ["email_key", "client_key"] if per_address else ["email_key"]
    columns: list[sa.schema.SchemaItem] = [
        sa.Column("email_key", sa.String(length=320), nullable=False),
        *([sa.Column("client_key", sa.String(length=64), nullable=False)] if per_address else []),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("last_lockout_at", sa.DateTime(timezone=True), nullable=True),
    ]
    return op.create_table(
        "login_throttles",
        *columns,
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_login_throttles")),
    )


def upgrade() -> None:
    # A primary key cannot be widened in place on SQLite: the table is made again, rows kept.
    old = sa.table("login_throttles", *_throttles(with_client_key=False))
    rows = [dict(row._mapping) for row in op.get_bind().execute(sa.select(old))]
    op.drop_table("login_throttles")
    table = _create_throttles(per_address=True)
    if rows:
        op.bulk_insert(table, [{**row, "client_key": "*"} for row in rows])
    op.create_table(
        "login_known_addresses",
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("client_key", sa.String(length=64), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email_key", "client_key", name=op.f("pk_login_known_addresses")),
    )


def downgrade() -> None:
    op.drop_table("login_known_addresses")
    new = sa.table("login_throttles", *_throttles(with_client_key=True))
    rows = [
        {name: row._mapping[name] for name in ("email_key", *_COUNTERS)}
        for row in op.get_bind().execute(sa.select(new).where(new.c.client_key == "*"))
    ]
    op.drop_table("login_throttles")
    table = _create_throttles(per_address=False)
    if rows:
        op.bulk_insert(table, rows)
