"""Helpers of the auth service's integration tests (test_auth_*.py); this module has no tests.

Accounts are inserted through the models on the app's own sessions, with real argon2id hashes.
"""

from __future__ import annotations

import base64
import functools
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import fastapi
import httpx
import jwt

from auth_service import api
from auth_service.settings import Settings
from libs.contracts import problems
from libs.infra import db
from libs.scheduling.states import Role
from libs.security import opaque, passwords, tokens
from libs.store import models

PASSWORD = "correct horse battery staple"
TOKEN_PATH = api.TOKEN_PATH
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def settings_for(database_url: str, **overrides: Any) -> Settings:
    """Settings of a development auth service on `database_url` (keys stored unencrypted)."""
    return Settings(database_url=database_url, **{"environment": "development", **overrides})


def auth_app(database_url: str, **overrides: Any) -> fastapi.FastAPI:
    return api.create_app(settings_for(database_url, **overrides))


@asynccontextmanager
async def running(
    app: fastapi.FastAPI, address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app`, calling from `address`, while the app's lifespan runs."""
    async with app.router.lifespan_context(app), client_of(app, address) as client:
        yield client


def client_of(app: fastapi.FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://auth")


@functools.cache
def hash_of(password: str) -> str:
    return passwords.new_hasher().hash(password)


async def add_user(
    app: fastapi.FastAPI,
    email: str,
    *,
    role: Role = Role.USER,
    password_hash: str | None = None,
    disabled: bool = False,
) -> uuid.UUID:
    async with db.unit_of_work(app.state.sessions) as session:
        user = models.User(
            email=email,
            password_hash=password_hash or hash_of(PASSWORD),
            role=role,
            disabled_at=datetime.now().astimezone() if disabled else None,
        )
        session.add(user)
        await session.flush()
        return user.id


async def add_service_account(
    app: fastapi.FastAPI, client_id: str, secret: str, scopes: list[str], *, disabled: bool = False
) -> uuid.UUID:
    async with db.unit_of_work(app.state.sessions) as session:
        account = models.ServiceAccount(
            client_id=client_id,
            name=client_id,
            secret_hash=opaque.digest(secret),
            scopes=scopes,
            disabled_at=datetime.now().astimezone() if disabled else None,
        )
        session.add(account)
        await session.flush()
        return account.id


async def execute(app: fastapi.FastAPI, statement: Any) -> Any:
    async with db.unit_of_work(app.state.sessions) as session:
        return await session.execute(statement)


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, scope: str | None = None
) -> httpx.Response:
    form = {"grant_type": "password", "username": email, "password": password}
    if scope is not None:
        form["scope"] = scope
    return await client.post(TOKEN_PATH, data=form)


async def refresh(
    client: httpx.AsyncClient, refresh_token: str, scope: str | None = None
) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope is not None:
        form["scope"] = scope
    return await client.post(TOKEN_PATH, data=form)


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 section 2.3.1: each part form-encoded, then base64."""
    pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def verifier(
    client: httpx.AsyncClient, settings: Settings, jwks_url: str = api.JWKS_PATH
) -> tokens.Verifier:
    """The verifier every other service uses, fetching keys from the JWKS over `client`."""
    keys = tokens.KeyCache(
        tokens.http_jwks(client, jwks_url),
        algorithm=settings.auth_algorithm,
        refresh_min_interval_s=0,
    )
    return tokens.Verifier(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        algorithm=settings.auth_algorithm,
        keys=keys,
    )


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def assert_oauth_problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """A problem document that also carries RFC 6749's `error` and `error_description`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == problems.MEDIA_TYPE
    document = response.json()
    assert document["status"] == status
    assert document["type"].startswith(problems.TYPE_BASE)
    assert document["error"] == error
    assert document["error_description"] == document["detail"]
    return document
