"""`gateway dev` as a newcomer runs it: a process in an empty folder, used, then stopped.

Each test runs the real command (PostgreSQL from tests/support/postgres.py through
GATEWAY_DEV_DATABASE_URL, the cached PostgREST through GATEWAY_POSTGREST_BIN), waits for its
ready line, and uses what it printed. Roles are cluster-wide, so each stack's role names carry a
random suffix, and its database and roles are dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.e2e.conftest import execute, sql
from tests.support.cli import cli_command, cli_environment, run_cli
from tests.support.postgres import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"^gateway dev: ready on (http://127\.0\.0\.1:\d+) in ([\d.]+) s")
CREDENTIALS = re.compile(r"^  sign in as (\S+) / (\S+) ")
POSTGREST = re.compile(r"^postgrest: (http://127\.0\.0\.1:(\d+)) ")
START_DEADLINE = 90.0
STOP_DEADLINE = 30.0


@dataclass
class DevStack:
    """A running `gateway dev`: its process, what it printed so far, and where it listens."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def start_reading(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def printed(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        for line in list(self.lines):
            if match := pattern.match(line):
                return match
        return None

    def wait_until_ready(self) -> str:
        def ready_or_dead() -> bool:
            return self.printed(READY) is not None or self.process.poll() is not None

        wait_for(ready_or_dead, START_DEADLINE, "gateway dev's ready line")
        ready = self.printed(READY)
        assert ready is not None, "gateway dev stopped before it was ready:\n" + self.output()
        return ready[1]

    def output(self) -> str:
        return "\n".join(self.lines)

    def descendants(self) -> set[int]:
        """Every process below `gateway dev` (PostgREST, gateway serve and its workers)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited while we looked
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
        found: set[int] = set()
        todo = [self.process.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.add(child)
                todo.append(child)
        return found


@dataclass(frozen=True)
class DevEnvironment:
    env: dict[str, str]
    database_url: str
    roles: tuple[str, str, str]


def database_url_named(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
def dev_environment(postgres_url: str, postgrest_bin: Path) -> Iterator[DevEnvironment]:
    suffix = secrets.token_hex(4)
    anon, authenticated, authenticator = (
        f"dev_{name}_{suffix}" for name in ("anon", "authenticated", "authenticator")
    )
    database_url = database_url_named(postgres_url, f"gateway_dev_{suffix}")
    env = {
        "GATEWAY_DEV_DATABASE_URL": database_url,
        "GATEWAY_POSTGREST_BIN": str(postgrest_bin),
        "GATEWAY_ANON_ROLE": anon,
        "GATEWAY_AUTHENTICATED_ROLE": authenticated,
        "GATEWAY_ALLOWED_ROLES": authenticated,
        "GATEWAY_AUTHENTICATOR_ROLE": authenticator,
        "GATEWAY_PASSWORD_HASH_WORKERS": "1",
        # PostgREST takes this port when free (3000 by default): a free one, not a shared one.
        "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{free_port()}",
    }
    try:
        yield DevEnvironment(env, database_url, (anon, authenticated, authenticator))
    finally:
        execute(postgres_url, f'DROP DATABASE IF EXISTS "gateway_dev_{suffix}" WITH (FORCE)')
        execute(postgres_url, f'DROP ROLE IF EXISTS "{anon}", "{authenticated}", "{authenticator}"')


def start_dev(env: dict[str, str], folder: Path, port: int) -> DevStack:
    # Its temporary folders go under the test's own, where the test can look for leftovers.
    temporary = folder / "tmp"
    temporary.mkdir(exist_ok=True)
    process = subprocess.Popen(
        cli_command("dev", "--port", str(port)),
        cwd=folder,
        env=cli_environment({**env, "TMPDIR": str(temporary)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    stack = DevStack(process)
    stack.start_reading()
    return stack


@pytest.fixture
def run_dev(dev_environment: DevEnvironment, tmp_path: Path) -> Iterator[list[DevStack]]:
    """Stacks started by a test; any still running at its end (a failed test) is stopped as a
    user would, by SIGINT, and killed with every process below it if that does not work."""
    started: list[DevStack] = []
    yield started
    for stack in started:
        if stack.process.poll() is not None:
            continue
        below = stack.descendants()
        stack.process.send_signal(signal.SIGINT)
        try:
            stack.process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            for pid in [stack.process.pid, *below]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            stack.process.wait()


def stop_with(stack: DevStack, signum: signal.Signals) -> int:
    stack.process.send_signal(signum)
    return stack.process.wait(timeout=STOP_DEADLINE)


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def sign_in(base_url: str, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{base_url}/auth/login", json={"email": email, "password": password})


def test_gateway_dev_serves_the_demo_users_rows_and_sigint_leaves_nothing_running(
    dev_environment: DevEnvironment, run_dev: list[DevStack], tmp_path: Path
) -> None:
    port = free_port()
    stack = start_dev(dev_environment.env, tmp_path, port)
    run_dev.append(stack)
    base_url = stack.wait_until_ready()
    credentials = stack.printed(CREDENTIALS)
    postgrest = stack.printed(POSTGREST)
    assert credentials is not None, stack.output()
    assert postgrest is not None, stack.output()
    assert f"{base_url}/demo" in stack.output()

    printed_lines = [line.strip() for line in stack.lines if line.startswith("    ")]
    printed = subprocess.run(
        ["sh", "-e", "-c", "\n".join(printed_lines)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    assert '"name":"Apollo"' in printed.stdout, "the printed curl lines did not read the rows"

    login = sign_in(base_url, credentials[1], credentials[2])
    assert login.status_code == 200, login.text
    assert login.json()["user"]["role"] == "org_admin"
    token = login.json()["access_token"]
    rows = httpx.get(
        f"{base_url}/rest/projects?select=name,organization_id",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert rows.status_code == 200, rows.text
    organization_id = login.json()["organization"]["organization_id"]
    assert [row["organization_id"] for row in rows.json()] == [organization_id] * 3

    # PostgREST's config holds the authenticator's password: owner-only, in an owner-only folder.
    [config] = (tmp_path / "tmp").glob("gateway-dev-*/postgrest.conf")
    assert config.stat().st_mode & 0o777 == 0o600
    assert config.parent.stat().st_mode & 0o777 == 0o700

    # Other commands in the folder act on the stack: doctor finds every part in agreement.
    assert postgrest[1] == dev_environment.env["GATEWAY_UPSTREAM_URL"]
    hint = stack.printed(
        re.compile(r"^  other gateway commands .* set (GATEWAY_POSTGREST_NOTIFY_URL=\S+)$")
    )
    assert hint is not None, stack.output()
    doctor = run_cli({**dev_environment.env, **dict([hint[1].split("=", 1)])}, tmp_path, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr

    children = stack.descendants()
    assert len(children) >= 3, "PostgREST, gateway serve and its worker were not all found"
    assert stop_with(stack, signal.SIGINT) == 0, stack.output()

    assert [pid for pid in children if alive(pid)] == []
    assert port_is_closed(port)
    assert port_is_closed(int(postgrest[2]))
    assert "nothing is left running" in stack.output()
    assert list((tmp_path / "tmp").iterdir()) == [], "a temporary folder was left behind"


def test_a_killed_gateway_dev_takes_postgrest_and_the_gateway_with_it(
    dev_environment: DevEnvironment, run_dev: list[DevStack], tmp_path: Path
) -> None:
    """SIGKILL runs no clean-up code: the children must notice their parent's death."""
    port = free_port()
    stack = start_dev(dev_environment.env, tmp_path, port)
    run_dev.append(stack)
    stack.wait_until_ready()
    children = stack.descendants()
    assert len(children) >= 3, "PostgREST, gateway serve and its worker were not all found"

    stack.process.kill()
    stack.process.wait()

    wait_for(lambda: not any(alive(pid) for pid in children), STOP_DEADLINE, "the children's end")
    assert port_is_closed(port)


def test_gateway_dev_run_again_in_the_same_folder_keeps_the_user_and_sigterm_stops_it(
    dev_environment: DevEnvironment, run_dev: list[DevStack], tmp_path: Path
) -> None:
    first = start_dev(dev_environment.env, tmp_path, free_port())
    run_dev.append(first)
    first.wait_until_ready()
    user_id = sign_in(first.wait_until_ready(), "demo@example.com", "demo-password").json()["user"][
        "user_id"
    ]
    assert stop_with(first, signal.SIGTERM) == 0, first.output()

    second = start_dev(dev_environment.env, tmp_path, free_port())
    run_dev.append(second)
    base_url = second.wait_until_ready()

    assert "kept from an earlier run" in second.output()
    again = sign_in(base_url, "demo@example.com", "demo-password")
    assert again.status_code == 200, again.text
    assert again.json()["user"]["user_id"] == user_id
    rows = sql(dev_environment.database_url, "SELECT count(*) AS n FROM public.projects")
    assert rows[0]["n"] == 3, "the example rows were seeded twice"
    assert stop_with(second, signal.SIGINT) == 0


def test_gateway_dev_refuses_a_role_of_the_same_name_that_it_did_not_create(
    dev_environment: DevEnvironment, run_dev: list[DevStack], tmp_path: Path, postgres_url: str
) -> None:
    anon, _, authenticator = dev_environment.roles
    execute(postgres_url, f'CREATE ROLE "{anon}" NOLOGIN')

    stack = start_dev(dev_environment.env, tmp_path, free_port())
    run_dev.append(stack)
    code = stack.process.wait(timeout=START_DEADLINE)
    wait_for(lambda: any("gateway: error" in line for line in stack.lines), 5, "the error")

    assert code == 1
    assert f"{anon} already exists" in stack.output()
    assert "gateway dev did not create" in stack.output()
    comment = sql(
        postgres_url,
        "SELECT shobj_description(oid, 'pg_authid') AS c FROM pg_roles WHERE rolname = $1",
        anon,
    )
    assert comment[0]["c"] is None, "the foreign role was marked as ours"
    assert sql(postgres_url, "SELECT 1 FROM pg_roles WHERE rolname = $1", authenticator) == []


def readme_try_it_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "README.md's Try it section should hold two sh blocks"
    return blocks


# `uv run gateway ...` as the README writes it, for a test that runs in the project's venv.
UV_AS_THIS_PYTHON = 'uv() { shift; "$GATEWAY_TEST_PYTHON" -m "$@"; }\n'


def test_the_readme_try_it_block_runs_as_printed_against_a_dev_stack(
    dev_environment: DevEnvironment, run_dev: list[DevStack], tmp_path: Path
) -> None:
    stack = start_dev(dev_environment.env, tmp_path, free_port())
    run_dev.append(stack)
    base_url = stack.wait_until_ready()
    script, cli_script = readme_try_it_blocks()
    assert "GW=http://127.0.0.1:8000\n" in script
    script = script.replace("GW=http://127.0.0.1:8000\n", f"GW={base_url}\n", 1)

    result = subprocess.run(
        ["sh", "-e", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"name":"Apollo"' in out
    assert '"name":"Voyager"' in out
    assert re.search(r"(?im)^content-range: 0-1/4\r?$", out), out
    assert "logout: 204" in out
    assert out.rstrip().endswith("401"), out
    assert '"code":"session_revoked"' in out.replace(" ", ""), out

    # The second block: other commands in the folder act on the same stack.
    cli_result = subprocess.run(
        ["sh", "-e", "-c", UV_AS_THIS_PYTHON + cli_script],
        cwd=tmp_path,
        env=cli_environment({**dev_environment.env, "GATEWAY_TEST_PYTHON": sys.executable}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli_result.returncode == 0, cli_result.stderr
    assert sign_in(base_url, "ada@example.com", "correct horse battery").status_code == 403
    assert stop_with(stack, signal.SIGINT) == 0
