"""Helpers of the console's browser tests (no tests here): the running platform, signing in,
screenshots for docs/console.md, and checks of served HTML."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import asyncpg
from playwright.sync_api import Page, expect

from schedctl import embedded
from scheduler_client import Client, Endpoints, PasswordLogin, Tokens

CHROMIUM = "/usr/bin/chromium"
ADMIN_EMAIL = "admin@example.com"  # schedctl up's default `admin.email`
PASSWORD = "correct horse battery staple"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
# Set to 1 to (re)write the PNGs of docs/console/ that docs/console.md shows.
SCREENSHOTS_VARIABLE = "CONSOLE_SCREENSHOTS"


@dataclass(frozen=True)
class RunningPlatform:
    ports: dict[str, int]
    admin_password: str

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['console_service']}"

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            jobs=f"http://127.0.0.1:{self.ports['job_service']}",
            users=f"http://127.0.0.1:{self.ports['user_service']}",
            auth=f"http://127.0.0.1:{self.ports['auth_service']}",
        )

    @property
    def database_url(self) -> str:
        return embedded.postgres_url(self.ports["postgres"], "scheduler")

    def register(self) -> str:
        """A new user's email (their password is `PASSWORD`), registered through the API."""
        email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        with Client(self.endpoints) as client:
            client.users.register(email=email, password=PASSWORD, display_name="Tester")
        return email

    def client_for(self, email: str, password: str = PASSWORD) -> Client:
        return Client(self.endpoints, auth=PasswordLogin(email, password))

    def session_tokens(self, cookie: str) -> Tokens:
        """The tokens the console holds for the session whose cookie is `cookie`, opened as
        only the console can (with the cookie's secret)."""
        from console_service import sessions

        secret = sessions.parse_secret(cookie)
        assert secret is not None

        async def read() -> bytes:
            conn = await asyncpg.connect(self.database_url)
            try:
                return await conn.fetchval(
                    "SELECT sealed_tokens FROM console_sessions WHERE key_hash = $1",
                    hashlib.sha256(secret).digest(),
                )
            finally:
                await conn.close()

        # On a thread of its own: Playwright's sync API runs an event loop on this one.
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            sealed = thread.submit(asyncio.run, read()).result()
        return sessions.unseal(secret, sealed)


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the form, as a person does, and land on the jobs page."""
    page.goto("/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    """Save the page as docs/console/<name>.png, only when CONSOLE_SCREENSHOTS=1 (so that a
    normal run does not rewrite committed files)."""
    if os.environ.get(SCREENSHOTS_VARIABLE) == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


class _InlineCode(HTMLParser):
    """Collects what a strict CSP would refuse: inline scripts, style elements and attributes,
    event-handler attributes, and `javascript:` links."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name == "style":
                self.found.append(f"style= on <{tag}>")
            if name.startswith("on"):
                self.found.append(f"{name}= on <{tag}>")
            if name in ("href", "src", "action") and (value or "").strip().startswith(
                "javascript:"
            ):
                self.found.append(f"javascript: in {name}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append("inline script content")


def inline_code(html: str) -> list[str]:
    """What in `html` a CSP without 'unsafe-inline' would refuse (empty: nothing)."""
    parser = _InlineCode()
    parser.feed(html)
    return parser.found


def create_job(client: Client, name: str, **overrides: Any) -> Any:
    """A log job every hour, owned by `client`'s account."""
    return client.jobs.create(
        {
            "name": name,
            "type": "log",
            "payload": {"message": name},
            "schedule": {"kind": "fixed_rate", "intervalSeconds": 3600},
            **overrides,
        }
    )
