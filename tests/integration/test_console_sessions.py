"""The console's sessions, CSRF protection and headers against the real auth, user and job
services: what a browser gets, and what the database holds."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from client_support import PASSWORD, running
from console_support import Browser, console, csrf_of
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from console_service import security, sessions
from libs.infra import db
from libs.store import models
from scheduler_client import Tokens


@pytest.fixture
def platform(database_url, serve_app):
    with running(database_url, serve_app) as platform:
        yield platform


@pytest.fixture
async def engine(database_url):
    engine = create_async_engine(db.async_url(database_url), poolclass=NullPool)
    yield engine
    await engine.dispose()


async def _session_row(engine, secret: bytes) -> models.ConsoleSession | None:
    async with db.session_factory(engine)() as session:
        return await session.get(models.ConsoleSession, hashlib.sha256(secret).digest())


async def _family(engine, email: str) -> list[tuple[datetime | None, datetime | None]]:
    """(rotated_at, revoked_at) of every refresh token of the user."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT t.rotated_at, t.revoked_at FROM refresh_tokens t "
                "JOIN users u ON u.id = t.user_id WHERE u.email = :email"
            ),
            {"email": email},
        )
        return [tuple(row) for row in rows]


async def test_every_answer_carries_the_security_headers(platform, database_url, serve_app):
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        for path in ("/sign-in", "/static/console.css", "/no-such-page", "/healthz"):
            answer = await browser.http.get(path)
            assert answer.headers["content-security-policy"] == security.CONTENT_SECURITY_POLICY
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "same-origin"
        assert (await browser.http.get("/sign-in")).headers["cache-control"] == "no-store"
        assert (await browser.http.get("/static/console.css")).headers["cache-control"] == (
            "no-cache"
        )
        missing = await browser.http.get("/no-such-page")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("text/html")
        # No API documentation: the console has no API.
        assert (await browser.http.get("/docs")).status_code == 404
        assert (await browser.http.get("/openapi.json")).status_code == 404


async def test_sign_in_sets_a_session_cookie_whose_row_holds_no_token(
    platform, database_url, serve_app, engine
):
    user = platform.account()
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        signed_in = await browser.sign_in(user.username, PASSWORD)
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/jobs"
        cookie = next(
            value
            for value in signed_in.headers.get_list("set-cookie")
            if value.startswith("console_session=")
        )
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/"} <= flags
        assert "secure" not in flags  # environment=development: plain HTTP
        assert (await browser.http.get("/jobs")).status_code == 200

        row = await _session_row(engine, browser.secret)
        assert row is not None
        assert row.email == user.username
        assert "jobs:read" in row.scopes
        tokens = sessions.unseal(browser.secret, row.sealed_tokens)
        assert tokens.access_token and tokens.refresh_token
        secret_text = browser.http.cookies.get(sessions.COOKIE).encode()
        for clear in (
            tokens.access_token.encode(),
            tokens.refresh_token.encode(),
            browser.secret,
            secret_text,
        ):
            for value in (row.sealed_tokens, row.key_hash, row.csrf_token.encode()):
                assert clear not in value
        # Another secret opens nothing.
        with pytest.raises(sessions.errors.SessionEnded):
            sessions.unseal(b"\x00" * 32, row.sealed_tokens)


async def test_production_cookies_are_secure_and_host_prefixed(platform, database_url, serve_app):
    user = platform.account()
    async with (
        console(platform, database_url, serve_app, environment="production") as url,
        Browser(url) as browser,
    ):
        form = await browser.http.get("/sign-in")
        pre = form.headers["set-cookie"]
        assert pre.startswith("__Host-console_csrf=")
        token = csrf_of(form.text)
        answer = await browser.http.post(
            "/sign-in",
            data={"email": user.username, "password": PASSWORD, "csrf": token},
            headers={"cookie": f"__Host-console_csrf={token}"},
        )
        assert answer.status_code == 303
        (cookie,) = [
            c
            for c in answer.headers.get_list("set-cookie")
            if c.startswith("__Host-console_session=")
        ]
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/", "secure"} <= flags


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    platform, database_url, serve_app, engine
):
    user = platform.account()
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(user.username, PASSWORD)
        page = await browser.http.get("/jobs")
        token = csrf_of(page.text)

        assert (await browser.http.post("/sign-out")).status_code == 403
        wrong = await browser.http.post("/sign-out", data={"csrf": "x" * 43})
        assert wrong.status_code == 403
        assert "Nothing was changed" in wrong.text
        foreign = await browser.http.post(
            "/sign-out", data={"csrf": token}, headers={"origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        cross = await browser.http.post(
            "/sign-out", data={"csrf": token}, headers={"sec-fetch-site": "cross-site"}
        )
        assert cross.status_code == 403
        # Still signed in, the refresh token never revoked.
        assert await _session_row(engine, browser.secret) is not None
        assert (await browser.http.get("/jobs")).status_code == 200
        assert all(revoked is None for _, revoked in await _family(engine, user.username))

        # The sign-in form is protected too: without the double-submitted token, no session.
        fresh = Browser(url)
        async with fresh:
            refused = await fresh.http.post(
                "/sign-in", data={"email": user.username, "password": PASSWORD, "csrf": "x"}
            )
            assert refused.status_code == 403
            assert sessions.COOKIE not in fresh.http.cookies


async def test_concurrent_requests_needing_a_refresh_refresh_once(
    platform, database_url, serve_app, engine
):
    user = platform.account()
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(user.username, PASSWORD)
        secret = browser.secret
        row = await _session_row(engine, secret)
        tokens = sessions.unseal(secret, row.sealed_tokens)
        # The access token is about to expire: every request below must renew first.
        expiring = Tokens(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
            scope=tokens.scope,
        )
        async with engine.begin() as conn:
            await conn.execute(
                update(models.ConsoleSession)
                .where(models.ConsoleSession.key_hash == row.key_hash)
                .values(sealed_tokens=sessions.seal(secret, expiring))
            )

        answers = await asyncio.gather(*(browser.http.get("/jobs") for _ in range(8)))

        assert [a.status_code for a in answers] == [200] * 8
        family = await _family(engine, user.username)
        # The first token rotated once; its successor is current; nothing revoked (a second
        # refresh with the spent token would have revoked the whole family).
        assert sorted(rotated is None for rotated, _ in family) == [False, True]
        assert all(revoked is None for _, revoked in family)
        stored = sessions.unseal(secret, (await _session_row(engine, secret)).sealed_tokens)
        assert stored.refresh_token != tokens.refresh_token


async def test_a_refused_refresh_ends_the_session(platform, database_url, serve_app, engine):
    user = platform.account()
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(user.username, PASSWORD)
        secret = browser.secret
        bogus = Tokens(
            access_token="not-a-token",
            refresh_token="not-a-refresh-token",
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
        async with engine.begin() as conn:
            await conn.execute(
                update(models.ConsoleSession)
                .where(models.ConsoleSession.key_hash == hashlib.sha256(secret).digest())
                .values(sealed_tokens=sessions.seal(secret, bogus))
            )
        answer = await browser.http.get("/jobs")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/sign-in?next=%2Fjobs&notice=ended"
        assert await _session_row(engine, secret) is None
        page = await browser.http.get(answer.headers["location"])
        assert "Your session ended" in page.text


async def test_an_idle_session_ends(platform, database_url, serve_app, engine):
    user = platform.account()
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(user.username, PASSWORD)
        async with engine.begin() as conn:
            await conn.execute(
                update(models.ConsoleSession).values(
                    last_seen_at=datetime.now(UTC) - timedelta(hours=1)
                )
            )
        answer = await browser.http.get("/jobs?cursor=abc")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/sign-in?next=%2Fjobs%3Fcursor%3Dabc"
        async with engine.connect() as conn:
            left = await conn.execute(select(models.ConsoleSession.key_hash))
            assert left.all() == []


async def test_sign_out_revokes_the_refresh_token_and_the_old_cookie_stops_working(
    platform, database_url, serve_app, engine
):
    user = platform.account()
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(user.username, PASSWORD)
        old_cookie = browser.http.cookies.get(sessions.COOKIE)
        page = await browser.http.get("/jobs")
        out = await browser.http.post("/sign-out", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303
        assert out.headers["location"] == "/sign-in?notice=signed-out"
        assert sessions.COOKIE not in browser.http.cookies
        assert all(revoked is not None for _, revoked in await _family(engine, user.username))

        async with Browser(url) as replay:
            replay.http.cookies.set(sessions.COOKIE, old_cookie)
            again = await replay.http.get("/jobs")
            assert again.status_code == 303
            assert again.headers["location"].startswith("/sign-in?")
