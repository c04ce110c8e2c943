"""`schedctl migrate`, `downgrade`, `create-admin` and `rotate-signing-key` on a real
database, the last one also on a local platform's data folder as `schedctl up` lays it out."""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

import auth_service.api
import auth_service.settings
from auth_service import keys
from libs.security import passwords
from libs.store import migrate
from schedctl import embedded, platform
from schedctl.cli import app

# Settings that would point the commands somewhere else than the test says.
CONFIGURATION_VARIABLES = (
    "DATABASE_URL",
    "CONFIG_LOCATION",
    "SPRING_CONFIG_LOCATION",
    "SIGNING_KEY_ENCRYPTION_KEY",
    "ENVIRONMENT",
    "DATA_DIR",
    "EMBEDDED_POSTGRES_PORT",
)


def test_migrate_then_downgrade_through_the_command(empty_database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    runner = CliRunner()

    up = runner.invoke(app, ["migrate"])
    assert up.exit_code == 0, up.output
    assert f"database at revision {migrate.head()}" in up.output
    assert migrate.current(empty_database_url) == migrate.head()

    down = runner.invoke(app, ["downgrade", "base"])
    assert down.exit_code == 0, down.output
    assert "database at revision base" in down.output
    assert migrate.current(empty_database_url) is None


def test_an_unreachable_database_is_named_without_its_password(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:hunter2@127.0.0.1:{embedded.free_port()}/x")
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 1
    assert "migration of postgresql://u:***@127.0.0.1" in result.output
    assert "hunter2" not in result.output


def test_a_missing_database_url_is_named(monkeypatch):
    for name in ("DATABASE_URL", "CONFIG_LOCATION", "SPRING_CONFIG_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 2
    assert "missing required setting 'database_url'" in result.output


def test_create_admin_once_then_leaves_it(database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()

    first = runner.invoke(app, ["create-admin", "--email", "Ops@Example.com"])
    second = runner.invoke(app, ["create-admin", "--email", "other@example.com"])

    assert first.exit_code == 0, first.output
    assert "password: " in first.output
    assert second.exit_code == 0, second.output
    assert "exists already" in second.output
    assert "password: " not in second.output
    admins = asyncio.run(_admins(database_url))
    assert [email for email, _ in admins] == ["ops@example.com"]
    # Stored as an argon2id hash, never as the password printed.
    password = first.output.split("password: ")[1].split()[0]
    assert admins[0][1].startswith("$argon2id$")
    assert password not in admins[0][1]
    assert passwords.new_hasher().verify(password, admins[0][1])


async def _admins(database_url: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT email, password_hash FROM users WHERE role = 'admin'")
    finally:
        await conn.close()
    return [(row["email"], row["password_hash"]) for row in rows]


def test_create_admin_refuses_an_email_of_an_existing_user(database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    asyncio.run(_insert_user(database_url, "taken@example.com"))

    result = CliRunner().invoke(app, ["create-admin", "--email", "taken@example.com"])

    assert result.exit_code == 1
    assert "belongs to an existing account" in result.output
    assert asyncio.run(_admins(database_url)) == []


async def _insert_user(database_url: str, email: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO users (email, password_hash, role) VALUES ($1, 'x', 'user')", email
        )
    finally:
        await conn.close()


# --- rotate-signing-key -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_platform(servers_dir: Path) -> Iterator[platform.PlatformSettings]:
    """A data folder as `schedctl up` leaves it: its embedded PostgreSQL running and migrated,
    the key that encrypts the signing keys, and the auth service's first key, made by the auth
    service started as `up` starts it."""
    settings = platform.PlatformSettings(
        data_dir=servers_dir / f"local-{uuid.uuid4().hex[:8]}",
        database_url=None,
        embedded_postgres_port=embedded.free_port(),
    )
    local = platform.Platform(settings, out=io.StringIO())
    try:
        local._migrate(local._start_postgres())
        key = platform.key_encryption_key(local.data_dir, create=True)
        asyncio.run(_start_auth_service(platform.database_url(settings), key))
        yield settings
    finally:
        local.stop()


async def _start_auth_service(database_url: str, key: str | None) -> None:
    settings = auth_service.settings.Settings(
        database_url=database_url, signing_key_encryption_key=key, environment="development"
    )
    app = auth_service.api.create_app(settings)
    async with app.router.lifespan_context(app):
        pass


def _rotate(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[int, str]:
    """`schedctl rotate-signing-key` with nothing in its environment but `env`."""
    for name in CONFIGURATION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["rotate-signing-key"])
    return result.exit_code, result.output


def _local_env(settings: platform.PlatformSettings) -> dict[str, str]:
    return {
        "DATA_DIR": str(settings.data_dir),
        "EMBEDDED_POSTGRES_PORT": str(settings.embedded_postgres_port),
    }


async def _signing_keys(database_url: str) -> dict[str, tuple[str, str | None]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT kid, status, private_key_pem FROM signing_keys")
    finally:
        await conn.close()
    return {row["kid"]: (row["status"], row["private_key_pem"]) for row in rows}


def test_rotate_signing_key_finds_the_local_platform_where_up_keeps_it(local_platform, monkeypatch):
    local_database = platform.database_url(local_platform)
    [first] = asyncio.run(_signing_keys(local_database))

    code, output = _rotate(monkeypatch, **_local_env(local_platform))

    assert code == 0, output
    assert f"local platform: data in {local_platform.data_dir.resolve()}" in output
    assert f"previous signing key: {first}" in output
    active = output.split("active signing key:")[1].split()[0]
    stored = asyncio.run(_signing_keys(local_database))
    assert {kid: status for kid, (status, _) in stored.items()} == {
        active: "active",
        first: "previous",
    }
    # Sealed with the data folder's key, so the local auth service can sign with it.
    sealed, key = stored[active][1], platform.key_encryption_key(local_platform.data_dir)
    assert sealed is not None and sealed.startswith(keys.SEALED_PREFIX)
    assert key is not None
    pem = keys.unseal(sealed, active, base64.b64decode(key))
    assert keys.from_pem(pem, "ES256").kid == active


def test_rotate_signing_key_takes_the_configured_database_over_a_local_platform(
    local_platform, database_url, monkeypatch
):
    local_before = asyncio.run(_signing_keys(platform.database_url(local_platform)))

    code, output = _rotate(
        monkeypatch,
        DATABASE_URL=database_url,
        ENVIRONMENT="development",
        **_local_env(local_platform),
    )

    assert code == 0, output
    assert "local platform" not in output
    active = output.split("active signing key:")[1].split()[0]
    assert asyncio.run(_signing_keys(database_url))[active][0] == "active"
    assert asyncio.run(_signing_keys(platform.database_url(local_platform))) == local_before


def test_rotate_signing_key_without_a_platform_says_so_in_one_line(tmp_path, monkeypatch):
    code, output = _rotate(monkeypatch, DATA_DIR=str(tmp_path))

    assert code == 2
    [line] = output.splitlines()
    assert line.startswith("schedctl: configuration error: no platform found:")
    assert "DATABASE_URL" in line
    assert str(tmp_path.resolve()) in line
