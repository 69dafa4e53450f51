"""GATEWAY_STORAGE_CONFIG: a valid file gives its buckets, an invalid one one line naming why."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.storage import StorageConfigError, load_storage_config

ENV = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}

VALID = """
[buckets.photos]
region = "eu-west-1"
prefix = "orgs/{organization_id}/"
operations = { org_admin = ["get", "put", "delete"], org_client = ["get"] }

[buckets.private-docs]
region = "us-east-1"
endpoint = "http://127.0.0.1:9000"
path_style = true
prefix = "orgs/{organization_id}/users/{user_id}/"
operations = { org_client = ["get", "put"] }
max_expires_in = 600
access_key_id_env = "DOCS_KEY_ID"
secret_access_key_env = "DOCS_SECRET"
session_token_env = "DOCS_TOKEN"
upload_content_types = ["application/pdf"]
upload_max_bytes = 1048576
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "storage.toml"
    path.write_text(text)
    return str(path)


def test_a_valid_file_gives_every_bucket_with_its_settings(tmp_path: Path) -> None:
    env = {**ENV, "DOCS_KEY_ID": "AKIADOCS", "DOCS_SECRET": "s", "DOCS_TOKEN": "t"}

    config = load_storage_config(write(tmp_path, VALID), environ=env, max_batch=1000)

    photos, docs = config.buckets["photos"], config.buckets["private-docs"]
    assert photos.max_expires_in == 3600
    assert photos.allows("org_admin", "delete")
    assert not photos.allows("org_client", "put")
    assert not photos.allows(None, "get")
    assert docs.prefix_for(organization_id=7, user_id=9) == "orgs/7/users/9/"
    assert docs.upload_content_types == frozenset({"application/pdf"})
    assert docs.signer.url("GET", "k", now=1_700_000_000, expires_in=60).startswith(
        "http://127.0.0.1:9000/private-docs/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIADOCS%2F"
    )


P = '[buckets.photos]\nregion = "eu-west-1"\n'
BROKEN = [
    ("nothing = 1", "unknown table 'nothing'"),
    ("", "no [buckets.<name>] table"),
    ('[buckets.photos]\nprefix = "orgs/{organization_id}/"\noperations = {}', "region is missing"),
    ('[buckets.photos]\nregion = "eu-west-1"\noperations = {}', "prefix is missing"),
    (
        '[buckets.Photos]\nregion = "x"\nprefix = "o/{organization_id}/"\noperations = {}',
        "not an S3 bucket name",
    ),
    (
        P + 'prefix = "orgs/{organization_id}"\noperations = {}',
        "ending in '/'",
    ),
    (
        P + 'prefix = "orgs/x{organization_id}/"\noperations = {}',
        "placeholders are whole segments",
    ),
    (
        '[buckets.photos]\nregion = "eu-west-1"\nprefix = "users/{user_id}/"\noperations = {}',
        "must hold the segment {organization_id}",
    ),
    (
        P + 'prefix = "orgs/../{organization_id}/"\noperations = {}',
        "is not a key segment",
    ),
    (
        '[buckets.photos]\nregion = "eu-west-1"\nprefix = "o/{organization_id}/"\n'
        'operations = { owner = ["get"] }',
        "'owner' is not an organization role",
    ),
    (
        '[buckets.photos]\nregion = "eu-west-1"\nprefix = "o/{organization_id}/"\n'
        'operations = { org_admin = ["read"] }',
        "operations.org_admin must be a list of get, put",
    ),
    (
        '[buckets.photos]\nregion = "eu-west-1"\nprefix = "o/{organization_id}/"\noperations = {}\n'
        "max_expires_in = 604801",
        "max_expires_in must be between 1 and 604800",
    ),
    (
        '[buckets.photos]\nregion = "eu-west-1"\nprefix = "o/{organization_id}/"\noperations = {}\n'
        'endpoint = "http://127.0.0.1:9000"',
        "an IP address endpoint needs path_style = true",
    ),
    (
        '[buckets.photos]\nregion = "eu-west-1"\nprefix = "o/{organization_id}/"\noperations = {}\n'
        'endpoint = "https://s3.example.com/base"',
        "endpoint must be a lower-case http(s) origin",
    ),
    (
        '[buckets.photos]\nregion = "eu-west-1"\nprefix = "o/{organization_id}/"\noperations = {}\n'
        "path_style = 1",
        "path_style must be a bool",
    ),
    (
        '[buckets.photos]\nregion = "eu-west-1"\nprefix = "o/{organization_id}/"\noperations = {}\n'
        "regoin = 1",
        "buckets.photos.regoin is not a bucket setting",
    ),
    (
        '[buckets.photos]\nregion = "eu-west-1"\nprefix = "o/{organization_id}/"\noperations = {}\n'
        'access_key_id_env = "MISSING_KEY"',
        "the environment variable MISSING_KEY is not set",
    ),
    (
        '[buckets.photos]\nregion = "eu-west-1"\nprefix = "o/{organization_id}/"\noperations = {}\n'
        'upload_content_types = ["image/*"]',
        "upload_content_types must be a list of media types",
    ),
    ("[buckets.photos\n", "is not TOML"),
]


@pytest.mark.parametrize(("text", "problem"), BROKEN)
def test_an_invalid_file_is_refused_in_one_line_naming_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(StorageConfigError) as refused:
        load_storage_config(write(tmp_path, text), environ=ENV, max_batch=1000)

    assert problem in refused.value.message
    assert "\n" not in refused.value.message
    assert refused.value.message.startswith("GATEWAY_STORAGE_CONFIG")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(StorageConfigError, match=r"cannot read .*nope\.toml"):
        load_storage_config(str(tmp_path / "nope.toml"), environ=ENV, max_batch=1000)


def test_missing_default_credentials_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.split("[buckets.private-docs]")[0])

    with pytest.raises(StorageConfigError, match="AWS_SECRET_ACCESS_KEY is not set"):
        load_storage_config(path, environ={"AWS_ACCESS_KEY_ID": "x"}, max_batch=1000)


@pytest.mark.parametrize("setting", ["access_key_id_env", "secret_access_key_env"])
def test_a_secret_pasted_where_a_variable_name_belongs_is_never_echoed(
    tmp_path: Path, setting: str
) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    text = VALID.split("[buckets.private-docs]")[0] + f'{setting} = "{secret}"\n'

    with pytest.raises(StorageConfigError) as refused:
        load_storage_config(write(tmp_path, text), environ=ENV, max_batch=1000)

    assert f"buckets.photos.{setting}" in refused.value.message
    assert "environment variable name" in refused.value.message
    assert "wJalr" not in refused.value.message
    assert "EXAMPLEKEY" not in str(refused.value)
