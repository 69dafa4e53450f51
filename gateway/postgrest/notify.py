"""``NOTIFY pgrst``: tell PostgREST to reload its configuration (and the JWKS) or schema cache."""

from __future__ import annotations

import asyncio
from typing import Final

import asyncpg

from gateway.errors import GatewayError, InvalidInput
from gateway.store import asyncpg_dsn

#: The payloads PostgREST understands on its ``pgrst`` channel; an empty one reloads both.
ALLOWED_PAYLOADS: Final = frozenset({"reload config", "reload schema", ""})

#: Seconds allowed for connecting, and again for the statement: a rotation must not hang on a
#: database that does not answer. Callers wanting less wrap the call in ``asyncio.timeout``.
TIMEOUT_SECONDS: Final = 5.0


class PostgrestNotifyFailed(GatewayError):
    code = "postgrest_notify_failed"
    status = 502


async def notify_postgrest(url: str, payload: str = "reload config") -> None:
    """Send ``NOTIFY pgrst, '<payload>'`` to the database PostgREST listens on.

    Args:
        url: the database, ``postgresql://`` or SQLAlchemy's ``postgresql+asyncpg://``.
        payload: ``reload config`` (after a key change), ``reload schema``, or empty (both).

    Raises:
        InvalidInput: the payload or the URL is not one PostgREST accepts.
        PostgrestNotifyFailed: the database could not be reached or refused the statement.
    """
    if payload not in ALLOWED_PAYLOADS:
        raise InvalidInput(
            "the PostgREST notification must be 'reload config', 'reload schema' or empty"
        )
    dsn = asyncpg_dsn(url)
    try:
        connection = await asyncpg.connect(dsn, timeout=TIMEOUT_SECONDS)
    except (
        OSError,
        TimeoutError,
        ValueError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        raise PostgrestNotifyFailed(
            f"could not connect to notify PostgREST: {_reason(exc)}"
        ) from None
    try:
        # pg_notify() is NOTIFY with the payload as a bound parameter: nothing is spliced into
        # SQL, even though the payload was already checked against the allow-list above.
        await connection.execute("SELECT pg_notify('pgrst', $1)", payload, timeout=TIMEOUT_SECONDS)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise PostgrestNotifyFailed(f"NOTIFY pgrst failed: {_reason(exc)}") from None
    finally:
        await asyncio.shield(connection.close())


def _reason(exc: BaseException) -> str:
    # Connection errors name host and port, never the password of the URL.
    return str(exc) or type(exc).__name__
