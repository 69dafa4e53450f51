"""The Mailer against a real SMTP server on 127.0.0.1: each connection mode, and its failures."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from gateway.mail import Mailer, MailMessage, MailNotConfigured, MailUnavailable
from gateway.settings import Settings, load_settings
from tests.support.smtp import Certificate, Inbox, free_port, self_signed_certificate, smtp_server

TOKEN = "pgw_lt_" + "T" * 43
PASSWORD = "s3cret p@ss/with:odd%chars"


def mail_settings(smtp_url: str, **overrides: object) -> Settings:
    return load_settings(
        smtp_url=smtp_url,
        mail_from="Example Accounts <accounts@example.com>",
        link_base_url="https://app.example.com/account",
        smtp_timeout=5,
        **overrides,
    )


def reset_mail() -> MailMessage:
    return MailMessage(kind="password_reset", to="ada@example.com", token=TOKEN, expires_in=3600)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def plain_server() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as served:
        yield served


def assert_one_reset_mail(inbox: Inbox) -> None:
    """One mail, to Ada, whose text and HTML parts carry exactly the reset link."""
    assert inbox.envelopes == [("accounts@example.com", ["ada@example.com"])]
    (mail,) = inbox.messages
    link = f"https://app.example.com/account/reset-password?token={TOKEN}"
    assert mail["Subject"] == "Reset your password"
    assert mail["To"] == "ada@example.com"
    assert mail["From"] == "Example Accounts <accounts@example.com>"
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert link in text.get_content()
    assert f'<a href="{link}">' in html.get_content()
    assert "expires in 1 hour" in text.get_content()
    # The token once in each part, in no header; the SMTP password nowhere.
    assert text.get_content().count(TOKEN) == 1
    assert html.get_content().count(TOKEN) == 1
    assert all(TOKEN not in str(value) for value in mail.values())
    assert PASSWORD not in mail.as_string()


async def test_plain_smtp_delivers_the_mail_with_its_link_in_both_parts(
    plain_server: tuple[int, Inbox],
) -> None:
    port, inbox = plain_server
    mailer = Mailer(settings=mail_settings(f"smtp+insecure://127.0.0.1:{port}"))

    await mailer.send(reset_mail())

    assert_one_reset_mail(inbox)


async def test_starttls_with_credentials_delivers_after_upgrading(
    certificate: Certificate,
) -> None:
    with smtp_server(starttls=certificate.server, accounts={"mailer": PASSWORD}) as (port, inbox):
        url = f"smtp://mailer:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"
        mailer = Mailer(settings=mail_settings(url), tls_context=certificate.client)

        await mailer.send(reset_mail())

    assert inbox.logins == [("mailer", PASSWORD)]
    assert_one_reset_mail(inbox)


async def test_implicit_tls_delivers(certificate: Certificate) -> None:
    with smtp_server(implicit_tls=certificate.server) as (port, inbox):
        mailer = Mailer(
            settings=mail_settings(f"smtps://127.0.0.1:{port}"), tls_context=certificate.client
        )

        await mailer.send(reset_mail())

    assert_one_reset_mail(inbox)


async def test_smtp_url_refuses_a_server_without_starttls_rather_than_send_in_clear(
    plain_server: tuple[int, Inbox], caplog: pytest.LogCaptureFixture
) -> None:
    port, inbox = plain_server
    url = f"smtp://mailer:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"

    with pytest.raises(MailUnavailable) as refused:
        await Mailer(settings=mail_settings(url)).send(reset_mail())

    assert (refused.value.status, refused.value.code) == (503, "mail_unavailable")
    assert inbox.messages == []
    assert inbox.logins == []
    assert PASSWORD not in caplog.text
    assert TOKEN not in caplog.text


async def test_a_certificate_the_client_does_not_trust_is_refused(
    certificate: Certificate,
) -> None:
    with smtp_server(starttls=certificate.server) as (port, inbox):
        mailer = Mailer(settings=mail_settings(f"smtp://127.0.0.1:{port}"))

        with pytest.raises(MailUnavailable):
            await mailer.send(reset_mail())

    assert inbox.messages == []


async def test_a_wrong_password_is_unavailable_and_never_repeated(
    certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with smtp_server(starttls=certificate.server, accounts={"mailer": "right"}) as (port, inbox):
        url = f"smtp://mailer:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"
        mailer = Mailer(settings=mail_settings(url), tls_context=certificate.client)

        with pytest.raises(MailUnavailable) as refused:
            await mailer.send(reset_mail())

    assert inbox.messages == []
    assert PASSWORD not in refused.value.message
    assert refused.value.__suppress_context__  # no traceback shows the SMTP error
    assert PASSWORD not in caplog.text
    assert TOKEN not in caplog.text
    assert f"127.0.0.1:{port}" in caplog.text


async def test_a_server_that_does_not_answer_is_unavailable() -> None:
    mailer = Mailer(settings=mail_settings(f"smtp+insecure://127.0.0.1:{free_port()}"))

    with pytest.raises(MailUnavailable):
        await mailer.send(reset_mail())


async def test_without_a_mail_server_sending_is_refused_before_anything_else() -> None:
    mailer = Mailer(settings=load_settings())

    assert not mailer.can_send
    with pytest.raises(MailNotConfigured) as refused:
        await mailer.send(reset_mail())
    assert (refused.value.status, refused.value.code) == (503, "mail_not_configured")


async def test_dev_mode_without_a_mail_server_writes_the_mail_to_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.mail")
    mailer = Mailer(settings=load_settings(dev_mode=True, link_base_url="http://localhost:5173"))

    await mailer.send(reset_mail())

    assert mailer.can_send
    assert f"http://localhost:5173/reset-password?token={TOKEN}" in caplog.text


async def test_override_templates_are_what_the_server_receives(
    plain_server: tuple[int, Inbox], tmp_path: Path
) -> None:
    port, inbox = plain_server
    (tmp_path / "password_reset.txt").write_text("Custom: {{ link }}\n")
    mailer = Mailer(
        settings=mail_settings(f"smtp+insecure://127.0.0.1:{port}", mail_templates=str(tmp_path))
    )

    await mailer.send(reset_mail())

    (mail,) = inbox.messages
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().startswith("Custom: https://app.example.com/account/reset-password")
    assert "Choose a new password" in html.get_content()  # the built-in HTML stays
