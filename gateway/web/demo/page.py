"""``/demo``: a static page and a plain script, served only when ``GATEWAY_DEMO`` is true.

The page signs in with cookies (``"cookie": true``), so it runs on the origin that holds the
session: it loads nothing but its own files, runs no inline script, talks only to the gateway
(``connect-src 'self'``) and cannot be framed. It renders every value from the server with
``textContent``, never as HTML (row names are anyone's input). The two values the script needs
from the settings, the proxy prefix and the CSRF cookie's name, are ``data-`` attributes of the
page, escaped for HTML.
"""

from __future__ import annotations

import html
from importlib.resources import files
from typing import Final

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from gateway.sessions import cookie_names
from gateway.settings import Settings

DEMO_PATH: Final = "/demo"
SCRIPT_PATH: Final = DEMO_PATH + "/demo.js"
STYLE_PATH: Final = DEMO_PATH + "/demo.css"

DEMO_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        # Same origin only: the gateway's other answers are JSON with nosniff, which a browser
        # never runs as a script. (A source cannot name a path without a host, and the host the
        # page is reached by is not known here.)
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        # The script writes text only (textContent), never HTML: with no policy allowed, every
        # HTML or script sink (innerHTML, eval, a string setTimeout) throws in the browser.
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)


def _file(name: str) -> str:
    return files("gateway.web.demo").joinpath(name).read_text(encoding="utf-8")


def render_page(settings: Settings) -> bytes:
    """The page with the proxy prefix and the CSRF cookie's name filled in (a pure function)."""
    values = {
        "{rest_prefix}": settings.proxy_prefix,
        "{csrf_cookie}": cookie_names(settings).csrf,
        "{script}": SCRIPT_PATH,
        "{style}": STYLE_PATH,
    }
    page = _file("index.html")
    for placeholder, value in values.items():
        page = page.replace(placeholder, html.escape(value, quote=True))
    return page.encode()


def demo_page(settings: Settings) -> tuple[list[HTTPRouteHandler], dict[str, bytes]]:
    """The demo's routes and its page's policy when ``GATEWAY_DEMO`` is on, else nothing.

    Off, ``/demo`` is not routed at all, so it is the same 404 as any unknown path.
    """
    if not settings.demo:
        return [], {}
    page = render_page(settings)
    script = _file("demo.js").encode()
    style = _file("demo.css").encode()

    @get(DEMO_PATH, include_in_schema=False, sync_to_thread=False)
    def demo() -> Response[bytes]:
        return Response(page, media_type="text/html")

    @get(SCRIPT_PATH, include_in_schema=False, sync_to_thread=False)
    def demo_script() -> Response[bytes]:
        return Response(script, media_type="text/javascript")

    @get(STYLE_PATH, include_in_schema=False, sync_to_thread=False)
    def demo_style() -> Response[bytes]:
        return Response(style, media_type="text/css")

    return [demo, demo_script, demo_style], {DEMO_PATH: DEMO_POLICY.encode()}
