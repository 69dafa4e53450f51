"""``gateway explain TOKEN``: what PostgREST will do with a token, in plain words and as SQL.

Only a token the gateway would let through is explained: it is verified and its session and
user are checked in the store by the very function the ``/auth`` routes use, so a token of a
revoked session or a suspended user is reported as refused, never described as working.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import GatewayError
from gateway.sessions import authenticate
from gateway.settings import Settings
from gateway.tokens import KeyRing


class TokenRefused(GatewayError):
    """The gateway would refuse the token: the message says why, with the code a client gets."""

    code = "token_refused"
    status = 401


@dataclass(frozen=True, slots=True)
class Explanation:
    role: str
    anonymous: bool
    claims: dict[str, Any]
    helpers: dict[str, Any]
    statements: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "anonymous": self.anonymous,
            "claims": self.claims,
            "helpers": self.helpers,
            "sql": self.statements,
        }

    def as_text(self) -> str:
        lines = [
            f"PostgREST will switch to the database role {self.role!r} "
            '(SET ROLE, from the token\'s top-level "role" claim).',
            "Its GRANTs decide which tables the request may touch; row-level security policies "
            "then decide which rows, reading the claims below.",
            "",
            "Before your query, in the same transaction, PostgREST runs:",
            "",
            *("  " + line for statement in self.statements for line in statement.splitlines()),
            "",
            "So your policies see:",
        ]
        width = max(len(name) for name in self.helpers)
        for name, value in self.helpers.items():
            lines.append(f"  {name.ljust(width)} = {_sql_literal(value)}")
        return "\n".join(lines)


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return "'" + text.replace("'", "''") + "'"


def helper_values(claims: dict[str, Any] | None) -> dict[str, Any]:
    """What the bootstrap's ``auth.*`` helpers return for these claims (NULL when anonymous)."""
    signed_in = claims if claims is not None and "sub" in claims else None
    user = (signed_in or {}).get("user") or {}
    organization = (signed_in or {}).get("organization") or {}
    return {
        "auth.claims()": signed_in,
        "auth.user_id()": user.get("user_id"),
        "auth.organization_id()": organization.get("organization_id"),
        "auth.org_role()": user.get("role"),
        "auth.email()": user.get("email"),
    }


def per_request_sql(
    settings: Settings, *, role: str, claims: dict[str, Any], method: str, path: str
) -> str:
    """The ``set_config`` statement PostgREST runs before every query (see docs/how-it-works.md)."""
    # The request's schema, then db-extra-search-path (default "public"), as PostgREST 12 sends
    # it: '"public", "public"' for the default setup.
    search_path = f'"{settings.postgrest_schemas[0]}", "public"'
    headers = {"accept": "application/json", "authorization": "Bearer <the token>"}
    settings_pairs = [
        ("search_path", search_path),
        ("role", role),
        ("request.jwt.claims", json.dumps(claims, separators=(",", ":"))),
        ("request.method", method.upper()),
        ("request.path", path),
        ("request.headers", json.dumps(headers, separators=(",", ":"))),
        ("request.cookies", "{}"),
    ]
    calls = ",\n".join(
        f"  set_config({_sql_literal(name)}, {_sql_literal(value)}, true)"
        for name, value in settings_pairs
    )
    return f"select\n{calls};"


async def explain_token(
    db: AsyncSession,
    settings: Settings,
    ring: KeyRing,
    token: str,
    *,
    method: str = "GET",
    path: str = "/",
) -> Explanation:
    """Check ``token`` exactly as the gateway does, then describe PostgREST's side of it.

    Raises:
        TokenRefused: the gateway would refuse the token (its signature or claims, or its
            session or user in the store); the message names the client's error code.
    """
    try:
        claims = (await authenticate(db, token=token, ring=ring, settings=settings)).claims
    except GatewayError as exc:
        raise TokenRefused(f"The token would be refused ({exc.code}): {exc.message}") from None
    role = claims.get("role") if isinstance(claims.get("role"), str) else settings.anon_role
    statements = [
        # As PostgREST 12 runs it: READ COMMITTED unless the role or function sets another
        # default_transaction_isolation; GET and HEAD read-only.
        "BEGIN ISOLATION LEVEL READ COMMITTED "
        + ("READ ONLY;" if method.upper() in ("GET", "HEAD") else "READ WRITE;"),
        per_request_sql(settings, role=str(role), claims=claims, method=method, path=path),
        "-- … the query PostgREST builds for the request, then:",
        "COMMIT;",
    ]
    return Explanation(
        role=str(role),
        anonymous="sub" not in claims,
        claims=claims,
        helpers=helper_values(claims),
        statements=statements,
    )
