"""Signing keys against a real PostgreSQL: generation, storage (encrypted or not), key files,
the JWKS, and rotation by `schedctl rotate-signing-key` while tokens stay verifiable."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import jwt
import pytest
from auth_support import (
    add_user,
    auth_app,
    execute,
    kid_of,
    login,
    running,
    settings_for,
    verifier,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select
from typer.testing import CliRunner

from auth_service import api, errors, keys
from libs.infra import config
from libs.scheduling.states import SigningKeyStatus
from libs.store import models
from schedctl.cli import app as schedctl

ENCRYPTION_KEY = "q5uHK1fO0xg1V4s7Jv5Zy6YQ2mXrX9+oTg8t0bP3c1E="  # 32 made-up bytes


async def stored_keys(app) -> list[models.SigningKey]:
    result = await execute(app, select(models.SigningKey).order_by(models.SigningKey.created_at))
    return list(result.scalars())


def rotate_command(
    monkeypatch: pytest.MonkeyPatch, database_url: str, *args: str, **env: str
) -> tuple[int, str]:
    """Run `schedctl rotate-signing-key` as an operator would, with the auth service's settings
    from the environment."""
    for name in ("CONFIG_LOCATION", "SPRING_CONFIG_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENVIRONMENT", "development")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(schedctl, ["rotate-signing-key", *args])
    return result.exit_code, result.output


def pem_file(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


# --- Generation and storage -------------------------------------------------------------------


async def test_the_first_start_generates_one_active_key_that_the_jwks_publishes(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        jwks = await client.get(api.JWKS_PATH)
        stored = await stored_keys(app)

    assert jwks.status_code == 200
    assert jwks.headers["cache-control"] == "public, max-age=10"
    [key] = jwks.json()["keys"]
    assert key == {
        "kty": "EC", "crv": "P-256", "x": key["x"], "y": key["y"],
        "kid": key["kid"], "alg": "ES256", "use": "sig",
    }  # fmt: skip
    assert key["kid"] == keys.thumbprint(key)
    assert [(k.kid, k.status, k.algorithm) for k in stored] == [
        (key["kid"], SigningKeyStatus.ACTIVE, "ES256")
    ]
    # Development without an encryption key: stored as plain PEM (production refuses this).
    assert "PRIVATE KEY" in (stored[0].private_key_pem or "")


async def test_concurrent_first_starts_create_a_single_key(database_url):
    apps = [auth_app(database_url) for _ in range(3)]
    async with running(apps[0]), running(apps[1]), running(apps[2]) as client:
        jwks = (await client.get(api.JWKS_PATH)).json()
        stored = await stored_keys(apps[0])
        signing = {(await app.state.identity.keys.signer()).kid for app in apps}

    assert len(stored) == 1
    assert signing == {stored[0].kid} == {k["kid"] for k in jwks["keys"]}


async def test_private_keys_are_encrypted_at_rest_when_a_key_is_set(database_url):
    settings = settings_for(
        database_url, environment="production", signing_key_encryption_key=ENCRYPTION_KEY
    )
    app = api.create_app(settings)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        token = (await login(client, "ada@example.com")).json()["access_token"]
        principal = await verifier(client, settings).verify(token)
        [stored] = await stored_keys(app)

    assert principal.kind == "user"
    assert stored.private_key_pem is not None
    assert stored.private_key_pem.startswith("v1:")
    assert "PRIVATE KEY" not in stored.private_key_pem
    # A restart with the same encryption key signs with the same stored key.
    again = api.create_app(settings)
    async with running(again):
        assert (await again.state.identity.keys.signer()).kid == stored.kid == kid_of(token)


@pytest.mark.parametrize(
    "encryption_key",
    [None, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="],
    ids=["no key", "another key"],
)
async def test_an_encrypted_key_without_its_encryption_key_stops_the_start(
    database_url, encryption_key
):
    async with running(auth_app(database_url, signing_key_encryption_key=ENCRYPTION_KEY)):
        pass
    app = auth_app(database_url, signing_key_encryption_key=encryption_key)

    with pytest.raises(errors.SigningKeyUnavailable, match="signing_key_encryption_key"):
        async with running(app):
            pass


def test_production_refuses_to_store_private_keys_unencrypted(database_url):
    with pytest.raises(config.ConfigError, match="signing_key_encryption_key") as caught:
        api.create_app(settings_for(database_url, environment="production"))
    assert "signing_key_file" in str(caught.value)


# --- Key files --------------------------------------------------------------------------------


async def test_keys_from_files_store_only_public_parts_and_rotate_by_file(database_url, tmp_path):
    first_file, second_file = pem_file(tmp_path / "first.pem"), pem_file(tmp_path / "second.pem")
    settings = settings_for(database_url, signing_key_file=first_file)
    app = api.create_app(settings)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        old_token = (await login(client, "ada@example.com")).json()["access_token"]
        first_jwks = (await client.get(api.JWKS_PATH)).json()["keys"]

    # Rotation with files: the new key in signing_key_file, the old one as previous.
    rotated = settings_for(
        database_url, signing_key_file=second_file, previous_signing_key_file=first_file
    )
    app = api.create_app(rotated)
    async with running(app) as client:
        new_token = (await login(client, "ada@example.com")).json()["access_token"]
        check = verifier(client, rotated)
        old_principal = await check.verify(old_token)
        new_principal = await check.verify(new_token)
        jwks = (await client.get(api.JWKS_PATH)).json()["keys"]
        stored = {k.kid: k for k in await stored_keys(app)}

    first_kid = keys.from_pem(first_file.read_bytes(), "ES256").kid
    second_kid = keys.from_pem(second_file.read_bytes(), "ES256").kid
    assert [k["kid"] for k in first_jwks] == [first_kid] == [kid_of(old_token)]
    assert kid_of(new_token) == second_kid
    assert [k["kid"] for k in jwks] == [second_kid, first_kid]
    assert old_principal.subject == new_principal.subject
    assert stored[second_kid].status == SigningKeyStatus.ACTIVE
    assert stored[first_kid].status == SigningKeyStatus.PREVIOUS
    assert all(k.private_key_pem is None for k in stored.values())


def test_an_unusable_key_file_is_named_at_start(database_url, tmp_path):
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello")
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cases = {
        "notes.txt: not an unencrypted PEM private key": {"signing_key_file": not_a_key},
        "missing.pem: cannot read": {"signing_key_file": tmp_path / "missing.pem"},
        "rsa.pem: ES256 needs an EC private key": {"signing_key_file": rsa_key},
        "'previous_signing_key_file'": {
            "signing_key_file": pem_file(tmp_path / "ok.pem"),
            "previous_signing_key_file": not_a_key,
        },
        "'previous_signing_key_file' is set but 'signing_key_file' is not": {
            "previous_signing_key_file": not_a_key
        },
    }
    for message, overrides in cases.items():
        with pytest.raises(config.ConfigError, match=re.escape(message)):
            api.create_app(settings_for(database_url, **overrides))


# --- Rotation ---------------------------------------------------------------------------------


async def test_rotation_keeps_old_tokens_valid_over_http_and_signs_with_the_new_key(
    database_url, monkeypatch, serve_app
):
    settings = settings_for(database_url, active_key_reload_s=0, auth_jwks_refresh_min_interval_s=0)
    app = api.create_app(settings)
    async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        await add_user(app, "ada@example.com")
        check = verifier(client, settings, f"{base_url}{api.JWKS_PATH}")
        old_token = (await login(client, "ada@example.com")).json()["access_token"]
        assert (await check.verify(old_token)).kind == "user"

        code, output = await asyncio.to_thread(rotate_command, monkeypatch, database_url)
        assert code == 0, output

        new_token = (await login(client, "ada@example.com")).json()["access_token"]
        new_principal = await check.verify(new_token)  # an unknown kid: the JWKS is refetched
        old_principal = await check.verify(old_token)  # the previous key is still published
        jwks = (await client.get(api.JWKS_PATH)).json()["keys"]

    assert kid_of(new_token) != kid_of(old_token)
    assert f"active signing key:   {kid_of(new_token)}" in output
    assert f"previous signing key: {kid_of(old_token)}" in output
    assert new_principal.subject == old_principal.subject
    assert [k["kid"] for k in jwks] == [kid_of(new_token), kid_of(old_token)]


async def test_the_jwks_shows_active_and_previous_never_retired(database_url, monkeypatch):
    settings = settings_for(database_url, active_key_reload_s=0)
    app = api.create_app(settings)
    async with running(app) as client:
        first = (await app.state.identity.keys.signer()).kid
        code, output = await asyncio.to_thread(rotate_command, monkeypatch, database_url)
        assert code == 0, output
        too_soon, refusal = await asyncio.to_thread(rotate_command, monkeypatch, database_url)
        forced, output = await asyncio.to_thread(
            rotate_command, monkeypatch, database_url, "--force"
        )
        jwks = (await client.get(api.JWKS_PATH)).json()["keys"]
        stored = {k.kid: k.status for k in await stored_keys(app)}

    assert too_soon == 1
    assert "previous signing key may still verify unexpired tokens" in refusal
    assert forced == 0, output
    assert f"retired signing key:  {first}" in output
    assert len(stored) == 3
    assert stored[first] == SigningKeyStatus.RETIRED
    published = {k["kid"]: stored[k["kid"]] for k in jwks}
    assert sorted(published.values()) == [SigningKeyStatus.ACTIVE, SigningKeyStatus.PREVIOUS]
    assert first not in published


async def test_a_new_key_is_used_only_once_verifiers_can_know_it(database_url):
    # Verifiers refetch at most every 30 s: a copy keeps signing with the old key (still
    # published) until the new one has been published for twice that.
    settings = settings_for(
        database_url, active_key_reload_s=0, auth_jwks_refresh_min_interval_s=30
    )
    app = api.create_app(settings)
    async with running(app):
        ring = app.state.identity.keys
        first = (await ring.signer()).kid
        await keys.rotate(settings)
        still_first = (await ring.signer()).kid
        # A forced rotation retires the old key: signing with it would make unverifiable
        # tokens, so the copy moves to the active key at once.
        third = (await keys.rotate(settings, force=True)).active
        moved = (await ring.signer()).kid

    assert still_first == first
    assert moved == third


async def test_rs256_tokens_when_the_algorithm_says_so(database_url):
    settings = settings_for(database_url, auth_algorithm="RS256")
    app = api.create_app(settings)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        token = (await login(client, "ada@example.com")).json()["access_token"]
        principal = await verifier(client, settings).verify(token)
        [key] = (await client.get(api.JWKS_PATH)).json()["keys"]

    assert principal.kind == "user"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert (key["kty"], key["alg"], key["kid"]) == ("RSA", "RS256", kid_of(token))
