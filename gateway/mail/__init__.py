"""Account mail: the kinds of message, their templates and links, and the Mailer that sends them."""

from __future__ import annotations

from gateway.mail.errors import MailNotConfigured, MailTemplatesError, MailUnavailable
from gateway.mail.links import build_link
from gateway.mail.mailer import Mailer
from gateway.mail.messages import KINDS, KindRules, MailKind, MailMessage, describe_duration
from gateway.mail.outbox import Outbox

__all__ = [
    "KINDS",
    "KindRules",
    "MailKind",
    "MailMessage",
    "MailNotConfigured",
    "MailTemplatesError",
    "MailUnavailable",
    "Mailer",
    "Outbox",
    "build_link",
    "describe_duration",
]
