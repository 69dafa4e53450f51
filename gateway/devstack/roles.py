"""The rule that keeps ``gateway dev`` off roles it did not create (a pure decision)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Written as the COMMENT of every role gateway dev creates: its mark of ownership.
DEV_ROLE_MARK = "created by gateway dev"


def foreign_roles(wanted: Iterable[str], existing: Mapping[str, str | None]) -> list[str]:
    """The wanted role names that exist in the cluster without gateway dev's mark.

    Roles are cluster-wide: a role of the same name may belong to another application on a
    shared server, and bootstrapping would grant it to our authenticator and reset that
    authenticator's password. Those names are refused, never adopted.

    Args:
        wanted: the role names the dev stack would create or reuse.
        existing: role name -> its comment, for the roles that already exist.
    """
    return [
        name
        for name in dict.fromkeys(wanted)
        if name in existing and existing[name] != DEV_ROLE_MARK
    ]
