"""`schedctl`: run the platform locally and operate it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

import auth_service.settings
from auth_service import errors as auth_errors
from auth_service import keys as auth_keys
from libs import config, migrate
from schedctl import platform
from user_service import bootstrap
from user_service import errors as user_errors

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


def _run_migration(step: Callable[[str, str], None], revision: str) -> None:
    url = _database_url()
    try:
        step(url, revision)
        reached = migrate.current(url)
    except (OSError, SQLAlchemyError) as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        print(f"schedctl: migration of {shown} failed: {exc.__class__.__name__}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"database at revision {reached or 'base'}")


@app.command("migrate")
def migrate_up(
    revision: str = typer.Option("head", help="The revision to upgrade to."),
) -> None:
    """Apply the schema migrations to the database named by DATABASE_URL."""
    _run_migration(migrate.upgrade, revision)


@app.command("downgrade")
def migrate_down(
    revision: str = typer.Argument(help="The revision to go back to, or 'base'."),
) -> None:
    """Revert the schema migrations down to REVISION."""
    _run_migration(migrate.downgrade, revision)


@app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., help="Email of the admin account."),
) -> None:
    """Create the first admin account, unless one exists, and print its generated password once.

    For deployments: `schedctl up` does this by itself on the local platform.
    """
    url = _database_url()
    try:
        password = asyncio.run(bootstrap.ensure_first_admin(url, email))
    except (OSError, SQLAlchemyError) as exc:
        print(f"schedctl: cannot create the admin: {exc.__class__.__name__}", file=sys.stderr)
        raise typer.Exit(1) from None
    except user_errors.EmailUnavailable:
        print(f"schedctl: {email} belongs to an existing account; choose another", file=sys.stderr)
        raise typer.Exit(1) from None
    if password is None:
        print("An admin account exists already; nothing was changed.")
        return
    print(f"Admin account created (the password is shown only now):\n  email:    {email}")
    print(f"  password: {password}")


def _auth_settings() -> auth_service.settings.Settings:
    """The auth service's settings as configured when they name a database (a deployment),
    else those `schedctl up` gives the local platform's auth service (its database and the
    key in its data folder). Raises `ConfigError` when neither is there."""
    settings_cls = auth_service.settings.Settings
    if config.is_set(settings_cls, "database_url"):
        return config.load(settings_cls)
    local = _settings()
    data_dir = local.data_dir.resolve()
    signing = platform.auth_signing_settings(local)
    if signing is None:
        raise config.ConfigError(
            "no platform found: the auth service's settings name no database (DATABASE_URL, "
            f"or database.url under CONFIG_LOCATION) and {data_dir} holds no platform of "
            "`schedctl up` (DATA_DIR names another folder)"
        )
    shown = make_url(signing["database_url"]).render_as_string(hide_password=True)
    print(f"local platform: data in {data_dir}, database {shown}")
    return config.load(settings_cls, **signing)


@app.command("rotate-signing-key")
def rotate_signing_key(
    force: bool = typer.Option(
        False, "--force", help="Retire the previous key even if tokens it signed may be live."
    ),
) -> None:
    """Make a new signing key active; the active one becomes previous, the previous one retired.

    Reads the auth service's settings (algorithm, encryption key, database) from the
    environment and CONFIG_LOCATION, as the auth service does; when they name no database,
    acts on the local platform of `schedctl up` (its data folder, `.local` unless `data.dir`
    says otherwise). Running copies of the auth service start signing with the new key within
    `active.key.reload.s`.
    """
    try:
        settings = _auth_settings()
        rotation = asyncio.run(auth_keys.rotate(settings, force=force))
    except config.ConfigError as exc:
        print(f"schedctl: configuration error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except (auth_errors.SigningKeyUnavailable, auth_errors.RotationTooSoon) as exc:
        print(f"schedctl: cannot rotate the signing key: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    except (OSError, SQLAlchemyError) as exc:
        print(f"schedctl: cannot rotate the signing key: {exc.__class__.__name__}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"active signing key:   {rotation.active}")
    print(f"previous signing key: {rotation.previous or '(none)'}")
    for kid in rotation.retired:
        print(f"retired signing key:  {kid}")


if __name__ == "__main__":
    app()
