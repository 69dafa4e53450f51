"""The mail templates: built in, or overridden file by file from GATEWAY_MAIL_TEMPLATES."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)

from gateway.mail.errors import MailTemplatesError
from gateway.mail.messages import KINDS, MailKind

# Each kind has three templates: the one-line subject, the plain-text part, the HTML part.
PARTS = ("subject.txt", "txt", "html")

# What a trial render at start-up fills in, so a template naming a variable the gateway never
# passes fails then, with its file name, rather than on the first mail.
_SAMPLE = {
    "email": "ada@example.com",
    "link": "https://app.example.com/page?token=sample",
    "expires_in": "1 hour",
    "organization_name": "Example",
}


class MailTemplates:
    """Every kind's subject, text and HTML templates, each checked when this is made.

    A file ``<kind>.<part>`` in ``override_folder`` replaces the built-in one of that name
    (gateway/mail/templates/); the others stay. HTML is autoescaped: an organization name such
    as ``<script>`` arrives as text. Undefined variables are errors, not empty strings.
    """

    def __init__(self, override_folder: str | None) -> None:
        loaders: list[Any] = [PackageLoader("gateway.mail", "templates")]
        if override_folder is not None:
            folder = Path(override_folder)
            if not folder.is_dir():
                raise MailTemplatesError(f"GATEWAY_MAIL_TEMPLATES {override_folder!r} is no folder")
            loaders.insert(0, FileSystemLoader(folder))
        self._environment = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            # The templates checked at start-up are the ones used: no re-reading on change.
            auto_reload=False,
        )
        for kind in KINDS:
            for part in PARTS:
                self.render(kind, part, _SAMPLE)

    def render(self, kind: MailKind, part: str, context: Mapping[str, str | None]) -> str:
        name = f"{kind}.{part}"
        try:
            return self._environment.get_template(name).render(context)
        except (TemplateError, OSError, UnicodeDecodeError) as exc:
            raise MailTemplatesError(f"mail template {name}: {type(exc).__name__}: {exc}") from None
