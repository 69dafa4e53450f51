"""What the Presign header's enrichment refuses and what it makes of odd rows. Pure logic."""

from __future__ import annotations

import json

import pytest

from gateway.errors import GatewayError
from gateway.storage import Enrichment, StorageConfig, enrich, enrichment_for
from tests.unit.test_storage_decisions import NOW, PHOTOS

CLAIMS = {"user": {"user_id": 10, "organization_id": 1, "role": "org_client"}}


def enrichment(*, max_rows: int = 10_000) -> Enrichment:
    storage = StorageConfig(buckets={"photos": PHOTOS}, max_batch=3, max_rows=max_rows)
    return enrichment_for(b"k; bucket=photos", storage, claims=CLAIMS)


def refusal(body: bytes, chosen: Enrichment | None = None, **limits: int) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        enrich(body, chosen or enrichment(), now=NOW, **limits)
    return refused.value


def rows(count: int) -> bytes:
    return json.dumps([{"k": f"orgs/1/{i}"} for i in range(count)]).encode()


def test_more_rows_than_gateway_storage_max_rows_are_refused_asking_for_pagination() -> None:
    assert len(json.loads(enrich(rows(5), enrichment(max_rows=5), now=NOW))) == 5

    refused = refusal(rows(6), enrichment(max_rows=5))

    assert (refused.status, refused.code) == (400, "too_many_rows")
    assert "5" in refused.message
    assert "limit=" in refused.message


def test_an_enriched_answer_over_the_output_cap_is_refused() -> None:
    body = rows(100)
    enriched = enrich(body, enrichment(), now=NOW)

    refused = refusal(body, max_bytes=len(enriched) - 1)

    assert (refused.status, refused.code) == (400, "answer_too_large")
    assert enrich(body, enrichment(), now=NOW, max_bytes=len(enriched)) == enriched


@pytest.mark.parametrize(
    "body",
    [
        b'{"k":"orgs/1/a"}',
        b"[1,2]",
        b'[{"k":"orgs/1/a"},[]]',
        b"not json",
        b'[{"a":1}',
        b"",
        # Nested deeper than the JSON decoder recurses (a jsonb column PostgREST passes as is).
        b'[{"k":"orgs/1/a","doc":' + b"[" * 2000 + b"]" * 2000 + b"}]",
        b'[{"k":' + b"[" * 2000 + b"]" * 2000 + b"}]",
    ],
)
def test_a_2xx_json_answer_that_cannot_be_enriched_is_a_502_never_passed_through(
    body: bytes,
) -> None:
    refused = refusal(body)

    assert (refused.status, refused.code) == (502, "presign_failed")


def test_an_empty_object_with_whitespace_stays_valid_json() -> None:
    body = b'[{         },{ \n\t},{"k" : "orgs/1/a"   }]'

    enriched = json.loads(enrich(body, enrichment(), now=NOW))

    assert enriched[0] == enriched[1] == {"k_url": None}
    assert enriched[2]["k_url"].startswith("https://photos.s3.eu-west-1.amazonaws.com/orgs/1/a?")


def test_a_key_column_that_is_not_a_string_gets_null_whatever_it_holds() -> None:
    body = b'[{"k":{"a":[1,2,{"b":"orgs/1/a"}]}},{"k":["orgs/1/a"]},{"k":1e400},{"k":true}]'

    assert [row["k_url"] for row in json.loads(enrich(body, enrichment(), now=NOW))] == [None] * 4


def test_an_empty_array_stays_empty() -> None:
    assert enrich(b"[]", enrichment(), now=NOW) == b"[]"
    assert enrich(b" [ ] ", enrichment(), now=NOW) == b"[]"
