"""`schedctl migrate` and `schedctl downgrade` on a real database."""

from __future__ import annotations

from typer.testing import CliRunner

from libs import migrate
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
