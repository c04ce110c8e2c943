"""A scheduler process killed in the middle of its work loses nothing and duplicates nothing.

A real `python -m scheduler_service` dispatches thousands of jobs (a backlog, then a steady
stream) while a stand-in executor consumes the dispatch topic and completes each occurrence the
way the executor service does (claim guarded by the execution's state, outcome guarded by the
job's fencing token). The scheduler is SIGKILLed mid-run; a second one takes over, its lease
recovery re-dispatches what the first had claimed but not published, and every occurrence is
completed by exactly one execution.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
from service_process import START_DEADLINE_S, Service, start_service, tail, wait_for
from sqlalchemy.engine import make_url

from libs.contracts import messages
from libs.infra import kafka
from libs.infra.config import KafkaSettings
from libs.scheduling import schedule as schedules

JOBS_BEHIND = 1_500  # due already when the first scheduler starts
JOBS_STREAMED = 2_500  # due over the next STREAM_S seconds
STREAM_S = 5.0
FINISH_DEADLINE_S = 90

# The stand-in executor's one statement: the job row is locked first (as lease recovery locks
# it), so a recovery and an outcome never interleave.
COMPLETE = """
WITH job AS (
    SELECT j.id FROM jobs j
    WHERE j.id = $2 AND j.lease_version = $3 AND j.status = 'RUNNING'
    FOR UPDATE
), done AS (
    UPDATE executions e SET status = 'SUCCEEDED', started_at = now(), finished_at = now(),
                            worker = 'stand-in'
    FROM job WHERE e.id = $1 AND e.job_id = job.id AND e.status = 'DISPATCHED'
    RETURNING e.job_id
)
UPDATE jobs j SET status = 'COMPLETED', next_run_at = NULL, lease_expires_at = NULL,
                  leased_by = NULL, run_count = run_count + 1, last_finished_at = now()
FROM done WHERE j.id = done.job_id
RETURNING j.id
"""


class Reader(KafkaSettings):
    service_name = "test_executor"


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def start_scheduler(
    database_url: str, bootstrap: str, topic: str, node_id: str, log_dir: Path
) -> Service:
    return start_service(
        "scheduler_service",
        node_id,
        log_dir,
        {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_DISPATCH_TOPIC": topic,
            "KAFKA_DEAD_LETTER_TOPIC": f"{topic}.dead-letter",
            "KAFKA_DISPATCH_PARTITIONS": "3",
            # Small batches, so the kill lands between claims and publishes; short leases, so
            # the survivor recovers the victim's claims within seconds.
            "DISPATCH_BATCH_SIZE": "25",
            "DISPATCH_LEASE_S": "2",
            "LEASE_MARGIN_S": "0",
            "RECOVERY_INTERVAL_S": "0.25",
            "HEARTBEAT_INTERVAL_S": "0.5",
            "DISPATCH_MAX_SLEEP_S": "0.5",
            "SHUTDOWN_GRACE_S": "10",
        },
    )


async def insert_jobs(conn: asyncpg.Connection) -> list[uuid.UUID]:
    now = await conn.fetchval("SELECT now()")
    spec = schedules.Once(kind="once", at=now)
    stored = schedules.normalise(spec, now).model_dump_json()
    times = [now - timedelta(milliseconds=i) for i in range(JOBS_BEHIND)]
    step = STREAM_S / JOBS_STREAMED
    times += [now + timedelta(seconds=2 + i * step) for i in range(JOBS_STREAMED)]
    rows = await conn.fetch(
        """
        INSERT INTO jobs (owner_id, name, type, payload, schedule, schedule_kind, retry_policy,
                          misfire_policy, misfire_grace_s, timeout_s, status, next_run_at)
        SELECT gen_random_uuid(), 'crash-' || n, 'log', '{"message": "x"}', $1::jsonb, 'once',
               '{"max_attempts": 5, "initial_backoff_s": 0}', 'run_once', 3600, 1,
               'SCHEDULED', t
        FROM unnest($2::timestamptz[]) WITH ORDINALITY AS u(t, n)
        RETURNING id
        """,
        stored,
        times,
    )
    return [r["id"] for r in rows]


async def stand_in_executor(
    settings: Reader,
    conn: asyncpg.Connection,
    seen: list,
    completed: set,
    ready: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    consumer = kafka.create_consumer(
        settings, settings.kafka_dispatch_topic, group_id=f"stand-in-{uuid.uuid4().hex[:6]}"
    )
    await kafka.start(consumer)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            if consumer.assignment():
                ready.set()
            for records in batch.values():
                for record in records:
                    message = messages.parse_dispatch(kafka.decode(record.value))
                    seen.append(message)
                    done = await conn.fetchval(
                        COMPLETE, message.execution_id, message.job_id, message.lease_version
                    )
                    if done is not None:
                        assert done not in completed, "an occurrence completed twice"
                        completed.add(done)
    finally:
        await consumer.stop()


async def test_a_killed_scheduler_loses_and_duplicates_no_occurrence(
    database_url, kafka_bootstrap_servers, unique_name, tmp_path
):
    topic = f"{unique_name}.dispatch"
    reader = Reader(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        kafka_dispatch_topic=topic,
        kafka_dead_letter_topic=f"{topic}.dead-letter",
    )
    conn = await asyncpg.connect(dsn(database_url))
    executor_conn = await asyncpg.connect(dsn(database_url))
    seen: list[messages.DispatchMessage] = []
    completed: set[uuid.UUID] = set()
    stop = asyncio.Event()
    victim = survivor = None
    ready = asyncio.Event()
    try:
        await kafka.ensure_topics(reader.model_copy(update={"kafka_dispatch_partitions": 3}))
        executor = asyncio.create_task(
            stand_in_executor(reader, executor_conn, seen, completed, ready, stop)
        )
        async with asyncio.timeout(START_DEADLINE_S):
            await ready.wait()
        ids = await insert_jobs(conn)
        victim = await asyncio.to_thread(
            start_scheduler, database_url, kafka_bootstrap_servers, topic, "victim", tmp_path
        )

        async def midway() -> bool:
            dispatched = await conn.fetchval("SELECT count(*) FROM executions")
            return dispatched >= JOBS_BEHIND + JOBS_STREAMED // 3

        await wait_for(midway, 30, "a third of the stream dispatched")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        claimed_by_victim = await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE status = 'RUNNING' AND leased_by = 'victim'"
        )

        survivor = await asyncio.to_thread(
            start_scheduler, database_url, kafka_bootstrap_servers, topic, "survivor", tmp_path
        )

        async def all_completed() -> bool:
            return len(completed) == len(ids)

        await wait_for(all_completed, FINISH_DEADLINE_S, "every occurrence completed")
        stop.set()
        await executor

        survivor.proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert survivor.proc.wait(30) in (0, -signal.SIGTERM), tail(survivor)
        nodes = {r["node_id"] for r in await conn.fetch("SELECT node_id FROM nodes")}
        # The killed node's row stays until it expires; the one stopped cleanly removed its own.
        assert nodes == {"victim"}

        rows = await conn.fetch("SELECT id, job_id, status FROM executions")
        succeeded = collections.Counter(r["job_id"] for r in rows if r["status"] == "SUCCEEDED")
        statuses = collections.Counter(r["status"] for r in rows)
        jobs = collections.Counter(r["status"] for r in await conn.fetch("SELECT status FROM jobs"))
        delivered = collections.Counter(m.execution_id for m in seen)
        # Every occurrence ran exactly once; no execution was delivered twice.
        assert set(succeeded) == set(ids) and set(succeeded.values()) == {1}
        assert jobs == {"COMPLETED": len(ids)}
        assert max(delivered.values()) == 1
        # Every execution is accounted for: succeeded, or lost with its job's lease and retried.
        assert set(statuses) <= {"SUCCEEDED", "LOST"}
        assert statuses["LOST"] == len(rows) - len(ids)
        print(
            f"victim held {claimed_by_victim} claims at the kill; "
            f"{statuses['LOST']} executions recovered as LOST"
        )
    finally:
        stop.set()
        for service in (victim, survivor):
            if service is not None:
                service.stop()
        await conn.close()
        await executor_conn.close()
