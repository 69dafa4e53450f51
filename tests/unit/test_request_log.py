"""RequestLog: the request id on every answer, a log line only when the level shows it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

import pytest

from gateway.asgi import started_answer
from gateway.web.request_log import RequestLog

Message = MutableMapping[str, Any]


def answered_through_request_log(
    level: int, caplog: pytest.LogCaptureFixture
) -> tuple[list[Message], bool]:
    """One GET through RequestLog at ``level``; the messages sent and whether the app saw its
    answer as started once it sent the head."""
    sent: list[Message] = []
    seen: dict[str, bool] = {}
    scope: MutableMapping[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/rest/projects",
        "raw_path": b"/rest/projects?access_token=secret",
        "headers": [(b"x-request-id", b"trace-42")],
        "client": ("127.0.0.1", 5000),
    }

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": [(b"a", b"b")]})
        seen["started"] = started_answer(scope)
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request"}

    caplog.set_level(level, logger="gateway.request")
    asyncio.run(RequestLog(app)(scope, receive, send))
    return sent, seen["started"]


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
def test_the_answer_carries_the_request_id_at_every_log_level(
    level: int, caplog: pytest.LogCaptureFixture
) -> None:
    sent, started = answered_through_request_log(level, caplog)

    assert sent[0]["status"] == 201
    assert sent[0]["headers"] == [(b"a", b"b"), (b"x-request-id", b"trace-42")]
    assert sent[1]["body"] == b"{}"
    assert started, "the error handlers must see that the answer began"


def test_at_info_one_line_names_the_path_without_its_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answered_through_request_log(logging.INFO, caplog)

    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.request"]
    assert len(lines) == 1
    assert "id=trace-42 method=GET path=/rest/projects status=201" in lines[0]
    assert "secret" not in lines[0]


def test_at_warning_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    answered_through_request_log(logging.WARNING, caplog)

    assert [r for r in caplog.records if r.name == "gateway.request"] == []
