"""GATEWAY_LOG_FORMAT: the process's log lines as text (the default) or one JSON object each.

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``request_id``
when it was logged while a request was being handled (the request log sets
:data:`current_request_id` for the request's task, and threads started from it inherit it),
the access line's fields (``method``, ``group``, ``path``, ``status``, ``duration_ms``,
``peer``), and ``exception`` with the traceback when there is one. What a message holds is what
the text line holds: the code never logs a token, a password or a query string.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

#: The id of the request being handled in this context (None outside one).
current_request_id: ContextVar[str | None] = ContextVar("gateway_request_id", default=None)

#: The ``extra`` key under which a log call passes fields of its own (the access line's).
FIELDS: Final = "gateway_fields"

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a newline in a message is escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id.get()
        if request_id is not None:
            line["request_id"] = request_id
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def granian_log_config(log_format: str) -> dict[str, Any] | None:
    """Granian's own log lines (its start-up, its workers' fate) in the same format: a
    ``logging.config.dictConfig`` fragment for its ``log_dictconfig``, None for its default."""
    if log_format != "json":
        return None
    formatter = {"()": f"{__name__}.JsonFormatter"}
    return {
        "formatters": {"generic": formatter, "access": formatter},
    }
