"""The session `schedctl login` leaves behind: where the platform answers, who is logged in,
and the tokens, in one file of the user's config folder that only they can read.

    $SCHEDCTL_CONFIG_DIR, else typer.get_app_dir("schedctl") (~/.config/schedctl, or under
    $XDG_CONFIG_HOME) / session.json     mode 0600, folder 0700, replaced atomically

A person's password is never stored: their refresh token renews the session (and rotates on
every use). A service account gets no refresh token (client-credentials grant), so its client
secret is stored to log in again when the access token expires, or is refused before (the
client library starts from the saved tokens and falls back on the secret); `logout` deletes it.

Each command reads the file, lets the client library renew the tokens when they are due and
writes the new ones back (`on_tokens`). When a renewal is due, the command holds a lock on the
session until it ends, so two commands started together do not both spend the refresh token
(the auth service would take the second use for a theft and revoke the session).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from schedctl.output import NOT_LOGGED_IN, UsageProblem
from scheduler_client import auth, client, endpoints

try:  # POSIX; elsewhere commands run without the renewal lock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

FILE_NAME = "session.json"
LOCK_NAME = "session.lock"
CONFIG_DIR_VARIABLE = "SCHEDCTL_CONFIG_DIR"
FILE_MODE = 0o600
DIR_MODE = 0o700
USER = "user"
SERVICE_ACCOUNT = "serviceAccount"


@dataclass(frozen=True)
class Session:
    endpoints: endpoints.Endpoints
    kind: str  # USER or SERVICE_ACCOUNT
    name: str  # the user's email, or the service account's client id
    tokens: auth.Tokens
    client_secret: str | None = None  # a service account's, to log in again

    def login(self) -> auth.ClientCredentials | None:
        """What the client library logs in with when the tokens cannot be refreshed: a service
        account's secret (its access token expired, or was refused before its expiry because
        an admin disabled and enabled the account); None for a person."""
        if self.kind == SERVICE_ACCOUNT and self.client_secret:
            return auth.ClientCredentials(self.name, self.client_secret)
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoints": {"jobs": self.endpoints.jobs, "users": self.endpoints.users,
                          "auth": self.endpoints.auth},
            "account": {"kind": self.kind, "name": self.name, "clientSecret": self.client_secret},
            "tokens": self.tokens.to_dict(),
        }  # fmt: skip

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Session:
        """Raises KeyError, TypeError or ValueError for a document that is not a session."""
        account = document["account"]
        return cls(
            endpoints=endpoints.Endpoints(**document["endpoints"]),
            kind=account["kind"],
            name=account["name"],
            client_secret=account.get("clientSecret"),
            tokens=auth.Tokens.from_dict(document["tokens"]),
        )


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_VARIABLE)
    return Path(override) if override else Path(typer.get_app_dir("schedctl"))


@dataclass(frozen=True)
class Store:
    """The session file in `folder`."""

    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / FILE_NAME

    def load(self) -> Session | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UsageProblem(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            return Session.from_json(json.loads(text))
        except (KeyError, TypeError, ValueError):
            raise UsageProblem(
                f"{self.path} is not a session of schedctl; run 'schedctl login'"
            ) from None

    def save(self, session: Session) -> None:
        """Write the session to a new file only the user can read, then rename it over the
        old one, so a reader sees the old session or the new one, whole."""
        self.folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        temporary = self.folder / f".{FILE_NAME}.{secrets.token_hex(6)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(session.to_json(), file, indent=2)
                file.write("\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def delete(self) -> bool:
        """Remove the session file; False when there was none."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    @contextlib.contextmanager
    def renewal_lock(self) -> Iterator[None]:
        """Held by one command at a time (an advisory lock on a file beside the session)."""
        if fcntl is None:  # pragma: no cover
            yield
            return
        self.folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        descriptor = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # releases the lock


def store() -> Store:
    return Store(config_dir())


def required(found: Session | None) -> Session:
    if found is None:
        raise UsageProblem(NOT_LOGGED_IN)
    return found


def open_client(session: Session, target: Store) -> client.Client:
    """A client of the session's platform that writes every renewed token set back."""
    state = {"session": session}

    def keep(tokens: auth.Tokens) -> None:
        state["session"] = replace(state["session"], tokens=tokens)
        target.save(state["session"])

    return client.Client(
        session.endpoints, auth=session.login(), tokens=session.tokens, on_tokens=keep
    )


@contextlib.contextmanager
def connect() -> Iterator[client.Client]:
    """A client for the logged-in session; `UsageProblem` when there is none."""
    target = store()
    session = required(target.load())
    if not session.tokens.expiring(datetime.now(UTC)):
        with open_client(session, target) as api:
            yield api
        return
    with target.renewal_lock():
        session = required(target.load())  # another command may have renewed it meanwhile
        with open_client(session, target) as api:
            yield api
