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

# The page does not touch the store: one backend is enough (the checkers below need none).
sqlite_only = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)

DEMO_FILES = ("/demo", "/demo/demo.js", "/demo/demo.css")

# Every way a script turns a string into markup or code; the name is what a finding reports.
SINKS = {
    "innerHTML": r"\binnerHTML\b",
    "outerHTML": r"\bouterHTML\b",
    "insertAdjacentHTML": r"\binsertAdjacentHTML\b",
    "document.write": r"\bdocument\s*\.\s*write",
    "DOMParser": r"\bDOMParser\b",
    "createContextualFragment": r"\bcreateContextualFragment\b",
    "srcdoc": r"\bsrcdoc\b",
    "setAttribute(on...)": r"""\bsetAttribute\s*\(\s*["'`]on""",
    "eval": r"\beval\s*\(",
    "Function": r"\bFunction\s*\(",
    # A timer given anything but a function literal may be given a string, which is code.
    "string timer": r"\bset(?:Timeout|Interval)\s*\(\s*(?!\(|function\b|async\b)",
}
SINK_SAMPLES = {
    "el.innerHTML = name;": "innerHTML",
    "el.outerHTML = name;": "outerHTML",
    'el.insertAdjacentHTML("beforeend", name);': "insertAdjacentHTML",
    "document.write(name);": "document.write",
    "document.writeln(name);": "document.write",
    'new DOMParser().parseFromString(name, "text/html");': "DOMParser",
    "range.createContextualFragment(name);": "createContextualFragment",
    "frame.srcdoc = name;": "srcdoc",
    "el.setAttribute('onclick', name);": "setAttribute(on...)",
    "eval(name);": "eval",
    'new Function("return " + name);': "Function",
    'setTimeout("load()", 10);': "string timer",
    "setInterval(name, 10);": "string timer",
}
URL_ATTRIBUTE = re.compile(r"""\b(?:src|href)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)


def sinks_in(script: str) -> list[str]:
    return [name for name, pattern in SINKS.items() if re.search(pattern, script)]


def urls_in(markup: str) -> list[str]:
    """Every src= and href= value, quoted or not."""
    return ["".join(groups) for groups in URL_ATTRIBUTE.findall(markup)]


@pytest.fixture
async def demo_client(auth_settings: Settings, accounts: Accounts) -> AsyncIterator[Client]:
    settings = auth_settings.model_copy(update={"demo": True})
    async with GatewayClient(settings) as test_client:
        yield test_client


@sqlite_only
@pytest.mark.parametrize("path", DEMO_FILES)
async def test_without_gateway_demo_the_demo_is_an_unknown_path(client: Client, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert (await client.get("/no-such-page")).json() == response.json()


@sqlite_only
async def test_the_demo_page_is_served_under_a_policy_that_allows_only_its_own_files(
    demo_client: Client,
) -> None:
    response = await demo_client.get("/demo")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    policy = response.headers["content-security-policy"]
    assert policy == DEMO_POLICY
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert directives["trusted-types"] == "'none'"
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy


@sqlite_only
@pytest.mark.parametrize("path", ["/demo/", "/demo//"])
async def test_the_demo_page_with_a_trailing_slash_gets_the_pages_policy_too(
    demo_client: Client, path: str
) -> None:
    # The router ignores trailing slashes, so this is the page itself: under the JSON policy
    # its own script and stylesheet would be blocked.
    page = await demo_client.get("/demo")
    response = await demo_client.get(path)

    assert response.status_code == 200
    assert response.text == page.text
    assert response.headers["content-security-policy"] == DEMO_POLICY
    assert response.headers["cache-control"] == "no-store"


@sqlite_only
async def test_the_demo_page_has_no_inline_script_and_loads_only_its_own_files(
    demo_client: Client,
) -> None:
    page = (await demo_client.get("/demo")).text

    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.S)
    assert scripts == [""]
    assert re.findall(r"<[^>]*\son\w+\s*=", page) == []  # no inline event handler either
    assert sorted(urls_in(page)) == ["/demo/demo.css", "/demo/demo.js"]


@sqlite_only
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
@sqlite_only
async def test_the_demo_files_are_served_with_their_media_type_and_nosniff(
    demo_client: Client, path: str, media_type: str
) -> None:
    response = await demo_client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


@sqlite_only
async def test_the_demo_script_never_renders_server_data_as_html(demo_client: Client) -> None:
    script = (await demo_client.get("/demo/demo.js")).text

    assert sinks_in(script) == []
    assert "textContent" in script


@pytest.mark.parametrize("sample", sorted(SINK_SAMPLES))
def test_the_sink_check_catches_each_sink(sample: str) -> None:
    assert sinks_in(f"const row = 1;\n{sample}\n") == [SINK_SAMPLES[sample]]


def test_the_sink_check_lets_text_and_function_timers_through() -> None:
    script = "item.textContent = name;\nsetTimeout(() => load(), 10);\nconst f = function () {};"

    assert sinks_in(script) == []


@pytest.mark.parametrize(
    ("markup", "url"),
    [
        ('<script src="/x.js">', "/x.js"),
        ("<link href='/x.css'>", "/x.css"),
        ("<img src=//evil.example/x>", "//evil.example/x"),
        ("<a HREF = https://evil.example>", "https://evil.example"),
    ],
)
def test_the_url_check_reads_quoted_and_unquoted_attributes(markup: str, url: str) -> None:
    assert urls_in(markup) == [url]
