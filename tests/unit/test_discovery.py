"""The discovery document against the metadata specs (RFC 8414, OpenID Connect Discovery 1.0).

authlib's metadata models are the reference: each registered field the gateway publishes must
pass its validator, and a generic client that validates the whole document must refuse it, since
the gateway offers no OAuth 2.0 flow and no ID token.
"""

from __future__ import annotations

from typing import Any

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from gateway.web.keys import discovery_document

ISSUER = "https://auth.example.com"
REGISTERED = set(AuthorizationServerMetadata.REGISTRY_KEYS) | set(
    OpenIDProviderMetadata.REGISTRY_KEYS
)
# Registered fields that promise something the gateway does not do: an OAuth client or an OIDC
# relying party reading any of them would send a request the gateway answers differently.
MISLEADING = {
    "authorization_endpoint",
    "token_endpoint",
    "token_endpoint_auth_methods_supported",
    "revocation_endpoint",
    "introspection_endpoint",
    "userinfo_endpoint",
    "registration_endpoint",
    "id_token_signing_alg_values_supported",
    "subject_types_supported",
    "claims_supported",
    "scopes_supported",
}


MODELS = (AuthorizationServerMetadata, OpenIDProviderMetadata)


def document(audience: str | None = None) -> dict[str, Any]:
    return discovery_document(ISSUER, ["RS256", "ES256"], audience)


def test_the_document_names_the_issuer_and_the_jwks_a_verifier_reads() -> None:
    published = document()

    assert published["issuer"] == ISSUER
    assert published["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert published["access_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert published["access_token_audience"] is None


def test_the_audience_is_published_when_one_is_configured() -> None:
    assert document("orders-api")["access_token_audience"] == "orders-api"


def test_no_registered_field_promises_a_flow_the_gateway_lacks() -> None:
    assert MISLEADING & set(document()) == set()


def test_the_document_says_outright_that_no_oauth_flow_is_offered() -> None:
    # Both lists default to authorization_code and implicit (or are required) when absent.
    published = document()

    assert published["response_types_supported"] == []
    assert published["grant_types_supported"] == []


@pytest.mark.parametrize(
    "field",
    sorted(REGISTERED & set(document()) - {"response_types_supported", "grant_types_supported"}),
)
def test_each_registered_field_published_passes_the_specs_validator(field: str) -> None:
    published = document()
    registering = [m for m in MODELS if field in m.REGISTRY_KEYS]
    assert registering, f"no authlib model registers {field!r}"
    for model in registering:
        validator = getattr(model(published), f"validate_{field}", None)
        if validator is None:
            pytest.fail(f"authlib's {model.__name__} has no validate_{field}: nothing checked it")
        validator()


def test_every_other_field_has_a_name_no_spec_registers() -> None:
    extensions = set(document()) - REGISTERED

    assert extensions == {
        "access_token_signing_alg_values_supported",
        "access_token_audience",
        "login_endpoint",
        "refresh_endpoint",
        "logout_endpoint",
        "switch_organization_endpoint",
        "me_endpoint",
    }


def refusals(model: type[AuthorizationServerMetadata]) -> dict[str, str]:
    """Every one of ``model``'s field validators that refuses the document, with its message."""
    found: dict[str, str] = {}
    for name in dir(model):
        if name.startswith("validate_") and name != "validate":
            try:
                getattr(model(document()), name)()
            except ValueError as refusal:
                found[name.removeprefix("validate_")] = str(refusal)
    return found


def test_a_generic_oauth_client_refuses_the_document_instead_of_misusing_it() -> None:
    with pytest.raises(ValueError, match=r'^"token_endpoint" is required$'):
        AuthorizationServerMetadata(document()).validate()
    # An empty list counts as absent: the required field is refused, not passed over.
    assert refusals(AuthorizationServerMetadata) == {
        field: f'"{field}" is required' for field in ("response_types_supported", "token_endpoint")
    }


def test_a_generic_openid_relying_party_refuses_the_document_instead_of_misusing_it() -> None:
    with pytest.raises(ValueError, match=r'^"token_endpoint" is required$'):
        OpenIDProviderMetadata(document()).validate()
    # The ID-token fields are refused by name: the gateway issues no ID token.
    assert refusals(OpenIDProviderMetadata) == {
        field: f'"{field}" is required'
        for field in (
            "id_token_signing_alg_values_supported",
            "response_types_supported",
            "subject_types_supported",
            "token_endpoint",
        )
    }
