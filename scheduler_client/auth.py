"""Logging in and staying logged in.

A client holds one of three credentials: `PasswordLogin` (a person), `ClientCredentials` (a
service account) or `Tokens` saved from an earlier login; or saved tokens to start with and
credentials to fall back on (`tokens=`), for a service account that keeps its tokens between
runs yet must log in again when they are refused. `TokenAuth`, an `httpx.Auth`, puts
the access token on every request and renews the tokens itself: shortly before the access
token expires, and once when an answer is 401. It renews with the refresh token while it has
one (the auth service rotates refresh tokens on every use, so the new one replaces it), else
with the credential's own grant: client credentials log in again; a password is used for the
first login only and then forgotten. Requests in flight share one renewal (a lock for threads,
one for tasks, as httpx's guide to custom authentication does), because a refresh token spent
twice makes the auth service revoke its whole family. `on_tokens` hears of every new token
set, for a program that keeps them between runs (`Tokens.to_dict` and `Tokens.from_dict`).

No repr here shows a password, secret or token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx

from scheduler_client import errors, models, operations
from scheduler_client.endpoints import Endpoints

RENEW_MARGIN_S = 30  # renew the tokens when the access token has less than this left


@dataclass(frozen=True)
class PasswordLogin:
    """A person's email and password (the password grant)."""

    username: str
    password: str = field(repr=False)
    scope: str | None = None  # space-separated; None: every scope of the account's role

    def grant(self) -> operations.Call[models.TokenResponse]:
        return operations.password_grant(self.username, self.password, self.scope)


@dataclass(frozen=True)
class ClientCredentials:
    """A service account's client id and secret (the client-credentials grant)."""

    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None

    def grant(self) -> operations.Call[models.TokenResponse]:
        return operations.client_credentials_grant(self.client_id, self.client_secret, self.scope)


@dataclass(frozen=True)
class Tokens:
    """An access token, the refresh token that renews it, and when the access token expires
    (None: unknown, renewed only when refused)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    scope: str | None = None

    def expiring(self, now: datetime) -> bool:
        if self.expires_at is None:
            return False
        return self.expires_at - timedelta(seconds=RENEW_MARGIN_S) <= now

    def to_dict(self) -> dict[str, Any]:
        """The tokens as JSON values (camelCase; `expiresAt` in ISO 8601), for a program to keep
        between runs where only its user can read them; `from_dict` reads them back."""
        return {
            "accessToken": self.access_token,
            "refreshToken": self.refresh_token,
            "expiresAt": self.expires_at.isoformat() if self.expires_at else None,
            "scope": self.scope,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Tokens:
        """The tokens `to_dict` gave. Raises KeyError, TypeError or ValueError for anything
        else."""
        expires = document.get("expiresAt")
        access_token, refresh_token = document["accessToken"], document.get("refreshToken")
        if not isinstance(access_token, str) or not isinstance(refresh_token, str | None):
            raise TypeError("a token is not a string")
        return cls(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=datetime.fromisoformat(expires) if expires is not None else None,
            scope=document.get("scope"),
        )


Credentials = PasswordLogin | ClientCredentials | Tokens
OnTokens = Callable[[Tokens], None]


class TokenAuth(httpx.Auth):
    """Bearer tokens for one client, renewed as the module docstring says. `tokens`: saved
    tokens to start with when `credentials` are a login; a renewal then uses their refresh
    token if they have one, else logs in with `credentials`."""

    def __init__(
        self,
        credentials: Credentials | None,
        endpoints: Endpoints,
        *,
        tokens: Tokens | None = None,
        on_tokens: OnTokens | None = None,
    ):
        if isinstance(credentials, Tokens):
            if tokens is not None:
                raise ValueError("give saved tokens as the credentials or as tokens, not both")
            credentials, tokens = None, credentials
        self._endpoints = endpoints
        self._on_tokens = on_tokens
        self._tokens = tokens
        self._login = credentials
        self.sync_lock = threading.Lock()
        self.async_lock = asyncio.Lock()

    @property
    def tokens(self) -> Tokens | None:
        return self._tokens

    def grant(self) -> operations.Call[models.TokenResponse]:
        """The token request that gets new tokens now: the refresh grant while there is a
        refresh token, else the credential's own grant."""
        if self._tokens is not None and self._tokens.refresh_token is not None:
            return operations.refresh_grant(self._tokens.refresh_token)
        if self._login is not None:
            return self._login.grant()
        raise errors.ClientError("no credentials to get new tokens with: log in again")

    def install(self, answer: models.TokenResponse) -> Tokens:
        """Keep the tokens a token request answered, and tell `on_tokens`."""
        previous = self._tokens.refresh_token if self._tokens else None
        self._tokens = Tokens(
            access_token=answer.access_token,
            # RFC 6749 section 6: the old refresh token stays valid unless a new one is issued.
            refresh_token=answer.refresh_token or previous,
            expires_at=datetime.now(UTC) + timedelta(seconds=answer.expires_in),
            scope=answer.scope,
        )
        if isinstance(self._login, PasswordLogin):
            self._login = None  # the refresh token takes over; the password is not kept
        if self._on_tokens is not None:
            self._on_tokens(self._tokens)
        return self._tokens

    def forget(self) -> None:
        """Drop the tokens and the credentials (after a logout)."""
        self._tokens = None
        self._login = None

    def _renewable(self) -> bool:
        return self._login is not None or (
            self._tokens is not None and self._tokens.refresh_token is not None
        )

    def _due(self) -> bool:
        """Whether to renew before sending: no tokens yet, or the access token expiring."""
        if not self._renewable():
            return False
        return self._tokens is None or self._tokens.expiring(datetime.now(UTC))

    def _still(self, refused: str | None) -> bool:
        """Whether the refused access token is still the current one (no other request has
        renewed it meanwhile)."""
        return self._renewable() and self._access_token() == refused

    def _access_token(self) -> str | None:
        return self._tokens.access_token if self._tokens else None

    def _authorize(self, request: httpx.Request) -> str | None:
        token = self._access_token()
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        return token

    def _token_request(
        self, call: operations.Call[models.TokenResponse], request: httpx.Request
    ) -> httpx.Request:
        # Sent as the request it renews a token for is: with that request's timeouts.
        return httpx.Request(
            call.method,
            self._endpoints.url(call.service, call.path),
            data=call.form,
            headers=call.headers,
            extensions={k: v for k, v in request.extensions.items() if k == "timeout"},
        )

    # Both flows: renew if due, send; on a 401, renew unless done meanwhile and send once more.

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        renew: Callable[[], bool] = self._due
        for last in (False, True):
            with self.sync_lock:
                if renew():
                    call = self.grant()
                    answer = yield self._token_request(call, request)
                    answer.read()
                    self.install(operations.answer(call, answer))
            sent = self._authorize(request)
            response = yield request
            if last or response.status_code != 401 or not self._renewable():
                return
            renew = partial(self._still, sent)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        renew: Callable[[], bool] = self._due
        for last in (False, True):
            async with self.async_lock:
                if renew():
                    call = self.grant()
                    answer = yield self._token_request(call, request)
                    await answer.aread()
                    self.install(operations.answer(call, answer))
            sent = self._authorize(request)
            response = yield request
            if last or response.status_code != 401 or not self._renewable():
                return
            renew = partial(self._still, sent)
