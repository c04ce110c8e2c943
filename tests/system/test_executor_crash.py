"""An executor process killed in the middle of a job loses nothing, and one stopped with SIGTERM
finishes its job before it leaves.

Real `python -m scheduler_service` and `python -m executor_service` processes run against the
test's database and broker; an `http` job calls a real HTTP server on loopback that records
every request. SIGKILL: the first request is held unanswered, the executor is killed, a second
executor joins the group; the lease expires, lease recovery marks the attempt LOST and
re-dispatches it, and the second executor completes it, the target seeing both attempts under
one idempotency key. SIGTERM: the executor lets the running attempt finish, records it, removes
its node row and exits cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from service_process import START_DEADLINE_S, Service, start_service, tail, wait_for
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs import job_types, webhooks
from libs import schedule as schedules

JOB_TIMEOUT_S = 2
# How long a dispatch may wait in Kafka before lease recovery takes it back. The retry must
# still be leased when the second executor gets the partition, which the broker hands over only
# once the dead member's session (aiokafka's default, 10 s) has timed out and the rebalance has
# waited for it (about 20 s after the kill on the embedded broker). The retry is dispatched
# DISPATCH_LEASE_S + JOB_TIMEOUT_S after the first attempt and leased as long again.
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

    def common(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_DISPATCH_TOPIC": self.topic,
            "KAFKA_DEAD_LETTER_TOPIC": f"{self.topic}.dead-letter",
            "KAFKA_DISPATCH_PARTITIONS": "1",
            "SHUTDOWN_GRACE_S": str(SHUTDOWN_GRACE_S),
            "HEARTBEAT_INTERVAL_S": "0.5",
        }

    def scheduler(self, name: str) -> Service:
        return self._start(
            "scheduler_service",
            name,
            DISPATCH_LEASE_S=str(DISPATCH_LEASE_S),
            LEASE_MARGIN_S="0",
            RECOVERY_INTERVAL_S="0.25",
            DISPATCH_MAX_SLEEP_S="0.25",
        )

    def executor(self, name: str) -> Service:
        return self._start(
            "executor_service",
            name,
            CONSUMER_GROUP=f"{self.topic}.executors",
            HTTP_ALLOWED_NETWORKS="127.0.0.0/8",
            LEASE_MARGIN_S="0",
        )

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

    def __init__(self, *, hold_first: bool = False, delay_s: float = 0.0):
        self.hold_first = hold_first
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
                return Response("released", 503)
            await asyncio.sleep(self.delay_s)
            self.answered += 1
            return Response("ok")

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


async def insert_http_job(conn: asyncpg.Connection, url: str) -> uuid.UUID:
    """An `http` job due now, written as the job service writes one."""
    now = await conn.fetchval("SELECT now()")
    stored = schedules.normalise(schedules.Once(kind="once", at=now), now).model_dump_json()
    payload = job_types.validate_payload("http", {"url": url, "body": {"report": "nightly"}})
    return await conn.fetchval(
        """
        INSERT INTO jobs (owner_id, name, type, payload, schedule, schedule_kind, retry_policy,
                          misfire_policy, misfire_grace_s, timeout_s, status, next_run_at)
        VALUES (gen_random_uuid(), 'crash', 'http', $1::jsonb, $2::jsonb, 'once',
                '{"max_attempts": 3, "initial_backoff_s": 0}', 'run_once', 3600, $3,
                'SCHEDULED', $4)
        RETURNING id
        """,
        json.dumps(payload),
        stored,
        JOB_TIMEOUT_S,
        now,
    )


# --- the tests ---------------------------------------------------------------------------------


async def test_a_killed_executor_loses_its_attempt_and_a_successor_completes_the_occurrence(
    database_url, kafka_bootstrap_servers, unique_name, serve_app, tmp_path
):
    platform = Platform(database_url, kafka_bootstrap_servers, f"{unique_name}.dispatch", tmp_path)
    target = Target(hold_first=True)
    conn = await asyncpg.connect(dsn(database_url))
    try:
        async with serve_app(target.app()) as base_url:
            try:
                await asyncio.to_thread(platform.scheduler, "scheduler")
                victim = await asyncio.to_thread(platform.executor, "victim")
                await wait_assigned(victim, START_DEADLINE_S)
                job_id = await insert_http_job(conn, f"{base_url}/hook")

                async def first_request_arrived() -> bool:
                    return len(target.requests) >= 1

                await wait_for(first_request_arrived, 15, "the first attempt's request")
                victim.proc.send_signal(signal.SIGKILL)
                victim.proc.wait(10)
                killed_at = time.monotonic()
                survivor = await asyncio.to_thread(platform.executor, "survivor")

                async def job_finished() -> bool:
                    status = await conn.fetchval("SELECT status FROM jobs WHERE id = $1", job_id)
                    return status in ("COMPLETED", "FAILED")

                await wait_for(job_finished, 45, "the job finished")
                took_s = time.monotonic() - killed_at
            finally:
                # The held request's handler must end for the server to stop.
                target.release.set()

        job = await conn.fetchrow("SELECT status, run_count FROM jobs WHERE id = $1", job_id)
        executions = await conn.fetch(
            "SELECT id, attempt, status, error_kind, scheduled_for, worker FROM executions "
            "WHERE job_id = $1 ORDER BY attempt",
            job_id,
        )
        assert (job["status"], job["run_count"]) == ("COMPLETED", 1), (job, executions)
        assert [(e["attempt"], e["status"], e["error_kind"], e["worker"]) for e in executions] == [
            (1, "LOST", "lease_expired", "victim"),
            (2, "SUCCEEDED", None, "survivor"),
        ]
        assert executions[0]["scheduled_for"] == executions[1]["scheduled_for"]

        # The target saw the occurrence twice, under one key it can deduplicate on.
        assert len(target.requests) == 2
        keys = {(h["idempotency-key"], h[webhooks.ID_HEADER]) for h, _ in target.requests}
        assert len(keys) == 1
        idempotency_key, webhook_id = keys.pop()
        assert idempotency_key == webhook_id
        assert {body for _, body in target.requests} == {b'{"report":"nightly"}'}
        assert target.answered == 1
        # The victim's message, never committed, was redelivered to the survivor, whose claim
        # found its execution started already: it was skipped, not run a second time.
        skipped = [e["execution_id"] for e in survivor.events("dispatch_skipped")]
        assert skipped == [str(executions[0]["id"])]
        print(f"completed {took_s:.1f} s after the kill")
    finally:
        platform.stop_all()
        await conn.close()


async def test_sigterm_lets_the_running_attempt_finish_and_removes_the_node(
    database_url, kafka_bootstrap_servers, unique_name, serve_app, tmp_path
):
    platform = Platform(database_url, kafka_bootstrap_servers, f"{unique_name}.dispatch", tmp_path)
    target = Target(delay_s=1.0)
    conn = await asyncpg.connect(dsn(database_url))
    try:
        async with serve_app(target.app()) as base_url:
            await asyncio.to_thread(platform.scheduler, "scheduler")
            executor = await asyncio.to_thread(platform.executor, "leaving")
            await wait_assigned(executor, START_DEADLINE_S)
            assert await conn.fetchval("SELECT count(*) FROM nodes WHERE node_id = 'leaving'") == 1
            job_id = await insert_http_job(conn, f"{base_url}/hook")

            async def request_arrived() -> bool:
                return len(target.requests) >= 1

            await wait_for(request_arrived, 15, "the attempt's request")
            stopping_at = time.monotonic()
            executor.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(executor.proc.wait, SHUTDOWN_GRACE_S + 5)
            took_s = time.monotonic() - stopping_at

        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert code in (0, -signal.SIGTERM), tail(executor)
        assert took_s < SHUTDOWN_GRACE_S
        execution = await conn.fetchrow(
            "SELECT status, worker, finished_at FROM executions WHERE job_id = $1", job_id
        )
        assert (execution["status"], execution["worker"]) == ("SUCCEEDED", "leaving")
        job = await conn.fetchrow("SELECT status, run_count FROM jobs WHERE id = $1", job_id)
        assert (job["status"], job["run_count"]) == ("COMPLETED", 1)
        assert target.answered == 1 and len(target.requests) == 1
        assert await conn.fetchval("SELECT count(*) FROM nodes WHERE node_id = 'leaving'") == 0
        assert executor.events("executor_stopped")[-1]["unfinished"] == 0
        print(f"exited with {code} {took_s:.1f} s after SIGTERM")
    finally:
        platform.stop_all()
        await conn.close()
