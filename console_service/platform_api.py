"""The one way a page calls the platform's APIs: `await api.call(lambda c: c.jobs.list(...))`.

`Api` (a FastAPI dependency, `Api` in `pages`) runs the operation with an `AsyncClient`
holding the session's access token, and renews the tokens under the session row's lock
(`sessions.renew`) when the access token is about to expire, or once when an answer is 401.
A 401 that fresh tokens do not cure ends the session (`SessionEnded`): the browser signs in
again. Every other error of the API is raised as the client library's typed exception, for
the page to turn into a message beside a field (`rendering.field_errors`) or to let
`rendering` render as an error page.

The client's own renewal is never used: it holds no refresh token here, so only `renew`, under
the row lock, ever spends one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from fastapi import Depends, Request

from console_service import errors, sessions
from scheduler_client import AsyncClient, Tokens
from scheduler_client import errors as api_errors

T = TypeVar("T")
Operation = Callable[[AsyncClient], Awaitable[T]]


class Api:
    def __init__(self, request: Request, signed_in: sessions.SignedIn):
        self._request = request
        self._signed_in = signed_in

    async def call(self, operation: Operation[T]) -> T:
        """`operation`'s answer, run with the session's tokens (renewed if need be)."""
        tokens = self._signed_in.tokens
        if tokens.expiring(datetime.now(UTC)):
            tokens = await sessions.renew(self._request, self._signed_in, tokens)
        try:
            return await self._run(operation, tokens)
        except api_errors.Unauthorized:
            tokens = await sessions.renew(self._request, self._signed_in, tokens)
        try:
            return await self._run(operation, tokens)
        except api_errors.Unauthorized as exc:
            await sessions.end(self._request, self._signed_in)
            raise errors.SessionEnded("fresh tokens refused") from exc

    async def _run(self, operation: Operation[T], tokens: Tokens) -> T:
        # The access token only: the client can neither renew nor spend the refresh token.
        access = Tokens(access_token=tokens.access_token, scope=tokens.scope)
        async with sessions.api_client(self._request, access) as client:
            return await operation(client)


def for_request(request: Request, signed_in: sessions.SignedIn = Depends(sessions.current)) -> Api:
    return Api(request, signed_in)
