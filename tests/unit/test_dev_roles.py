"""gateway dev's rule for roles in a shared cluster: only its own are reused."""

from __future__ import annotations

from gateway.devstack import DEV_ROLE_MARK, foreign_roles


def test_roles_that_do_not_exist_yet_are_not_foreign() -> None:
    assert foreign_roles(["anon", "authenticated"], {}) == []


def test_a_role_gateway_dev_created_is_reused() -> None:
    assert foreign_roles(["anon"], {"anon": DEV_ROLE_MARK}) == []


def test_a_role_without_the_mark_or_with_another_comment_is_foreign() -> None:
    existing = {"anon": None, "authenticator": "PostgREST of the billing app"}

    assert foreign_roles(["anon", "authenticated", "authenticator"], existing) == [
        "anon",
        "authenticator",
    ]


def test_a_name_wanted_twice_is_reported_once() -> None:
    assert foreign_roles(["anon", "anon"], {"anon": None}) == ["anon"]
