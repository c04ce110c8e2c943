"""The platform of the crash and fault tests: scheduler and executor processes over the test's
database and broker, an HTTP target that records every request, and `http` jobs written as the
job service writes them. Not a test module."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from service_process import Service, start_service, tail, wait_for
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.scheduling import job_types
from libs.scheduling import schedule as schedules

JOB_TIMEOUT_S = 2
# How long a dispatch may take to reach an executor and be started (the scheduler's lease).
DISPATCH_LEASE_S = 14
SHUTDOWN_GRACE_S = 10
HOLD_MAX_S = 60  # a held request is released at the latest after this (the test has ended)


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Platform:
    """What the test's processes share: the database, the broker, the topics, the group."""

    database_url: str
    bootstrap: str
    topic: str
    log_dir: Path
    started: list[Service] = field(default_factory=list)

    partitions: int = 1
    settings: dict[str, str] = field(default_factory=dict)  # for every process

    def common(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_DISPATCH_TOPIC": self.topic,
            "KAFKA_DEAD_LETTER_TOPIC": f"{self.topic}.dead-letter",
            "KAFKA_DISPATCH_PARTITIONS": str(self.partitions),
            "SHUTDOWN_GRACE_S": str(SHUTDOWN_GRACE_S),
            "HEARTBEAT_INTERVAL_S": "0.5",
            **self.settings,
        }

    def scheduler(self, name: str, **settings: str) -> Service:
        defaults = {
            "DISPATCH_LEASE_S": str(DISPATCH_LEASE_S),
            "RECOVERY_INTERVAL_S": "0.25",
            "DISPATCH_MAX_SLEEP_S": "0.25",
        }
        return self._start("scheduler_service", name, **{**defaults, **settings})

    def executor(self, name: str, **settings: str) -> Service:
        defaults = {
            "CONSUMER_GROUP": f"{self.topic}.executors",
            "HTTP_ALLOWED_NETWORKS": "127.0.0.0/8",
            "LEASE_MARGIN_S": "0",
        }
        return self._start("executor_service", name, **{**defaults, **settings})

    def _start(self, package: str, name: str, **settings: str) -> Service:
        service = start_service(package, name, self.log_dir, {**self.common(), **settings})
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        for service in self.started:
            service.stop()


async def wait_assigned(executor: Service, deadline_s: float) -> None:
    """Until the executor owns a partition of the dispatch topic (it consumes from then on)."""

    async def assigned() -> bool:
        if executor.proc.poll() is not None:
            pytest.fail(f"{executor.name} exited with {executor.proc.returncode}: {tail(executor)}")
        return any(e.get("partitions") for e in executor.events("partitions_assigned"))

    await wait_for(assigned, deadline_s, f"{executor.name} assigned a partition")


# --- the target --------------------------------------------------------------------------------


class Target:
    """An HTTP endpoint that records every request. With `hold_first`, the first request gets
    no answer until `release` is set; every answer comes after `delay_s`, with status 200."""

    def __init__(self, *, hold_first: bool = False, delay_s: float = 0.0, held_status: int = 503):
        self.hold_first = hold_first
        self.held_status = held_status
        self.delay_s = delay_s
        self.requests: list[tuple[Headers, bytes]] = []
        self.answered = 0
        self.release = asyncio.Event()

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.requests.append((request.headers, await request.body()))
            if self.hold_first and len(self.requests) == 1:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HOLD_MAX_S):
                        await self.release.wait()
                return Response("released", self.held_status)
            await asyncio.sleep(self.delay_s)
            self.answered += 1
            return Response("ok")

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


async def insert_http_job(
    conn: asyncpg.Connection, url: str, *, max_attempts: int = 3, timeout_s: int = JOB_TIMEOUT_S
) -> uuid.UUID:
    """An `http` job due now, written as the job service writes one."""
    now = await conn.fetchval("SELECT now()")
    stored = schedules.normalise(schedules.Once(kind="once", at=now), now).model_dump_json()
    payload = job_types.load().validate_payload("http", {"url": url, "body": {"report": "nightly"}})
    return await conn.fetchval(
        """
        INSERT INTO jobs (owner_id, name, type, payload, schedule, schedule_kind, retry_policy,
                          misfire_policy, misfire_grace_s, timeout_s, status, next_run_at)
        VALUES (gen_random_uuid(), 'crash', 'http', $1::jsonb, $2::jsonb, 'once',
                $5::jsonb, 'run_once', 3600, $3, 'SCHEDULED', $4)
        RETURNING id
        """,
        json.dumps(payload),
        stored,
        timeout_s,
        now,
        json.dumps({"max_attempts": max_attempts, "initial_backoff_s": 0}),
    )
