"""The Mailer: composes a message from its templates, sends it by SMTP (dev mode: logs it)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import aiosmtplib

from gateway.mail._templates import MailTemplates
from gateway.mail.errors import MailNotConfigured, MailUnavailable
from gateway.mail.links import build_link
from gateway.mail.messages import KINDS, MailMessage, describe_duration
from gateway.settings import Settings, SmtpServer

logger = logging.getLogger("gateway.mail")

# Used in dev mode when GATEWAY_MAIL_FROM is unset: the mail only goes to the log then.
_DEV_SENDER = "gateway@localhost"


class Mailer:
    """Sends the gateway's mails; one per process, made at start-up from the settings.

    Making it checks every template (``MailTemplatesError`` names a broken one), so a bad
    override stops the start instead of the first sign-up. ``send`` delivers through
    ``GATEWAY_SMTP_URL``; without one it logs the mail when ``GATEWAY_DEV_MODE`` is on and
    raises ``MailNotConfigured`` (503) otherwise. Code that needs mail for an action should ask
    ``can_send`` (or call ``require_mail``) before it changes anything, so a refusal leaves the
    store as it was.

    ``tls_context`` replaces the system's trust store for ``smtp://`` and ``smtps://`` (a
    relay with a private CA, or a test server); certificates are always verified.
    """

    def __init__(self, *, settings: Settings, tls_context: ssl.SSLContext | None = None) -> None:
        self._server: SmtpServer | None = settings.smtp_server
        self._dev_mode = settings.dev_mode
        self._sender = settings.mail_from or _DEV_SENDER
        # In dev mode without GATEWAY_LINK_BASE_URL the links point at the gateway itself.
        self._link_base = settings.link_base_url or settings.issuer
        self._timeout = settings.smtp_timeout
        self._tls_context = tls_context
        self._templates = MailTemplates(settings.mail_templates)

    @property
    def can_send(self) -> bool:
        """Whether ``send`` can do its work: a mail server, or dev mode's log."""
        return self._server is not None or self._dev_mode

    def require_mail(self) -> None:
        """Raise ``MailNotConfigured`` unless ``send`` can work: call it before writing anything."""
        if not self.can_send:
            raise MailNotConfigured(
                "This gateway cannot send mail: its operator has not configured a mail server."
            )

    def link_for(self, message: MailMessage) -> str:
        """The link ``message`` carries, under GATEWAY_LINK_BASE_URL."""
        return build_link(
            base_url=self._link_base, page=KINDS[message.kind].page, token=message.token
        )

    def compose(self, message: MailMessage) -> EmailMessage:
        """The MIME message: a subject, a plain-text part and its HTML alternative."""
        context = {
            "email": message.to,
            "link": self.link_for(message),
            "expires_in": (
                describe_duration(message.expires_in) if message.expires_in is not None else None
            ),
            "organization_name": message.organization_name,
        }
        subject = " ".join(self._templates.render(message.kind, "subject.txt", context).split())
        mail = EmailMessage()
        mail["Subject"] = subject
        mail["From"] = self._sender
        # Address() parses the recipient strictly: a header cannot be smuggled in through it.
        mail["To"] = Address(addr_spec=message.to)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid(domain=_domain_of(self._sender))
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(self._templates.render(message.kind, "txt", context))
        mail.add_alternative(self._templates.render(message.kind, "html", context), subtype="html")
        return mail

    async def send(self, message: MailMessage) -> None:
        """Deliver ``message``; ``MailUnavailable`` (503) when the server cannot be used.

        The error and the log name the server (host and port) and the failure's kind, never
        the SMTP credentials, the link or its token.
        """
        self.require_mail()
        mail = self.compose(message)
        if self._server is None:
            # DEV MODE ONLY: the one place a link (and so a link token) is ever logged, so a
            # developer without a mail server can follow it. Production has GATEWAY_DEV_MODE off
            # and a mail server, and then no link reaches any log.
            body = mail.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
            logger.warning(
                "dev mode, no GATEWAY_SMTP_URL: mail %s to %s not sent; it reads:\n%s",
                message.kind,
                message.to,
                text,
            )
            return
        await self._deliver(self._server, mail, message)

    async def _deliver(self, server: SmtpServer, mail: EmailMessage, message: MailMessage) -> None:
        password = server.password.get_secret_value() if server.password is not None else None
        try:
            # aiosmtplib's timeout bounds the connect and each command; this bounds the whole.
            async with asyncio.timeout(self._timeout * 3):
                await aiosmtplib.send(
                    mail,
                    sender=parseaddr(self._sender)[1],
                    recipients=[message.to],
                    hostname=server.host,
                    port=server.port,
                    username=server.username,
                    password=password,
                    use_tls=server.security == "tls",
                    # True: STARTTLS or nothing (no silent downgrade to plain text); False:
                    # never upgrade an smtp+insecure:// session.
                    start_tls=server.security == "starttls",
                    validate_certs=True,
                    tls_context=self._tls_context,
                    timeout=self._timeout,
                )
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
            # Only the failure's class and SMTP code: a server's reply text is not ours to trust.
            code = getattr(exc, "code", None)
            logger.error(
                "mail %s to %s:%d failed: %s%s",
                message.kind,
                server.host,
                server.port,
                type(exc).__name__,
                f" (SMTP {code})" if code is not None else "",
            )
            raise MailUnavailable(
                "The mail could not be sent just now; try again in a few minutes."
            ) from None
        logger.info("mail %s sent through %s:%d", message.kind, server.host, server.port)


def _domain_of(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "localhost"
