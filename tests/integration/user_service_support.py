"""Helpers of the user service's integration tests (test_user_service*.py); no tests here.

`running` runs the app's lifespan (database, token verifier fetching the test issuer's JWKS over
loopback HTTP, password hasher) and yields a `UserService` that calls the app in process,
mints tokens, and arranges or inspects rows with SQL on the app's own engine.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from libs.contracts import problems
from libs.infra import db
from libs.scheduling.states import Role
from libs.security import passwords
from user_service import api, repository
from user_service.settings import Settings

PASSWORD = "correct horse battery"  # of every user `add_users` inserts


@functools.cache
def stored_hash(password: str = PASSWORD) -> str:
    return passwords.new_hasher().hash(password)


@dataclass
class UserService:
    app: FastAPI
    client: httpx.AsyncClient
    issuer: Any

    def bearer(
        self, subject: uuid.UUID | str, *scopes: str, principal: str = "user", generation: int = 0
    ) -> dict:
        """A token for `subject`, issued when its account's token generation was `generation`."""
        token = self.issuer.mint(str(subject), scopes, principal=principal, generation=generation)
        return {"authorization": f"Bearer {token}"}

    async def register(
        self, email: str, password: str = PASSWORD, *, display_name: str = "Ann", **extra: Any
    ) -> httpx.Response:
        body = {"email": email, "password": password, "displayName": display_name, **extra}
        return await self.client.post("/v1/users", json=body)

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        async with db.unit_of_work(self.app.state.sessions) as session:
            result = await session.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []

    async def add_users(self, *emails: str, role: Role = Role.USER) -> list[uuid.UUID]:
        """Users inserted in one transaction (so they share one `created_at`)."""
        async with db.unit_of_work(self.app.state.sessions) as session:
            created = [
                await repository.create_user(
                    session, email=email, password_hash=stored_hash(), display_name="U", role=role
                )
                for email in emails
            ]
        return [user.id for user in created]

    async def add_refresh_token(
        self, *, user_id: uuid.UUID | None = None, service_account_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        [row] = await self.sql(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, service_account_id, "
            "expires_at) VALUES (:hash, gen_random_uuid(), :user_id, :account_id, "
            "now() + interval '1 day') RETURNING id",
            hash=uuid.uuid4().hex,
            user_id=user_id,
            account_id=service_account_id,
        )
        return row.id

    async def revoked_at(self, token_id: uuid.UUID) -> Any:
        [row] = await self.sql("SELECT revoked_at FROM refresh_tokens WHERE id = :id", id=token_id)
        return row.revoked_at

    async def role_and_disabled_at(self, user_id: uuid.UUID) -> tuple[str, Any]:
        [row] = await self.sql("SELECT role, disabled_at FROM users WHERE id = :id", id=user_id)
        return row.role, row.disabled_at

    async def token_generation(self, account_id: uuid.UUID | str, table: str = "users") -> int:
        [row] = await self.sql(
            f"SELECT token_generation FROM {table} WHERE id = :id",  # noqa: S608
            id=uuid.UUID(str(account_id)),
        )
        return row.token_generation

    async def add_service_account(self, *scopes: str) -> uuid.UUID:
        [row] = await self.sql(
            "INSERT INTO service_accounts (client_id, name, secret_hash, scopes)"
            " VALUES (:client_id, 'robot', 'x', :scopes) RETURNING id",
            client_id=f"sa_{uuid.uuid4().hex}",
            scopes=list(scopes),
        )
        return row.id

    async def user_count(self) -> int:
        return (await self.sql("SELECT count(*) AS n FROM users"))[0].n


@asynccontextmanager
async def running(database_url: str, issuer: Any, **settings: Any) -> AsyncIterator[UserService]:
    app = api.create_app(Settings(database_url=database_url, **issuer.settings(), **settings))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://users") as client,
    ):
        yield UserService(app, client, issuer)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == problems.MEDIA_TYPE
    document = response.json()
    assert document["type"] == problems.TYPE_BASE + slug
    assert document["status"] == status
    return document


def assert_invalid(response: httpx.Response, field: str, code: str | None = None) -> None:
    """A 422 problem whose errors name `field` (with `code`, when given)."""
    document = assert_problem(response, 422, "validation-failed")
    codes = {error["field"]: error["code"] for error in document["errors"]}
    assert field in codes, document
    if code is not None:
        assert codes[field] == code
