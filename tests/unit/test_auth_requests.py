"""How the token endpoint reads a request (`auth_service.schemas`): which grant, which client
credentials, and what is refused; pure functions over the parsed form."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from auth_service import errors, schemas


def basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode()).decode()


def test_each_grant_type_is_read_with_its_parameters() -> None:
    password = schemas.token_request(
        {"grant_type": "password", "username": "a@x.io", "password": "pw", "scope": "jobs:read"},
        None,
    )
    refresh = schemas.token_request({"grant_type": "refresh_token", "refresh_token": "t"}, None)

    assert password == schemas.PasswordGrant("a@x.io", "pw", "jobs:read")
    assert refresh == schemas.RefreshGrant("t", None)
    assert "pw" not in repr(password)
    assert "'t'" not in repr(refresh)


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({}, errors.InvalidRequest),
        ({"grant_type": "authorization_code"}, errors.UnsupportedGrantType),
        ({"grant_type": "password", "password": "pw"}, errors.InvalidRequest),
        ({"grant_type": "refresh_token"}, errors.InvalidRequest),
        ({"grant_type": "client_credentials"}, errors.InvalidClient),
        ({"grant_type": "client_credentials", "client_id": "c"}, errors.InvalidClient),
    ],
)
def test_incomplete_or_unknown_requests_are_refused(form, error) -> None:
    with pytest.raises(error):
        schemas.token_request(form, None)


def test_basic_credentials_are_form_decoded_as_rfc_6749_says() -> None:
    client_id, secret = "svc:ci bot", "s3cr%t+"
    header = basic(f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}")

    grant = schemas.token_request({"grant_type": "client_credentials"}, header)

    assert grant == schemas.ClientCredentialsGrant(client_id, secret, None)
    assert secret not in repr(grant)


def test_basic_with_the_same_client_id_in_the_form_is_accepted() -> None:
    grant = schemas.token_request(
        {"grant_type": "client_credentials", "client_id": "ci"}, basic("ci:secret")
    )
    assert grant == schemas.ClientCredentialsGrant("ci", "secret", None)


@pytest.mark.parametrize(
    ("form", "header", "error"),
    [
        ({"client_secret": "x"}, basic("ci:secret"), errors.InvalidRequest),
        ({"client_id": "other"}, basic("ci:secret"), errors.InvalidRequest),
        ({}, "Bearer abc", errors.InvalidClient),
        ({}, "Basic not-base64!", errors.InvalidClient),
        ({}, basic("no-colon"), errors.InvalidClient),
        ({}, basic(":secret"), errors.InvalidClient),
        ({}, basic("ci%ff:secret"), errors.InvalidClient),  # not UTF-8 once decoded
    ],
)
def test_bad_client_authentication_is_refused(form, header, error) -> None:
    with pytest.raises(error):
        schemas.token_request({"grant_type": "client_credentials", **form}, header)


def test_invalid_client_always_challenges_with_basic() -> None:
    problem = errors.InvalidClient()
    assert problem.status == 401
    assert problem.headers["WWW-Authenticate"] == 'Basic realm="scheduler"'
    assert problem.headers["Cache-Control"] == "no-store"
    assert problem.extensions == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }


def test_a_revocation_needs_a_token() -> None:
    assert schemas.revocation_request({"token": "t"}) == schemas.RevocationRequest("t", None)
    with pytest.raises(errors.InvalidRequest):
        schemas.revocation_request({"token_type_hint": "refresh_token"})
