"""Account mail, the pure parts: SMTP URLs, link building, templates, link token shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.accounts import looks_like_link_token
from gateway.accounts.link_tokens import hash_link_token, new_link_token
from gateway.mail import Mailer, MailMessage, MailTemplatesError, build_link, describe_duration
from gateway.settings import SettingsError, load_settings, parse_smtp_url

SECRET = "hunter2-not-in-errors"


@pytest.mark.parametrize(
    ("url", "security", "port"),
    [
        ("smtp://u:p@mail.example.com", "starttls", 587),
        ("smtps://u:p@mail.example.com", "tls", 465),
        ("smtp+insecure://127.0.0.1", "none", 25),
        ("smtp://mail.example.com:2525", "starttls", 2525),
    ],
)
def test_the_scheme_says_how_the_connection_is_secured(url: str, security: str, port: int) -> None:
    server = parse_smtp_url(url)

    assert (server.security, server.port) == (security, port)


def test_user_and_password_are_percent_decoded_and_the_password_stays_out_of_repr() -> None:
    server = parse_smtp_url(f"smtp://me%40example.com:{SECRET}%2F@mail.example.com")

    assert server.username == "me@example.com"
    assert server.password is not None
    assert server.password.get_secret_value() == SECRET + "/"
    assert SECRET not in repr(server)


@pytest.mark.parametrize(
    "url",
    [
        f"http://u:{SECRET}@mail.example.com",
        f"smtp+insecure://u:{SECRET}@127.0.0.1",
        f"smtp://u:{SECRET}@mail.example.com/path",
        f"smtp://u:{SECRET}@mail.example.com?x=1",
        f"smtp://u:{SECRET}@:25",
        f"smtp://u:{SECRET}@mail.example.com:99999",
        "smtp://only-user@mail.example.com",
    ],
)
def test_a_bad_smtp_url_stops_the_start_without_repeating_the_password(url: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(
            smtp_url=url, mail_from="a@example.com", link_base_url="https://app.example.com"
        )

    assert str(refused.value).startswith("invalid setting GATEWAY_SMTP_URL: ")
    assert SECRET not in str(refused.value)


def test_a_mail_server_needs_a_sender_and_a_link_base() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_MAIL_FROM and GATEWAY_LINK_BASE_URL"):
        load_settings(smtp_url="smtp+insecure://127.0.0.1")


@pytest.mark.parametrize(
    "base",
    [
        "app.example.com",
        "ftp://app.example.com",
        "https://app.example.com/?next=1",
        "https://app.example.com/#top",
        "https://user:pw@app.example.com",
        "/relative/path",
    ],
)
def test_the_link_base_is_an_absolute_http_url_without_query_or_fragment(base: str) -> None:
    with pytest.raises(SettingsError, match="GATEWAY_LINK_BASE_URL"):
        load_settings(link_base_url=base)


def test_the_link_keeps_the_base_path_and_carries_the_token_as_its_only_query() -> None:
    link = build_link(base_url="https://app.example.com/account", page="verify-email", token="t_1")

    assert link == "https://app.example.com/account/verify-email?token=t_1"


def test_a_token_with_url_characters_is_encoded_not_pasted() -> None:
    link = build_link(base_url="https://app.example.com", page="reset-password", token="a&b=c#d")

    assert link == "https://app.example.com/reset-password?token=a%26b%3Dc%23d"


@pytest.mark.parametrize("page", ["../admin", "a/b", "//evil.example", "", "Verify"])
def test_a_page_is_one_plain_path_segment(page: str) -> None:
    with pytest.raises(ValueError, match="page"):
        build_link(base_url="https://app.example.com", page=page, token=None)


def test_the_html_part_escapes_what_it_shows_and_the_text_part_does_not() -> None:
    mailer = Mailer(settings=load_settings(dev_mode=True))
    mail = mailer.compose(
        MailMessage(
            kind="invitation",
            to="ada@example.com",
            token="pgw_lt_x",
            organization_name="<script>alert(1)</script>",
        )
    )

    html = mail.get_body(preferencelist=("html",))
    text = mail.get_body(preferencelist=("plain",))
    assert html is not None
    assert text is not None
    assert "&lt;script&gt;" in html.get_content()
    assert "<script>" not in html.get_content()
    assert "<script>alert(1)</script>" in text.get_content()


def test_a_subject_is_one_line_whatever_the_organization_name() -> None:
    mailer = Mailer(settings=load_settings(dev_mode=True))
    mail = mailer.compose(
        MailMessage(
            kind="invitation",
            to="ada@example.com",
            token="pgw_lt_x",
            organization_name="Acme\r\nBcc: eve@example.com",
        )
    )

    assert "\n" not in mail["Subject"]
    assert "Bcc" not in mail


def test_the_token_stays_out_of_a_messages_repr() -> None:
    message = MailMessage(kind="verify_email", to="ada@example.com", token="pgw_lt_secret")

    assert "pgw_lt_secret" not in repr(message)


def test_a_kind_with_a_link_token_needs_one_and_the_others_take_none() -> None:
    with pytest.raises(ValueError, match="needs"):
        MailMessage(kind="password_reset", to="ada@example.com")
    with pytest.raises(ValueError, match="takes no"):
        MailMessage(kind="signup_attempt_on_existing_account", to="a@example.com", token="t")


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (3600, "1 hour"),
        (86400, "1 day"),
        (604800, "7 days"),
        (5400, "90 minutes"),
        (61, "61 seconds"),
    ],
)
def test_lifetimes_are_said_in_the_largest_unit_that_divides_them(seconds: int, words: str) -> None:
    assert describe_duration(seconds) == words


def test_a_missing_template_folder_stops_the_start() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_MAIL_TEMPLATES"):
        load_settings(mail_templates="/no/such/folder")


def test_a_broken_override_template_stops_the_start_naming_its_file(tmp_path: Path) -> None:
    (tmp_path / "verify_email.html").write_text("{% if %}")

    with pytest.raises(MailTemplatesError, match=r"verify_email\.html"):
        Mailer(settings=load_settings(dev_mode=True, mail_templates=str(tmp_path)))


def test_an_override_naming_an_unknown_variable_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "password_reset.txt").write_text("{{ lnik }}")

    with pytest.raises(MailTemplatesError, match=r"password_reset\.txt.*lnik"):
        Mailer(settings=load_settings(dev_mode=True, mail_templates=str(tmp_path)))


def test_link_tokens_are_256_random_bits_behind_a_scannable_prefix() -> None:
    tokens = {new_link_token() for _ in range(100)}

    assert len(tokens) == 100
    assert all(looks_like_link_token(token) and len(token) == 7 + 43 for token in tokens)
    assert not looks_like_link_token("pgw_rt_" + "A" * 43)
    assert not looks_like_link_token("pgw_lt_" + "A" * 43 + "\n")


def test_the_stored_form_of_a_link_token_is_its_sha256_in_hex() -> None:
    assert hash_link_token("pgw_lt_x") == (
        "1075beb705f36aa14047ec2ed75535b0dd7ee9d644de7d4d69764727ae3bdf89"
    )
