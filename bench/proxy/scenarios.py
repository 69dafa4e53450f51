"""The requests the benchmark makes, and the check that every target answers them alike."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from bench.proxy.database import ROWS, fetch
from bench.proxy.progress import BenchFailed
from bench.proxy.targets import Stack

INSERTED = "bench insert"


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    path: str
    connections: int
    headers: tuple[str, ...] = ()
    method: str = "GET"
    body: str = ""
    status: int = 200


def scenarios_for(
    *, connections: int, row_id: int, organization_id: int, quick: bool = False
) -> list[Scenario]:
    """The proxied scenarios, in the order they run (``quick``: the single-row GET only)."""
    one_row = f"/projects?id=eq.{row_id}"
    insert = json.dumps({"organization_id": organization_id, "name": INSERTED})
    if quick:
        return [
            Scenario("one", "1 row", one_row, connections),
            Scenario("one-c1", "1 row, 1 connection", one_row, 1),
        ]
    return [
        Scenario("one", "1 row", one_row, connections),
        Scenario(
            "list",
            "100 rows, `Prefer: count=exact`",
            "/projects?select=*&order=id",
            connections,
            ("Prefer: count=exact",),
        ),
        # Last: the rows it adds are removed after it, before the next upstream's list.
        Scenario(
            "insert",
            "insert 1 row",
            "/projects",
            connections,
            ("Prefer: return=minimal",),
            method="POST",
            body=insert,
            status=201,
        ),
        Scenario("one-c1", "1 row, 1 connection", one_row, 1),
    ]


def healthz(connections: int) -> Scenario:
    """The gateway answering on its own, nothing proxied: the floor of its cost."""
    return Scenario("healthz", "`GET /healthz`", "/healthz", connections)


def beside_the_storm(one_row: str, connections: int) -> Scenario:
    """The single-row GET measured alone and beside a login storm."""
    return Scenario("storm", f"1 row, {connections} connections", one_row, connections)


def remove_inserted(database_url: str) -> None:
    """The insert scenario's rows go again, so the 100-row list stays 100 rows, and so do their
    dead tuples: a scan of the bloated table made the next upstream's list a third as fast."""
    fetch(database_url, "DELETE FROM public.projects WHERE name = $1", INSERTED)
    fetch(database_url, "VACUUM ANALYZE public.projects")


def settle_table(database_url: str) -> None:
    """The table every scenario starts on: exactly the 100 rows it was loaded with, vacuumed
    and analyzed, so no scenario scans another's dead tuples or plans on stale statistics."""
    remove_inserted(database_url)
    rows = fetch(database_url, "SELECT count(*) FROM public.projects")[0][0]
    if rows != ROWS:
        raise BenchFailed(f"public.projects holds {rows} rows, not {ROWS}")


def check_answers(stack: Stack, scenarios: Sequence[Scenario]) -> None:
    """Direct and via every proxy, each scenario gets its status and the same rows."""
    for scenario in scenarios:
        headers = {"Authorization": f"Bearer {stack.token}"}
        for header in scenario.headers:
            name, _, value = header.partition(":")
            headers[name.strip()] = value.strip()
        answers = []
        for deployment in stack.deployments:
            for target in deployment.targets().values():
                url = target.base + scenario.path
                if scenario.method == "GET":
                    answer = httpx.get(url, headers=headers, timeout=10)
                else:
                    headers["Content-Type"] = "application/json"
                    answer = httpx.request(
                        scenario.method, url, headers=headers, content=scenario.body, timeout=10
                    )
                if answer.status_code != scenario.status:
                    raise BenchFailed(
                        f"{scenario.method} {url}: {answer.status_code} {answer.text[:300]}"
                    )
                if scenario.method == "GET":
                    answers.append((answer.json(), answer.headers.get("content-range")))
        if scenario.method != "GET":
            remove_inserted(stack.database_url)
            continue
        if any(answer != answers[0] for answer in answers):
            raise BenchFailed(f"{scenario.title}: the answers through the proxies differ")
        rows, content_range = answers[0]
        expected = 1 if "id=eq." in scenario.path else ROWS
        if not isinstance(rows, list) or len(rows) != expected:
            raise BenchFailed(f"{scenario.title}: expected {expected} rows, got {rows!r:.200}")
        if scenario.headers and content_range != f"0-{ROWS - 1}/{ROWS}":
            raise BenchFailed(f"{scenario.title}: Content-Range is {content_range}")
