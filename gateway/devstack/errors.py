"""Why the dev stack could not start."""

from __future__ import annotations

from gateway.errors import GatewayError


class DevStackError(GatewayError):
    """A part of the dev stack could not be set up; the message says which and what to do."""

    code = "dev_stack_failed"
