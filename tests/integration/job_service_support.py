"""Helpers of the job service's integration tests (test_job_service*.py); no tests here.

`running` runs the app's lifespan (database, token verifier fetching the test issuer's JWKS over
loopback HTTP) and yields a `JobService` that calls the app in process, mints tokens, and
arranges or inspects rows with SQL on the app's own engine. As in production, where the auth
service issues tokens only to accounts, every request's token speaks for an account: the client
creates it before the request if the test did not (`ensure_account`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy import text

from job_service import api
from job_service.settings import Settings
from libs.contracts import problems
from libs.infra import db
from libs.store import models

ALL_JOB_SCOPES = ("jobs:read", "jobs:write", "jobs:run")
TABLES = ("jobs", "idempotency_keys", "executions", "dead_letters")


def job_body(**overrides: Any) -> dict[str, Any]:
    """A valid creation request: a log job every hour."""
    return {
        "name": "hourly",
        "type": "log",
        "payload": {"message": "hello"},
        "schedule": {"kind": "fixed_rate", "intervalSeconds": 3600},
        **overrides,
    }


@dataclass
class JobService:
    app: FastAPI
    client: httpx.AsyncClient
    issuer: Any
    owner: uuid.UUID = field(default_factory=uuid.uuid4)

    def bearer(self, subject: uuid.UUID | str | None = None, *scopes: str) -> dict[str, str]:
        """A token for `subject` (default: `owner`) with `scopes` (default: every job scope)."""
        token = self.issuer.mint(str(subject or self.owner), scopes or ALL_JOB_SCOPES)
        return {"authorization": f"Bearer {token}"}

    async def create(
        self, body: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.post(
            "/v1/jobs", json=body or job_body(), headers={**self.bearer(), **(headers or {})}
        )

    async def created(self, **overrides: Any) -> dict[str, Any]:
        """The job a valid creation returns (asserted to succeed)."""
        response = await self.create(job_body(**overrides))
        assert response.status_code == 201, response.text
        return response.json()

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.bearer())
        return await self.client.get(path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.bearer())
        return await self.client.post(path, **kwargs)

    async def edit(self, job: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The job after a PATCH of `body` at the version `job` shows (asserted to succeed)."""
        response = await self.client.patch(
            f"/v1/jobs/{job['id']}",
            json=body,
            headers={**self.bearer(), "if-match": f'"{job["version"]}"'},
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        async with db.unit_of_work(self.app.state.sessions) as session:
            result = await session.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []

    async def counts(self) -> dict[str, int]:
        """Rows per table the job service writes, to show a refusal changed nothing."""
        return {t: (await self.sql(f"SELECT count(*) AS n FROM {t}"))[0].n for t in TABLES}  # noqa: S608

    async def snapshot(self) -> list[Any]:
        """Every job row as stored, to show a refusal changed nothing."""
        return await self.sql("SELECT * FROM jobs ORDER BY id")

    async def add_execution(
        self,
        job_id: str | uuid.UUID,
        *,
        scheduled_for: datetime = datetime(2030, 1, 1, tzinfo=UTC),
        attempt: int = 1,
        status: str = "SUCCEEDED",
        created_at: datetime | None = None,
    ) -> uuid.UUID:
        """An execution row, as a scheduler and an executor would have written it."""
        execution = models.Execution(
            job_id=uuid.UUID(str(job_id)),
            scheduled_for=scheduled_for,
            attempt=attempt,
            lease_version=1,
            status=status,
            **({"created_at": created_at} if created_at else {}),
        )
        async with db.unit_of_work(self.app.state.sessions) as session:
            session.add(execution)
        return execution.id

    async def add_dead_letter(
        self,
        job_id: str | uuid.UUID,
        *,
        execution_id: uuid.UUID | None = None,
        created_at: datetime | None = None,
    ) -> uuid.UUID:
        """A dead letter of the job, as an executor would have written it."""
        async with db.unit_of_work(self.app.state.sessions) as session:
            job = await session.get(models.Job, uuid.UUID(str(job_id)))
            assert job is not None
            letter = models.DeadLetter(
                job_id=job.id,
                execution_id=execution_id,
                owner_id=job.owner_id,
                reason="retries_exhausted",
                error="HTTP 503",
                attempts=3,
                payload=job.payload,
                **({"created_at": created_at} if created_at else {}),
            )
            session.add(letter)
        return letter.id


def ensure_account(app: FastAPI) -> Callable[[httpx.Request], Awaitable[None]]:
    """An httpx request hook that creates the account the request's token speaks for, unless
    it exists or the subject is no account id (the service refuses such a token)."""

    async def hook(request: httpx.Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return
        with contextlib.suppress(jwt.PyJWTError, ValueError, TypeError):
            claims = jwt.decode(token, options={"verify_signature": False})
            subject, kind = uuid.UUID(claims["sub"]), claims.get("principal")
            if kind == "user":
                statement = (
                    "INSERT INTO users (id, email, password_hash)"
                    " VALUES (:id, :name || '@accounts.test', 'x') ON CONFLICT DO NOTHING"
                )
            elif kind == "service_account":
                statement = (
                    "INSERT INTO service_accounts (id, client_id, name, secret_hash)"
                    " VALUES (:id, 'sa_' || :name, 'robot', 'x') ON CONFLICT DO NOTHING"
                )
            else:
                return
            async with db.unit_of_work(app.state.sessions) as session:
                await session.execute(text(statement), {"id": subject, "name": subject.hex})

    return hook


@asynccontextmanager
async def running(database_url: str, issuer: Any, **settings: Any) -> AsyncIterator[JobService]:
    app = api.create_app(Settings(database_url=database_url, **issuer.settings(), **settings))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport,
            base_url="http://jobs",
            event_hooks={"request": [ensure_account(app)]},
        ) as client,
    ):
        yield JobService(app, client, issuer)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == problems.MEDIA_TYPE
    document = response.json()
    assert document["type"] == problems.TYPE_BASE + slug
    assert document["status"] == status
    return document


def assert_invalid(response: httpx.Response, field: str, code: str | None = None) -> dict:
    """A 422 problem whose errors name `field` (with `code`, when given)."""
    document = assert_problem(response, 422, "validation-failed")
    codes = {error["field"]: error["code"] for error in document["errors"]}
    assert field in codes, document
    if code is not None:
        assert codes[field] == code, document
    return document
