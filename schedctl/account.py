"""`schedctl register`, `login`, `logout`, `whoami`, `account` and `webhook-secret`: the
caller's own session and account."""

from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from typing import Annotated

import typer

from schedctl import jobspec, output, session, views
from schedctl.output import Format, OutputOption, UsageProblem
from scheduler_client import auth, client, endpoints, errors

URL_VARIABLE = "SCHEDCTL_URL"

# Where the platform is: the options `register` and `login` share.
Url = Annotated[
    str | None,
    typer.Option(envvar=URL_VARIABLE, help="One base URL for every service (an ingress)."),
]
JobsUrl = Annotated[str | None, typer.Option(help="The job service's URL.")]
UsersUrl = Annotated[str | None, typer.Option(help="The user service's URL.")]
AuthUrl = Annotated[str | None, typer.Option(help="The auth service's URL.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _endpoints(
    url: str | None, jobs_url: str | None, users_url: str | None, auth_url: str | None
) -> endpoints.Endpoints:
    """One base URL for all three services (an ingress), or the local platform's, with any
    service's own URL laid over it."""
    try:
        base = endpoints.Endpoints.single(url) if url else endpoints.Endpoints.local()
        return endpoints.Endpoints(
            jobs=jobs_url or base.jobs, users=users_url or base.users, auth=auth_url or base.auth
        )
    except ValueError as exc:
        raise UsageProblem(f"--url: {exc}") from None


def _secret_line(flag: str, what: str = "line to read") -> str:
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise UsageProblem(f"{flag}: standard input holds no {what}")
    return line


def _new_password(prompt: str) -> str:
    """A new password, typed twice without echo."""
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


def login_command(
    email: str,
    url: str | None = None,
    jobs_url: str | None = None,
    users_url: str | None = None,
    auth_url: str | None = None,
) -> str:
    """The `schedctl login` command line for `email` on the platform these options name."""
    given = {"--url": url, "--jobs-url": jobs_url, "--users-url": users_url,
             "--auth-url": auth_url}  # fmt: skip
    options = [f"{flag}={value}" for flag, value in given.items() if value is not None]
    return shlex.join(["schedctl", "login", email, *options])


def _log_in(where: endpoints.Endpoints, credentials: auth.Credentials) -> auth.Tokens:
    with client.Client(where, auth=credentials) as api:
        return api.login()


def register(
    email: Annotated[
        str, typer.Argument(help="Your email: the name you log in with.", show_default=False)
    ],
    display_name: Annotated[
        str, typer.Option("--display-name", help="Your name, as others see it.", show_default=False)
    ],
    password_stdin: PasswordStdin = False,
    url: Url = None,
    jobs_url: JobsUrl = None,
    users_url: UsersUrl = None,
    auth_url: AuthUrl = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Register an account, then log in with it ('schedctl login EMAIL').

    The password is asked for twice and not echoed (or read from standard input with
    --password-stdin). The platform answers alike whether or not the email already had an
    account, so that nobody learns who has one: an email that had one keeps it, and its
    password, unchanged. The platform of 'make up' is the default; --url names another one,
    as for 'schedctl login'.

    Examples:

      schedctl register ada@example.com --display-name "Ada Lovelace"
      echo "$PASSWORD" | schedctl register ada@example.com --display-name Ada --password-stdin
      schedctl register ada@example.com --display-name Ada --url https://scheduler.example.com
    """
    where = _endpoints(url, jobs_url, users_url, auth_url)
    password = _secret_line("--password-stdin") if password_stdin else _new_password("Password")
    with client.Client(where) as api:
        accepted = api.users.register(email=email, password=password, display_name=display_name)
    if fmt is Format.JSON:
        output.print_json(accepted)
        return
    print(f"Registration of {accepted.email} accepted. Log in with:")
    print(f"  {login_command(accepted.email, url, jobs_url, users_url, auth_url)}")
    output.note("If that email already had an account, nothing was changed: its password stands.")


def login(
    email: Annotated[
        str | None,
        typer.Argument(help="Your email (prompted for when left out).", show_default=False),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(help="Other users can read it in the process list: prefer the prompt."),
    ] = None,
    password_stdin: PasswordStdin = False,
    client_id: Annotated[
        str | None,
        typer.Option(
            help="Log in as this service account; its secret is then kept in the session file "
            "(readable by you alone) to log in again when the access token expires."
        ),
    ] = None,
    client_secret: Annotated[
        str | None, typer.Option(help="The service account's secret (prompted for if left out).")
    ] = None,
    client_secret_stdin: Annotated[
        bool, typer.Option("--client-secret-stdin", help="Read the secret from standard input.")
    ] = False,
    scope: Annotated[
        str | None,
        typer.Option(help="Ask for fewer scopes (space-separated) than the account has."),
    ] = None,
    url: Url = None,
    jobs_url: JobsUrl = None,
    users_url: UsersUrl = None,
    auth_url: AuthUrl = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Log in, and keep the session for the next commands.

    The session (where the platform is, and your tokens) is kept in session.json of
    schedctl's config folder (~/.config/schedctl, or SCHEDCTL_CONFIG_DIR), readable by you
    alone. Your password is never stored: a refresh token renews the session. A service
    account has no refresh token, so its client secret is stored there to log in again;
    'schedctl logout' deletes it.

    The platform of 'make up' is the default; --url names another one.

    Examples:

      schedctl login ada@example.com
      echo "$PASSWORD" | schedctl login ada@example.com --password-stdin
      schedctl login --client-id sa-... --client-secret-stdin < secret.txt
      schedctl login ada@example.com --url https://scheduler.example.com
    """
    where = _endpoints(url, jobs_url, users_url, auth_url)
    credentials: auth.PasswordLogin | auth.ClientCredentials
    if client_id is not None:
        if email is not None or password is not None or password_stdin:
            raise UsageProblem("log in with an email and password or with --client-id, not both")
        if client_secret_stdin:
            client_secret = _secret_line("--client-secret-stdin")
        elif client_secret is None:
            client_secret = typer.prompt("Client secret", hide_input=True)
        credentials = auth.ClientCredentials(client_id, client_secret, scope=scope)
    else:
        if client_secret is not None or client_secret_stdin:
            raise UsageProblem("--client-secret goes with --client-id")
        if email is None:
            email = typer.prompt("Email")
        if password_stdin:
            password = _secret_line("--password-stdin")
        elif password is None:
            password = typer.prompt("Password", hide_input=True)
        credentials = auth.PasswordLogin(email, password, scope=scope)
    try:
        tokens = _log_in(where, credentials)
    except (errors.InvalidGrant, errors.InvalidClient) as exc:
        output.fail(f"login refused: {exc.detail or exc.title}")
    kind = session.SERVICE_ACCOUNT if client_id is not None else session.USER
    name = client_id if client_id is not None else credentials.username.strip().lower()
    secret = client_secret if client_id is not None else None
    current = session.Session(where, kind, name, tokens, client_secret=secret)
    target = session.store()
    target.save(current)
    if fmt is Format.JSON:
        output.print_json(_who(current))
        return
    print(f"Logged in to {where.jobs} as {name} (scopes: {tokens.scope}).")
    print(f"Session kept in {target.path}.")


def logout() -> None:
    """Log out: revoke the session's refresh token and delete the session file.

    Example:

      schedctl logout
    """
    target = session.store()
    current = target.load()
    if current is None:
        output.note("not logged in; nothing to do")
        return
    problem = None
    if current.tokens.refresh_token is not None:
        try:
            with client.Client(current.endpoints, auth=current.tokens) as api:
                api.logout()
        except errors.ClientError as exc:
            problem = output.describe(exc)
    target.delete()
    if problem is not None:
        output.fail(f"session file deleted, but the refresh token was not revoked: {problem}")
    print(f"Logged out {current.name}.")


def _who(current: session.Session) -> dict[str, object]:
    return {
        "kind": current.kind,
        "name": current.name,
        "scope": current.tokens.scope,
        "endpoints": {
            "jobs": current.endpoints.jobs,
            "users": current.endpoints.users,
            "auth": current.endpoints.auth,
        },
    }


# --- One's own account ---------------------------------------------------------------------------

account_app = typer.Typer(
    help="Your account: show it, rename it, change its password.", no_args_is_help=True
)
WHOAMI_HELP = "Show who is logged in, where, and with which scopes ('account show')."


@account_app.command("show")
def show(fmt: OutputOption = Format.TABLE) -> None:
    """Show your account (email, name, role, created, whether failed logins lock it) and the
    session: where it is logged in, with which scopes. 'schedctl whoami' is the short form.

    With -o json: the account as the API answers it (a service account: the session).

    Examples:

      schedctl account show
      schedctl whoami -o json
    """
    current = session.required(session.store().load())
    me = None
    if current.kind == session.USER:
        with session.connect() as api:
            me = api.users.me()
    if fmt is Format.JSON:
        output.print_json(me if me is not None else _who(current))
        return
    rows = views.user_fields(me) if me is not None else [("client id", current.name)]
    rows += [("kind", current.kind), ("scopes", current.tokens.scope or "-"),
             ("jobs", current.endpoints.jobs), ("users", current.endpoints.users),
             ("auth", current.endpoints.auth)]  # fmt: skip
    output.show(output.fields(rows))


def _person() -> session.Session:
    """The session of a person: a service account has no profile or password."""
    current = session.required(session.store().load())
    if current.kind != session.USER:
        raise UsageProblem(
            f"logged in as the service account {current.name}: this command is for a person's "
            "account (an admin rotates a service account's secret)"
        )
    return current


@account_app.command("rename")
def rename(
    display_name: Annotated[
        str, typer.Option("--display-name", help="Your new name.", show_default=False)
    ],
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Change the name others see for you.

    Example:

      schedctl account rename --display-name "Ada King"
    """
    _person()
    with session.connect() as api:
        me = api.users.update_me(display_name=display_name)
    output.emit(me, fmt, views.user)


@account_app.command("change-password")
def change_password(
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read two lines from standard input: the current password, then the new one.",
        ),
    ] = False,
) -> None:
    """Change your password; this session logs in again with the new one.

    The current password is asked for once, the new one twice, none echoed. The platform then
    ends every session of the account: the others must log in again, and this one logs in
    again with the new password by itself.

    Examples:

      schedctl account change-password
      printf '%s\\n%s\\n' "$OLD" "$NEW" | schedctl account change-password --password-stdin
    """
    current = _person()
    if password_stdin:
        old = _secret_line("--password-stdin", "current password (the first line)")
        new = _secret_line("--password-stdin", "new password (the second line)")
    else:
        old = typer.prompt("Current password", hide_input=True)
        new = _new_password("New password")
    with session.connect() as api:
        api.users.change_password(current_password=old, new_password=new)
    # Every token of the account has ended, this session's too: log in with the new password.
    again = auth.PasswordLogin(current.name, new, scope=current.tokens.scope)
    try:
        tokens = _log_in(current.endpoints, again)
    except errors.ClientError as exc:
        output.fail(
            f"password changed, but logging in again failed ({output.describe(exc)}); "
            f"run 'schedctl login {current.name}'"
        )
    session.store().save(replace(current, tokens=tokens))
    print("Password changed. Your other sessions have ended; this one is logged in again.")


# --- Webhook secret ------------------------------------------------------------------------------

webhook_app = typer.Typer(
    help="The secret that signs your http jobs' requests (Standard Webhooks).",
    no_args_is_help=True,
)


@webhook_app.command("show")
def webhook_show(fmt: OutputOption = Format.TABLE) -> None:
    """Show your webhook signing secret, for your targets to verify requests with.

    Example:

      schedctl webhook-secret show
    """
    with session.connect() as api:
        secret = api.webhook_secret.get()
    output.emit(secret, fmt, views.webhook_secret)


@webhook_app.command("rotate")
def webhook_rotate(
    grace: Annotated[
        str | None,
        typer.Option(help="How long the old secret keeps signing beside the new (default 1d)."),
    ] = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Replace your webhook signing secret; the old one keeps signing for a grace period.

    Example:

      schedctl webhook-secret rotate --grace 2h
    """
    grace_s = jobspec.seconds(grace, "--grace") if grace is not None else None
    with session.connect() as api:
        secret = api.webhook_secret.rotate(grace_s=grace_s)
    output.emit(secret, fmt, views.webhook_secret)
    if fmt is Format.TABLE:
        output.note(f"Targets must accept the new secret now; the old one signs until "
                    f"{output.when(secret.previous_valid_until)}.")  # fmt: skip
