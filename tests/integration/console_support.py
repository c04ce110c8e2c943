"""Helpers of the console's integration tests (test_console_*.py); no tests here.

`console` serves the console app on the test's loop, in front of the real auth, user and job
services of `client_support.running`, on one test database; `Browser` is an httpx client
that signs in through the console's own form, as a browser without JavaScript would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from client_support import Platform

from console_service import app as console_app
from console_service import sessions
from console_service.settings import Settings

_CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


@asynccontextmanager
async def console(
    platform: Platform, database_url: str, serve: Any, **settings: Any
) -> AsyncIterator[str]:
    """The console's base URL, its APIs those of `platform`."""
    app = console_app.create_app(
        Settings(
            database_url=database_url,
            jobs_api_url=platform.endpoints.jobs,
            users_api_url=platform.endpoints.users,
            auth_api_url=platform.endpoints.auth,
            **{"environment": "development", **settings},
        )
    )
    async with serve(app) as base_url:
        yield base_url


def csrf_of(html: str) -> str:
    match = _CSRF_INPUT.search(html)
    assert match, "no csrf input in the page"
    return match.group(1)


class Browser:
    """A cookie-keeping client of the console (no JavaScript), redirects not followed."""

    def __init__(self, base_url: str):
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.aclose()

    async def sign_in(self, email: str, password: str) -> httpx.Response:
        form = await self.http.get("/sign-in")
        return await self.http.post(
            "/sign-in",
            data={"email": email, "password": password, "csrf": csrf_of(form.text)},
        )

    @property
    def secret(self) -> bytes:
        raw = sessions.parse_secret(self.http.cookies.get(sessions.COOKIE))
        assert raw is not None, "not signed in"
        return raw
