"""The browser demo at /demo: absent unless GATEWAY_DEMO, and locked down when present.

The page runs on the origin that holds the session cookies, so it may load only its own script
and stylesheet, run no inline script, talk only to the gateway and never be framed. What it does
in a browser is tests/e2e/test_demo_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from gateway.settings import Settings
from gateway.web.demo.page import DEMO_POLICY
from tests.integration.conftest import Accounts, Client
from tests.support.in_process import GatewayClient

pytestmark = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)

DEMO_FILES = ("/demo", "/demo/demo.js", "/demo/demo.css")


@pytest.fixture
async def demo_client(auth_settings: Settings, accounts: Accounts) -> AsyncIterator[Client]:
    settings = auth_settings.model_copy(update={"demo": True})
    async with GatewayClient(settings) as test_client:
        yield test_client


@pytest.mark.parametrize("path", DEMO_FILES)
async def test_without_gateway_demo_the_demo_is_an_unknown_path(client: Client, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert (await client.get("/no-such-page")).json() == response.json()


async def test_the_demo_page_is_served_under_a_policy_that_allows_only_its_own_files(
    demo_client: Client,
) -> None:
    response = await demo_client.get("/demo")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    assert policy == DEMO_POLICY
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy


async def test_the_demo_page_has_no_inline_script_and_loads_only_its_own_files(
    demo_client: Client,
) -> None:
    page = (await demo_client.get("/demo")).text

    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.S)
    assert scripts == [""]
    assert re.findall(r"<[^>]*\son\w+\s*=", page) == []  # no inline event handler either
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert sorted(urls) == ["/demo/demo.css", "/demo/demo.js"]


async def test_the_demo_page_names_the_proxy_prefix_and_the_csrf_cookie(
    demo_client: Client, auth_settings: Settings
) -> None:
    page = (await demo_client.get("/demo")).text

    assert f'data-rest-prefix="{auth_settings.proxy_prefix}"' in page
    csrf = "__Host-gw_csrf" if auth_settings.cookie_secure else "gw_csrf"
    assert f'data-csrf-cookie="{csrf}"' in page


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/demo/demo.js", "text/javascript"), ("/demo/demo.css", "text/css")],
)
async def test_the_demo_files_are_served_with_their_media_type_and_nosniff(
    demo_client: Client, path: str, media_type: str
) -> None:
    response = await demo_client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_demo_script_never_renders_server_data_as_html(demo_client: Client) -> None:
    script = (await demo_client.get("/demo/demo.js")).text

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "textContent" in script
