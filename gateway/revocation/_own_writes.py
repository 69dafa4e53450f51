"""This process's own revocations reach its read side when they commit, before any answer.

The feed (feed.py) is how every process learns of a revocation, but it polls (SQLite) or waits
for a notification (PostgreSQL), so the process that has just ended a session would still
accept the session's tokens for a moment after telling the client it was over. The write side
(ending.py) therefore notes each change on the transaction that writes it, and the commit hands
the notes to the read sides attached to the store's transaction factory, synchronously, inside
the commit: the route's answer is built after it. A rollback drops them, so nothing is learned
that the store does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session as StoreSession
from sqlalchemy.orm import SessionTransaction

# Keys in SQLAlchemy's Session.info: the read sides every transaction of the factory hands its
# changes to (copied into each new session from the factory's ``info``), and the changes noted.
_READ_SIDES = "gateway.revocation.read_sides"
_NOTED = "gateway.revocation.noted"


@dataclass(frozen=True, slots=True)
class EndedSession:
    """A session revoked by this transaction (the feed's row, as the feed would read it)."""

    session_id: str
    revoked_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UserStanding:
    """A user suspended (or deleted) or activated by this transaction; ``user_id`` is the
    token's ``sub``."""

    user_id: str
    suspended: bool


OwnWrite = EndedSession | UserStanding


class ReadSide(Protocol):
    def learn(self, writes: Sequence[OwnWrite]) -> None:
        """Take committed changes in; called inside the commit, so it must not do I/O."""


def attach(store: async_sessionmaker[AsyncSession], read_side: ReadSide) -> None:
    """Make every transaction ``store`` opens from now on hand its committed changes to
    ``read_side``."""
    info = dict(store.kw.get("info") or {})
    info[_READ_SIDES] = (*info.get(_READ_SIDES, ()), read_side)
    store.configure(info=info)


def detach(store: async_sessionmaker[AsyncSession], read_side: ReadSide) -> None:
    """Undo :func:`attach` (transactions already open keep handing over)."""
    info = dict(store.kw.get("info") or {})
    info[_READ_SIDES] = tuple(side for side in info.get(_READ_SIDES, ()) if side is not read_side)
    store.configure(info=info)


def note(db: AsyncSession, write: OwnWrite) -> None:
    """Have ``write`` reach this process's read sides when ``db``'s transaction commits.

    A transaction of a factory with no read side attached (the CLI, a test's own engine)
    notes nothing: other processes learn through the feed.
    """
    if not db.info.get(_READ_SIDES):
        return
    noted: list[OwnWrite] | None = db.info.get(_NOTED)
    if noted is None:
        noted = db.info[_NOTED] = []
        event.listen(db.sync_session, "after_commit", _hand_over)
        event.listen(db.sync_session, "after_soft_rollback", _drop)
    noted.append(write)


def _hand_over(db: StoreSession) -> None:
    noted: list[OwnWrite] = db.info[_NOTED]
    writes = tuple(noted)
    noted.clear()
    if writes:
        for read_side in db.info.get(_READ_SIDES, ()):
            read_side.learn(writes)


def _drop(db: StoreSession, previous_transaction: SessionTransaction) -> None:
    # A savepoint's rollback keeps the notes: at worst this process refuses a session's tokens
    # until its next full re-read, never accepts one it should refuse.
    if not previous_transaction.nested:
        noted: list[OwnWrite] = db.info[_NOTED]
        noted.clear()
