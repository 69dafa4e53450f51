"""The browser demo at ``/demo`` (``GATEWAY_DEMO``): one static page and its script."""

from __future__ import annotations

from gateway.web.demo.page import demo_page

__all__ = ["demo_page"]
