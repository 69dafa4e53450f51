"""Where the mount sends a request: a Hypothesis property over raw paths, and the cases where
the raw path and the decoded one tell different stories.

In-process, through the real front door, the real mount and the real upstream client, to a
recording upstream on a local port; a second local server stands for every other host and must
never receive a request. tests/security/test_proxy_boundary.py does the same through a real
gateway process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gateway.proxy.paths import mounted_path
from tests.support.front_door import Door, door_for
from tests.support.upstream import RecordingUpstream

PROPERTY = settings(
    max_examples=400, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],
)  # fmt: skip


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def door(upstream: RecordingUpstream) -> Door:
    return door_for(upstream.url + "/base")


# Pieces an attacker composes paths from: every separator and escape the issue names (/ @ : ?
# # \ % NUL), in both letter cases, double-encoded, dot segments, '//', the prefix escaped.
def pieces(other_port: int) -> st.SearchStrategy[bytes]:
    return st.sampled_from([
        b"/", b"//", b"rest", b"r%65st", b"%72est", b"r%45st", b"REST", b"x", b"latest",
        b"%2F", b"%2f", b"%252F", b"%25252f", b"@", b"%40", b"%2540", b":", b"%3A", b"%3a",
        b"?", b"%3F", b"#", b"%23", b"\\", b"%5C", b"%5c", b"%255C", b"%", b"%25", b"%zz",
        b"%0", b"%00", b"\x00", b"%0d%0a", b"\r\n", b" ", b"%20", b".", b"..", b"%2e", b"%2E",
        b"%2e%2e", b".%2E", b"%252e%252e", b"127.0.0.1", b"127.0.0.1:%d" % other_port,
        b"evil.example", b"%ff", b"\xff", b"~", b";", b"[", b"]", b"|",
    ])  # fmt: skip


def raw_paths(other_port: int) -> st.SearchStrategy[bytes]:
    start = st.sampled_from([b"/rest", b"/rest/", b"/rest%2F", b"/rest%2f", b"/r%65st/", b"/",
                             b"/rest@", b"/rest%40", b"/rest%5C", b"/rest/..", b""])  # fmt: skip
    tail = st.lists(pieces(other_port), max_size=8).map(b"".join)
    return st.one_of(
        st.tuples(start, tail).map(b"".join),
        st.tuples(st.just(b"/rest/"), st.binary(max_size=24)).map(b"".join),
    )


queries = st.one_of(
    st.just(b""),
    st.lists(
        st.sampled_from(
            [
                b"a=b",
                b"&",
                b"@",
                b"%40",
                b"#",
                b"?",
                b"/",
                b"%2F",
                b"select=*",
                b"\x00",
                b" ",
                b"\xff",
                b"//evil.example",
            ]
        ),
        max_size=4,
    ).map(b"".join),
)


@given(data=st.data())
@PROPERTY
def test_every_forwarded_request_goes_to_the_configured_upstream_under_the_mount(
    door: Door, upstream: RecordingUpstream, elsewhere: RecordingUpstream, data: st.DataObject
) -> None:
    raw_path = data.draw(raw_paths(elsewhere.port), label="raw_path")
    query = data.draw(queries, label="query")
    before = len(upstream.heads)

    answer = door.request(raw_path, query=query)

    assert answer.status < 500, (raw_path, query, answer)
    assert answer.starts == 1
    assert elsewhere.heads == []
    sent = upstream.request_lines(before)
    if answer.status == 200:  # forwarded: exactly once, to /base + what followed the prefix
        path = raw_path.partition(b"?")[0]  # a '?' always ends the path; the query is separate
        assert path == b"/rest" or path.startswith(b"/rest/")
        (line,) = sent
        target = line.split(b" ")[1]
        expected = b"/base" + (path[len(b"/rest") :] or b"/")
        assert target == expected + (b"?" + query if query else b""), (raw_path, line)
        assert_no_decoding_leaves_the_mount(target.partition(b"?")[0])
    else:  # refused: before anything went upstream, with a JSON error or Litestar's 404
        assert sent == []
        assert 400 <= answer.status < 500
        if answer.body != b"litestar":
            assert set(json.loads(answer.body)) == {"code", "message"}


def assert_no_decoding_leaves_the_mount(path: bytes) -> None:
    assert path.startswith(b"/base/") or path == b"/base/"
    for _ in range(4):
        segments = path.split(b"/")
        assert b".." not in segments, path
        assert b"." not in segments, path
        assert b"\\" not in path
        assert b"\x00" not in path
        path = unquote_to_bytes(path)


# --- raw_path and path disagree ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_path", "path"),
    [
        (b"/r%65st/projects", "/rest/projects"),
        (b"/%72est/projects", "/rest/projects"),
        (b"/rest%2Fprojects", "/rest/projects"),
        (b"/rest%2F@127.0.0.1:9/latest", "/rest/@127.0.0.1:9/latest"),
        (b"/rest%40127.0.0.1:9/latest", "/rest@127.0.0.1:9/latest"),
        (b"/rest%2F%2F127.0.0.1:9/latest", "/rest//127.0.0.1:9/latest"),
        (b"/restx", "/restx"),
    ],
)
def test_a_request_whose_raw_path_is_not_under_the_prefix_gets_404_json_and_goes_nowhere(
    door: Door, upstream: RecordingUpstream, raw_path: bytes, path: str
) -> None:
    before = len(upstream.heads)

    answer = door.request(raw_path, path=path)

    assert upstream.heads[before:] == []
    if path.startswith("/rest/"):  # the decoded view claims the mount: its 404, not Litestar's
        assert answer.status == 404
        assert json.loads(answer.body)["code"] == "not_found"
    else:
        assert answer.body == b"litestar"


@pytest.mark.parametrize(
    ("raw_path", "path"),
    [
        (b"/rest/a%2Fb", "/rest/a/b"),
        (b"/rest/a%2fb", "/rest/a/b"),
        (b"/rest/a%5Cb", "/rest/a\\b"),
        (b"/rest/%2e%2e/auth/login", "/rest/../auth/login"),
        (b"/rest/.%2E/auth/login", "/rest/../auth/login"),
        (b"/rest/%252e%252e/auth", "/rest/%2e%2e/auth"),
        (b"/rest/a%00b", "/rest/a\x00b"),
        (b"/rest//projects", "/rest//projects"),
        (b"/rest/a%zzb", "/rest/a%zzb"),
        (b"/rest/a\\b", "/rest/a\\b"),
    ],
)
def test_a_path_the_two_views_read_differently_is_refused_with_400_json(
    door: Door, upstream: RecordingUpstream, raw_path: bytes, path: str
) -> None:
    before = len(upstream.heads)

    answer = door.request(raw_path, path=path)

    assert answer.status == 400, answer
    assert json.loads(answer.body)["code"] == "invalid_path"
    assert upstream.heads[before:] == []


def test_the_raw_path_not_the_decoded_one_is_forwarded(
    door: Door, upstream: RecordingUpstream
) -> None:
    before = len(upstream.heads)

    answer = door.request(b"/rest/rpc/f%C3%BCr", path="/rest/rpc/für", query=b"a=%40b")

    assert answer.status == 200
    assert upstream.request_lines(before) == [b"GET /base/rpc/f%C3%BCr?a=%40b HTTP/1.1"]


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        (b"/rest", b"/"),
        (b"/rest/", b"/"),
        (b"/rest/projects", b"/projects"),
        (b"/rest/projects/", b"/projects/"),
        (b"/rest/rpc/hello", b"/rpc/hello"),
        (b"/rest/@127.0.0.1:9/x", b"/@127.0.0.1:9/x"),
        (b"/rest/a%20b", b"/a%20b"),
    ],
)
def test_mounted_path_is_what_follows_the_prefix_and_starts_with_a_slash(
    raw_path: bytes, expected: bytes
) -> None:
    assert mounted_path(raw_path, b"/rest") == expected


def test_a_question_mark_in_raw_path_ends_the_path(door: Door, upstream: RecordingUpstream) -> None:
    before = len(upstream.heads)

    answer = door.request(b"/rest/a?@evil.example/x", path="/rest/a", query=b"q=1")

    assert answer.status == 200
    assert upstream.request_lines(before) == [b"GET /base/a?q=1 HTTP/1.1"]


# --- /rest/v1, where supabase-js looks for PostgREST ----------------------------------------


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        (b"/rest/v1", b"/base/"),
        (b"/rest/v1/", b"/base/"),
        (b"/rest/v1/projects", b"/base/projects"),
        (b"/rest/v1/rpc/project_count", b"/base/rpc/project_count"),
        # The raw path decides which mount: 'v%31' is not 'v1' raw, so /rest's mount forwards
        # it under its own prefix, escaped as sent (PostgREST finds no such table).
        (b"/rest/v%31/projects", b"/base/v%31/projects"),
    ],
)
def test_rest_v1_reaches_the_same_upstream_under_the_mount_as_rest(
    door: Door, upstream: RecordingUpstream, raw_path: bytes, expected: bytes
) -> None:
    before = len(upstream.heads)

    answer = door.request(raw_path)

    assert answer.status == 200, answer
    (line,) = upstream.request_lines(before)
    assert line == b"GET " + expected + b" HTTP/1.1"
    assert_no_decoding_leaves_the_mount(expected)


@pytest.mark.parametrize(
    ("raw_path", "path"),
    [
        (b"/rest/v1/..", "/rest/v1/.."),
        (b"/rest/v1/../auth/login", "/rest/v1/../auth/login"),
        (b"/rest/v1/%2e%2e/auth/login", "/rest/v1/../auth/login"),
        (b"/rest/v1/.%2E/%2e%2e/admin", "/rest/v1/../../admin"),
        (b"/rest/v1/%252e%252e/auth", "/rest/v1/%2e%2e/auth"),
        (b"/rest/v1%2F..%2F..%2Fauth", "/rest/v1/../../auth"),
        (b"/rest/v1/a%2Fb", "/rest/v1/a/b"),
        (b"/rest/v1/a%5Cb", "/rest/v1/a\\b"),
        (b"/rest/v1//projects", "/rest/v1//projects"),
        (b"/rest/v1/a%00b", "/rest/v1/a\x00b"),
        (b"/rest/v1\\projects", "/rest/v1\\projects"),
    ],
)
def test_rest_v1_traversal_tricks_are_refused_with_400_json_and_go_nowhere(
    door: Door, upstream: RecordingUpstream, raw_path: bytes, path: str
) -> None:
    before = len(upstream.heads)

    answer = door.request(raw_path, path=path)

    assert answer.status == 400, answer
    assert json.loads(answer.body)["code"] == "invalid_path"
    assert upstream.heads[before:] == []


@pytest.mark.parametrize(
    ("raw_path", "path"),
    [
        (b"/r%65st/v1/projects", "/rest/v1/projects"),
        (b"/%72est/v1/projects", "/rest/v1/projects"),
        (b"/rest%2Fv1/projects", "/rest/v1/projects"),
    ],
)
def test_rest_v1_only_in_the_decoded_view_gets_404_json_and_goes_nowhere(
    door: Door, upstream: RecordingUpstream, raw_path: bytes, path: str
) -> None:
    before = len(upstream.heads)

    answer = door.request(raw_path, path=path)

    assert answer.status == 404, answer
    assert json.loads(answer.body)["code"] == "not_found"
    assert upstream.heads[before:] == []


def v1_raw_paths(other_port: int) -> st.SearchStrategy[bytes]:
    start = st.sampled_from(
        [b"/rest/v1", b"/rest/v1/", b"/rest/v1%2F", b"/rest/v1%2f", b"/rest/v%31/", b"/rest/v1@",
         b"/rest/v1%40", b"/rest/v1%5C", b"/rest/v1/..", b"/rest/v1/%2e%2e/", b"/r%65st/v1/"]
    )  # fmt: skip
    tail = st.lists(pieces(other_port), max_size=8).map(b"".join)
    return st.tuples(start, tail).map(b"".join)


@given(data=st.data())
@PROPERTY
def test_every_forwarded_rest_v1_request_goes_to_the_configured_upstream_under_the_mount(
    door: Door, upstream: RecordingUpstream, elsewhere: RecordingUpstream, data: st.DataObject
) -> None:
    raw_path = data.draw(v1_raw_paths(elsewhere.port), label="raw_path")
    before = len(upstream.heads)

    answer = door.request(raw_path)

    assert answer.status < 500, (raw_path, answer)
    assert answer.starts == 1
    assert elsewhere.heads == []
    sent = upstream.request_lines(before)
    if answer.status == 200:
        path = raw_path.partition(b"?")[0]
        (line,) = sent
        target = line.split(b" ")[1].partition(b"?")[0]
        prefix = b"/rest/v1" if path == b"/rest/v1" or path.startswith(b"/rest/v1/") else b"/rest"
        assert path.startswith(prefix)
        assert target == b"/base" + (path[len(prefix) :] or b"/"), (raw_path, line)
        assert_no_decoding_leaves_the_mount(target)
    else:
        assert sent == []
        assert 400 <= answer.status < 500
        if answer.body != b"litestar":
            assert set(json.loads(answer.body)) == {"code", "message"}
