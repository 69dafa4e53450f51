"""No byte of a request can split the request line PostgREST gets or start a header there.

The upstream client writes ``METHOD target HTTP/1.1`` and the header block itself, so the mount
must refuse, with a 400 and before anything goes upstream, every byte that would end the target
(space), end the line (CR, LF), or that a parser may treat as either (NUL, other controls, DEL,
bytes over 0x7e). One test per byte, in the path and in the query, and per header value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.front_door import Door, door_for
from tests.support.upstream import RecordingUpstream

SPLITTERS = [
    pytest.param(b" ", id="space"),
    pytest.param(b"\r", id="CR"),
    pytest.param(b"\n", id="LF"),
    pytest.param(b"\r\n", id="CRLF"),
    pytest.param(b"\x00", id="NUL"),
    pytest.param(b"\t", id="tab"),
    pytest.param(b"\x0b", id="VT"),
    pytest.param(b"\x0c", id="FF"),
    pytest.param(b"\x1b", id="ESC"),
    pytest.param(b"\x7f", id="DEL"),
    pytest.param(b"\x85", id="NEL-byte"),
    pytest.param(b"\xc3\xa9", id="non-ASCII"),
    pytest.param(b"\xe2\x80\xa8", id="LINE-SEPARATOR"),
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def door(upstream: RecordingUpstream) -> Door:
    return door_for(upstream.url + "/base")


def refused_before_upstream(
    door: Door, upstream: RecordingUpstream, raw_path: bytes, **options: object
) -> dict[str, str]:
    before = len(upstream.heads)
    answer = door.request(raw_path, **options)  # type: ignore[arg-type]
    assert answer.status == 400, answer
    assert upstream.heads[before:] == []
    document: dict[str, str] = json.loads(answer.body)
    assert set(document) == {"code", "message"}
    return document


@pytest.mark.parametrize("byte", SPLITTERS)
def test_a_path_byte_that_could_split_the_request_line_is_refused(
    door: Door, upstream: RecordingUpstream, byte: bytes
) -> None:
    document = refused_before_upstream(door, upstream, b"/rest/todos" + byte + b"HTTP/1.1")

    assert document["code"] == "invalid_path"


@pytest.mark.parametrize("byte", SPLITTERS)
def test_a_query_byte_that_could_split_the_request_line_is_refused(
    door: Door, upstream: RecordingUpstream, byte: bytes
) -> None:
    document = refused_before_upstream(
        door, upstream, b"/rest/todos", query=b"select=id" + byte + b"Host:%20evil"
    )

    assert document["code"] == "invalid_query"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"x\r\nHost: evil.example", id="CRLF"),
        pytest.param(b"x\nX-Injected: 1", id="LF"),
        pytest.param(b"x\rX-Injected: 1", id="CR"),
        pytest.param(b"x\x00y", id="NUL"),
    ],
)
def test_a_header_value_that_could_start_another_header_is_refused(
    door: Door, upstream: RecordingUpstream, value: bytes
) -> None:
    document = refused_before_upstream(
        door, upstream, b"/rest/todos", headers=[(b"host", b"gateway.example"), (b"prefer", value)]
    )

    assert document["code"] == "invalid_header"


def test_the_escaped_forms_of_the_same_bytes_go_up_escaped(
    door: Door, upstream: RecordingUpstream
) -> None:
    before = len(upstream.heads)

    answer = door.request(b"/rest/todos%20x", query=b"select=id%0D%0AHost:%20evil")

    assert answer.status == 200
    (line,) = upstream.request_lines(before)
    assert line == b"GET /base/todos%20x?select=id%0D%0AHost:%20evil HTTP/1.1"
