"""Public ids for users and organizations: random, JavaScript-safe integers.

Users and organizations are named by integers so that SQL policies compare them cheaply and the
token carries them as JSON numbers (``user_id``/``organization_id``). A sequence
would let anyone count our users or guess a neighbour's id, so ids are drawn instead from
``secrets`` (the OS CSPRNG), uniformly in ``[2**40, 2**53)``:

* below ``2**53`` every id is exactly representable as an IEEE-754 double, so JavaScript's
  ``JSON.parse`` and PostgreSQL's ``jsonb`` numbers keep it intact;
* at or above ``2**40`` every id has 13 to 16 decimal digits, so a short id does not stand out
  and the space (about 9e15 values) makes guessing hopeless: with a million rows the chance that
  a random guess hits one is about one in nine billion;
* among ``n`` ids, some two are equal with probability about ``n**2 / 2**54`` (a million rows:
  5e-5). :func:`fresh_id` therefore looks each draw up in the table and draws again when it is
  taken. The look-up reserves nothing: a concurrent transaction that draws the same id before
  this one inserts makes the later insert fail on the primary key, and nothing retries it.
"""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import Base

ID_MIN = 2**40
ID_MAX = 2**53 - 1  # inclusive; Number.MAX_SAFE_INTEGER


def new_public_id() -> int:
    """A fresh random id in ``[2**40, 2**53)``."""
    return ID_MIN + secrets.randbelow(ID_MAX - ID_MIN + 1)


async def fresh_id(db: AsyncSession, model: type[Base]) -> int:
    """A random id that no row of ``model``'s table holds when it is looked up.

    Up to 8 draws of :func:`new_public_id`, each looked up by primary key (``db.get``: the
    session's identity map, then a SELECT in the caller's transaction); the first one not found
    is returned, and ``RuntimeError`` is raised when all 8 are taken. Nothing is inserted or
    locked, so the id is free at the look-up, not guaranteed free at the caller's insert.
    """
    for _ in range(8):
        candidate = new_public_id()
        if await db.get(model, candidate) is None:
            return candidate
    raise RuntimeError("could not draw a free id in 8 tries; the id space is not that full")
