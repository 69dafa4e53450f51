"""What goes up to PostgREST and what comes back down, in-process through the real front door
and mount (the real upstream client) to a recording upstream whose answer each test sets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from gateway.proxy._headers import CLIENT_CLAIMS, MAX_HEADER_FIELDS
from tests.support.front_door import Door, door_for
from tests.support.upstream import OK, RecordingUpstream

CSP = b"default-src 'none'; frame-ancestors 'none'"


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.close()


@pytest.fixture
def door(upstream: RecordingUpstream) -> Iterator[Door]:
    yield door_for(upstream.url, postgrest_schemas=["public", "api", "gateway"])
    upstream.reply = OK


def answering(*headers: bytes, body: bytes = b"[]") -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)


def head_of(upstream: RecordingUpstream, before: int) -> bytes:
    (head,) = upstream.heads[before:]
    return head.lower()


def error_code(answer_body: bytes) -> str:
    code: str = json.loads(answer_body)["code"]
    return code


# --- methods -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "trace", "FOO", "GETS"])
def test_a_method_postgrest_does_not_serve_gets_405_json_with_allow(
    door: Door, upstream: RecordingUpstream, method: str
) -> None:
    before = len(upstream.heads)

    answer = door.request(b"/rest/projects", method=method)

    assert answer.status == 405
    assert error_code(answer.body) == "method_not_allowed"
    assert answer.header(b"allow") == b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
    assert upstream.heads[before:] == []


@pytest.mark.parametrize("method", ["patch", "Delete", "pUt", "get", "options"])
def test_a_method_in_any_letter_case_goes_upstream_upper_cased(
    door: Door, upstream: RecordingUpstream, method: str
) -> None:
    before = len(upstream.heads)

    answer = door.request(b"/rest/projects", method=method)

    assert answer.status == 200
    assert upstream.request_lines(before) == [method.upper().encode() + b" /projects HTTP/1.1"]


# --- sizes -------------------------------------------------------------------------------


def test_a_query_longer_than_gateway_proxy_max_query_gets_414_before_upstream(
    door: Door, upstream: RecordingUpstream
) -> None:
    before = len(upstream.heads)
    longest = b"select=" + b"a" * (8192 - len(b"select="))

    too_long = door.request(b"/rest/projects", query=longest + b"a")
    at_the_limit = door.request(b"/rest/projects", query=longest)

    assert too_long.status == 414
    assert error_code(too_long.body) == "uri_too_long"
    assert at_the_limit.status == 200
    assert len(upstream.heads[before:]) == 1


def test_gateway_proxy_max_query_sets_the_limit(upstream: RecordingUpstream) -> None:
    door = door_for(upstream.url, proxy_max_query=1024)

    assert door.request(b"/rest/p", query=b"a" * 1025).status == 414
    assert door.request(b"/rest/p", query=b"a" * 1024).status == 200


def test_more_than_a_hundred_header_fields_get_431_before_upstream(
    door: Door, upstream: RecordingUpstream
) -> None:
    before = len(upstream.heads)
    fields = [(b"host", b"gateway.example")] + [(b"x-f%d" % n, b"a") for n in range(100)]

    too_many = door.request(b"/rest/p", headers=fields)
    at_the_limit = door.request(b"/rest/p", headers=fields[:MAX_HEADER_FIELDS])

    assert too_many.status == 431
    assert error_code(too_many.body) == "request_header_fields_too_large"
    assert at_the_limit.status == 200
    assert len(upstream.heads[before:]) == 1


@pytest.mark.parametrize(
    ("headers", "http_version"),
    [
        ([(b"host", b"a.example"), (b"host", b"b.example")], "1.1"),
        ([(b"host", b"a.example"), (b"host", b"a.example")], "1.1"),
        ([(b"host", b"a.example"), (b"Host", b"b.example")], "1.0"),
        ([(b"accept", b"*/*")], "1.1"),
    ],
)
def test_two_host_headers_or_none_on_http_1_1_get_400_before_upstream(
    door: Door, upstream: RecordingUpstream, headers: list[tuple[bytes, bytes]], http_version: str
) -> None:
    before = len(upstream.heads)

    answer = door.request(b"/rest/p", headers=headers, http_version=http_version)

    assert answer.status == 400
    assert error_code(answer.body) == "invalid_host"
    assert upstream.heads[before:] == []


def test_http_1_0_without_host_is_served(door: Door, upstream: RecordingUpstream) -> None:
    answer = door.request(b"/rest/p", headers=[], http_version="1.0")

    assert answer.status == 200


# --- schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [b"accept-profile", b"content-profile", b"accept_profile"])
@pytest.mark.parametrize("schema", [b"gateway", b"pg_catalog", b"information_schema", b"Public",
                                    b"public,gateway", b"auth", b" api", b"api "])  # fmt: skip
def test_a_profile_outside_postgrest_schemas_or_the_gateways_own_gets_406_before_upstream(
    door: Door, upstream: RecordingUpstream, name: bytes, schema: bytes
) -> None:
    """GATEWAY_POSTGREST_SCHEMAS lists 'gateway' here, as a misconfiguration would: the
    gateway's own schema (password hashes, sessions) is still never selectable."""
    before = len(upstream.heads)

    answer = door.request(b"/rest/users", headers=[(b"host", b"g"), (name, schema)])

    assert answer.status == 406
    assert error_code(answer.body) == "schema_not_allowed"
    assert upstream.heads[before:] == []


@pytest.mark.parametrize("schema", [b"public", b"api"])
def test_a_profile_in_postgrest_schemas_is_passed_on(
    door: Door, upstream: RecordingUpstream, schema: bytes
) -> None:
    before = len(upstream.heads)

    answer = door.request(b"/rest/p", headers=[(b"host", b"g"), (b"accept-profile", schema)])

    assert answer.status == 200
    assert b"accept-profile: " + schema in head_of(upstream, before)


# --- headers PostgREST must not believe ----------------------------------------------------


@pytest.mark.parametrize("trusted", [False, True])
def test_no_client_identity_url_rewrite_or_csrf_header_reaches_postgrest(
    upstream: RecordingUpstream, trusted: bool
) -> None:
    """docs/proxy.md lists them; not even a trusted proxy's are believed."""
    door = door_for(upstream.url, trusted_proxies=["198.51.100.0/24"] if trusted else [])
    forged = [(name, b"6.6.6.6") for name in sorted(CLIENT_CLAIMS)]
    spelled = [(name.upper().replace(b"-", b"_"), b"6.6.6.6") for name in sorted(CLIENT_CLAIMS)]
    before = len(upstream.heads)

    answer = door.request(
        b"/rest/p",
        headers=[(b"host", b"g"), *forged[:40], *spelled[:40], (b"x-csrf-token", b"tok")],
    )

    assert answer.status == 200
    head = head_of(upstream, before)
    assert b"6.6.6.6" not in head
    assert b"x-csrf-token" not in head
    for name in CLIENT_CLAIMS:
        assert b"\r\n" + name + b":" not in head


@pytest.mark.parametrize(
    "name",
    [b"Remote-User", b"X-Remote-User", b"X-Authenticated-User", b"Remote-Addr",
     b"X-Client-IP-Address", b"X-Auth-Request-Email", b"X-Auth-Request-User",
     b"X-Amzn-Oidc-Identity", b"Cf-Access-Authenticated-User-Email", b"X-Ms-Client-Principal-Name",
     b"X-Goog-Authenticated-User-Email", b"X-User-Id", b"X_Webauth_User", b"X-Real-Client-IP-Addr",
     b"X-Http-Method-Override2"],
)  # fmt: skip
def test_a_header_claiming_a_user_or_client_address_by_its_name_never_reaches_postgrest(
    door: Door, upstream: RecordingUpstream, name: bytes
) -> None:
    """The class is recognised by the shape of its names, not only by a list that stays
    incomplete: none of these is in the list."""
    assert name.lower().replace(b"_", b"-") not in CLIENT_CLAIMS
    before = len(upstream.heads)

    answer = door.request(b"/rest/p", headers=[(b"host", b"g"), (name, b"admin@6.6.6.6")])

    assert answer.status == 200
    assert b"admin@6.6.6.6" not in head_of(upstream, before)


def test_an_application_header_that_claims_nobody_still_reaches_postgrest(
    door: Door, upstream: RecordingUpstream
) -> None:
    before = len(upstream.heads)

    door.request(b"/rest/p", headers=[(b"host", b"g"), (b"x-app-version", b"4.2")])

    assert b"x-app-version: 4.2" in head_of(upstream, before)


def test_an_empty_host_header_is_refused_before_upstream(
    door: Door, upstream: RecordingUpstream
) -> None:
    before = len(upstream.heads)

    answer = door.request(b"/rest/p", headers=[(b"host", b"")])

    assert answer.status == 400
    assert error_code(answer.body) == "invalid_host"
    assert upstream.heads[before:] == []


# --- headers from PostgREST -----------------------------------------------------------------


def test_a_set_cookie_for_a_gateway_cookie_name_is_dropped_on_the_way_down(
    door: Door, upstream: RecordingUpstream
) -> None:
    upstream.reply = answering(
        b"Set-Cookie: gw_access=planted; Path=/",
        b"Set-Cookie: __Host-gw_access=planted; Path=/; Secure",
        b"Set-Cookie: __SECURE-GW_REFRESH=planted; Path=/auth",
        b"Set-Cookie: __Host-gw_refresh=planted; Path=/",
        b"Set-Cookie:  gw_csrf =planted",
        b"Set-Cookie: =__Host-gw_access=planted",
        b"Set-Cookie: __Host-gw_access",
        b"Set-Cookie: theme=dark; Path=/",
    )

    answer = door.request(b"/rest/p")

    assert answer.all(b"set-cookie") == [b"theme=dark; Path=/"]


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (b"/todos?id=eq.1", b"/rest/todos?id=eq.1"),
        (b"{upstream}/todos?id=eq.1", b"/rest/todos?id=eq.1"),
        (b"http://evil.example/todos", None),
        (b"https://evil.example", None),
        (b"//evil.example/todos", None),
        (b"/\\evil.example/todos", None),
        (b"{upstream}.evil.example/todos", None),
        (b"{upstream}@evil.example/todos", None),
        (b"javascript:alert(1)", None),
        (b"todos?id=eq.1", None),
    ],
)
def test_a_location_is_put_under_the_mount_or_not_passed_down(
    door: Door, upstream: RecordingUpstream, location: bytes, expected: bytes | None
) -> None:
    value = location.replace(b"{upstream}", upstream.url.encode())
    upstream.reply = answering(b"Location: " + value, b"Content-Location: " + value)

    answer = door.request(b"/rest/todos", method="POST")

    assert answer.header(b"location") == expected
    assert answer.header(b"content-location") == expected


def test_a_refresh_header_from_postgrest_cannot_redirect_the_browser(
    door: Door, upstream: RecordingUpstream
) -> None:
    upstream.reply = answering(b"Refresh: 0; url=http://evil.example/")

    answer = door.request(b"/rest/p")

    assert answer.status == 200
    assert answer.header(b"refresh") is None


def test_postgrests_server_header_is_not_passed_down(
    door: Door, upstream: RecordingUpstream
) -> None:
    upstream.reply = answering(b"Server: postgrest/12.0.2")

    answer = door.request(b"/rest/p")

    assert answer.header(b"server") is None


@pytest.mark.parametrize(
    "raw_path", [b"/rest/p", b"/r%65st/p", b"/rest/%2e%2e/x"], ids=["proxied", "404", "400"]
)
def test_every_answer_of_the_mount_carries_nosniff_and_a_restrictive_csp(
    door: Door, upstream: RecordingUpstream, raw_path: bytes
) -> None:
    upstream.reply = answering(b"Content-Security-Policy: script-src *", body=b"<script>")

    answer = door.request(raw_path)

    assert answer.all(b"x-content-type-options") == [b"nosniff"]
    assert answer.all(b"content-security-policy") == [CSP]


# --- caches ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream_cache", "expected"),
    [
        (None, b"private"),
        (b"public, max-age=60, s-maxage=600", b"private, max-age=60"),
        (b"max-age=60", b"private, max-age=60"),
        (b'private="set-cookie", max-age=60', b'private, private="set-cookie", max-age=60'),
        (b"no-store", b"no-store"),
        (b"private, max-age=5", b"private, max-age=5"),
    ],
)
def test_an_answer_to_a_request_with_a_cookie_is_never_stored_by_a_shared_cache(
    door: Door, upstream: RecordingUpstream, upstream_cache: bytes | None, expected: bytes
) -> None:
    headers = [b"Vary: Accept-Encoding"] + (
        [b"Cache-Control: " + upstream_cache] if upstream_cache else []
    )
    upstream.reply = answering(*headers)

    answer = door.request(b"/rest/p", headers=[(b"host", b"g"), (b"cookie", b"theme=dark")])

    assert answer.header(b"cache-control") == expected
    assert answer.all(b"vary") == [b"Accept-Encoding, Cookie, Authorization"]


def test_an_anonymous_answer_keeps_upstreams_cache_control_and_varies_on_credentials(
    door: Door, upstream: RecordingUpstream
) -> None:
    upstream.reply = answering(b"Cache-Control: public, max-age=60")

    answer = door.request(b"/rest/p")

    assert answer.header(b"cache-control") == b"public, max-age=60"
    assert answer.all(b"vary") == [b"Cookie, Authorization"]


def test_cors_appends_origin_to_an_upstream_vary(upstream: RecordingUpstream) -> None:
    door = door_for(upstream.url, cors_origins=["https://app.example"])
    upstream.reply = answering(b"Vary: Accept-Encoding, Prefer")

    answer = door.request(
        b"/rest/p", headers=[(b"host", b"g"), (b"origin", b"https://app.example")]
    )
    upstream.reply = OK

    assert answer.all(b"vary") == [b"Accept-Encoding, Prefer, Cookie, Authorization, Origin"]
    assert answer.header(b"access-control-allow-origin") == b"https://app.example"


# --- an upstream that breaks mid-answer ----------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"a\r\n0123456789\r\n64\r\n0123",
    ],
    ids=["content-length", "chunked"],
)
def test_an_upstream_failure_mid_answer_truncates_it_and_is_logged_as_such(
    door: Door, upstream: RecordingUpstream, reply: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.reply = reply

    with caplog.at_level(logging.INFO):
        answer = door.request(b"/rest/projects")

    assert answer.starts == 1
    assert answer.status == 200
    assert not answer.complete
    assert "upstream failed mid-answer" in caplog.text
    assert "unhandled" not in caplog.text
    (line,) = [r.getMessage() for r in caplog.records if r.name == "gateway.request"]
    assert "path=/rest/projects status=200" in line
    assert line.endswith("truncated=true")


# --- logs tell the truth -------------------------------------------------------------------


def test_a_proxied_request_is_logged_with_the_path_the_client_sent(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.request"):
        door.request(b"/rest/auth/login", method="POST")

    (line,) = [r.getMessage() for r in caplog.records if r.name == "gateway.request"]
    assert " path=/rest/auth/login status=200 " in line
    assert "truncated" not in line


def test_a_query_inside_raw_path_is_neither_forwarded_twice_nor_logged(
    door: Door, upstream: RecordingUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    before = len(upstream.heads)

    with caplog.at_level(logging.INFO, logger="gateway.request"):
        answer = door.request(
            b"/rest/p?access_token=secret-token", path="/rest/p", query=b"access_token=secret-token"
        )

    assert answer.status == 200
    assert upstream.request_lines(before) == [b"GET /p?access_token=secret-token HTTP/1.1"]
    assert "secret-token" not in caplog.text


def test_an_expect_header_never_reaches_postgrest(door: Door, upstream: RecordingUpstream) -> None:
    """The gateway sends the body without waiting for 100 Continue: PostgREST is not asked to."""
    before = len(upstream.heads)

    answer = door.request(
        b"/rest/p",
        method="POST",
        headers=[(b"host", b"g"), (b"expect", b"100-continue"), (b"content-length", b"2")],
        body=b"{}",
    )

    assert answer.status == 200
    assert b"expect" not in head_of(upstream, before)
