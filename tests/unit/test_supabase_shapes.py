"""Pure decisions of the Supabase surface: GoTrue's error body, and which mount gets a path."""

from __future__ import annotations

import pytest

from gateway.proxy import mount_prefix
from gateway.web.auth.supabase_errors import gotrue_error

PREFIXES = ("/rest", "/rest/v1")


@pytest.mark.parametrize(
    ("ours", "gotrue"),
    [
        ((401, "invalid_credentials"), (400, "invalid_credentials")),
        ((403, "user_suspended"), (400, "user_banned")),
        ((401, "refresh_token_reused"), (400, "refresh_token_already_used")),
        ((401, "session_revoked"), (403, "session_not_found")),
        ((401, "missing_token"), (401, "no_authorization")),
        ((401, "invalid_token"), (403, "bad_jwt")),
        ((403, "signup_closed"), (422, "signup_disabled")),
        ((429, "too_many_attempts"), (429, "over_request_rate_limit")),
        ((401, "anon_key_retired"), (401, "anon_key_retired")),
        ((503, "mail_not_configured"), (503, "mail_not_configured")),
    ],
)
def test_our_errors_become_gotrues_error_body(
    ours: tuple[int, str], gotrue: tuple[int, str]
) -> None:
    body = gotrue_error(*ours, "A sentence.")

    assert (body["code"], body["error_code"], body["msg"]) == (*gotrue, "A sentence.")


def test_a_weak_password_carries_the_reasons_supabase_js_needs() -> None:
    body = gotrue_error(400, "weak_password", "Too short.")

    assert body["code"] == 422
    assert body["weak_password"] == {"message": "Too short.", "reasons": ["length"]}


@pytest.mark.parametrize(
    ("raw_path", "path", "expected"),
    [
        (b"/rest/v1/projects", "/rest/v1/projects", "/rest/v1"),
        (b"/rest/v1", "/rest/v1", "/rest/v1"),
        (b"/rest/projects", "/rest/projects", "/rest"),
        (b"/rest/v10/x", "/rest/v10/x", "/rest"),
        (b"/rest/v%31/x", "/rest/v1/x", "/rest"),
        (b"/r%65st/v1/x", "/rest/v1/x", "/rest/v1"),
        (b"/r%65st/x", "/rest/x", "/rest"),
        (b"/auth/v1/token", "/auth/v1/token", None),
        (b"/restv1", "/restv1", None),
    ],
)
def test_the_raw_path_chooses_the_mount_and_the_decoded_one_only_claims_one(
    raw_path: bytes, path: str, expected: str | None
) -> None:
    assert mount_prefix(raw_path, path, PREFIXES) == expected


def test_with_a_custom_prefix_rest_v1_is_its_own_mount() -> None:
    assert mount_prefix(b"/rest/v1/x", "/rest/v1/x", ("/api", "/rest/v1")) == "/rest/v1"
    assert mount_prefix(b"/api/x", "/api/x", ("/api", "/rest/v1")) == "/api"
    assert mount_prefix(b"/rest/x", "/rest/x", ("/api", "/rest/v1")) is None
