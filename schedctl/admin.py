"""Commands for admins (scope `users:admin`): `users ...`, `service-accounts ...`, `nodes`."""

from __future__ import annotations

from typing import Annotated

import typer

from schedctl import history, output, session, views
from schedctl.output import Format, OutputOption, UsageProblem
from scheduler_client import client, models

UserRef = Annotated[
    str, typer.Argument(metavar="USER", help="The user's id, or their email.", show_default=False)
]
AccountId = Annotated[
    str, typer.Argument(metavar="ID", help="The service account's id.", show_default=False)
]
SHOWN_ONCE = (
    "Store the client secret now: it is shown only this once (the platform keeps a digest). "
    "Log in with: schedctl login --client-id {client_id} --client-secret-stdin"
)


def _user_id(api: client.Client, ref: str) -> str:
    """A user's id from their id or email (emails are stored lower case)."""
    if "@" not in ref:
        return ref
    email = ref.strip().lower()
    for found in api.users.iterate(email=email):
        if found.email == email:
            return str(found.id)
    raise UsageProblem(f"no user has the email {email}")


# --- Users ---------------------------------------------------------------------------------------

users_app = typer.Typer(help="Users, their roles and logins (admins).", no_args_is_help=True)


@users_app.command("list")
def list_users(
    email: Annotated[str | None, typer.Option(help="Only emails starting with this.")] = None,
    locked: Annotated[
        bool | None,
        typer.Option(
            "--locked/--not-locked",
            help="Only accounts locked by failed logins / not.",
            show_default=False,
        ),
    ] = None,
    limit: history.Limit = None,
    all_: history.All = False,
    cursor: history.Cursor = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """List users.

    Examples:

      schedctl users list --email ada
      schedctl users list --locked
    """  # fmt: skip
    with session.connect() as api:
        history.show_list(api.users, fmt, views.users, "users", every=all_, limit=limit,
                          cursor=cursor, email=email, locked=locked)  # fmt: skip


@users_app.command("get")
def get_user(user: UserRef, fmt: OutputOption = Format.TABLE) -> None:
    """Show a user.

    Example:

      schedctl users get ada@example.com
    """
    with session.connect() as api:
        found = api.users.get(_user_id(api, user))
    output.emit(found, fmt, views.user)


@users_app.command("set-role")
def set_role(
    user: UserRef,
    role: Annotated[models.Role, typer.Argument(help="The new role.", case_sensitive=False)],
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Give a user another role (their earlier tokens stop working).

    Example:

      schedctl users set-role ada@example.com admin
    """
    with session.connect() as api:
        found = api.users.set_role(_user_id(api, user), role)
    output.emit(found, fmt, views.user)


def _user_action(name: str, summary: str) -> None:
    def command(user: UserRef, fmt: OutputOption = Format.TABLE) -> None:
        with session.connect() as api:
            found = getattr(api.users, name)(_user_id(api, user))
        output.emit(found, fmt, views.user)

    command.__doc__ = f"{summary}\n\nExample:\n\n  schedctl users {name} ada@example.com\n"
    users_app.command(name)(command)


_user_action("disable", "Disable a user: no more logins, and their tokens stop working.")
_user_action("enable", "Enable a disabled user.")
_user_action("unlock", "Lift the lock that failed logins put on a user's account.")


# --- Service accounts ----------------------------------------------------------------------------

accounts_app = typer.Typer(
    help="Service accounts: client id and secret, for programs (admins).", no_args_is_help=True
)


def _with_secret(account: models.ServiceAccountWithSecret, fmt: Format) -> None:
    output.emit(account, fmt, views.service_account)
    output.note(SHOWN_ONCE.format(client_id=account.client_id))


@accounts_app.command("create")
def create_account(
    name: Annotated[str, typer.Option(help="What the account is for.", show_default=False)],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="A scope it may have: jobs:read, jobs:write, jobs:run, users:admin (repeatable).",
            show_default=False,
        ),
    ],
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Create a service account; its client secret is printed once.

    Example:

      schedctl service-accounts create --name ci --scope jobs:read --scope jobs:write
    """  # fmt: skip
    with session.connect() as api:
        account = api.service_accounts.create(name=name, scopes=scope)
    _with_secret(account, fmt)


@accounts_app.command("list")
def list_accounts(
    limit: history.Limit = None,
    all_: history.All = False,
    cursor: history.Cursor = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """List service accounts.

    Example:

      schedctl service-accounts list
    """
    with session.connect() as api:
        history.show_list(api.service_accounts, fmt, views.service_accounts,
                          "service accounts", every=all_, limit=limit, cursor=cursor)  # fmt: skip


@accounts_app.command("get")
def get_account(account_id: AccountId, fmt: OutputOption = Format.TABLE) -> None:
    """Show a service account.

    Example:

      schedctl service-accounts get 4d2c...
    """
    with session.connect() as api:
        found = api.service_accounts.get(account_id)
    output.emit(found, fmt, views.service_account)


@accounts_app.command("rotate-secret")
def rotate_secret(account_id: AccountId, fmt: OutputOption = Format.TABLE) -> None:
    """Give a service account a new secret, printed once; the old one stops working at once.

    Example:

      schedctl service-accounts rotate-secret 4d2c...
    """
    with session.connect() as api:
        account = api.service_accounts.rotate_secret(account_id)
    _with_secret(account, fmt)


def _account_action(name: str, summary: str) -> None:
    def command(account_id: AccountId, fmt: OutputOption = Format.TABLE) -> None:
        with session.connect() as api:
            found = getattr(api.service_accounts, name)(account_id)
        output.emit(found, fmt, views.service_account)

    command.__doc__ = f"{summary}\n\nExample:\n\n  schedctl service-accounts {name} 4d2c...\n"
    accounts_app.command(name)(command)


_account_action("disable", "Disable a service account: its tokens stop working.")
_account_action("enable", "Enable a disabled service account.")


# --- Nodes ---------------------------------------------------------------------------------------


def nodes(fmt: OutputOption = Format.TABLE) -> None:
    """List the scheduler and executor processes and whether each is up (admins).

    Example:

      schedctl nodes
    """
    with session.connect() as api:
        found = api.nodes.list()
    output.emit(list(found), fmt, views.nodes)
