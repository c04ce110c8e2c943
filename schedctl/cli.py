"""`schedctl`: run the platform locally and operate it."""

from __future__ import annotations

import sys

import typer

from libs import config, migrate
from schedctl import platform

app = typer.Typer(
    help="Run and operate the scheduling platform.", no_args_is_help=True, add_completion=False
)


def _settings() -> platform.PlatformSettings:
    try:
        return config.load(platform.PlatformSettings)
    except config.ConfigError as exc:
        print(f"schedctl: configuration error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


def _database_url() -> str:
    settings = _settings()
    if settings.database_url is None:
        print(
            "schedctl: missing required setting 'database_url' (set 'database.url' in a "
            "properties file or the environment variable DATABASE_URL)",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    return settings.database_url.get_secret_value()


@app.command()
def up() -> None:
    """Start the whole platform in the foreground; Ctrl-C stops it."""
    raise typer.Exit(platform.up(_settings()))


@app.command("migrate")
def migrate_up(
    revision: str = typer.Option("head", help="The revision to upgrade to."),
) -> None:
    """Apply the schema migrations to the database named by DATABASE_URL."""
    migrate.upgrade(_database_url(), revision)
    print(f"database at revision {migrate.current(_database_url())}")


@app.command("downgrade")
def migrate_down(
    revision: str = typer.Argument(help="The revision to go back to, or 'base'."),
) -> None:
    """Revert the schema migrations down to REVISION."""
    migrate.downgrade(_database_url(), revision)
    print(f"database at revision {migrate.current(_database_url())}")


if __name__ == "__main__":
    app()
