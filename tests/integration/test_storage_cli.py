"""``gateway storage check`` and ``gateway storage presign``, run as an operator runs them,
against a real store and a real S3 server that checks signatures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from gateway.cli import cli
from gateway.storage import BucketSigner, Credentials
from tests.support.cli import run_cli
from tests.support.postgres import free_port
from tests.support.s3 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server, run_s3_server

PASSWORD = "correct horse battery"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with run_s3_server("files") as server:
        yield server


def bucket_toml(name: str, endpoint: str) -> str:
    return f"""
[buckets.{name}]
region = "{REGION}"
endpoint = "{endpoint}"
path_style = true
prefix = "orgs/{{organization_id}}/"
operations = {{ org_admin = ["get", "put", "delete"], org_client = ["get"] }}
upload_content_types = ["application/pdf"]
"""


def storage_env(tmp_path: Path, *tables: str, **env: str) -> dict[str, str]:
    config = tmp_path / "storage.toml"
    config.write_text("".join(tables))
    return {"GATEWAY_STORAGE_CONFIG": str(config), **CREDENTIALS, **env}


def setup(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=stdin, env=env)
    assert result.exit_code == 0, result.stderr
    return result.stdout


@dataclass(frozen=True)
class Operator:
    env: dict[str, str]
    acme: str
    globex: str


@pytest.fixture
def operator(store_env: dict[str, str], s3: S3Server, tmp_path: Path) -> Operator:
    """A store with Acme (ada its admin, carl its client, sam suspended) and Globex, and the
    ``files`` bucket on the real S3 server."""
    env = {**store_env, **storage_env(tmp_path, bucket_toml("files", s3.url))}
    setup(env, "db", "upgrade")
    acme, globex = (
        str(json.loads(setup(env, "orgs", "create", name, "--json"))["organization_id"])
        for name in ("Acme", "Globex")
    )
    for email, role in [
        ("ada@example.com", "org_admin"),
        ("carl@example.com", "org_client"),
        ("sam@example.com", "org_admin"),
    ]:
        setup(env, "users", "create", email, "--password-stdin", stdin=PASSWORD)
        setup(env, "members", "add", "--org", acme, "--email", email, "--role", role)
    setup(env, "users", "suspend", "sam@example.com")
    return Operator(env, acme, globex)


def owner(s3: S3Server) -> BucketSigner:
    return BucketSigner(
        bucket="files",
        region=REGION,
        credentials=Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY),
        endpoint=s3.url,
        path_style=True,
    )


def test_presign_gives_the_operator_a_url_s3_serves(
    operator: Operator, s3: S3Server, tmp_path: Path
) -> None:
    key = f"orgs/{operator.acme}/invoice 7.pdf"
    put = owner(s3).url("PUT", key, now=int(time.time()), expires_in=60)
    assert httpx.put(put, content=b"%PDF 7").status_code == 200

    result = run_cli(
        operator.env,
        tmp_path,
        *("storage", "presign", "files", key, "--as", "carl@example.com"),
        *("--org", operator.acme, "--expires-in", "60", "--json"),
    )

    assert result.returncode == 0, result.stderr
    url = json.loads(result.stdout)
    assert (url["key"], url["method"]) == (key, "GET")
    assert httpx.get(url["url"]).content == b"%PDF 7"


def test_presign_put_gives_the_form_of_a_presigned_post(
    operator: Operator, s3: S3Server, tmp_path: Path
) -> None:
    result = run_cli(
        operator.env,
        tmp_path,
        *("storage", "presign", "files", f"orgs/{operator.acme}/new.pdf"),
        *("--as", "ada@example.com", "--org", operator.acme, "--operation", "put"),
        *("--content-type", "application/pdf", "--json"),
    )

    assert result.returncode == 0, result.stderr
    upload = json.loads(result.stdout)
    answer = httpx.post(
        upload["url"], data=upload["fields"], files={"file": ("n.pdf", b"%PDF", "application/pdf")}
    )
    assert answer.status_code == 204, answer.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Another organization's key, and one spelled to climb out of the caller's prefix.
        (("orgs/{globex}/x.pdf", "--as", "ada@example.com"), "outside your part of the bucket"),
        (("orgs/{acme}/../{globex}/x.pdf", "--as", "ada@example.com"), "'..' segment"),
        (("orgs/{acme}/x", "--as", "carl@example.com", "--operation", "delete"), "may not delete"),
        (("orgs/{acme}/x.pdf", "--as", "sam@example.com"), "suspended"),
        (("orgs/{acme}/x.pdf", "--as", "nobody@example.com"), "no user with that email"),
    ],
)
def test_presign_refuses_what_the_endpoint_refuses(
    operator: Operator, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    key = args[0].format(acme=operator.acme, globex=operator.globex)

    result = run_cli(
        operator.env,
        tmp_path,
        "storage",
        "presign",
        "files",
        key,
        *args[1:],
        "--org",
        operator.acme,
    )

    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_presign_refuses_an_organization_the_user_is_not_in(
    operator: Operator, tmp_path: Path
) -> None:
    result = run_cli(
        operator.env,
        tmp_path,
        *("storage", "presign", "files", f"orgs/{operator.globex}/x.pdf"),
        *("--as", "ada@example.com", "--org", operator.globex),
    )

    assert result.returncode == 1
    assert f"not a member of organization {operator.globex}" in result.stderr


def test_check_passes_with_a_reachable_bucket_and_valid_credentials(
    s3: S3Server, tmp_path: Path
) -> None:
    env = storage_env(tmp_path, bucket_toml("files", s3.url))

    result = run_cli(env, tmp_path, "storage", "check", "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == ["config", "bucket files"]


def test_check_reports_each_failing_bucket_and_exits_non_zero(s3: S3Server, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = storage_env(
        tmp_path,
        bucket_toml("files", s3.url),
        bucket_toml("missing", s3.url),
        bucket_toml("nowhere", closed),
    )

    result = run_cli(env, tmp_path, "storage", "check")

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok   config")
    assert lines[1].startswith("ok   bucket files")
    assert lines[2].startswith("FAIL bucket missing: HEAD answered 404")
    assert lines[3].startswith("FAIL bucket nowhere: unreachable")


def test_check_reports_credentials_the_server_refuses(s3: S3Server, tmp_path: Path) -> None:
    env = storage_env(
        tmp_path, bucket_toml("files", s3.url), AWS_SECRET_ACCESS_KEY="not-the-secret"
    )

    result = run_cli(env, tmp_path, "storage", "check")

    assert result.returncode == 1
    assert "FAIL bucket files: HEAD answered 403" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "GATEWAY_STORAGE_CONFIG is not set"),
        ({"AWS_ACCESS_KEY_ID": ""}, "AWS_ACCESS_KEY_ID is not set"),
    ],
)
def test_check_reports_a_missing_config_or_credential(
    s3: S3Server, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    configured = storage_env(tmp_path, bucket_toml("files", s3.url)) if env else {}

    result = run_cli({**configured, **env}, tmp_path, "storage", "check")

    assert result.returncode == 1
    assert result.stdout.startswith("FAIL config:")
    assert message in result.stdout
