"""Helpers of the client library's integration tests (test_client_*.py); no tests here.

`running` serves the real auth, user and job services, on one test database, over loopback
HTTP from a thread with its own event loop: a synchronous `Client` blocks its caller, so the
services cannot share the test's loop. Tokens are the auth service's own, verified by the other
two through its JWKS as in production; logins, refreshes and revocations are real. Both
services re-read an account's standing on every request (`auth.revocation.max.staleness.s` 0),
so a token revoked by a change to its account is refused at once.

`ingress` also serves the three behind one base URL, routing by path as
deploy/kubernetes/20-ingress.yaml does.

The rows that schedulers and executors would write (executions, dead letters, heartbeats) are
inserted through the job service's own sessions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import FastAPI

import auth_service.api
import auth_service.settings
import job_service.api
import job_service.settings
import user_service.api
import user_service.settings
from libs.infra import db
from libs.scheduling.states import Role
from libs.security import passwords
from libs.store import models, nodes
from scheduler_client import AsyncClient, Client, Endpoints, PasswordLogin
from user_service import repository

T = TypeVar("T")
ISSUER = "https://auth.client.test"
PASSWORD = "correct horse battery staple"
START_DEADLINE_S = 60
CALL_DEADLINE_S = 30
STOP_DEADLINE_S = 30

Serve = Callable[[FastAPI], Any]  # conftest's `serve_app`: app -> async context of its base URL


def log_job(**overrides: Any) -> dict[str, Any]:
    """A valid creation request: a log job every hour."""
    return {
        "name": "hourly",
        "type": "log",
        "payload": {"message": "hello"},
        "schedule": {"kind": "fixed_rate", "intervalSeconds": 3600},
        **overrides,
    }


@functools.cache
def _password_hash() -> str:
    return passwords.new_hasher().hash(PASSWORD)


def _ingress(auth: FastAPI, users: FastAPI, jobs: FastAPI) -> Any:
    """One ASGI app routing to the three by path; their lifespans run in their own servers."""

    async def route(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        path = scope["path"]
        if path.startswith(("/oauth/", "/.well-known/")):
            await auth(scope, receive, send)
        elif path.startswith(("/v1/users", "/v1/service-accounts")):
            await users(scope, receive, send)
        else:
            await jobs(scope, receive, send)

    return route


@dataclass
class Platform:
    endpoints: Endpoints
    ingress: str  # the base URL of all three
    apps: dict[str, FastAPI]
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the services' loop (where their engines live)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(CALL_DEADLINE_S)

    def client(self, auth: Any = None, **options: Any) -> Client:
        return Client(self.endpoints, auth=auth, **options)

    def async_client(self, auth: Any = None, **options: Any) -> AsyncClient:
        return AsyncClient(self.endpoints, auth=auth, **options)

    def account(self, role: Role = Role.USER, email: str | None = None) -> PasswordLogin:
        """A new user (inserted, not registered: registrations per address are limited), as
        the credentials that log in as them."""
        email = email or f"{role}-{uuid.uuid4().hex[:10]}@example.com"

        async def insert() -> None:
            async with db.unit_of_work(self.apps["users"].state.sessions) as session:
                await repository.create_user(
                    session,
                    email=email,
                    password_hash=_password_hash(),
                    display_name="U",
                    role=role,
                )

        self.run(insert())
        return PasswordLogin(email, PASSWORD)

    def _add(self, row: Any) -> None:
        async def add() -> None:
            async with db.unit_of_work(self.apps["jobs"].state.sessions) as session:
                session.add(row)

        self.run(add())

    def add_execution(
        self,
        job_id: uuid.UUID,
        *,
        status: str = "SUCCEEDED",
        attempt: int = 1,
        scheduled_for: datetime = datetime(2030, 1, 1, tzinfo=UTC),
        created_at: datetime | None = None,
    ) -> uuid.UUID:
        """An execution as a scheduler and an executor would have written it."""
        execution = models.Execution(
            job_id=job_id,
            scheduled_for=scheduled_for,
            attempt=attempt,
            lease_version=1,
            status=status,
            **({"created_at": created_at} if created_at else {}),
        )
        self._add(execution)
        return execution.id

    def add_dead_letter(self, job: Any) -> uuid.UUID:
        """A dead letter of `job` (an answered `models.Job`), as an executor writes one."""
        letter = models.DeadLetter(
            job_id=job.id,
            owner_id=job.owner_id,
            reason="retries_exhausted",
            error="HTTP 503",
            attempts=3,
            payload=job.payload,
        )
        self._add(letter)
        return letter.id

    def add_node(self, node_id: str) -> None:
        """A heartbeat row, as a scheduler writes one."""
        info = nodes.NodeInfo(
            node_id=node_id,
            service="scheduler_service",
            hostname="sched-1",
            pid=4242,
            version="0.1.0",
            started_at=datetime.now(UTC),
            metadata={},
        )

        async def beat() -> None:
            async with db.unit_of_work(self.apps["jobs"].state.sessions) as session:
                await nodes.write_heartbeat(session, info)

        self.run(beat())


@asynccontextmanager
async def _services(
    database_url: str, serve: Serve, auth_settings: dict[str, Any]
) -> AsyncIterator[Platform]:
    auth = auth_service.api.create_app(
        auth_service.settings.Settings(
            database_url=database_url,
            environment="development",  # the signing key is generated and stored unencrypted
            auth_issuer=ISSUER,
            **auth_settings,
        )
    )
    async with AsyncExitStack() as stack:
        auth_url = await stack.enter_async_context(serve(auth))
        trust = {
            "database_url": database_url,
            "auth_issuer": ISSUER,
            "auth_jwks_url": f"{auth_url}/.well-known/jwks.json",
            "auth_jwks_refresh_min_interval_s": 0.0,
            "auth_revocation_max_staleness_s": 0.0,
        }
        users = user_service.api.create_app(user_service.settings.Settings(**trust))
        jobs = job_service.api.create_app(job_service.settings.Settings(**trust))
        users_url = await stack.enter_async_context(serve(users))
        jobs_url = await stack.enter_async_context(serve(jobs))
        ingress_url = await stack.enter_async_context(serve(_ingress(auth, users, jobs)))
        yield Platform(
            endpoints=Endpoints(jobs=jobs_url, users=users_url, auth=auth_url),
            ingress=ingress_url,
            apps={"auth": auth, "users": users, "jobs": jobs},
            loop=asyncio.get_running_loop(),
        )


@contextmanager
def running(database_url: str, serve: Serve, **auth_settings: Any) -> Iterator[Platform]:
    """The three services on `database_url` until the block ends; `auth_settings` override
    the auth service's settings (e.g. `account_max_failures`)."""
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[Platform] = concurrent.futures.Future()
    stopping = asyncio.Event()

    async def serve_until_stopped() -> None:
        try:
            async with _services(database_url, serve, auth_settings) as platform:
                started.set_result(platform)
                await stopping.wait()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve_until_stopped(),), name="client-platform"
    )
    thread.start()
    try:
        yield started.result(START_DEADLINE_S)
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(STOP_DEADLINE_S)
        loop.close()
