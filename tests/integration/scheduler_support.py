"""Helpers of the scheduler service's integration tests (test_scheduler*.py); no tests here.

`scheduler_parts` builds what the service's lifespan builds (engine, producer, topics, the
app's metrics registry) and `app.build_scheduler` the loops over them, so a test drives a real
dispatcher in process against the test's own database and topic. Jobs are inserted as rows of
`libs.store.models.Job`; dispatches are read back with a real consumer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from fastapi import FastAPI
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.contracts import messages
from libs.infra import db, kafka, resources, web
from libs.scheduling import schedule
from libs.scheduling.states import JobStatus
from libs.store import models
from scheduler_service import app as scheduler_app
from scheduler_service.dispatcher import BatchResult, Dispatcher
from scheduler_service.settings import Settings

DEADLINE_S = 30
POLL_S = 0.02


def settings_for(database_url: str, bootstrap: str, name: str, **overrides: Any) -> Settings:
    """Settings of one scheduler of a test: its own topic, a unique node id, fast loops."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        "kafka_dispatch_topic": f"{name}.dispatch",
        "kafka_dead_letter_topic": f"{name}.dead-letter",
        "kafka_dispatch_partitions": 3,
        "node_id": f"{name}-{uuid.uuid4().hex[:6]}",
        "error_backoff_initial_s": 0.05,
        "error_backoff_max_s": 0.5,
        "heartbeat_interval_s": 0.5,
        "recovery_interval_s": 0.2,
        "dispatch_max_sleep_s": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Parts:
    app: FastAPI
    settings: Settings
    _scheduler: scheduler_app.Scheduler | None = None

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.app.state.sessions

    def scheduler(self) -> scheduler_app.Scheduler:
        """The loops over these parts, built once (their metrics live on the app's registry)."""
        if self._scheduler is None:
            self._scheduler = scheduler_app.build_scheduler(self.app, self.settings)
        return self._scheduler


@asynccontextmanager
async def scheduler_parts(settings: Settings, *, producer: bool = True) -> AsyncIterator[Parts]:
    """The engine (and, unless `producer=False`, the topics and a started producer) of one
    scheduler, as its lifespan builds them."""
    app = FastAPI()
    app.state.metrics = web.Metrics(settings)
    app.state.producer = None  # loops that publish are not run without one
    parts = [partial(resources.database, settings=settings)]
    if producer:
        parts.append(partial(resources.kafka_producer, settings=settings))
    async with resources.all_of(app, *parts):
        yield Parts(app=app, settings=settings)


async def dispatch_batch(dispatcher: Dispatcher) -> BatchResult:
    """One batch as the dispatch loop runs it, claim then publishing, without the loop's
    overlap of the two: raises `BrokerUnavailable` after handing back what was not published."""
    return await dispatcher.publish_batch(await dispatcher.claim_batch())


def fixed_rate(interval_s: int = 60, *, anchor: datetime | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    spec = schedule.FixedRate(kind="fixed_rate", interval_s=interval_s, anchor=anchor)
    return schedule.normalise(spec, now).model_dump(mode="json")


def once(at: datetime | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    return schedule.normalise(schedule.Once(kind="once", at=at or now), now).model_dump(mode="json")


def job_row(
    *,
    next_run_at: datetime,
    schedule_spec: dict[str, Any] | None = None,
    misfire_policy: str = "run_once",
    misfire_grace_s: int = 60,
    timeout_s: int = 30,
    retry_policy: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    spec = schedule_spec or fixed_rate()
    return {
        "owner_id": uuid.uuid4(),
        "name": f"job-{uuid.uuid4().hex[:8]}",
        "type": "log",
        "payload": {"message": "x"},
        "schedule": spec,
        "schedule_kind": spec["kind"],
        "retry_policy": retry_policy
        if retry_policy is not None
        else {"max_attempts": 3, "initial_backoff_s": 1, "multiplier": 2, "max_backoff_s": 60},
        "misfire_policy": misfire_policy,
        "misfire_grace_s": misfire_grace_s,
        "timeout_s": timeout_s,
        "status": JobStatus.SCHEDULED.value,
        "next_run_at": next_run_at,
        **extra,
    }


async def insert_jobs(
    sessions: async_sessionmaker[AsyncSession], rows: Iterable[dict[str, Any]]
) -> list[uuid.UUID]:
    rows = list(rows)
    async with db.unit_of_work(sessions) as session:
        ids = await session.scalars(insert(models.Job).returning(models.Job.id), rows)
        return list(ids)


async def db_now(sessions: async_sessionmaker[AsyncSession]) -> datetime:
    return (await sql(sessions, "SELECT now() AS now"))[0].now


async def sql(sessions: async_sessionmaker[AsyncSession], statement: str, **params: Any) -> list:
    async with db.unit_of_work(sessions) as session:
        result = await session.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


async def job(sessions: async_sessionmaker[AsyncSession], job_id: uuid.UUID) -> Any:
    return (await sql(sessions, "SELECT * FROM jobs WHERE id = :id", id=job_id))[0]


async def executions(sessions: async_sessionmaker[AsyncSession], job_id: uuid.UUID) -> list:
    return await sql(
        sessions, "SELECT * FROM executions WHERE job_id = :id ORDER BY created_at", id=job_id
    )


async def eventually(
    condition: Callable[[], Awaitable[Any]], *, deadline_s: float = DEADLINE_S, what: str = ""
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `deadline_s`."""
    give_up = time.monotonic() + deadline_s
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > give_up:
            raise AssertionError(f"not within {deadline_s} s: {what or condition}")
        await asyncio.sleep(POLL_S)


class Dispatches:
    """Reads every dispatch on a topic with a real consumer group."""

    def __init__(self, settings: Settings, group: str):
        self.settings = settings
        self.consumer = kafka.create_consumer(
            settings, settings.kafka_dispatch_topic, group_id=group
        )
        self.received: list[messages.DispatchMessage] = []
        self.received_at: list[float] = []

    async def __aenter__(self) -> Dispatches:
        await kafka.start(self.consumer)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def poll(self) -> list[messages.DispatchMessage]:
        batch = await self.consumer.getmany(timeout_ms=100)
        for records in batch.values():
            for record in records:
                self.received.append(messages.parse_dispatch(kafka.decode(record.value)))
                self.received_at.append(time.monotonic())
        return self.received

    async def until(self, count: int, deadline_s: float = DEADLINE_S) -> list:
        async def enough() -> bool:
            return len(await self.poll()) >= count

        await eventually(enough, deadline_s=deadline_s, what=f"{count} dispatches")
        return self.received


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
