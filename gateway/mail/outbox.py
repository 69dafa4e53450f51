"""The outbox: mail sent after the answer, so its delivery time never shows in a response."""

from __future__ import annotations

import asyncio
import logging

from gateway.mail.errors import MailUnavailable
from gateway.mail.mailer import Mailer
from gateway.mail.messages import MailMessage

logger = logging.getLogger("gateway.mail")


class Outbox:
    """Delivers mail in background tasks of the running event loop; one per process.

    An endpoint that must answer a known and an unknown email alike (password reset) cannot
    wait for an SMTP conversation that only one of them has: it posts the message here and
    answers at once. A failed delivery is logged by its kind and failure class only, never the
    recipient's link or token (``MailMessage`` keeps the token out of its ``repr`` too); the
    client, already answered, asks again. ``drain`` waits for what is in flight: at shutdown,
    and in tests that read the inbox.
    """

    __slots__ = ("_mailer", "_pending")

    def __init__(self, mailer: Mailer) -> None:
        self._mailer = mailer
        # Strong references: the event loop keeps only weak ones to its tasks.
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def mailer(self) -> Mailer:
        return self._mailer

    def require_mail(self) -> None:
        """Raise ``MailNotConfigured`` (503) unless mail can be sent; ask before writing."""
        self._mailer.require_mail()

    def post(self, message: MailMessage) -> None:
        """Start delivering ``message`` and return at once."""
        task = asyncio.get_running_loop().create_task(self._deliver(message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, message: MailMessage) -> None:
        try:
            await self._mailer.send(message)
        except MailUnavailable:
            pass  # the Mailer logged the server and the failure's class already
        except Exception as exc:  # noqa: BLE001 - a background task has no caller to raise to
            logger.error("mail %s not delivered: %s", message.kind, type(exc).__name__)

    async def drain(self, within: float = 30.0) -> None:
        """Wait (at most ``within`` seconds) for every delivery in flight; cancel the rest."""
        if not self._pending:
            return
        pending = set(self._pending)
        _, late = await asyncio.wait(pending, timeout=within)
        for task in late:
            logger.error("mail delivery still running at shutdown; cancelled")
            task.cancel()
