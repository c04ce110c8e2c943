"""`schedctl migrate`, `downgrade` and `create-admin` on a real database."""

from __future__ import annotations

import asyncio

import asyncpg
from typer.testing import CliRunner

from libs import migrate, passwords
from schedctl import embedded
from schedctl.cli import app


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
