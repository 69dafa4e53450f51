"""Hypothesis properties of the pure security rules: proxy headers, client address, claims."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from gateway.asgi.client_address import client_address, parse_networks
from gateway.proxy._headers import (
    CLIENT_CLAIMS,
    HOP_BY_HOP,
    normalized_name,
    strip_cookies,
    upstream_request_headers,
)
from gateway.settings import Settings
from gateway.tokens.claims import Identity, RoleNotAllowed, build_access_claims

# No shrinking: a failure is reported as generated (the explicit tests below hold minimal
# repros), which keeps a failing run as fast as a passing one.
PROPERTY = settings(
    max_examples=300, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate],
)  # fmt: skip

# --- upstream_request_headers ------------------------------------------------------------

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_"
# Hop-by-hop as docs/proxy.md lists them: Connection, Keep-Alive, Proxy-*, TE, Trailer,
# Transfer-Encoding, Upgrade.
HOP_NAMES = [
    "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
    "proxy-connection", "proxy-authorization", "proxy-authenticate",
]  # fmt: skip
FORWARDING_NAMES = [
    "forwarded", "x-real-ip", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
    "x-forwarded-port", "x-forwarded-prefix",
]  # fmt: skip


def spelled(name: str) -> st.SearchStrategy[bytes]:
    """``name`` in any letter case, each ``-`` possibly written ``_``."""
    return st.tuples(*[
        st.sampled_from(sorted({c.lower(), c.upper()} | ({"_"} if c == "-" else set())))
        for c in name
    ]).map(lambda chars: "".join(chars).encode())  # fmt: skip


suffix = st.text(TOKEN_CHARS, min_size=1, max_size=12)
known_hop_name = st.sampled_from(HOP_NAMES).flatmap(spelled)
any_hop_name = st.one_of(known_hop_name, suffix.flatmap(lambda s: spelled(f"proxy-{s}")))
known_forwarding_name = st.sampled_from(FORWARDING_NAMES).flatmap(spelled)
any_forwarding_name = st.one_of(
    known_forwarding_name, suffix.flatmap(lambda s: spelled(f"x-forwarded-{s}"))
)
harmless_name = (
    st.text(TOKEN_CHARS, min_size=1, max_size=12)
    .filter(
        lambda n: (
            not normalized_name(n.encode()).startswith((b"x-forwarded", b"proxy", b"x-real"))
            and normalized_name(n.encode()) not in HOP_BY_HOP
        )
    )
    .map(str.encode)
)
value = st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def forward(headers: list[tuple[bytes, bytes]], *, trusted: bool = False) -> list[Any]:
    return upstream_request_headers(
        headers,
        upstream_host=b"upstream:3000",
        client_ip=b"198.51.100.9",
        proto=b"http",
        trusted_peer=trusted,
        authorization=None,
        cookie=b"",
        request_id=b"rid",
        content_length=None,
    )


@PROPERTY
@given(
    hops=st.lists(st.tuples(known_hop_name, value), max_size=4),
    named=st.lists(harmless_name, max_size=3),
    connection=spelled("connection"),
    others=st.lists(st.tuples(harmless_name, value), max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_no_hop_by_hop_header_nor_one_named_in_connection_reaches_postgrest(
    hops: list[tuple[bytes, bytes]],
    named: list[bytes],
    connection: bytes,
    others: list[tuple[bytes, bytes]],
    order: Any,
) -> None:
    check_hop_by_hop_dropped(hops, named, connection, others, order)


@PROPERTY
@given(
    hops=st.lists(st.tuples(any_hop_name, value), min_size=1, max_size=4),
    named=st.lists(harmless_name, max_size=3),
    connection=spelled("connection"),
    others=st.lists(st.tuples(harmless_name, value), max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_no_proxy_star_header_in_any_spelling_reaches_postgrest(
    hops: list[tuple[bytes, bytes]],
    named: list[bytes],
    connection: bytes,
    others: list[tuple[bytes, bytes]],
    order: Any,
) -> None:
    """docs/proxy.md: ``Proxy-*`` is hop-by-hop, every name of that form."""
    check_hop_by_hop_dropped(hops, named, connection, others, order)


def check_hop_by_hop_dropped(
    hops: list[tuple[bytes, bytes]],
    named: list[bytes],
    connection: bytes,
    others: list[tuple[bytes, bytes]],
    order: Any,
) -> None:
    listed = [(connection, b", ".join(named))] if named else []
    # The Connection header names fields in any spelling; the fields themselves follow.
    named_fields = [(name.upper(), b"secret") for name in named]
    headers = [*hops, *listed, *named_fields, *others]
    order.shuffle(headers)

    out = forward(headers)

    forbidden = {normalized_name(n) for n, _ in hops} | {normalized_name(n) for n in named}
    forbidden |= {b"connection"}
    sent = {normalized_name(n) for n, _ in out}
    # Host, X-Forwarded-* and X-Request-Id are set by the gateway itself afterwards.
    ours = {b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id"}
    assert not (sent - ours) & forbidden, out


@PROPERTY
@given(
    forged=st.lists(st.tuples(known_forwarding_name, value), min_size=1, max_size=4),
    others=st.lists(st.tuples(harmless_name, value), max_size=3),
)
def test_no_client_sent_forwarding_header_survives_from_an_untrusted_peer(
    forged: list[tuple[bytes, bytes]], others: list[tuple[bytes, bytes]]
) -> None:
    check_forwarding_dropped(forged, others)


@PROPERTY
@given(
    forged=st.lists(st.tuples(any_forwarding_name, value), min_size=1, max_size=4),
    others=st.lists(st.tuples(harmless_name, value), max_size=3),
)
def test_no_client_sent_x_forwarded_star_header_survives_from_an_untrusted_peer(
    forged: list[tuple[bytes, bytes]], others: list[tuple[bytes, bytes]]
) -> None:
    """docs/proxy.md: every ``X-Forwarded-*`` of the client is dropped, not only five names."""
    check_forwarding_dropped(forged, others)


def check_forwarding_dropped(
    forged: list[tuple[bytes, bytes]], others: list[tuple[bytes, bytes]]
) -> None:
    out = forward([*forged, *others, (b"host", b"gateway.example")])

    own = {
        b"x-forwarded-for": b"198.51.100.9",
        b"x-forwarded-proto": b"http",
        b"x-forwarded-host": b"gateway.example",
    }
    for name, sent in out:
        key = normalized_name(name)
        if key.startswith(b"x-forwarded-") or key in (b"forwarded", b"x-real-ip"):
            assert own.get(name) == sent, (name, sent, forged)


def test_an_unlisted_x_forwarded_header_from_an_untrusted_peer_is_dropped() -> None:
    """docs/proxy.md: ``X-Forwarded-*`` from the client is dropped, not only the known five."""
    out = forward([(b"X-Forwarded-Server", b"evil"), (b"X-Forwarded-Ssl", b"on")])

    assert [n for n, _ in out if n.startswith(b"x-forwarded-")] == [
        b"x-forwarded-for",
        b"x-forwarded-proto",
    ]


def test_an_unlisted_proxy_header_from_the_client_is_dropped() -> None:
    """docs/proxy.md lists ``Proxy-*`` as hop-by-hop, not only Proxy-Connection/-Authorization."""
    out = forward([(b"Proxy-Secret", b"x")])

    assert b"proxy-secret" not in {n for n, _ in out}


client_claim_name = st.sampled_from(sorted(CLIENT_CLAIMS)).flatmap(
    lambda name: spelled(name.decode())
)


@PROPERTY
@given(
    forged=st.lists(st.tuples(client_claim_name, value), min_size=1, max_size=4),
    others=st.lists(st.tuples(harmless_name, value), max_size=3),
    trusted=st.booleans(),
)
def test_no_client_identity_or_url_rewrite_header_in_any_spelling_reaches_postgrest(
    forged: list[tuple[bytes, bytes]], others: list[tuple[bytes, bytes]], trusted: bool
) -> None:
    """docs/proxy.md lists the class (True-Client-IP, X-Original-URL, X-HTTP-Method-Override
    …); it is dropped whoever the peer is."""
    out = forward([*forged, *others], trusted=trusted)

    assert not {normalized_name(n) for n, _ in out} & CLIENT_CLAIMS, out


GATEWAY_COOKIES = frozenset({b"gw_access", b"gw_refresh", b"gw_csrf"})
cookie_name = st.text(TOKEN_CHARS.replace("-", ""), min_size=1, max_size=10).map(str.encode)
cookie_value_ = st.text("abcdefXYZ0123456789._~-", max_size=12).map(str.encode)
space = st.sampled_from([b"", b" ", b"  ", b"\t"])


@PROPERTY
@given(
    pairs=st.lists(
        st.tuples(st.one_of(st.sampled_from(sorted(GATEWAY_COOKIES)), cookie_name), cookie_value_),
        max_size=8,
    ),
    pad=st.lists(st.tuples(space, space, space), min_size=8, max_size=8),
)
def test_gateway_cookies_never_survive_strip_cookies(
    pairs: list[tuple[bytes, bytes]], pad: list[tuple[bytes, bytes, bytes]]
) -> None:
    header = b";".join(
        before + name + middle + b"=" + value + after
        for (name, value), (before, middle, after) in zip(pairs, pad, strict=False)
    )

    kept = strip_cookies(header, GATEWAY_COOKIES)

    names = [pair.split(b"=", 1)[0].strip() for pair in kept.split(b";") if pair.strip()]
    assert not set(names) & GATEWAY_COOKIES
    assert names == [n for n, _ in pairs if n not in GATEWAY_COOKIES]


# --- client_address ----------------------------------------------------------------------

TRUSTED = parse_networks(("10.0.0.0/8", "fd00::/8"))
trusted_ip = st.one_of(
    st.integers(0, 2**24 - 1).map(lambda n: str(ipaddress.IPv4Address(0x0A000000 + n))),
    st.integers(0, 2**120 - 1).map(lambda n: str(ipaddress.IPv6Address((0xFD << 120) + n))),
)
public_ip = st.one_of(
    st.integers(0x0B000000, 0xDF000000).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0x2001_0DB8 << 96, (0x2001_0DB8 << 96) + 2**96 - 1).map(
        lambda n: str(ipaddress.IPv6Address(n))
    ),
)
hop = st.one_of(trusted_ip, public_ip, st.sampled_from(["garbage", "", "unknown", "1.2.3"]))


def is_trusted_ip(text: str) -> bool:
    return any(ipaddress.ip_address(text) in network for network in TRUSTED)


@PROPERTY
@given(peer=st.one_of(trusted_ip, public_ip), hops=st.lists(hop, max_size=6))
def test_a_trusted_chain_is_read_right_to_left_and_stops_at_the_first_untrusted_hop(
    peer: str, hops: list[str]
) -> None:
    result = client_address(peer, [", ".join(hops)] if hops else [], TRUSTED)

    assert result is not None
    if not is_trusted_ip(peer):
        assert result == str(ipaddress.ip_address(peer))
        return
    # The walk, as the docs define it: right to left while the hops are trusted proxies.
    expected = str(ipaddress.ip_address(peer))
    for candidate in reversed(hops):
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            break
        expected = str(ip)
        if not is_trusted_ip(candidate):
            break
    assert result == expected
    assert result == str(ipaddress.ip_address(peer)) or result in {
        str(ipaddress.ip_address(h)) for h in hops if valid(h)
    }
    # Never a hop to the left of an untrusted hop: those were written by the client.
    untrusted = [i for i, h in enumerate(hops) if valid(h) and not is_trusted_ip(h)]
    if untrusted:
        rightmost = untrusted[-1]
        forged = {str(ipaddress.ip_address(h)) for h in hops[:rightmost] if valid(h)}
        forged -= {str(ipaddress.ip_address(h)) for h in hops[rightmost:] if valid(h)}
        forged.discard(str(ipaddress.ip_address(peer)))
        assert result not in forged


def valid(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@PROPERTY
@given(peer=public_ip, forged=st.lists(st.one_of(trusted_ip, public_ip), min_size=1, max_size=4))
def test_an_untrusted_peer_cannot_name_another_client(peer: str, forged: list[str]) -> None:
    assume(peer not in forged)

    assert client_address(peer, [", ".join(forged)], TRUSTED) == str(ipaddress.ip_address(peer))


# --- build_access_claims -----------------------------------------------------------------

ROLES = ["authenticated", "member"]
CLAIM_SETTINGS = Settings(allowed_roles=ROLES, authenticated_role="authenticated")
ids = st.integers(min_value=1, max_value=2**53)
text = st.text(max_size=20)


@PROPERTY
@given(
    user_id=ids,
    organization_id=st.one_of(st.none(), ids),
    role=st.sampled_from(ROLES),
    email=text,
    org_role=st.one_of(st.none(), text),
    now=st.integers(0, 2**40),
)
def test_claims_carry_safe_integer_ids_and_an_allowed_role(
    user_id: int, organization_id: int | None, role: str, email: str, org_role: str | None, now: int
) -> None:
    identity = Identity(
        user_id=user_id,
        email=email,
        status="active",
        db_role=role,
        organization_id=organization_id,
        org_name="Acme" if organization_id else None,
        org_role=org_role,
    )
    try:
        claims = build_access_claims(
            identity, settings=CLAIM_SETTINGS, session_id="s", now=now, not_after=now + 10**9
        )
    except ValueError:
        # An id at exactly 2**53 is refused rather than issued.
        assert 2**53 in (user_id, organization_id)
        return

    assert claims["role"] in CLAIM_SETTINGS.allowed_roles
    assert type(claims["user"]["user_id"]) is int
    assert 0 < claims["user"]["user_id"] < 2**53
    assert claims["sub"] == str(user_id)
    if organization_id is None:
        assert claims["organization"] is None
        assert claims["user"]["organization_id"] is None
    else:
        assert type(claims["organization"]["organization_id"]) is int
        assert 0 < claims["organization"]["organization_id"] < 2**53


@PROPERTY
@given(
    role=st.text(max_size=30).filter(lambda r: r not in ROLES),
    user_id=ids,
)
def test_a_db_role_outside_the_allow_list_never_becomes_the_role_claim(
    role: str, user_id: int
) -> None:
    identity = Identity(user_id=user_id, email="a@b.c", status="active", db_role=role)

    with pytest.raises(RoleNotAllowed):
        build_access_claims(
            identity, settings=CLAIM_SETTINGS, session_id="s", now=0, not_after=10**9
        )


@PROPERTY
@given(bad=st.one_of(st.integers(max_value=0), st.integers(min_value=2**53 + 1), st.just(True)))
def test_an_unsafe_id_is_never_put_into_a_token(bad: int) -> None:
    identity = Identity(user_id=bad, email="a@b.c", status="active", db_role="authenticated")

    with pytest.raises(ValueError, match="2\\*\\*53"):
        build_access_claims(
            identity, settings=CLAIM_SETTINGS, session_id="s", now=0, not_after=10**9
        )
