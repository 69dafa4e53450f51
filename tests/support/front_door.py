"""Drive the server's front door and the real PostgREST mount in-process, over real HTTP.

The mount talks to its upstream with the real upstream client the gateway makes
(``make_client_session``), so whatever the bytes of a request, what reaches the upstream is
what the gateway really sends. Litestar is replaced by an app that answers 404 ``litestar``: a
test sees which side took the request. Anonymous requests only (no token, no revocation set).
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import unquote

from gateway.proxy.dependencies import MountDependencies
from gateway.proxy.upstream import make_client_session
from gateway.settings import Settings
from gateway.web.app import postgrest_mounts
from gateway.web.front_door import FrontDoor

Header = tuple[bytes, bytes]


@dataclass
class Answer:
    status: int
    headers: list[Header]
    body: bytes
    starts: int  # how many http.response.start messages were sent (one, always)
    complete: bool  # the last body message said more_body=False

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k.lower() == name]
        return b", ".join(values) if values else None

    def all(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]


@dataclass
class Door:
    settings: Settings
    litestar_calls: list[str] = field(default_factory=list)

    def request(
        self,
        raw_path: bytes,
        *,
        method: str = "GET",
        query: bytes = b"",
        headers: list[Header] | None = None,
        path: str | None = None,
        http_version: str = "1.1",
        body: bytes = b"",
        stops_reading: bool = False,
    ) -> Answer:
        """One request, as a server would hand it over: ``path`` is the decoded view
        (by default decoded from ``raw_path`` as Granian does). ``stops_reading``: a client
        that takes the status line and then never takes a body message (each waits for ever).
        A request still running after 10 s fails the test."""
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": http_version,
            "scheme": "http",
            "method": method,
            "path": path if path is not None else unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "headers": [(b"host", b"gateway.example")] if headers is None else headers,
            "client": ("198.51.100.7", 50000),
            "server": ("127.0.0.1", 8000),
        }
        return asyncio.run(self._exchange(scope, body, stops_reading))

    async def _exchange(self, scope: dict[str, Any], body: bytes, stops_reading: bool) -> Answer:
        session = make_client_session(self.settings)
        # Anonymous requests never reach the keys, the token cache or the revocation set.
        unused: Any = None
        dependencies = MountDependencies(
            keys=unused, tokens=unused, revocations=unused, http=session
        )
        mounts = postgrest_mounts(self.settings, lambda: dependencies)
        mount = mounts.pop(self.settings.proxy_prefix)
        door = FrontDoor(cast(Any, self._litestar), mount, self.settings, mounts)
        sent: list[dict[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                await asyncio.Event().wait()  # a client that stays: never a disconnect
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if stops_reading and message["type"] == "http.response.body":
                await asyncio.Event().wait()
            sent.append(dict(message))

        try:
            async with asyncio.timeout(10):
                await door(scope, receive, send)
        finally:
            await session.close()
        starts = [m for m in sent if m["type"] == "http.response.start"]
        bodies = [m for m in sent if m["type"] == "http.response.body"]
        return Answer(
            status=starts[0]["status"] if starts else 0,
            headers=list(starts[0]["headers"]) if starts else [],
            body=b"".join(m.get("body", b"") for m in bodies),
            starts=len(starts),
            complete=bool(bodies) and not bodies[-1].get("more_body", False),
        )

    async def _litestar(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.litestar_calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"litestar"})


def door_for(upstream_url: str, **settings: Any) -> Door:
    return Door(
        Settings(_env_file=None, upstream_url=upstream_url, cookie_secure=False, **settings)
    )
