"""Key material of the auth service (`auth_service.keys`), the claims of its access tokens and
the settings that guard private keys: pure functions, no database."""

from __future__ import annotations

import base64
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from auth_service import errors, keys, service
from auth_service.settings import Settings
from libs.infra import config

DATABASE = "postgresql://app@localhost:5432/app"
ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()

# RFC 7638 section 3.1: this RSA key's thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
    "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2"
    "QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6"
    "WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def test_the_kid_is_the_rfc_7638_thumbprint() -> None:
    assert keys.thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    signer = keys.generate("ES256")
    assert signer.kid == keys.thumbprint(signer.public_jwk())


def test_the_public_jwk_has_no_private_member_and_says_what_it_is_for() -> None:
    jwk = keys.generate("ES256").public_jwk()
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (jwk["alg"], jwk["use"]) == ("ES256", "sig")


def test_a_sealed_key_opens_only_with_its_key_and_for_its_kid() -> None:
    signer = keys.generate("ES256")
    key = base64.b64decode(ENCRYPTION_KEY)
    sealed = keys.seal(signer.private_pem(), signer.kid, key)

    assert sealed.startswith("v1:")
    assert "PRIVATE KEY" not in sealed
    assert keys.unseal(sealed, signer.kid, key) == signer.private_pem()
    with pytest.raises(errors.SigningKeyUnavailable, match="cannot be decrypted"):
        keys.unseal(sealed, "another-kid", key)  # the kid is authenticated data
    with pytest.raises(errors.SigningKeyUnavailable, match="cannot be decrypted"):
        keys.unseal(sealed, signer.kid, bytes(32))
    with pytest.raises(errors.SigningKeyUnavailable, match="is not set"):
        keys.unseal(sealed, signer.kid, None)
    # Without an encryption key the PEM is stored as it is.
    assert keys.unseal(keys.seal(signer.private_pem(), signer.kid, None), signer.kid, None) == (
        signer.private_pem()
    )


def test_a_pem_of_the_wrong_kind_is_refused_for_the_algorithm() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="P-256"):
        keys.from_pem(p384, "ES256")
    with pytest.raises(ValueError, match="RSA"):
        keys.from_pem(keys.generate("ES256").private_pem(), "RS256")
    with pytest.raises(ValueError, match="not an unencrypted PEM"):
        keys.from_pem(b"-----BEGIN NOTHING-----", "ES256")


def test_access_claims_are_exactly_the_specified_ones() -> None:
    settings = Settings(database_url=DATABASE, access_token_ttl_s=600)
    subject = "0b6f7a9e-8f44-4c0e-9f0e-0d4c2b8e9a11"

    claims = service.access_claims(
        settings,
        subject=uuid.UUID(subject),
        kind="service_account",
        granted=frozenset({"jobs:run", "jobs:read"}),
        generation=3,
        now=1_700_000_000,
        jti="abc",
    )

    assert claims == {
        "iss": settings.auth_issuer,
        "aud": settings.auth_audience,
        "sub": subject,
        "iat": 1_700_000_000,
        "nbf": 1_700_000_000,
        "exp": 1_700_000_600,
        "jti": "abc",
        "scope": "jobs:read jobs:run",
        "principal": "service_account",
        "generation": 3,
    }
    signer = keys.generate("ES256")
    token = signer.sign(claims)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": signer.kid, "typ": "at+jwt"}


@pytest.mark.parametrize(
    "value", ["not base64!", base64.b64encode(bytes(16)).decode()], ids=["garbage", "16 bytes"]
)
def test_a_bad_encryption_key_is_named_without_its_value(value: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(Settings, database_url=DATABASE, signing_key_encryption_key=value)
    assert "signing_key_encryption_key" in str(caught.value)
    assert value not in str(caught.value)


def test_production_needs_an_encryption_key_or_a_key_file(tmp_path) -> None:
    with pytest.raises(config.ConfigError, match="signing_key_encryption_key"):
        keys.check_storage(Settings(database_url=DATABASE, environment="production"))
    keys.check_storage(Settings(database_url=DATABASE, environment="development"))
    keys.check_storage(Settings(database_url=DATABASE, signing_key_encryption_key=ENCRYPTION_KEY))
    keys.check_storage(Settings(database_url=DATABASE, signing_key_file=tmp_path / "k.pem"))
    assert ENCRYPTION_KEY not in repr(
        Settings(database_url=DATABASE, signing_key_encryption_key=ENCRYPTION_KEY).describe()
    )
