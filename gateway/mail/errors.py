"""What can go wrong with sending mail: not configured, undeliverable, unusable templates."""

from __future__ import annotations

from gateway.errors import GatewayError


class MailNotConfigured(GatewayError):
    """The action needs to send mail, and neither GATEWAY_SMTP_URL nor GATEWAY_DEV_MODE is set."""

    code = "mail_not_configured"
    status = 503


class MailUnavailable(GatewayError):
    """The mail server could not be reached or refused the message (the details are logged)."""

    code = "mail_unavailable"
    status = 503


class MailTemplatesError(Exception):
    """A mail template is missing or does not compile: a start-up error naming the file."""
