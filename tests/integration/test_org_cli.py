"""`gateway orgs`, `gateway members` and `gateway invitations`: the operator's twins of the API."""

from __future__ import annotations

from tests.integration.test_cli import PASSWORD, gateway, gateway_json


def test_operator_manages_organizations_members_and_invitations(
    store_env: dict[str, str],
) -> None:
    assert gateway(store_env, "db", "upgrade").exit_code == 0
    org = gateway_json(store_env, "orgs", "create", "Acme")["organization_id"]
    for email, role in (("ada@example.com", "org_admin"), ("bob@example.com", "org_client")):
        gateway_json(
            store_env,
            *("users", "create", email, "--password-stdin", "--org", str(org)),
            *("--org-role", role),
            stdin=PASSWORD,
        )

    assert gateway_json(store_env, "orgs", "rename", str(org), "Acme Ltd")["org_name"] == "Acme Ltd"
    assert gateway_json(store_env, "orgs", "list")["organizations"] == [
        {"organization_id": org, "org_name": "Acme Ltd"}
    ]
    first = gateway_json(store_env, "members", "list", str(org), "--limit", "1")
    assert len(first["members"]) == 1
    rest = gateway_json(store_env, "members", "list", str(org), "--cursor", first["next"])
    both = first["members"] + rest["members"]
    assert sorted(m["email"] for m in both) == ["ada@example.com", "bob@example.com"]
    assert [m["user_id"] for m in both] == sorted(m["user_id"] for m in both)
    assert "next" not in rest
    promoted = gateway_json(
        store_env, "members", "set-role", str(org), "bob@example.com", "org_admin"
    )
    assert promoted["role"] == "org_admin"
    gateway_json(store_env, "members", "set-role", str(org), "ada@example.com", "org_client")
    last = gateway(store_env, "members", "remove", str(org), "bob@example.com")
    assert last.exit_code == 1
    assert "at least one org_admin" in last.stderr
    gateway_json(store_env, "members", "remove", str(org), "ada@example.com")
    assert [
        m["email"] for m in gateway_json(store_env, "members", "list", str(org))["members"]
    ] == ["bob@example.com"]

    dev = {**store_env, "GATEWAY_DEV_MODE": "true"}
    made = gateway_json(
        dev, "invitations", "create", str(org), "eve@example.com", "--role", "org_client"
    )
    assert made["link"].startswith("http")
    assert "accept-invitation?token=pgw_lt_" in made["link"]
    listed = gateway_json(store_env, "invitations", "list", str(org))["invitations"]
    assert [i["invitation_id"] for i in listed] == [made["invitation_id"]]
    gateway_json(store_env, "invitations", "revoke", str(org), made["invitation_id"])
    assert gateway_json(store_env, "invitations", "list", str(org))["invitations"] == []
    no_mail = gateway(
        store_env, "invitations", "create", str(org), "x@example.com", "--role", "org_client"
    )
    assert no_mail.exit_code == 1
