"""The database side with the real PostgREST: bootstrap, the RLS example, doctor, explain, reload.

One database of its own for this module, with role names unique to the run (roles are
cluster-wide). Tokens come from the real gateway's /auth/login.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.e2e.conftest import Served, gateway, ok, sql, token_for
from tests.support.postgrest import PostgREST


def projects(postgrest: PostgREST, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{postgrest.url}/projects?order=id", headers=headers)


def test_a_token_from_login_reads_exactly_its_organizations_rows(
    served: Served, postgrest: PostgREST
) -> None:
    ada = projects(postgrest, token_for(served, "ada@example.com"))
    carl = projects(postgrest, token_for(served, "carl@example.com"))
    eve = projects(postgrest, token_for(served, "eve@example.com"))

    assert ada.status_code == carl.status_code == eve.status_code == 200
    assert [p["name"] for p in ada.json()] == ["acme one", "acme two"]
    assert carl.json() == ada.json()
    assert [p["name"] for p in eve.json()] == ["globex secret"]


def test_org_client_cannot_write_and_org_admin_can_only_in_their_organization(
    served: Served, postgrest: PostgREST
) -> None:
    carl = {"Authorization": f"Bearer {token_for(served, 'carl@example.com')}"}
    ada = {"Authorization": f"Bearer {token_for(served, 'ada@example.com')}"}

    by_client = httpx.post(
        f"{postgrest.url}/projects",
        headers=carl,
        json={"organization_id": served.acme, "name": "sneaky"},
    )
    into_other_org = httpx.post(
        f"{postgrest.url}/projects",
        headers=ada,
        json={"organization_id": served.globex, "name": "sneaky"},
    )
    by_admin = httpx.post(
        f"{postgrest.url}/projects",
        headers=ada,
        json={"organization_id": served.acme, "name": "acme three"},
    )
    rename_by_client = httpx.patch(
        f"{postgrest.url}/projects?name=eq.acme%20one",
        headers={**carl, "Prefer": "return=representation"},
        json={"name": "renamed"},
    )

    assert by_client.status_code == 403
    assert into_other_org.status_code == 403
    assert by_admin.status_code == 201
    assert rename_by_client.json() == []  # the policy hides the row from an org_client's UPDATE
    names = [r["name"] for r in sql(served.url, "SELECT name FROM public.projects")]
    assert "sneaky" not in names
    assert "renamed" not in names
    sql(served.url, "DELETE FROM public.projects WHERE name = 'acme three'")


def test_anonymous_requests_see_nothing(postgrest: PostgREST) -> None:
    anonymous = projects(postgrest, None)

    assert anonymous.status_code == 401
    assert "permission denied" in anonymous.json()["message"]


def test_bootstrap_is_idempotent_and_print_shows_the_sql(served: Served) -> None:
    again = gateway(served.env, "postgrest", "bootstrap", "--example")
    printed = gateway(served.env, "postgrest", "bootstrap", "--print")

    assert again.exit_code == 0, again.stderr
    assert "CREATE OR REPLACE FUNCTION auth.organization_id() RETURNS bigint" in printed.stdout
    assert f'GRANT "{served.authenticated}" TO "{served.authenticator}";' in printed.stdout
    assert "PASSWORD" not in printed.stdout
    assert "DROP" not in printed.stdout


def doctor(served: Served, postgrest_url: str, **env: str) -> tuple[int, dict[str, Any]]:
    result = gateway(
        {**served.env, **env},
        "doctor",
        "--json",
        "--database-url",
        served.url,
        "--upstream-url",
        postgrest_url,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, report


def failing(report: dict[str, Any]) -> dict[str, str]:
    return {
        c["name"]: c["detail"] + " | " + (c["fix"] or "") for c in report["checks"] if not c["ok"]
    }


def test_doctor_passes_on_a_correct_setup(served: Served, postgrest: PostgREST) -> None:
    code, report = doctor(served, postgrest.url)

    assert failing(report) == {}
    assert code == 0
    assert report["ok"] is True


def test_doctor_names_a_missing_role(served: Served, postgrest: PostgREST) -> None:
    code, report = doctor(
        served, postgrest.url, GATEWAY_ALLOWED_ROLES=f"{served.authenticated},ghost_{served.anon}"
    )

    assert code == 1
    problems = failing(report)
    assert list(problems) == [f"role ghost_{served.anon}"]
    assert "does not exist" in problems[f"role ghost_{served.anon}"]
    assert "gateway postgrest bootstrap" in problems[f"role ghost_{served.anon}"]


def test_doctor_names_a_role_not_granted_to_the_authenticator(
    served: Served, postgrest: PostgREST
) -> None:
    loner = f"loner_{served.anon}"
    sql(served.url, f'CREATE ROLE "{loner}" NOLOGIN')
    try:
        code, report = doctor(
            served, postgrest.url, GATEWAY_ALLOWED_ROLES=f"{served.authenticated},{loner}"
        )
    finally:
        sql(served.url, f'DROP ROLE "{loner}"')

    assert code == 1
    problems = failing(report)
    assert list(problems) == [f"role {loner}"]
    assert "not granted" in problems[f"role {loner}"]
    assert f'GRANT "{loner}" TO "{served.authenticator}"' in problems[f"role {loner}"]


def test_doctor_names_a_stale_jwks_file(served: Served, postgrest: PostgREST) -> None:
    jwks = served.keys_dir / "jwks.json"
    fresh = jwks.read_bytes()
    document = json.loads(fresh)
    current = json.loads((served.keys_dir / "manifest.json").read_text())
    current_kid = next(k["kid"] for k in current["keys"] if k["state"] == "current")
    document["keys"] = [k for k in document["keys"] if k["kid"] != current_kid]
    jwks.write_text(json.dumps(document))
    ok(gateway(served.env, "postgrest", "reload", "config", "--database-url", served.url))
    try:
        code, report = doctor(served, postgrest.url)
        for _ in range(100):  # PostgREST reloads its config asynchronously after the NOTIFY
            if "probe token" in failing(report):
                break
            code, report = doctor(served, postgrest.url)
    finally:
        jwks.write_bytes(fresh)

    assert code == 1
    problems = failing(report)
    assert set(problems) == {"jwks file", "probe token"}
    assert "gateway keys export-jwks" in problems["jwks file"]
    assert current_kid in problems["probe token"]
    assert "JWKS does not hold this key" in problems["probe token"]


def test_doctor_names_postgrest_down(served: Served) -> None:
    from tests.support.postgres import free_port

    code, report = doctor(served, f"http://127.0.0.1:{free_port()}")

    assert code == 1
    problems = failing(report)
    assert list(problems) == ["postgrest"]
    assert "does not answer" in problems["postgrest"]


def test_explain_prints_the_role_the_settings_and_what_the_helpers_return(
    served: Served,
) -> None:
    token = token_for(served, "ada@example.com")

    text = ok(gateway(served.env, "explain", token, "--path", "/projects"))
    document = json.loads(ok(gateway(served.env, "explain", token, "--json")))

    assert f"switch to the database role '{served.authenticated}'" in text
    assert f"set_config('role', '{served.authenticated}', true)" in text
    assert "set_config('request.path', '/projects', true)" in text
    assert "set_config('request.jwt.claims', '{" in text
    assert f"auth.organization_id() = {served.acme}" in text
    assert "auth.org_role()        = 'org_admin'" in text
    assert document["role"] == served.authenticated
    assert document["helpers"]["auth.email()"] == "ada@example.com"
    assert document["claims"]["organization"]["organization_id"] == served.acme


def test_explain_refuses_a_forged_token(served: Served) -> None:
    token = token_for(served, "ada@example.com")
    header, payload, signature = token.split(".")

    result = gateway(served.env, "explain", f"{header}.{payload}x.{signature}")

    assert result.exit_code == 1
    assert result.stderr.startswith("gateway: error: The token")


def test_reload_schema_makes_postgrest_see_a_new_function(
    served: Served, postgrest: PostgREST
) -> None:
    # Functions are resolved through PostgREST's schema cache (plain table reads are not).
    ada = {"Authorization": f"Bearer {token_for(served, 'ada@example.com')}"}
    sql(served.url, "CREATE FUNCTION public.late_answer() RETURNS int LANGUAGE sql AS 'SELECT 42'")
    sql(served.url, f'GRANT EXECUTE ON FUNCTION public.late_answer() TO "{served.authenticated}"')
    try:
        before = httpx.get(f"{postgrest.url}/rpc/late_answer", headers=ada)
        ok(gateway(served.env, "postgrest", "reload", "schema", "--database-url", served.url))
        answers = []
        for _ in range(100):
            answers.append(httpx.get(f"{postgrest.url}/rpc/late_answer", headers=ada))
            if answers[-1].status_code == 200:
                break
    finally:
        sql(served.url, "DROP FUNCTION public.late_answer()")

    assert before.status_code == 404, postgrest.log_tail()
    assert answers[-1].status_code == 200
    assert answers[-1].json() == 42
