"""The server's front door: PostgREST traffic to the mount, everything else to Litestar."""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any, cast

import pytest

from gateway.proxy.mount import PostgrestMount
from gateway.settings import Settings
from gateway.web.front_door import FrontDoor

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]


class Recorder:
    """An ASGI app that notes the path it got and answers 200."""

    def __init__(self, name: str, calls: list[tuple[str, str]]) -> None:
        self.name = name
        self.calls = calls

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.calls.append((self.name, scope.get("path", scope["type"])))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})


class Failing:
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug in the mount")


def door(mount: Any, calls: list[tuple[str, str]]) -> FrontDoor:
    settings = Settings(_env_file=None, proxy_prefix="/rest")
    return FrontDoor(Recorder("litestar", calls), cast(PostgrestMount, mount), settings)


async def call(app: FrontDoor, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http(path: str) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
            "headers": [], "query_string": b""}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # The scope reaches the mount unchanged: it decides on raw_path (gateway/proxy/paths.py).
        ("/rest", ("mount", "/rest")),
        ("/rest/", ("mount", "/rest/")),
        ("/rest/projects", ("mount", "/rest/projects")),
        ("/restx", ("litestar", "/restx")),
        ("/auth/login", ("litestar", "/auth/login")),
        ("/", ("litestar", "/")),
    ],
)
async def test_only_the_prefix_and_paths_under_it_reach_the_mount(
    path: str, expected: tuple[str, str]
) -> None:
    calls: list[tuple[str, str]] = []
    app = door(Recorder("mount", calls), calls)

    sent = await call(app, http(path))

    assert calls == [expected]
    assert sent[0]["status"] == 200
    # RequestLog runs around the mount as it does around Litestar's routes.
    if expected[0] == "mount":
        assert (b"x-request-id", sent[0]["headers"][0][1]) in sent[0]["headers"]


def test_the_door_shows_the_app_it_hands_the_rest_to() -> None:
    litestar = Recorder("litestar", [])
    settings = Settings(_env_file=None, proxy_prefix="/rest")

    front = FrontDoor(litestar, cast(PostgrestMount, Recorder("mount", [])), settings)

    assert front.app is litestar


async def test_lifespan_and_other_scopes_go_to_litestar() -> None:
    calls: list[tuple[str, str]] = []
    app = door(Recorder("mount", calls), calls)

    await call(app, {"type": "lifespan"})

    assert calls == [("litestar", "lifespan")]


async def test_a_bug_in_the_mount_answers_500_internal_error_without_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[str, str]] = []
    app = door(Failing(), calls)

    with caplog.at_level(logging.ERROR, logger="gateway.proxy"):
        sent = await call(app, http("/rest/projects"))

    assert sent[0]["status"] == 500
    body = json.loads(sent[1]["body"])
    assert body == {
        "code": "internal_error",
        "message": "The gateway failed to handle the request.",
    }
    assert "a bug in the mount" not in json.dumps(body)
    assert "RuntimeError" in caplog.text
