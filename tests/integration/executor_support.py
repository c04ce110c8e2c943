"""Helpers of the executor service's integration tests (test_executor*.py); no tests here.

`platform` runs, in this process, what `make up` runs as processes: a real scheduler (its
dispatch and lease-recovery loops) and one or more real executors (engine, heartbeat,
strategies), over the test's own database and topics. Jobs are inserted as rows, or made by
their owner through the job service's API (`owner_api`); what targets receive is observed with
real servers on loopback (`Target`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import FastAPI
from job_service_support import JobService, running
from scheduler_support import (
    db_now,
    eventually,
    insert_jobs,
    job_row,
    once,
    scheduler_parts,
    settings_for,
    sql,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from executor_service import app as executor_app
from executor_service.settings import Settings as ExecutorSettings
from libs.infra import resources, web
from scheduler_service.settings import Settings as SchedulerSettings

LOOPBACK = "127.0.0.0/8,::1/128"  # as `make up` gives the executor and the job service


def executor_settings(scheduler: SchedulerSettings, **overrides: Any) -> ExecutorSettings:
    """Settings of one executor of a test: the scheduler's topics, loopback targets allowed."""
    values: dict[str, Any] = {
        "database_url": scheduler.database_url,
        "kafka_bootstrap_servers": scheduler.kafka_bootstrap_servers,
        "kafka_dispatch_topic": scheduler.kafka_dispatch_topic,
        "kafka_dead_letter_topic": scheduler.kafka_dead_letter_topic,
        "kafka_dispatch_partitions": scheduler.kafka_dispatch_partitions,
        "consumer_group": f"{scheduler.kafka_dispatch_topic}.executors",
        "node_id": f"executor-{uuid.uuid4().hex[:6]}",
        "http_allowed_networks": LOOPBACK,
        "error_backoff_initial_s": 0.05,
        "error_backoff_max_s": 0.5,
        "heartbeat_interval_s": 0.5,
        "shutdown_grace_s": 5,
        "kafka_fetch_max_wait_ms": 50,  # the embedded broker holds a fetch its whole wait
        # Tests that publish dispatches themselves send no notification.
        "fetch_idle_interval_s": 0.5,
    }
    values.update(overrides)
    return ExecutorSettings(**values)


@asynccontextmanager
async def running_executor(settings: ExecutorSettings) -> AsyncIterator[executor_app.Running]:
    """An executor built and started as its lifespan does; shut down cleanly at the end."""
    app = FastAPI()
    app.state.metrics = web.Metrics(settings)
    async with resources.all_of(
        app,
        partial(resources.database, settings=settings),
        partial(resources.kafka_producer, settings=settings),
    ):
        running = executor_app.build_executor(app, settings)
        running.start()
        try:
            await eventually(
                _assigned(running), deadline_s=30, what="the executor owning partitions"
            )
            yield running
        finally:
            await running.shutdown(settings.shutdown_grace_s)


def _assigned(running: executor_app.Running) -> Any:
    async def check() -> bool:
        return running.engine.assigned.is_set()

    return check


@dataclass
class Platform:
    scheduler_settings: SchedulerSettings
    executor_settings: ExecutorSettings
    sessions: Any
    producer: Any  # the scheduler's, started: for tests that publish themselves
    executors: list[executor_app.Running] = field(default_factory=list)

    async def sql(self, statement: str, **params: Any) -> list:
        return await sql(self.sessions, statement, **params)

    async def due_now(self, **row: Any) -> uuid.UUID:
        """Insert a one-time job due now (a `log` job unless `row` says otherwise)."""
        now = await db_now(self.sessions)
        [job_id] = await insert_jobs(
            self.sessions, [job_row(next_run_at=now, schedule_spec=once(now), **row)]
        )
        return job_id


@asynccontextmanager
async def platform(
    database_url: str,
    bootstrap: str,
    name: str,
    *,
    executors: int = 1,
    scheduler: dict[str, Any] | None = None,
    executor: dict[str, Any] | None = None,
) -> AsyncIterator[Platform]:
    """A scheduler and `executors` executors, running until the block ends."""
    scheduler_settings = settings_for(database_url, bootstrap, name, **(scheduler or {}))
    async with AsyncExitStack() as stack:
        parts = await stack.enter_async_context(scheduler_parts(scheduler_settings))
        first = executor_settings(scheduler_settings, **(executor or {}))
        result = Platform(scheduler_settings, first, parts.sessions, parts.app.state.producer)
        for index in range(executors):
            settings = first if index == 0 else executor_settings(
                scheduler_settings, consumer_group=first.consumer_group, **(executor or {})
            )  # fmt: skip
            result.executors.append(await stack.enter_async_context(running_executor(settings)))
        loops = parts.scheduler()
        loops.start()
        stack.push_async_callback(loops.shutdown, 5)
        yield result


@asynccontextmanager
async def owner_api(database_url: str, token_issuer: Any) -> AsyncIterator[JobService]:
    """The job service's API, in process on the platform's database, for a job owner whose
    http jobs may call loopback targets."""
    async with running(database_url, token_issuer, http_allowed_networks=LOOPBACK) as api:
        yield api


@dataclass
class Seen:
    """One request a `Target` received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: datetime  # when it arrived, by this host's clock (the test database's too)


class Target:
    """A real HTTP server on loopback whose answers a test scripts: `statuses` are returned
    in turn (the last one repeats); `hold` makes it wait (before answering) until released."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses) or [200]
        self.headers: dict[str, str] = {}  # sent with every answer
        self.seen: list[Seen] = []
        self.hold: asyncio.Event | None = None
        self.arrived = asyncio.Event()
        self.url = ""

    async def _handle(self, request: Request) -> Response:
        at = datetime.now(UTC)
        self.seen.append(
            Seen(request.method, request.url.path, dict(request.headers), await request.body(), at)
        )
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        status = self.statuses[min(len(self.seen), len(self.statuses)) - 1]
        return Response(status_code=status, content=b"answer", headers=self.headers)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT"])]
        )

    @asynccontextmanager
    async def serving(self, serve_app: Any) -> AsyncIterator[Target]:
        async with serve_app(self.app()) as base_url:
            self.url = f"{base_url}/hook"
            yield self


@asynccontextmanager
async def attempt_under_way(
    database_url: str, bootstrap: str, name: str, serve_app: Any
) -> AsyncIterator[tuple[Platform, Target, uuid.UUID]]:
    """A platform running one `http` job whose target has received the attempt and holds its
    answer until `target.hold` is set: what the test does meanwhile happens mid-attempt."""
    target = Target(200)
    target.hold = asyncio.Event()
    async with target.serving(serve_app), platform(database_url, bootstrap, name) as p:
        job_id = await p.due_now(type="http", payload={"url": target.url})
        await asyncio.wait_for(target.arrived.wait(), 30)
        yield p, target, job_id
