"""The interactive API docs (Swagger UI at ``/schema/swagger``), off unless ``GATEWAY_API_DOCS``.

The page runs on the origin that holds the session cookies, so a script it loads can act as
any signed-in visitor. Litestar's own Swagger page loads the latest-patch script from a CDN with
no integrity check, embeds the whole document in an inline script and a favicon from a branch
(``@main``). This one loads one exact release of Swagger UI, each file pinned by its SHA-384
(Subresource Integrity: a changed file is not run), and a fixed inline start-up script whose
hash is the only inline script the page's Content-Security-Policy allows.

The hashes are those of the files in the npm package ``swagger-ui-dist`` at that version, which
the CDN serves byte for byte (``npm pack swagger-ui-dist@5.18.2``, then ``openssl dgst -sha384
-binary FILE | base64``). To move to another version, change the version and all three.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

from gateway.settings import Settings

SWAGGER_UI_VERSION: Final = "5.18.2"
_CDN: Final = f"https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}/"


@dataclass(frozen=True, slots=True)
class PinnedAsset:
    url: str
    integrity: str  # the SRI value: "sha384-" and the base64 of the file's SHA-384


SWAGGER_SCRIPT: Final = PinnedAsset(
    _CDN + "swagger-ui-bundle.js",
    "sha384-NXtFPpN61oWCuN4D42K6Zd5Rt2+uxeIT36R7kpXBuY9tLnZorzrJ4ykpqwJfgjpZ",
)
SWAGGER_STYLE: Final = PinnedAsset(
    _CDN + "swagger-ui.css",
    "sha384-rcbEi6xgdPk0iWkAQzT2F3FeBJXdG+ydrawGlfHAFIZG7wU6aKbQaRewysYpmrlW",
)
SWAGGER_ASSETS: Final = (SWAGGER_SCRIPT, SWAGGER_STYLE)


def _csp_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


class PinnedSwaggerUI(OpenAPIRenderPlugin):
    """Swagger UI from pinned files, reading the document from ``openapi_url`` (same origin).

    Attributes:
        content_security_policy: the policy the page must be served with (see
            :mod:`gateway.web.response_headers`): only the pinned files, the start-up script by
            its hash, the document and "try it out" requests to the gateway itself.
    """

    def __init__(self, *, path: str, openapi_url: str) -> None:
        super().__init__(path=path, favicon="")
        options = {
            "url": openapi_url,
            "dom_id": "#swagger-ui",
            "deepLinking": True,
            # Swagger UI would otherwise send the document to its public validator.
            "validatorUrl": None,
        }
        start = (
            "window.ui = SwaggerUIBundle(Object.assign("
            + json.dumps(options, sort_keys=True)
            + ", {presets: [SwaggerUIBundle.presets.apis]}));"
        )
        self._page = (
            '<!DOCTYPE html><html><head><meta charset="utf-8">'
            "<title>postgrest-gateway API</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="stylesheet" href="{SWAGGER_STYLE.url}" '
            f'integrity="{SWAGGER_STYLE.integrity}" crossorigin="anonymous">'
            f'<script src="{SWAGGER_SCRIPT.url}" integrity="{SWAGGER_SCRIPT.integrity}" '
            'crossorigin="anonymous"></script>'
            '</head><body><div id="swagger-ui"></div>'
            f"<script>{start}</script></body></html>"
        ).encode()
        self.content_security_policy = "; ".join(
            [
                "default-src 'none'",
                f"script-src {SWAGGER_SCRIPT.url} {_csp_hash(start)}",
                # Swagger UI sets inline styles on its elements (swagger-ui issue 10655).
                f"style-src {SWAGGER_STYLE.url} 'unsafe-inline'",
                "img-src data:",  # its stylesheet's icons are data: URIs
                "connect-src 'self'",
                "base-uri 'none'",
                "form-action 'none'",
                "frame-ancestors 'none'",
            ]
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self._page


def api_docs(
    settings: Settings, *, openapi_path: str
) -> tuple[list[OpenAPIRenderPlugin], dict[str, bytes]]:
    """The docs page's render plugin when ``GATEWAY_API_DOCS`` is on, and its page's policy."""
    if not settings.api_docs:
        return [], {}
    swagger = PinnedSwaggerUI(path="/swagger", openapi_url=openapi_path + "/openapi.json")
    return [swagger], {openapi_path + "/swagger": swagger.content_security_policy.encode()}
