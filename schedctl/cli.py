"""`schedctl`: run the platform locally and operate it (`up`, `migrate`, `create-admin`...),
and use it as a client of its public APIs (`login`, `jobs`, `executions`...).

The operator commands import the services' code when they run, not at start, so that a client
command starts without loading what it never uses.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from schedctl import account, admin, history, jobs, output, schedules

if TYPE_CHECKING:
    import auth_service.settings
    from schedctl import platform

app = typer.Typer(
    cls=output.ClientGroup,
    help="Run and operate the scheduling platform, and use it: register, log in, then create and "
    "run jobs.",
    no_args_is_help=True,
    add_completion=False,
)
USE, ADMINISTER, OPERATE = "Use the platform", "Administer it (admins)", "Run and operate it"
app.command("register", rich_help_panel=USE)(account.register)
app.command("login", rich_help_panel=USE)(account.login)
app.command("logout", rich_help_panel=USE)(account.logout)
app.command("whoami", help=account.WHOAMI_HELP, rich_help_panel=USE)(account.show)
app.add_typer(account.account_app, name="account", rich_help_panel=USE)
app.add_typer(jobs.app, name="jobs", rich_help_panel=USE)
app.add_typer(history.executions_app, name="executions", rich_help_panel=USE)
app.add_typer(history.dead_letters_app, name="dead-letters", rich_help_panel=USE)
app.add_typer(schedules.app, name="schedules", rich_help_panel=USE)
app.command("job-types", rich_help_panel=USE)(schedules.job_types)
app.add_typer(account.webhook_app, name="webhook-secret", rich_help_panel=USE)
app.add_typer(admin.users_app, name="users", rich_help_panel=ADMINISTER)
app.add_typer(admin.accounts_app, name="service-accounts", rich_help_panel=ADMINISTER)
app.command("nodes", rich_help_panel=ADMINISTER)(admin.nodes)


def _settings() -> platform.PlatformSettings:
    from libs.infra import config
    from schedctl import platform

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


@app.command(rich_help_panel=OPERATE)
def up() -> None:
    """Start the whole platform in the foreground; Ctrl-C stops it."""
    from schedctl import platform

    raise typer.Exit(platform.up(_settings()))


def _run_migration(step: Callable[[str, str], None], revision: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from libs.store import migrate

    url = _database_url()
    try:
        step(url, revision)
        reached = migrate.current(url)
    except (OSError, SQLAlchemyError) as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        print(f"schedctl: migration of {shown} failed: {exc.__class__.__name__}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"database at revision {reached or 'base'}")


@app.command("migrate", rich_help_panel=OPERATE)
def migrate_up(
    revision: str = typer.Option("head", help="The revision to upgrade to."),
) -> None:
    """Apply the schema migrations to the database named by DATABASE_URL."""
    from libs.store import migrate

    _run_migration(migrate.upgrade, revision)


@app.command("downgrade", rich_help_panel=OPERATE)
def migrate_down(
    revision: str = typer.Argument(help="The revision to go back to, or 'base'."),
) -> None:
    """Revert the schema migrations down to REVISION."""
    from libs.store import migrate

    _run_migration(migrate.downgrade, revision)


@app.command("create-admin", rich_help_panel=OPERATE)
def create_admin(
    email: str = typer.Option(..., help="Email of the admin account."),
) -> None:
    """Create the first admin account, unless one exists, and print its generated password once.

    For deployments: `schedctl up` does this by itself on the local platform.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from user_service import bootstrap
    from user_service import errors as user_errors

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
    from sqlalchemy.engine import make_url

    import auth_service.settings
    from libs.infra import config
    from schedctl import platform

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


@app.command("rotate-signing-key", rich_help_panel=OPERATE)
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
    from sqlalchemy.exc import SQLAlchemyError

    from auth_service import errors as auth_errors
    from auth_service import keys as auth_keys
    from libs.infra import config

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
