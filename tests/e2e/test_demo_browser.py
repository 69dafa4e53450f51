"""The /demo page in headless Chromium, against a real gateway process, PostgREST and PostgreSQL.

Playwright drives Debian's ``chromium`` (``executable_path``; no browser is downloaded). Mia is
``org_admin`` of Acme and ``org_client`` of Globex; the page shows five rows a page, newest
first, and every expectation is read from the database at the time it is checked, so the tests
do not depend on each other's order.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import PASSWORD, Served, gateway, ok
from tests.e2e.conftest import sql as sql_here
from tests.support.postgrest import PostgREST, run_postgrest
from tests.support.server import run_gateway

PAGE_SIZE = 5
EMAIL = "mia@example.com"
HOSTILE_NAME = '<img src=x onerror="window.pwned = true">'
HOSTILE_ORG = "<img src=x> Hostile & Co"
# Inserting a row named so makes the database refuse it with the name as its message.
REFUSED_PREFIX = "refuse "


def sql(url: str, statement: str, *args: object) -> list[dict[str, object]]:
    """Run a query on another thread: Playwright's sync API keeps an event loop running on this
    one, where ``asyncio.run`` refuses to start."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        rows = pool.submit(sql_here, url, statement, *args).result()
    return [dict(row) for row in rows]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed: the browser tests need Debian's chromium "
            "(apt-get install chromium), as .ci/run installs it"
        )
    return path


@pytest.fixture(scope="module")
def mia(served: Served) -> Served:
    """Mia in both organizations, and enough Acme rows for two pages."""
    ok(
        gateway(
            served.env,
            "users",
            "create",
            EMAIL,
            "--password-stdin",
            "--org",
            str(served.acme),
            "--org-role",
            "org_admin",
            stdin=PASSWORD,
        )
    )
    ok(
        gateway(
            served.env,
            "members",
            "add",
            "--org",
            str(served.globex),
            "--email",
            EMAIL,
            "--role",
            "org_client",
        )
    )
    hostile = json.loads(ok(gateway(served.env, "orgs", "create", HOSTILE_ORG, "--json")))
    ok(
        gateway(
            served.env,
            "members",
            "add",
            "--org",
            str(hostile["organization_id"]),
            "--email",
            EMAIL,
            "--role",
            "org_client",
        )
    )
    sql(
        served.url,
        "INSERT INTO public.projects (organization_id, name) "
        "SELECT $1, 'acme ' || n FROM generate_series(3, 8) AS n",
        served.acme,
    )
    # An error message carrying the caller's input, as PostgREST passes a RAISE on: the page
    # must show it as text like any other server value.
    sql(
        served.url,
        "CREATE FUNCTION public.refuse_marked_names() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF NEW.name LIKE '{REFUSED_PREFIX}%' THEN RAISE EXCEPTION USING MESSAGE = NEW.name;"
        " END IF; RETURN NEW; END $$",
    )
    sql(
        served.url,
        "CREATE TRIGGER refuse_marked_names BEFORE INSERT ON public.projects "
        "FOR EACH ROW EXECUTE FUNCTION public.refuse_marked_names()",
    )
    return served


@pytest.fixture(scope="module")
def upstream(mia: Served, postgrest_bin: Path) -> Iterator[PostgREST]:
    with run_postgrest(
        db_uri=mia.authenticator_url,
        jwt_secret=f"@{mia.keys_dir / 'jwks.json'}",
        anon_role=mia.anon,
        binary=postgrest_bin,
    ) as server:
        yield server


def demo_env(mia: Served, upstream: PostgREST, **settings: str) -> dict[str, str]:
    return {
        **mia.env,
        "GATEWAY_UPSTREAM_URL": upstream.url,
        "GATEWAY_DEMO": "true",
        "GATEWAY_AUTH_RATE_LIMIT": "100000",
        **settings,
    }


@pytest.fixture(scope="module")
def demo_url(
    mia: Served, upstream: PostgREST, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Plain-HTTP cookies (``gw_*``), as in local development."""
    env = demo_env(mia, upstream, GATEWAY_COOKIE_SECURE="false")
    with run_gateway(env, cwd=tmp_path_factory.mktemp("demo")) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def secure_demo_url(
    mia: Served, upstream: PostgREST, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The default ``__Host-`` cookies, which Chromium accepts from http://127.0.0.1."""
    env = demo_env(mia, upstream, GATEWAY_COOKIE_SECURE="true")
    with run_gateway(env, cwd=tmp_path_factory.mktemp("secure-demo")) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser(demo_url: str, secure_demo_url: str) -> Iterator[Browser]:
    # After demo_url: the stack is set up before Playwright's loop runs on this thread.
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, demo_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=demo_url, viewport={"width": 900, "height": 520})
    try:
        opened = context.new_page()
        opened.goto("/demo")
        yield opened
    finally:
        context.close()


def names_in(served: Served, organization: int, *, offset: int = 0) -> list[str]:
    rows = sql(
        served.url,
        "SELECT name FROM public.projects WHERE organization_id = $1 "
        "ORDER BY id DESC LIMIT $2 OFFSET $3",
        organization,
        PAGE_SIZE,
        offset,
    )
    return [str(row["name"]) for row in rows]


def count_in(served: Served, organization: int) -> int:
    rows = sql(
        served.url, "SELECT count(*) FROM public.projects WHERE organization_id = $1", organization
    )
    return int(str(rows[0]["count"]))


def sign_in(page: Page, organization: int, password: str = PASSWORD) -> None:
    """Sign in through the form, then act in ``organization`` (sign-in resumes the last one)."""
    page.fill("#email", EMAIL)
    page.fill("#password", password)
    page.click("#sign-in")
    expect(page.locator("#org-switch")).not_to_have_value("")
    if page.input_value("#org-switch") != str(organization):
        page.select_option("#org-switch", str(organization))
    expect(page.locator("#org-switch")).to_have_value(str(organization))


def expect_rows(page: Page, names: list[str], count: int) -> None:
    expect(page.locator("#rows > *")).to_have_text(names)
    expect(page.locator("#count")).to_have_text(str(count))


def test_signing_in_shows_the_exact_count_and_the_first_page(
    page: Page, mia: Served, tmp_path: Path
) -> None:
    sign_in(page, mia.acme)

    expect_rows(page, names_in(mia, mia.acme), count_in(mia, mia.acme))
    assert (page.text_content("#count") or "").isdigit()
    expect(page.locator("#prev-page")).to_be_disabled()
    expect(page.locator("#error")).to_have_text("")
    page.screenshot(path=tmp_path / "demo.png", full_page=True)


def test_next_and_previous_page_walk_the_rows_by_range(page: Page, mia: Served) -> None:
    sign_in(page, mia.acme)
    total = count_in(mia, mia.acme)
    expect_rows(page, names_in(mia, mia.acme), total)

    page.click("#next-page")

    expect_rows(page, names_in(mia, mia.acme, offset=PAGE_SIZE), total)
    expect(page.locator("#next-page")).to_be_disabled()  # 8 or more rows: two pages
    page.click("#prev-page")
    expect_rows(page, names_in(mia, mia.acme), total)
    expect(page.locator("#prev-page")).to_be_disabled()


def test_a_created_row_is_shown_first_and_counted(page: Page, mia: Served) -> None:
    sign_in(page, mia.acme)
    before = count_in(mia, mia.acme)
    expect(page.locator("#count")).to_have_text(str(before))

    page.fill("#new-name", "launch plan")
    page.click("#create")

    expect(page.locator("#count")).to_have_text(str(before + 1))
    expect(page.locator("#rows > *").first).to_have_text("launch plan")
    assert names_in(mia, mia.acme)[0] == "launch plan"


def test_a_row_name_made_of_html_is_shown_as_text_and_never_run(page: Page, mia: Served) -> None:
    sign_in(page, mia.acme)

    page.fill("#new-name", HOSTILE_NAME)
    page.click("#create")

    expect(page.locator("#rows > *").first).to_have_text(HOSTILE_NAME)
    # The real check: the markup never became an element. (Its onerror could not run anyway:
    # the policy blocks inline handlers, so a flag it would set proves nothing.)
    assert page.locator("#rows img").count() == 0
    assert page.locator("img").count() == 0


def test_an_organization_named_in_html_is_shown_as_text(page: Page, mia: Served) -> None:
    sign_in(page, mia.acme)

    option = page.locator("#org-switch option", has_text="Hostile & Co")
    expect(option).to_have_text(HOSTILE_ORG + " (org_client)")
    assert page.locator("img").count() == 0


def test_an_error_message_made_of_html_is_shown_as_text(page: Page, mia: Served) -> None:
    sign_in(page, mia.acme)
    message = REFUSED_PREFIX + HOSTILE_NAME

    page.fill("#new-name", message)
    page.click("#create")

    expect(page.locator("#error")).to_have_text(message)
    assert page.locator("img").count() == 0
    assert message not in names_in(mia, mia.acme)


def test_switching_organization_shows_only_that_organizations_rows(page: Page, mia: Served) -> None:
    sign_in(page, mia.acme)
    expect_rows(page, names_in(mia, mia.acme), count_in(mia, mia.acme))

    page.select_option("#org-switch", str(mia.globex))

    expect_rows(page, ["globex secret"], 1)
    assert names_in(mia, mia.globex) == ["globex secret"]
    page.select_option("#org-switch", str(mia.acme))
    expect_rows(page, names_in(mia, mia.acme), count_in(mia, mia.acme))


def test_an_org_client_cannot_create_and_sees_the_databases_refusal(
    page: Page, mia: Served
) -> None:
    sign_in(page, mia.globex)
    expect_rows(page, ["globex secret"], 1)

    page.fill("#new-name", "not allowed")
    page.click("#create")

    expect(page.locator("#error")).to_contain_text("row-level security")
    expect_rows(page, ["globex secret"], 1)


def test_a_wrong_password_shows_the_error_and_no_rows(page: Page, demo_url: str) -> None:
    page.fill("#email", EMAIL)
    page.fill("#password", "not the password")
    page.click("#sign-in")

    expect(page.locator("#error")).to_have_text("The email or password is incorrect.")
    expect(page.locator("#rows > *")).to_have_count(0)
    expect(page.locator("#signed-in")).to_be_hidden()


def test_a_page_whose_access_cookie_expired_signs_in_again_with_the_refresh_cookie(
    page: Page, mia: Served
) -> None:
    sign_in(page, mia.acme)
    expect_rows(page, names_in(mia, mia.acme), count_in(mia, mia.acme))
    before = {c["name"]: c["value"] for c in page.context.cookies()}

    page.context.clear_cookies(name="gw_access")  # what the browser does at its Max-Age
    page.reload()

    expect_rows(page, names_in(mia, mia.acme), count_in(mia, mia.acme))
    after = {c["name"]: c["value"] for c in page.context.cookies()}
    assert after["gw_access"] != before["gw_access"]
    assert after["gw_refresh"] != before["gw_refresh"]  # rotated, as every refresh does


def test_signing_out_clears_the_rows_and_the_old_cookie_is_refused(
    page: Page, mia: Served, demo_url: str
) -> None:
    sign_in(page, mia.acme)
    expect_rows(page, names_in(mia, mia.acme), count_in(mia, mia.acme))
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert "gw_access" in cookies
    still = httpx.get(f"{demo_url}/rest/projects", cookies={"gw_access": cookies["gw_access"]})
    assert still.status_code == 200

    page.click("#sign-out")

    expect(page.locator("#signed-out")).to_be_visible()
    expect(page.locator("#rows > *")).to_have_count(0)
    expect(page.locator("#count")).to_have_text("")
    refused = httpx.get(f"{demo_url}/rest/projects", cookies={"gw_access": cookies["gw_access"]})
    assert refused.status_code == 401
    assert refused.json()["code"] == "session_revoked"
    page.reload()
    expect(page.locator("#signed-out")).to_be_visible()


def cookies_of(page: Page) -> dict[str, str]:
    return {c["name"]: c["value"] for c in page.context.cookies()}


def refresh_with(demo_url: str, cookies: dict[str, str]) -> httpx.Response:
    """What the next visit would do with the refresh cookie the browser held."""
    return httpx.post(
        f"{demo_url}/auth/refresh",
        json={},
        headers={
            "Cookie": f"gw_refresh={cookies['gw_refresh']}; gw_csrf={cookies['gw_csrf']}",
            "X-CSRF-Token": cookies["gw_csrf"],
        },
    )


def forge_access_cookie(page: Page) -> None:
    """Replace the access cookie by one the gateway refuses, as one signed by a pruned key or
    expired past the leeway is: well formed, one signature character changed."""
    (access,) = [c for c in page.context.cookies() if c["name"] == "gw_access"]
    header, payload, signature = access["value"].split(".")
    middle = len(signature) // 2
    swapped = "A" if signature[middle] != "A" else "B"
    forged = ".".join([header, payload, signature[:middle] + swapped + signature[middle + 1 :]])
    page.context.add_cookies(
        [
            {
                "name": access["name"],
                "value": forged,
                "domain": access["domain"],
                "path": access["path"],
                "httpOnly": access["httpOnly"],
                "secure": access["secure"],
                "sameSite": access["sameSite"],
            }
        ]
    )


@pytest.mark.parametrize("access_cookie", ["gone", "forged"])
def test_signing_out_with_a_stale_access_cookie_ends_the_session_for_real(
    page: Page, mia: Served, demo_url: str, access_cookie: str
) -> None:
    sign_in(page, mia.acme)
    expect_rows(page, names_in(mia, mia.acme), count_in(mia, mia.acme))
    signed_in = cookies_of(page)
    if access_cookie == "gone":
        page.context.clear_cookies(name="gw_access")
    else:
        forge_access_cookie(page)
    held = cookies_of(page)
    assert held.get("gw_access") not in {signed_in["gw_access"], ""}

    page.click("#sign-out")

    expect(page.locator("#signed-out")).to_be_visible()
    expect(page.locator("#error")).to_have_text("")
    refused = refresh_with(demo_url, held)
    assert refused.status_code == 401, refused.text
    assert refused.json()["code"] == "session_revoked"
    page.reload()
    expect(page.locator("#signed-out")).to_be_visible()


def test_a_refused_sign_out_is_shown_and_the_page_stays_signed_in(page: Page, mia: Served) -> None:
    sign_in(page, mia.acme)
    expect_rows(page, names_in(mia, mia.acme), count_in(mia, mia.acme))
    # No access and no refresh cookie: the gateway cannot end anything and answers 401.
    page.context.clear_cookies(name="gw_access")
    page.context.clear_cookies(name="gw_refresh")

    page.click("#sign-out")

    expect(page.locator("#error")).not_to_have_text("")
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#signed-out")).to_be_hidden()


def test_with_the_default_secure_cookies_the_page_signs_in_creates_and_signs_out(
    browser: Browser, secure_demo_url: str, mia: Served
) -> None:
    context = browser.new_context(base_url=secure_demo_url)
    try:
        page = context.new_page()
        page.goto("/demo")
        sign_in(page, mia.acme)
        names = {c["name"] for c in context.cookies()}
        assert {"__Host-gw_access", "__Host-gw_refresh", "__Host-gw_csrf"} <= names

        page.fill("#new-name", "secure cookie row")
        page.click("#create")  # X-CSRF-Token from the __Host-gw_csrf cookie

        expect(page.locator("#rows > *").first).to_have_text("secure cookie row")
        expect(page.locator("#error")).to_have_text("")
        page.click("#sign-out")
        expect(page.locator("#signed-out")).to_be_visible()
        assert not {c["name"] for c in context.cookies()} & names
    finally:
        context.close()
