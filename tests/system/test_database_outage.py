"""While PostgreSQL is down, every API answers 503 with `Retry-After` and a problem document, logs
one warning line per request and no traceback; once PostgreSQL is back, the same processes serve
again with nothing lost.

The auth, user and job services run as real processes on a PostgreSQL server of the test's own,
which is stopped (fast shutdown, or SIGKILL of all its processes as when its host dies) and
started again on the same port and data folder while the services keep running. Each client
keeps its connection alive across requests, as a load balancer does, so an answer followed by
a closed connection shows too. The user and job services trust the test's token issuer.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from service_process import Service, start_service, wait_for
from sqlalchemy import text

import job_service.api
import job_service.settings
from libs.contracts import problems
from libs.infra import db
from libs.store import migrate
from schedctl import embedded

ANSWER_TIMEOUT_S = 10.0  # a request the service does not answer within this fails the test
RECOVERY_DEADLINE_S = 30.0  # from the start of PostgreSQL's restart to a served request
KILLED_EXIT_DEADLINE_S = 10.0  # for PostgreSQL's killed processes to end
CONNECT_MARGIN_S = 2.0  # beyond the engine's connect timeout, for the answer to come
PASSWORD = "correct horse battery staple"
JOB = {
    "name": "kept through the outage",
    "type": "log",
    "payload": {"message": "hello"},
    "schedule": {"kind": "fixed_rate", "intervalSeconds": 3600},
}


@dataclass
class Platform:
    """The three API services, a keep-alive client for each, and a user's bearer token."""

    services: list[Service]
    auth: httpx.AsyncClient
    users: httpx.AsyncClient
    jobs: httpx.AsyncClient
    bearer: dict[str, str]

    async def login(self) -> httpx.Response:
        return await self.auth.post(
            "/oauth/token",
            data={"grant_type": "password", "username": "ada@example.com", "password": PASSWORD},
        )

    async def register(self, email: str) -> httpx.Response:
        body = {"email": email, "password": PASSWORD, "displayName": email.split("@")[0]}
        return await self.users.post("/v1/users", json=body)


async def user_id(database_url: str, email: str) -> str:
    """The id of the user registered with `email` (registration's answer does not say it)."""
    engine = db.create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT id FROM users WHERE email = :email"), {"email": email}
            )
            return str(found.scalar_one())
    finally:
        await engine.dispose()


def base_url(service: Service) -> str:
    return f"http://127.0.0.1:{service.events('service_started')[0]['port']}"


@pytest.fixture
async def postgres(tmp_path: Path) -> AsyncIterator[embedded.EmbeddedPostgres]:
    """A migrated PostgreSQL server for this test alone. Durable (`for_tests=False`): a crash
    must lose nothing committed, which fsync and synchronous_commit off do not promise."""
    server = embedded.EmbeddedPostgres(
        tmp_path / "postgres", embedded.free_port(), log_path=tmp_path / "postgres.log"
    )
    await asyncio.to_thread(server.start)
    try:
        await asyncio.to_thread(migrate.upgrade, server.url)
        yield server
    finally:
        server.stop()


@pytest.fixture
async def platform(
    postgres: embedded.EmbeddedPostgres, token_issuer: Any, tmp_path: Path
) -> AsyncIterator[Platform]:
    """The services started, a user registered, one job of theirs created."""
    issuer = token_issuer.settings()
    common = {
        "DATABASE_URL": postgres.url,
        "SIGNING_KEY_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        **{name.upper(): str(value) for name, value in issuer.items()},
    }
    names = {"auth": "auth_service", "users": "user_service", "jobs": "job_service"}
    results = await asyncio.gather(
        *(asyncio.to_thread(start_service, package, name, tmp_path, common)
          for name, package in names.items()),
        return_exceptions=True,
    )  # fmt: skip
    started = [result for result in results if isinstance(result, Service)]
    try:
        for result in results:
            if isinstance(result, BaseException):
                raise result
        clients = [
            httpx.AsyncClient(base_url=base_url(s), timeout=ANSWER_TIMEOUT_S) for s in started
        ]
        async with clients[0], clients[1], clients[2]:
            platform = Platform(started, *clients, bearer={})
            registered = await platform.register("ada@example.com")
            assert registered.status_code == 202, registered.text
            ada = await user_id(postgres.url, "ada@example.com")
            token = token_issuer.mint(ada, ["jobs:read", "jobs:write"])
            platform.bearer = {"authorization": f"Bearer {token}"}
            created = await platform.jobs.post("/v1/jobs", json=JOB, headers=platform.bearer)
            assert created.status_code == 201, created.text
            yield platform
    finally:
        for service in started:
            service.stop()


def stop_fast(server: embedded.EmbeddedPostgres) -> None:
    server.stop()


def kill(server: embedded.EmbeddedPostgres) -> None:
    """SIGKILL every process of the server at once, as when its host or container dies."""
    assert server.proc is not None
    backends = psutil.Process(server.proc.pid).children()
    os.killpg(server.proc.pid, signal.SIGKILL)  # the postmaster leads its own process group
    server.proc.wait()
    server.proc = None
    # A new server refuses to start while a process of the old one still holds its shared
    # memory; a zombie holds nothing.
    embedded.wait_until(
        lambda: all(exited(backend) for backend in backends),
        KILLED_EXIT_DEADLINE_S,
        "PostgreSQL's killed backends",
    )


def exited(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == problems.MEDIA_TYPE
    assert int(response.headers["retry-after"]) == problems.UNAVAILABLE_RETRY_AFTER_S
    document = response.json()
    assert document["type"] == problems.TYPE_BASE + "service-unavailable"
    assert document["title"] == "Service unavailable"
    assert "database" in document["detail"]


@pytest.mark.parametrize("stop", [stop_fast, kill], ids=["fast-shutdown", "sigkill"])
async def test_apis_answer_503_while_postgres_is_down_and_serve_again_when_it_is_back(
    postgres: embedded.EmbeddedPostgres, platform: Platform, stop: Any
):
    p = platform
    stop(postgres)

    # Each request twice: the second goes over the connection the first was answered on.
    for _ in range(2):
        started = time.monotonic()
        assert_unavailable(await p.jobs.get("/v1/jobs", headers=p.bearer))
        assert_unavailable(await p.jobs.post("/v1/jobs", json=JOB, headers=p.bearer))
        assert_unavailable(await p.users.get("/v1/users/me", headers=p.bearer))
        assert_unavailable(await p.register("bob@example.com"))
        assert_unavailable(await p.login())
        assert time.monotonic() - started < ANSWER_TIMEOUT_S
        for client in (p.jobs, p.users, p.auth):
            assert (await client.get("/readyz")).status_code == 503

    # PostgreSQL starts again while requests keep coming: each is served or answered 503
    # (while it starts up, it refuses connections), never dropped.
    restart = asyncio.create_task(asyncio.to_thread(postgres.start))

    async def served() -> bool:
        answer = await p.jobs.get("/v1/jobs", headers=p.bearer)
        if answer.status_code != 200:
            assert_unavailable(answer)
        return answer.status_code == 200

    await wait_for(served, RECOVERY_DEADLINE_S, "the job service serves again")
    await restart

    listed = await p.jobs.get("/v1/jobs", headers=p.bearer)
    assert [job["name"] for job in listed.json()["items"]] == [JOB["name"]]
    assert (await p.jobs.post("/v1/jobs", json=JOB, headers=p.bearer)).status_code == 201
    assert (await p.users.get("/v1/users/me", headers=p.bearer)).status_code == 200
    assert (await p.register("bob@example.com")).status_code == 202
    assert (await p.login()).status_code == 200
    for client in (p.jobs, p.users, p.auth):
        assert (await client.get("/readyz")).status_code == 200

    for service in p.services:
        assert service.proc.poll() is None, f"{service.name} exited"
        warnings = service.events("database_unavailable")
        assert warnings, f"{service.name} logged no database_unavailable"
        assert all(w["level"] == "warning" and "exception" not in w for w in warnings)
        assert "Traceback" not in service.log_path.read_text(errors="replace")


async def test_a_server_that_accepts_but_never_answers_is_answered_503_within_the_connect_timeout(
    token_issuer: Any,
):
    async def hold(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the client gives up

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    settings = job_service.settings.Settings(
        database_url=f"postgresql://scheduler@127.0.0.1:{port}/scheduler",
        **token_issuer.settings(),
    )
    app = job_service.api.create_app(settings)
    bearer = {"authorization": f"Bearer {token_issuer.mint(scopes=['jobs:read'])}"}
    transport = httpx.ASGITransport(app=app)
    async with (
        silent,
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://jobs") as client,
    ):
        async with asyncio.timeout(db.CONNECT_TIMEOUT_S + CONNECT_MARGIN_S):
            answer = await client.get("/v1/jobs", headers=bearer)
    assert_unavailable(answer)
